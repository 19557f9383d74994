"""The compact live status of a search, in place of Ray's trial table.

One line: trials running, stopped early, finished, diverged, errored, and the best
metric so far. On a terminal the line is rewritten in place (at most a few times a
second); elsewhere (CI, a log file) a plain line is printed each time a trial starts
or ends, never per result.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

from rt3d_tune.results.recorder import (
    DIVERGED,
    EARLY_STOPPED,
    ERROR,
    TERMINATED,
    classify,
    load_records,
)

__all__ = ["StatusLine", "format_status"]

_REFRESH_S = 0.25


def format_status(
    counts: dict[str, int],
    running: int,
    total: int | None,
    metric: str,
    best: tuple[float, str] | None,
    elapsed_s: float,
) -> str:
    """The status line's text (pure; the callback decides when to show it)."""
    done = sum(counts.values())
    of = f"/{total}" if total else ""
    parts = [
        f"{done}{of} done",
        f"{running} running",
        f"{counts.get(TERMINATED, 0)} finished",
        f"{counts.get(EARLY_STOPPED, 0)} stopped early",
    ]
    if counts.get(DIVERGED):
        parts.append(f"{counts[DIVERGED]} diverged")
    if counts.get(ERROR):
        parts.append(f"{counts[ERROR]} errored")
    best_text = f"best {metric} {best[0]:.4g} ({best[1]})" if best else f"best {metric} -"
    minutes, seconds = divmod(int(elapsed_s), 60)
    return f"[search {minutes}m{seconds:02d}s] " + ", ".join(parts) + " | " + best_text


class StatusLine(Callback):
    """A Tune callback that shows :func:`format_status` as the search runs.

    Args:
        metric: the metric the search optimizes; mode: 'max' or 'min'.
        run_dir: the run directory; a resumed search counts its earlier trials from
            ``results.jsonl``.
        total: the number of trials planned (None when open-ended).
        stream: where to write (stderr by default).
    """

    def __init__(
        self,
        metric: str,
        mode: str,
        run_dir: str | Path,
        total: int | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.metric = metric
        self.mode = mode
        self.run_dir = str(run_dir)
        self.total = total
        self.stream = stream
        self.running: set[str] = set()
        self.ended: dict[str, str] = {}
        # each trial's latest value: the best of these is what export will call the best
        # (a trial's early peak that it later lost is not the winner)
        self.latest: dict[str, float] = {}
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_line = ""

    def setup(self, **info: Any) -> None:
        """Tune calls this when the search starts or resumes: count what ran before."""
        self.start = time.monotonic()
        self.running.clear()
        self.ended.clear()
        self.latest.clear()
        for rec in load_records(self.run_dir).values():
            if rec.status in (TERMINATED, EARLY_STOPPED, DIVERGED, ERROR):
                self.ended[rec.trial_id] = rec.status
            value = rec.metric(self.metric)
            if value is not None and rec.status not in (DIVERGED, ERROR):
                self.latest[rec.trial_id] = value

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["stream"] = None  # Tune pickles its callbacks with the run config
        return state

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    @property
    def best(self) -> tuple[float, str] | None:
        """(value, trial id) of the best latest value, as export will choose it."""
        if not self.latest:
            return None
        pick = max if self.mode == "max" else min
        trial_id = pick(self.latest, key=self.latest.__getitem__)
        return self.latest[trial_id], trial_id

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.ended.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def line(self) -> str:
        """The current status text."""
        return format_status(
            self._counts(),
            len(self.running),
            self.total,
            self.metric,
            self.best,
            time.monotonic() - self.start,
        )

    def _draw(self, event: bool) -> None:
        out = self._out
        tty = bool(getattr(out, "isatty", lambda: False)())
        now = time.monotonic()
        if tty:
            if event or now - self._last_draw >= _REFRESH_S:
                out.write("\r\x1b[K" + self.line())
                out.flush()
                self._last_draw = now
        elif event:
            text = self.line()
            if text != self._last_line:
                out.write(text + "\n")
                out.flush()
                self._last_line = text

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._draw(event=False)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        value = result.get(self.metric)
        if result.get("diverged") or result.get("fatal_error"):
            self.latest.pop(trial.trial_id, None)  # export never picks such a trial
        elif isinstance(value, (int, float)) and math.isfinite(value):
            self.latest[trial.trial_id] = float(value)
        self._draw(event=False)

    def _end(self, trial: Any, status: str) -> None:
        self.running.discard(trial.trial_id)
        self.ended[trial.trial_id] = status
        self._draw(event=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, classify(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, ERROR)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        out = self._out
        if getattr(out, "isatty", lambda: False)():
            out.write("\r\x1b[K" + self.line() + "\n")
            out.flush()
