"""Step 5: the verdict at trial length against the one at full length, and its seeds.

The product's verdict compares the search's winner with the baseline (the base config
as written) over paired training seeds. ``confirm.length: trial`` (the default) trains
the confirmation at the trial budget; ``full`` at the base config's length, which is
what the user will get. Over the searches of the product's default fidelity, each
search's winner is compared with the baseline twice, with the product's own
``paired_interval`` and ``outcome_of``, over the same training seeds 0..S-1: once from
the scaled runs' metric at T (the trial-length verdict) and once from the full runs'
metric at B (the full-length verdict). The agreement rate is how often their outcomes
(better, worse, within noise) match: how far ``trial`` can be trusted. The same is
then counted over every pair of configs that has all the verdict's seeds.

The extra seeds 2..S-1 are trained (full and scaled, no probes) only for the configs the
verdicts need, the baseline and the winners, and appended to the grid's ``grid.csv``,
so a ``--grid-run`` reuses them. From the full-length runs of every config with all
those seeds (the baseline and every winner so far): the seed spread of one run, the
spread of their paired differences with the baseline, and the rate at which a gain of
one seed spread is
called better at n pairs (``_power``), which says what ``search.confirm.seeds`` needs on
this task.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

import _common
from _power import fewest_pairs, print_rates

from _fidelity.grid import KINDS, METRIC, MODE, SEEDS
from _fidelity.loading import Grid, Mode, load_grid
from _fidelity.training import train_runs
from rt3d_tune.backends.base import DEFAULT_PROBE_RATIO
from rt3d_tune.results.verdict import WITHIN_NOISE, outcome_of, paired_interval
from rt3d_tune.space.sections import Confirm


def verdict_mode(modes: list[Mode]) -> Mode:
    """The product's default fidelity (scaled schedule, cool-down probe at its default
    ratio) when the grid measured it, else the plain scaled one."""
    default = f"scaled+cooldown@{DEFAULT_PROBE_RATIO:g}"
    return next((m for m in modes if m.name == default),
                next(m for m in modes if m.name == "scaled"))


def train_verdict_seeds(grid_folder: Path, base: Path, grid: Grid, cids: list[str],
                        n_seeds: int, workers: int) -> Grid:
    """Train seeds 2..``n_seeds``-1 of ``cids`` (full and scaled, no probes) where the grid
    lacks them, into the grid's own ``grid.csv``; the grid read again."""
    missing = [(cid, seed, kind, False) for kind in KINDS for cid in cids
               for seed in range(len(SEEDS), n_seeds) if (cid, seed, kind) not in grid.metric]
    if not missing:
        return grid
    lacking = sorted({cid for cid, *_ in missing})
    print(f"training the verdict's seeds: {len(missing)} runs ({', '.join(lacking)} x seeds "
          f"{len(SEEDS)}..{n_seeds - 1} x full, scaled) into {grid_folder}", flush=True)
    wall = train_runs(grid_folder, base, grid.settings, missing, workers, append=True)
    _common.figure("verdict seeds training wall time", wall, "s", f"{len(missing)} runs")
    return load_grid(grid_folder)


@dataclass(frozen=True)
class LengthVerdict:
    """Winner minus baseline at one length: the product's paired interval and outcome."""

    delta: float
    ci95: tuple[float, float] | None
    outcome: str
    seeds: tuple[int, ...]

    def text(self) -> str:
        ci = (f"95% CI {self.ci95[0]:+.3f}..{self.ci95[1]:+.3f}" if self.ci95 is not None
              else "no interval")
        return f"{self.outcome} ({self.delta:+.3f}, {ci}, {len(self.seeds)} paired seeds)"


def verdict_at(grid: Grid, winner: str, baseline: str, kind: str,
               seeds: list[int]) -> LengthVerdict:
    """The verdict from the ``kind`` runs' metric at their end (scaled: T, full: B)."""
    epoch = grid.settings.base_epochs if kind == "full" else grid.settings.trial_epochs
    diffs = [grid.value(winner, s, kind, epoch) - grid.value(baseline, s, kind, epoch)
             for s in seeds]
    delta, ci = paired_interval(diffs)
    return LengthVerdict(delta, ci, outcome_of(ci, MODE), tuple(seeds))


@dataclass(frozen=True)
class Agreement:
    """One search's winner judged at trial length and at full length."""

    search_seed: int
    winner: str
    trial: LengthVerdict
    full: LengthVerdict

    @property
    def agrees(self) -> bool:
        return self.trial.outcome == self.full.outcome


def agreements(grid: Grid, baseline: str, winners: list[tuple[int, str]],
               n_seeds: int) -> list[Agreement]:
    """Per (search seed, winner): both verdicts over the seeds < ``n_seeds`` that both the
    winner and the baseline ran."""
    found = []
    for search_seed, winner in winners:
        seeds = [s for s in grid.seeds(winner) if s < n_seeds and s in grid.seeds(baseline)]
        found.append(Agreement(search_seed, winner,
                               verdict_at(grid, winner, baseline, "scaled", seeds),
                               verdict_at(grid, winner, baseline, "full", seeds)))
    return found


