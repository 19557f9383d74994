"""Step 6: what the grid and the searches say, printed as FIGURE and RATIO lines.

The truth (seed-to-seed rank correlation, seed spread, the grid's best), each fidelity
mode's rank correlation at the rungs and the trial's end, the searches' regret at equal
compute, and the targets (printed, never asserted; truncated, the baseline, beside the
best mode).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common

from _fidelity.grid import KINDS, METRIC, SEEDS
from _fidelity.loading import Grid, Mode, correlations, modes_of, spearman
from _fidelity.replay import SearchOutcome, register_by_value, run_search


def print_grid(grid: Grid) -> None:
    """The grid itself: every config's curves, the probes, and the time an epoch took."""
    s = grid.settings
    print(f"truth grid, {METRIC} per epoch (full run, seed 0 | seed 1 after {s.base_epochs}; "
          f"scaled run to {s.trial_epochs} epochs, seed 0):")
    for config in s.configs:
        cid = config["id"]
        full = " ".join(f"{grid.value(cid, 0, 'full', e):.3f}" for e in range(1, s.base_epochs + 1))
        scaled = " ".join(f"{grid.value(cid, 0, 'scaled', e):.3f}"
                          for e in range(1, s.trial_epochs + 1))
        print(f"    {cid} {config['label']:<24} truth {grid.truth(cid):.3f}: full {full} | "
              f"{grid.truth(cid, 1):.3f}; scaled {scaled}")
    for kind in KINDS:
        for ratio in s.probe_ratios:
            probes = " ".join(
                f"e{e} " + ",".join(f"{grid.probed(c['id'], 0, kind, ratio, e):.2f}"
                                    for c in s.configs) for e in s.probe_epochs(kind))
            print(f"    probe {ratio:g} of the {kind} run, seed 0, configs in order: {probes}")
    epoch_s = [v for key, d in grid.seconds.items() for v in d.values() if not math.isnan(v)]
    probe_s = [p[2] for d in grid.probe.values() for p in d.values()]
    _common.figure("training epoch + evaluation", statistics.fmean(epoch_s), "s",
                   f"mean of {len(epoch_s)}, one thread, {len(s.configs)} configs")
    if probe_s:
        _common.figure("cool-down probe + evaluation", statistics.fmean(probe_s), "s",
                       f"mean of {len(probe_s)}")



@dataclass(frozen=True)
class Truth:
    """What a second full-length run achieves: the figures every mode is held against."""

    seed_to_seed: float
    spread: float
    best: float


def report_truth(grid: Grid, wall: float, workers: int) -> Truth:
    """The grid, its training time, and the truth's own noise."""
    s = grid.settings
    b, t, ids = s.base_epochs, s.trial_epochs, grid.ids
    print_grid(grid)
    if not math.isnan(wall):
        _common.figure("grid training wall time", wall, "s",
                       f"{len(ids)} configs x 2 seeds x (B {b} + T {t} epochs), "
                       f"{workers} processes")
    seed_to_seed = spearman([grid.truth(c, 0) for c in ids], [grid.truth(c, 1) for c in ids])
    spread = statistics.fmean(abs(grid.truth(c, 0) - grid.truth(c, 1)) for c in ids)
    best_truth = max(grid.truth(c) for c in ids)
    best_ids = [c["label"] for c in s.configs if grid.truth(c["id"]) == best_truth]
    _common.figure("truth seed-to-seed rank correlation", seed_to_seed, "",
                   f"Spearman, seed 0 vs seed 1 {METRIC} after {b} epochs, {len(ids)} configs")
    _common.figure("seed spread", spread, METRIC,
                   f"mean |seed 0 - seed 1| after {b} epochs")
    _common.figure("grid best truth", best_truth, METRIC,
                   f"{best_ids[0]}, mean of 2 seeds after {b} epochs")
    return Truth(seed_to_seed, spread, best_truth)


