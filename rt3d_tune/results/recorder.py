"""The search's own record of every trial: the format of ``<run>/results.jsonl``.

Ray's ResultGrid cannot read metrics once Tune's per-trial loggers are off (they cost
most of Tune's per-trial overhead), so a Tune callback (``search.callbacks``) appends
one JSON line per event and closes the file at once; a killed driver loses nothing
that was reported. Export, the status line and the report read the same file through
:func:`load_records`.

Lines::

    {"event": "start",  "trial_id": ..., "params": {...}, "time": unix seconds,
     "confirm_of": trial id, "seed": int,   (these two in confirm.jsonl only)
     "baseline": true}   the base config as written (a search trial or a confirmation run)
    {"event": "result", "trial_id": ..., "result": {metric..., "training_iteration": n, ...}}
    {"event": "end",    "trial_id": ..., "status": STATUS, "error": str|null, "time": ...}
    {"event": "params", "trial_id": ..., "params": {...}}   PBT changed them
    {"event": "discard", "trial_id": ...}   unknown to a resumed search (callbacks)

A trial resumed or retried appends more lines under the same id; the latest wins.
Every line is written whole (:func:`append_event`); a reader skips a line that is not,
with a warning (:func:`read_events`), so a torn last line never breaks export or resume.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIRM_JSONL",
    "DIVERGED",
    "EARLY_STOPPED",
    "ERROR",
    "INTERRUPTED",
    "RESULTS_JSONL",
    "RUNNING",
    "TERMINATED",
    "TrialRecord",
    "append_event",
    "best_record",
    "classify",
    "close_unfinished",
    "load_records",
    "read_events",
]

RESULTS_JSONL = "results.jsonl"
CONFIRM_JSONL = "confirm.jsonl"  # the confirmation runs of the top trials, same format
TERMINATED = "TERMINATED"  # ran its full schedule
EARLY_STOPPED = "EARLY_STOPPED"  # stopped by the scheduler (ASHA, median, ...)
DIVERGED = "DIVERGED"  # non-finite loss
ERROR = "ERROR"  # raised (after its retries)
RUNNING = "RUNNING"  # started, no end recorded yet
INTERRUPTED = "INTERRUPTED"  # no end recorded and the search is over


def classify(last_result: dict[str, Any] | None) -> str:
    """The end status of a trial that completed (no exception) from its last result."""
    if not last_result:
        return EARLY_STOPPED
    if last_result.get("fatal_error"):
        return ERROR
    if last_result.get("diverged"):
        return DIVERGED
    # Tune marks a scheduler's stop as done too; only the trial knows it ran to the end.
    return TERMINATED if last_result.get("final") else EARLY_STOPPED


@dataclass
class TrialRecord:
    """Everything recorded about one trial (latest value per fidelity)."""

    trial_id: str
    params: dict[str, Any] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    status: str = RUNNING
    error: str | None = None
    param_changes: int = 0  # times PBT replaced the params (params holds the latest)
    start: float | None = None
    end: float | None = None
    confirm_of: str | None = None  # a confirmation run: the search trial it trains again
    seed: int | None = None  # a confirmation run's seed
    baseline: bool = False  # the base config as written (the baseline trial, or its rerun)

    @property
    def last_result(self) -> dict[str, Any]:
        """The result of the highest fidelity reached ({} when none)."""
        return self.results[max(self.results)] if self.results else {}

    def metric(self, name: str, fidelity: int | None = None) -> float | None:
        """The metric at ``fidelity`` (default: the highest reached).

        None when never reported there, or when that report is the stand-in worst
        value of a diverged or failed trial.
        """
        result = self.last_result if fidelity is None else self.results.get(fidelity, {})
        if result.get("diverged") or result.get("fatal_error"):
            return None
        value = result.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None

    @property
    def fidelity(self) -> int:
        """Epochs (or evaluation rounds) trained, as last reported."""
        return max(self.results) if self.results else 0


def append_event(path: Path, record: dict[str, Any]) -> None:
    """Append one event as one whole line (opened and closed per event: nothing buffered
    is lost).

    The line goes out in one ``write`` to the end of the file; a write that fails part
    way (a full disk) is cut back to where it started, and a torn last line an earlier
    crash left is cut off first, so every line of the file is a whole event and a new
    line is never glued to half of an old one.

    Raises:
        OSError: the line could not be written (the file is left as it was).
    """
    data = (json.dumps(record, default=str, allow_nan=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = _cut_torn_tail(fd, Path(path))
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:])
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, path: Path) -> int:
    """Cut the file after its last newline (a torn last line); return the new size."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    os.ftruncate(fd, end)
    warnings.warn(f"{path}: cut a torn last line ({size - end} bytes, the end of a write a "
                  "crash or a full disk interrupted) before appending", stacklevel=3)
    return end