def report_agreement(grid: Grid, baseline: str, mode: Mode, found: list[Agreement]) -> None:
    """Each search's two verdicts, and the agreement rate (printed, no target)."""
    s = grid.settings
    label = {c["id"]: c["label"] for c in s.configs}
    print(f"verdicts of the {mode.name} searches' winners against the baseline {baseline} "
          f"({label[baseline]}): trial length = the scaled runs at {s.trial_epochs} epochs, "
          f"full length = the full runs at {s.base_epochs}, the same paired seeds",
          flush=True)
    for item in found:
        same = " (the winner is the baseline)" if item.winner == baseline else ""
        _common.figure(f"verdict search seed {item.search_seed} trial-length delta",
                       item.trial.delta, METRIC,
                       f"winner {item.winner} {label[item.winner]}{same}: trial "
                       f"{item.trial.text()}; full {item.full.text()}; "
                       f"{'agree' if item.agrees else 'DISAGREE'}")
    agree = sum(item.agrees for item in found)
    judged = [item for item in found if item.winner != baseline]
    _common.figure("verdict agreement, trial-length outcome = full-length outcome", agree,
                   f"of {len(found)} searches",
                   f"{sum(item.agrees for item in judged)} of {len(judged)} where the winner "
                   f"is not the baseline; full-length outcomes "
                   f"{', '.join(item.full.outcome for item in found)}")
    rate = agree / len(found)
    _common.ratio("verdict agreement rate (trial-length outcome = full-length)", rate)


def report_pair_agreement(grid: Grid, n_seeds: int) -> None:
    """The same agreement over every pair of configs trained with all ``n_seeds`` seeds,
    one as the winner and one as the baseline: more comparisons than the searches give,
    and gaps in both directions (a search's winner rarely beats a strong baseline)."""
    seeds = list(range(n_seeds))
    cids = [c for c in grid.ids if set(seeds) <= set(grid.seeds(c))]
    pairs = [(a, b, verdict_at(grid, a, b, "scaled", seeds), verdict_at(grid, a, b, "full", seeds))
             for a, b in itertools.combinations(cids, 2)]
    if not pairs:
        return
    agree = [(a, b) for a, b, t, f in pairs if t.outcome == f.outcome]
    gaps = [(a, b) for a, b, _, f in pairs if f.outcome != WITHIN_NOISE]
    differ = "; ".join(f"{a} vs {b}: trial {t.outcome} {t.delta:+.3f}, full {f.outcome} "
                       f"{f.delta:+.3f}" for a, b, t, f in pairs if t.outcome != f.outcome)
    _common.figure("verdict agreement over every pair of configs with the verdict's seeds",
                   len(agree), f"of {len(pairs)} pairs",
                   f"{', '.join(cids)}; a gap at full length in {len(gaps)} pairs, of which "
                   f"the trial length saw {sum(p in agree for p in gaps)}; "
                   f"{'disagree: ' + differ if differ else 'no disagreement'}")


def report_seeds_default(grid: Grid, baseline: str, winners: list[str], n_seeds: int) -> None:
    """The seed spread and the paired differences' spread at full length (baseline and
    winners, seeds < ``n_seeds``), and the called-better rate per pair count."""
    b = grid.settings.base_epochs
    configs = sorted({baseline, *winners})
    runs = {c: {s: grid.value(c, s, "full", b) for s in grid.seeds(c) if s < n_seeds}
            for c in configs}
    runs = {c: values for c, values in runs.items() if len(values) >= 3}
    others = [c for c in runs if c != baseline]
    if baseline not in runs or not others:
        print(f"no confirmation-seeds measurement: it needs the baseline and a winner other "
              f"than it with >= 3 seeds (--verdict-seeds; have {sorted(runs)})", flush=True)
        return
    spread = statistics.fmean(statistics.stdev(v.values()) for v in runs.values())
    diff_spread = statistics.fmean(
        statistics.stdev(runs[c][s] - runs[baseline][s] for s in runs[c] if s in runs[baseline])
        for c in others)
    n = min(len(v) for v in runs.values())
    _common.figure("BEV seed spread of one run", spread, METRIC,
                   f"std over {n}+ seeds after {b} epochs, mean of {len(runs)} configs "
                   f"({', '.join(runs)})")
    _common.figure("BEV paired differences' spread", diff_spread, METRIC,
                   f"std of winner - baseline over seeds, mean of {len(others)} winners")
    effect = spread / diff_spread
    top_k = Confirm().top_k
    print_rates(effect, top_k, "BEV ")
    pairs = fewest_pairs(effect)
    _common.figure("BEV confirm.seeds for most searches", pairs - 1 if pairs else float("nan"),
                   "seeds", f"the fewest pairs calling a gain of one seed spread better in "
                   f"more than half the searches: {pairs or 'none up to 8'}; the default "
                   f"search.confirm.seeds is {Confirm().seeds}")


def verdict_step(grid_folder: Path, base: Path, grid: Grid, baseline: str | None, mode: Mode,
                 winners: list[tuple[int, str | None]], n_seeds: int, workers: int) -> Grid:
    """Train the verdict's seeds, then report the agreement and the seeds default."""
    if baseline is None:
        print("no verdict: the grid has no config equal to the base config", flush=True)
        return grid
    chosen = [(seed, w) for seed, w in winners if w is not None]
    need = sorted({baseline, *(w for _, w in chosen)})
    grid = train_verdict_seeds(grid_folder, base, grid, need, n_seeds, workers)
    found = agreements(grid, baseline, chosen, n_seeds)
    if found:
        report_agreement(grid, baseline, mode, found)
    report_pair_agreement(grid, n_seeds)
    others = [c for c in grid.ids if c != baseline and set(range(n_seeds)) <= set(grid.seeds(c))]
    report_seeds_default(grid, baseline, others, n_seeds)
    return grid

