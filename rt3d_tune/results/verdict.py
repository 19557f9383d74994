"""The verdict: does the winner beat the base config the user started from?

The baseline (the base config as written) runs as a trial of the search and is
confirmed with the same new seeds as the top configs. The verdict pairs the winner's
runs with the baseline's by seed: the confirmation seeds, and, when the confirmation
trains at the trial's length, the search's own two trials too when both ran their whole
budget on the common trial seed. Its delta is the mean of the paired differences
(winner minus baseline), its spread a paired t interval at 95%, and its outcome one of
:data:`OUTCOMES`: ``better`` or ``worse`` when the interval lies on one side of zero
(higher is better for ``mode: max``, lower for ``min``), ``within noise`` otherwise,
and always with fewer than two pairs (no interval). Pure: reads records only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rt3d_tune.results.confirmation import ConfirmedConfig, baseline_record
from rt3d_tune.results.param_labels import format_number
from rt3d_tune.results.recorder import TERMINATED, TrialRecord

__all__ = ["BETTER", "OUTCOMES", "WITHIN_NOISE", "WORSE", "Verdict", "outcome_of",
           "paired_interval", "pairs_of", "run_verdict"]

BETTER, WORSE, WITHIN_NOISE = "better", "worse", "within noise"
OUTCOMES = (BETTER, WORSE, WITHIN_NOISE)
LEVEL = 0.95


def paired_interval(diffs: list[float], level: float = LEVEL
                    ) -> tuple[float, tuple[float, float] | None]:
    """(mean of the paired differences, its two-sided t interval at ``level``); the
    interval is None with fewer than two differences.

    Raises:
        ValueError: no differences.
    """
    if not diffs:
        raise ValueError("a paired interval needs at least one pair, got none")
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, None
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(diffs) - 1)) \
        * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, (mean - half, mean + half)


def outcome_of(ci: tuple[float, float] | None, mode: str) -> str:
    """better, worse or within noise, for the interval of winner minus baseline."""
    if ci is None:
        return WITHIN_NOISE
    low, high = ci if mode == "max" else (-ci[1], -ci[0])
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return WITHIN_NOISE


@dataclass(frozen=True)
class Verdict:
    """The winner against the baseline over paired seeds.

    Attributes:
        metric, mode: the run's objective.
        winner_id, baseline_id: their search trials.
        winner_text: the winner as a person names it, its changes from the baseline
            (``AdamW lr 0.0008236``, ``ParamLabels.short``).
        pairs: seed -> (winner's metric, baseline's metric).
        length: ``trial`` or ``full``: the length the pairs trained.
    """

    metric: str
    mode: str
    winner_id: str
    baseline_id: str
    winner_text: str
    pairs: Mapping[int, tuple[float, float]]
    length: str = "trial"

    @property
    def delta(self) -> float:
        return paired_interval(self._diffs)[0]

    @property
    def ci95(self) -> tuple[float, float] | None:
        return paired_interval(self._diffs)[1]

    @property
    def outcome(self) -> str:
        return outcome_of(self.ci95, self.mode)

    @property
    def _diffs(self) -> list[float]:
        return [w - b for w, b in self.pairs.values()]

    def text(self) -> str:
        """One line: ``... beats your config by +0.071 bev_mAP (95% CI +0.03..+0.11, 2
        paired seeds)``, or that the search found nothing better within noise."""
        n = len(self.pairs)
        spread = (f"95% CI {_signed(self.ci95[0])}..{_signed(self.ci95[1])}"
                  if self.ci95 is not None else "no interval from one pair")
        evidence = (f"{_signed(self.delta)} {self.metric} ({spread}, {n} paired "
                    f"seed{'s' if n != 1 else ''}"
                    + (", at the base config's full length" if self.length == "full" else "")
                    + ")")
        who = self.winner_text or f"trial {self.winner_id}"
        if self.outcome == BETTER:
            return f"{who} beats your config by {evidence}"
        if self.outcome == WORSE:
            return f"your config beats the search's best ({who}): {evidence}"
        return (f"the search found nothing better than your config within noise: its best "
                f"({who}) differs by {evidence}")

    def as_dict(self) -> dict[str, Any]:
        """What ``summary.json`` holds under ``verdict``."""
        return {
            "outcome": self.outcome,
            "text": self.text(),
            "metric": self.metric,
            "baseline": statistics.fmean(b for _, b in self.pairs.values()),
            "winner": statistics.fmean(w for w, _ in self.pairs.values()),
            "delta": self.delta,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
            "seeds": sorted(self.pairs),
            "length": self.length,
            "winner_trial": self.winner_id,
            "baseline_trial": self.baseline_id,
        }


def _signed(value: float) -> str:
    text = format_number(value)
    return text if text.startswith("-") else f"+{text}"


def pairs_of(winner: ConfirmedConfig | None, baseline: ConfirmedConfig | None,
             search: tuple[TrialRecord, TrialRecord], metric: str,
             common_seed: int | None, length: str) -> dict[int, tuple[float, float]]:
    """seed -> (winner, baseline) over every seed both ran.

    Args:
        winner, baseline: their confirmation groups (None: not confirmed).
        search: (the winner's search trial, the baseline's).
        metric: the metric.
        common_seed: the seed every search trial trained with (None: each its own).
        length: the confirmation's length; the search pair counts at ``trial`` only.
    """
    pairs: dict[int, tuple[float, float]] = {}
    if winner is not None and baseline is not None:
        mine, theirs = winner.by_seed, baseline.by_seed
        pairs = {seed: (mine[seed], theirs[seed]) for seed in sorted(mine) if seed in theirs}
    values = [rec.metric(metric) for rec in search]
    if (length == "trial" and common_seed is not None and common_seed not in pairs
            and all(rec.status == TERMINATED for rec in search)
            and values[0] is not None and values[1] is not None):
        pairs[int(common_seed)] = (values[0], values[1])
    return dict(sorted(pairs.items()))


def run_verdict(ctx: Any) -> Verdict | None:
    """The verdict of a run; None when it ran no baseline, has no winner, or no seed
    holds a finished run of both."""
    from rt3d_tune.results.param_labels import run_labels

    base = baseline_record(ctx.records)
    if base is None or ctx.best is None:
        return None
    groups = {g.trial_id: g for g in ctx.confirmed}
    confirm = dict(ctx.info.get("confirm") or {})
    length = str(confirm.get("length", "trial"))
    pairs = pairs_of(groups.get(ctx.best.trial_id), groups.get(base.trial_id),
                     (ctx.best, base), ctx.info["metric"], ctx.info.get("common_seed"),
                     length)
    if not pairs:
        return None
    winner_text = run_labels(ctx).short(ctx.best.params, base.params or None)
    return Verdict(ctx.info["metric"], ctx.info["mode"], ctx.best.trial_id, base.trial_id,
                   winner_text, pairs, length)