# The field each event kind needs, and its type.
_NEEDS: dict[str, tuple[str, type]] = {
    "result": ("result", dict), "end": ("status", str), "params": ("params", dict),
}


def _event(line: str) -> dict[str, Any] | None:
    """One line as an event, or None when it is not a whole, well-formed one."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("trial_id"), str):
        return None
    need = _NEEDS.get(str(event.get("event")))
    if need is not None and not isinstance(event.get(need[0]), need[1]):
        return None
    return event


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a results file, in order.

    A line that is not a whole event is skipped with a warning: a torn last line (the
    end of a write a crash or a full disk cut, which the next append also cuts off) or,
    anywhere else, a corrupted one; the warning counts them.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    tail = lines.pop()  # the text after the last newline: a line cut short, if any
    events, bad = [], []
    for number, line in enumerate(lines, start=1):
        event = _event(line) if line.strip() else {}
        if event is None:
            bad.append(number)
        elif event:
            events.append(event)
    if tail:
        event = _event(tail)
        if event is None:
            warnings.warn(f"{path}: skipped a torn last line (line {len(lines) + 1}: the end of "
                          "a write a crash or a full disk cut short)", stacklevel=2)
        else:
            events.append(event)
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        warnings.warn(f"{path}: skipped {len(bad)} unreadable line(s) (line {shown})",
                      stacklevel=2)
    return events


def load_records(run_dir: str | Path, *, finished: bool = False,
                 filename: str = RESULTS_JSONL) -> dict[str, TrialRecord]:
    """Read ``results.jsonl`` into one record per trial id, in start order.

    Args:
        run_dir: the search run directory.
        finished: the search is over; a trial with no end line is INTERRUPTED.
        filename: ``CONFIRM_JSONL`` reads the confirmation runs instead.
    """
    records: dict[str, TrialRecord] = {}
    for event in read_events(Path(run_dir, filename)):
        rec = records.setdefault(event["trial_id"], TrialRecord(event["trial_id"]))
        kind = event.get("event")
        if kind == "start":
            params = event.get("params", rec.params)
            if rec.params and params != rec.params:  # restarted with PBT's new params
                rec.param_changes += 1
            rec.params = params
            rec.start = rec.start if rec.start is not None else event.get("time")
            rec.confirm_of, rec.seed = event.get("confirm_of"), event.get("seed")
            rec.baseline = bool(event.get("baseline"))
            rec.status, rec.error = RUNNING, None
        elif kind == "result":
            result = event["result"]
            rec.results[int(result.get("training_iteration", 0))] = result
        elif kind == "end":
            rec.status, rec.error, rec.end = event["status"], event.get("error"), event.get("time")
        elif kind == "params":
            rec.params = event["params"]
            rec.param_changes += 1
        elif kind == "discard":
            records.pop(event["trial_id"], None)
    if finished:
        for rec in records.values():
            if rec.status == RUNNING:
                rec.status = INTERRUPTED
    return records


def close_unfinished(run_dir: str | Path, status: str, reason: str) -> int:
    """Record an end for every trial still running (e.g. the time budget ran out).

    Returns the number of trials closed.
    """
    unfinished = [r for r in load_records(run_dir).values() if r.status == RUNNING]
    for rec in unfinished:
        append_event(Path(run_dir, RESULTS_JSONL), {"event": "end", "trial_id": rec.trial_id,
                                                    "status": status, "error": reason,
                                                    "time": time.time()})
    return len(unfinished)


def best_record(records: dict[str, TrialRecord], metric: str, mode: str) -> TrialRecord | None:
    """The trial with the best final metric (diverged and errored trials, and the
    baseline, which is the user's own config, excluded).

    Ties go to the trial that started first, so the choice is reproducible.
    """
    best: TrialRecord | None = None
    for rec in records.values():
        value = rec.metric(metric)
        if value is None or rec.status in (DIVERGED, ERROR) or rec.baseline:
            continue
        current = best.metric(metric) if best is not None else None
        if current is None or (value > current if mode == "max" else value < current):
            best = rec
    return best
