"""The search's own record of every trial: the format of ``<run>/results.jsonl``.

Ray's ResultGrid cannot read metrics once Tune's per-trial loggers are off (they cost
most of Tune's per-trial overhead), so a Tune callback (``search.callbacks``) appends
one JSON line per event and closes the file at once; a killed driver loses nothing
that was reported. Export, the status line and the report read the same file through
:func:`load_records`.

Lines::

    {"event": "start",  "trial_id": ..., "params": {...}, "time": unix seconds}
    {"event": "result", "trial_id": ..., "result": {metric..., "training_iteration": n, ...}}
    {"event": "end",    "trial_id": ..., "status": STATUS, "error": str|null, "time": ...}
    {"event": "params", "trial_id": ..., "params": {...}}   PBT changed them
    {"event": "discard", "trial_id": ...}   unknown to a resumed search (callbacks)

A trial resumed or retried appends more lines under the same id; the latest wins.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
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
]

RESULTS_JSONL = "results.jsonl"
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
    """Append one event line (opened and closed per event: nothing buffered is lost)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str, allow_nan=True) + "\n")


def load_records(run_dir: str | Path, *, finished: bool = False) -> dict[str, TrialRecord]:
    """Read ``results.jsonl`` into one record per trial id, in start order.

    Args:
        run_dir: the search run directory.
        finished: the search is over; a trial with no end line is INTERRUPTED.
    """
    records: dict[str, TrialRecord] = {}
    path = Path(run_dir, RESULTS_JSONL)
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a killed driver
        rec = records.setdefault(event["trial_id"], TrialRecord(event["trial_id"]))
        kind = event.get("event")
        if kind == "start":
            params = event.get("params", rec.params)
            if rec.params and params != rec.params:  # restarted with PBT's new params
                rec.param_changes += 1
            rec.params = params
            rec.start = rec.start if rec.start is not None else event.get("time")
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
            del records[event["trial_id"]]
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
    """The trial with the best final metric (diverged and errored trials excluded).

    Ties go to the trial that started first, so the choice is reproducible.
    """
    best: TrialRecord | None = None
    for rec in records.values():
        value = rec.metric(metric)
        if value is None or rec.status in (DIVERGED, ERROR):
            continue
        current = best.metric(metric) if best is not None else None
        if current is None or (value > current if mode == "max" else value < current):
            best = rec
    return best