def report_correlations(grid: Grid) -> dict[str, dict[int, float]]:
    """The full run's epochs and probes, then each mode at the rungs and at T: the fair
    rank correlation with the truth, per mode name and epoch."""
    s = grid.settings
    b, t, ids = s.base_epochs, s.trial_epochs, grid.ids
    for epoch in range(1, b):
        fair, same = correlations(grid, lambda c, sd, e=epoch: grid.value(c, sd, "full", e))
        _common.figure(f"full run after epoch {epoch}, rank correlation with the truth", fair,
                       "", f"other seed; same seed {same:.3f}; cost {epoch} epochs")
    for ratio in s.probe_ratios:
        for epoch in s.probe_epochs("full"):
            fair, same = correlations(
                grid, lambda c, sd, e=epoch, r=ratio: grid.probed(c, sd, "full", r, e))
            cost = epoch + statistics.fmean(
                grid.probe_iters(c, sd, "full", ratio, epoch) for c in ids for sd in SEEDS
            ) / s.iters_per_epoch
            _common.figure(f"full run after epoch {epoch} + probe {ratio:g}, rank correlation "
                           "with the truth", fair, "",
                           f"other seed; same seed {same:.3f}; cost {cost:.2f} epochs")

    quarter, half = max(1, t // 4), max(1, t // 2)

    def where(epoch: int) -> str:
        names = [name for name, at in (("T/4", quarter), ("T/2", half)) if at == epoch]
        return " = ".join(names) if names else "T, the trial's end"

    rho: dict[str, dict[int, float]] = {}
    for mode in modes_of(s):
        rho[mode.name] = {}
        for epoch in sorted({quarter, half, t}):
            fair, same = correlations(grid, lambda c, sd, e=epoch, m=mode: m.at(grid, c, sd, e))
            rho[mode.name][epoch] = fair
            _common.figure(f"{mode.name} rank correlation at epoch {epoch} ({where(epoch)})",
                           fair, "", f"other seed, mean over 2 seeds; same seed {same:.3f}")
    return rho


def report_searches(folder: Path, grid: Grid, base: Path, args: Any,
                    truth: Truth) -> dict[str, list[SearchOutcome]]:
    """``args.search_seeds`` replayed searches per mode, each's regret and compute."""
    from rt3d_tune.search._ray_private import quiet_token_notice
    from rt3d_tune.search.ray_session import ray_session

    s = grid.settings
    with quiet_token_notice():
        _common.start_ray(2)
    register_by_value()
    grid_compute = len(grid.ids) * s.base_epochs
    outcomes: dict[str, list[SearchOutcome]] = {}
    label = {c["id"]: c["label"] for c in s.configs}
    for mode in modes_of(s):
        for seed in range(args.search_seeds):
            started = time.perf_counter()
            with ray_session():  # Ray is up: only the search's environment and logging
                out = run_search(folder, grid, base, mode, seed, args.budget, args.top_k,
                                 args.grace_period)
            outcomes.setdefault(mode.name, []).append(out)
            within = out.regret <= truth.spread + 1e-12
            _common.figure(
                f"{mode.name} search seed {seed} regret", out.regret, METRIC,
                f"winner {out.winner} {label.get(out.winner, '-')}"
                f"{'' if out.confirmed else ' (unconfirmed)'}, truth {out.truth:.3f}, "
                f"compute {out.compute:.1f} epochs = {out.compute / grid_compute:.3f} of grid, "
                f"{out.trials} trials ({out.finished} finished), within spread "
                f"{'yes' if within else 'no'}, {time.perf_counter() - started:.0f} s")
        count = sum(o.regret <= truth.spread + 1e-12 for o in outcomes[mode.name])
        _common.figure(f"{mode.name} searches with regret within the seed spread", count,
                       f"of {args.search_seeds}",
                       f"mean regret {statistics.fmean(o.regret for o in outcomes[mode.name]):.4f}")
    return outcomes


def report_targets(grid: Grid, truth: Truth, rho: dict[str, dict[int, float]],
                   outcomes: dict[str, list[SearchOutcome]], search_seeds: int) -> None:
    """The targets of truncated (the baseline) and of the best mode; the last lines."""
    s = grid.settings
    t = s.trial_epochs
    quarter, half = max(1, t // 4), max(1, t // 2)
    grid_compute = len(grid.ids) * s.base_epochs
    need = math.ceil(0.75 * search_seeds)
    modes: list[Mode] = modes_of(s)

    def targets(mode_name: str, prefix: str) -> None:
        outs = outcomes[mode_name]
        _common.ratio(f"{prefix}: rank correlation at T/2 (epoch {half}) - seed-to-seed",
                      rho[mode_name][half] - truth.seed_to_seed, 0.0, ">=")
        _common.ratio(f"{prefix}: seed-to-seed - rank correlation at T/4 (epoch {quarter})",
                      truth.seed_to_seed - rho[mode_name][quarter], 0.1, "<=")
        _common.ratio(f"{prefix}: compute / grid compute, max over search seeds",
                      max(o.compute for o in outs) / grid_compute, 0.25, "<=")
        _common.ratio(f"{prefix}: search seeds with regret within the seed spread",
                      sum(o.regret <= truth.spread + 1e-12 for o in outs), need, ">=")

    for mode in modes[1:]:
        _common.ratio(f"{mode.name} - truncated, rank correlation at T/2 (epoch {half})",
                      rho[mode.name][half] - rho["truncated"][half])
    best = max(modes, key=lambda m: (rho[m.name][half], rho[m.name][quarter]))
    if best.name != "truncated":
        targets("truncated", "baseline truncated")
    targets(best.name, f"best mode {best.name}")
