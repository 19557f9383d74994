"""How often the verdict's paired t interval calls a real gain "better", and at what cost.

Shared by ``verdict_seeds.py`` (PointNet) and ``fidelity.py`` (the BEV grid): for a true
gain of ``effect`` standard deviations of the paired differences, the probability that
the 95% interval over n pairs lies above zero (the noncentral t distribution).
"""

from __future__ import annotations

import math

from scipy import stats

PAIRS = range(2, 9)  # the pair counts printed: confirm.seeds 1..7 with the search's own pair


def called_better_rate(effect: float, n: int, level: float = 0.95) -> float:
    """P(the paired t interval over ``n`` pairs lies above 0) when the mean paired
    difference is ``effect`` standard deviations of the differences."""
    df = n - 1
    critical = stats.t.ppf(0.5 + level / 2, df)
    return float(stats.nct.sf(critical, df, effect * math.sqrt(n)))


def fewest_pairs(effect: float, least: float = 0.5) -> int | None:
    """The fewest pairs (of :data:`PAIRS`) at which the gain is called better in more
    than ``least`` of searches; None when even the most do not."""
    return next((n for n in PAIRS if called_better_rate(effect, n) > least), None)


def print_rates(effect: float, top_k: int, where: str = "") -> None:
    """One line per pair count: the called-better rate beside the confirmation runs it
    costs (n - 1 new seeds, the search's own pair being the first, x top_k + baseline)."""
    for n in PAIRS:
        cost = (n - 1) * (top_k + 1)
        print(f"FIGURE {where}pairs {n} (confirm.seeds {n - 1}): a gain of one seed spread "
              f"called better in {called_better_rate(effect, n):.2f} of searches; "
              f"{cost} confirmation runs (top_k {top_k} + baseline)", flush=True)
