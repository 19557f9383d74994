"""Tune callbacks of the search: the results recorder and the fatal-error stopper."""

from __future__ import annotations

import re
import time
import traceback
from pathlib import Path
from typing import Any

from ray.exceptions import RayError
from ray.tune import Callback, Stopper

from rt3d_tune.errors import RecordingError
from rt3d_tune.results.recorder import (
    ERROR,
    RESULTS_JSONL,
    append_event,
    classify,
    load_records,
)
from rt3d_tune.search._ray_private import trial_error
from rt3d_tune.space.params import CONFIRM_KEY, is_baseline, trial_params, without_marker

__all__ = ["FatalErrorStopper", "ResultRecorder"]

# Result keys Tune adds that say nothing about the trial.
_DROPPED_KEYS = ("config", "date", "timestamp", "experiment_tag", "checkpoint_dir_name")


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")


def _error_text(trial: Any) -> str:
    """The exception and its message (no stack frames), on one line.

    The trial's own exception when Ray pickled it (a task error wrapping what the
    trainable raised); otherwise the last exception of Tune's text trace (an actor that
    died, Tune's own errors, an exception Ray could not pickle).
    """
    pickled, trace = trial_error(trial)
    cause = getattr(pickled, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, RayError):
        return _one_line(traceback.format_exception_only(cause))
    lines = trace.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    if not starts:
        return lines[-1] if lines else "unknown error"
    return _one_line(lines[starts[-1]:])


def _one_line(lines: list[str]) -> str:
    return " ".join(part.strip() for line in lines for part in line.splitlines() if part.strip())


class ResultRecorder(Callback):
    """Appends every trial event to ``<run_dir>/results.jsonl`` (format: ``recorder``);
    the confirmation phase records to its own file (``recorder.CONFIRM_JSONL``)."""

    def __init__(self, run_dir: str | Path, filename: str = RESULTS_JSONL) -> None:
        self.path = Path(run_dir, filename)
        self._reconciled = False
        self._params: dict[str, dict[str, Any]] = {}

    def _append(self, event: dict[str, Any]) -> None:
        """One event into the file; a failed write (the file left as it was) ends the
        search with RecordingError: an event that is not recorded would be lost, and the
        trials would go on training for results nobody keeps."""
        try:
            append_event(self.path, event)
        except OSError as err:
            raise RecordingError(self.path, err) from err

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """On the first step, forget trials a killed driver ran after Tune's last save.

        Tune resumes from its last saved state; trials created after it are unknown to
        the restored search, which suggests new ones in their place. Recording them as
        discarded keeps every trial of the finished search exactly once.
        """
        if self._reconciled:
            return
        self._reconciled = True
        known = {trial.trial_id for trial in trials}
        for trial_id in load_records(self.path.parent, filename=self.path.name):
            if trial_id not in known:
                self._append({"event": "discard", "trial_id": trial_id, "time": time.time()})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        marked = trial_params(trial.config)
        params = without_marker(marked)
        self._params[trial.trial_id] = params
        event = {"event": "start", "trial_id": trial.trial_id, "params": params,
                 "time": time.time()}
        if is_baseline(marked):
            event["baseline"] = True
        confirm = trial.config.get(CONFIRM_KEY)
        if isinstance(confirm, dict):
            event.update(confirm_of=confirm["of"], seed=confirm["seed"])
        self._append(event)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        params = without_marker(trial_params(trial.config))
        if params != self._params.get(trial.trial_id, params):  # PBT exploited and explored
            self._params[trial.trial_id] = params
            self._append({"event": "params", "trial_id": trial.trial_id,
                                     "params": params, "time": time.time()})
        kept = {k: v for k, v in result.items() if k not in _DROPPED_KEYS}
        self._append({"event": "result", "trial_id": trial.trial_id, "result": kept})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        self._append({"event": "end", "trial_id": trial.trial_id, "status": classify(last),
                      "error": last.get("fatal_error") or last.get("error"),
                      "time": time.time()})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._append({"event": "end", "trial_id": trial.trial_id, "status": ERROR,
                      "error": _error_text(trial), "time": time.time()})


class FatalErrorStopper(Stopper):
    """Ends the whole search when a trial reports ``fatal_error`` (kept in ``.fatal``).

    A fatal error is one every trial would repeat (the metric is never produced, the
    trial config does not build); the driver raises it as ConfigError.
    """

    def __init__(self) -> None:
        self.fatal: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get("fatal_error"):
            self.fatal = self.fatal or str(result["fatal_error"])
            return True
        return False

    def stop_all(self) -> bool:
        return self.fatal is not None
