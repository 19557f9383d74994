"""Confirmed winners: the top trials trained again with new seeds, ranked by their mean.

The best of many noisy trials overstates what its config gives (the winner's curse):
some of its lead is the luck of its seed. After the search, the ``search.confirm.top_k``
best trials that ran their whole budget are trained again with ``seeds`` new seeds each
(``confirm.jsonl``, the same format as ``results.jsonl``); the winner is the config with
the best mean over those new runs, and that mean is the headline metric. The search
trial's own value is kept beside it, never averaged in. The baseline (the base config as
written) is confirmed with the same seeds whatever its search score, never among the
top-k and never the winner: its group is what the verdict compares with (``verdict``).
Pure: reads records only.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from rt3d_tune.results.recorder import DIVERGED, ERROR, TERMINATED, TrialRecord
from rt3d_tune.space.params import baseline_marked

__all__ = ["ConfirmedConfig", "baseline_record", "confirmed", "run_params", "select_top",
           "winner"]


def select_top(records: dict[str, TrialRecord], metric: str, mode: str, k: int
               ) -> list[TrialRecord]:
    """The ``k`` best trials that ran their whole budget, best first (ties: first started);
    the baseline is not one of them."""
    done = [(rec.metric(metric), i, rec) for i, rec in enumerate(records.values())
            if rec.status == TERMINATED and rec.metric(metric) is not None
            and not rec.baseline]
    sign = -1.0 if mode == "max" else 1.0
    done.sort(key=lambda item: (sign * item[0], item[1]))
    return [rec for _, _, rec in done[:k]]


def baseline_record(records: dict[str, TrialRecord]) -> TrialRecord | None:
    """The search's baseline trial (None when the search ran none)."""
    return next((rec for rec in records.values() if rec.baseline), None)


def run_params(rec: TrialRecord) -> dict[str, Any]:
    """The params that train ``rec``'s config again (the baseline's carry its marker)."""
    return baseline_marked(rec.params) if rec.baseline else dict(rec.params)


@dataclass
class ConfirmedConfig:
    """One top trial's config and its confirmation runs.

    Attributes:
        trial_id: the search trial whose config was confirmed.
        params: its sampled params.
        search_value: the metric the search trial reached (selection-biased).
        runs: confirmation trial id -> (seed, metric or None when it failed/diverged).
        baseline: the config is the baseline (the base config as written).
    """

    trial_id: str
    params: dict[str, Any]
    search_value: float | None
    runs: dict[str, tuple[int | None, float | None]] = field(default_factory=dict)
    baseline: bool = False

    @property
    def by_seed(self) -> dict[int, float]:
        """seed -> metric of the finished runs."""
        return {seed: v for seed, v in self.runs.values() if seed is not None and v is not None}

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.runs.values() if v is not None]

    @property
    def mean(self) -> float | None:
        """The mean over the finished confirmation runs (None when none finished)."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation over the runs (0 with one run)."""
        if not self.values:
            return None
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "params": self.params,
            "search_value": self.search_value,
            "mean": self.mean,
            "std": self.std,
            "runs": [{"trial_id": tid, "seed": seed, "value": value}
                     for tid, (seed, value) in self.runs.items()],
            "baseline": self.baseline,
        }


def confirmed(search: dict[str, TrialRecord], confirm: dict[str, TrialRecord], metric: str,
              ) -> list[ConfirmedConfig]:
    """Group the confirmation runs by the search trial they confirm, in search order."""
    groups: dict[str, ConfirmedConfig] = {}
    for rec in confirm.values():
        of = rec.confirm_of
        if of is None or of not in search:
            continue
        original = search[of]
        group = groups.setdefault(of, ConfirmedConfig(of, dict(original.params),
                                                      original.metric(metric),
                                                      baseline=original.baseline))
        finished = rec.status not in (ERROR, DIVERGED)
        value = rec.metric(metric) if finished else None
        group.runs[rec.trial_id] = (rec.seed, value)
    order = list(search)
    return sorted(groups.values(), key=lambda g: order.index(g.trial_id))


def winner(groups: list[ConfirmedConfig], mode: str) -> ConfirmedConfig | None:
    """The config with the best confirmed mean (ties: the better search value, then order);
    never the baseline."""
    scored = [g for g in groups if g.mean is not None and math.isfinite(g.mean)
              and not g.baseline]
    if not scored:
        return None
    sign = -1.0 if mode == "max" else 1.0
    return min(scored, key=lambda g: (sign * g.mean, sign * (g.search_value or 0.0)))
