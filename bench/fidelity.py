"""Fidelity: how well a short trial ranks configs, and what a search finds with it.

Question (issue 13): at a trial budget of half the base length, which fidelity ranks
BEV configs as well as their full-length result does, and does tpe+asha with it find
a config whose full-length result is within the seed noise of the grid's best, at a
quarter of the grid's compute?

**Task.** ``configs/pillar_bev/pillar_bev_synthetic.py`` (AdamW, cyclic_40e's one-cycle
LR and momentum, 8 epochs of 40 iterations), seed fixed per run, every run on the
real runner (``build_runner``), one torch thread per process, ``--workers`` (2)
processes at once, like a user's 2-core machine. Checkpoints are off and the runs'
logs go to files (neither changes the training).

**Truth grid.** A space (a real ``SearchSpace``) of categorical choices, and the grid
is exactly its Cartesian product (``grid_params``), so every truth config is what
``build_trial_configs`` gives for one of its points:

    optimizer: AdamW (betas (0.95, 0.99), wd 0.01) at --adamw-lrs 1e-4 6e-4 1.8e-3 3e-3,
               or SGD (momentum 0.9, wd 1e-4) at --sgd-lrs 3e-3 2e-2
    lr_config: cyclic (the base: target_ratio (10, 1e-4), i.e. ``lr`` is a tenth of the
               peak) | CosineAnnealing with a linear warm-up | step at 3/4 of the base
               length ([6] of 8) with a linear warm-up
    = (4 + 2) x 3 = 18 configs

The base config itself (cyclic AdamW at its own lr 1.8e-3) is one of them: it is the
baseline trial of every search and the verdict's baseline. An ``--adamw-lrs`` without
the base's LR (or ``--policies`` without cyclic) gets it added, and says so.

The warm-ups count iterations (half an epoch of the base: 20), which the product
does not rescale (they guard a fresh model's first updates). ``momentum_config`` is
the base's cyclic one for every policy: tying it to the LR policy would need one key
path for two sections, and then the grid would no longer be exactly what a search
over this space trains. Each config x training seed {0, 1} is trained twice:

    * ``full``: the base length B (8 epochs): bev_mAP after every epoch, and the
      cool-down probe (``rt3d_tune.backends.mmcv.probe.cooldown_probe``, called as
      ``TuneReportHook._probe`` calls it) at epochs T/4, T/2, B/4, B/2 (1, 2, 4);
    * ``scaled``: the schedule rescaled onto the trial budget T (``--trial-epochs``,
      4; ``build_trial_configs`` with ``stop: {max_epochs: T, schedule: scaled}``):
      bev_mAP after every epoch, and the probe at the rungs T/4, T/2 (1, 2).

Probes leave the run bit-identical, so they ride along in the same run (a small hook
at the report hook's priority). Each probe runs at every ``--probe-ratios`` (0.1, the
product's default, and 0.25, the length the issue's quick measurement used at epoch 4):
the issue asks for the probe length to be measured too, and a second ratio costs a
few iterations per rung instead of a second grid. Everything goes to
``<run>/grid.csv`` (one row per run and epoch, and per probe ratio where a probe ran:
config, its params, seed, run kind full|scaled, epoch, bev_mAP, probe ratio, probe
bev_mAP, probe iterations, seconds of the epoch and of the probe, diverged) with
``grid.json`` (the settings and the space); ``--grid-run PATH`` reuses them (no
training; the grid's settings win over the command line's).

The truth of a config is the mean of its two seeds' bev_mAP after B epochs. The
truth's own seed-to-seed rank correlation (Spearman of seed 0's B-epoch metric against
seed 1's) is what a second full-length run achieves; the seed spread is the mean
|seed 0 - seed 1| of the B-epoch metric over the grid.

**Fidelity modes** at the trial budget T, each giving a metric at the rungs (T/4, T/2)
and at the trial's end T:

    * ``truncated``: the full run's metric after epochs 1, 2; its final is epoch T of
      the full run (a literal prefix of the full run: the step never fires. Note that
      the product's ``stop.schedule: truncated`` also compresses policies that follow
      the runner's length, cyclic and cosine; the prefix is today's behaviour for
      policies with absolute milestones and the issue's measurement);
    * ``scaled``: the scaled run's metric after epochs 1, 2, T;
    * ``scaled+cooldown@r``: the scaled run's probe at the rungs, its plain metric at T
      (what ``TuneReportHook`` reports under ``probe: cooldown``);
    * ``truncated+cooldown@r``: the full run's probe at the rungs (annealed to the full
      schedule's final LR), its plain metric at T.

The rank correlation with the truth is computed fairly: the mode's metric from seed s
against the truth of the OTHER seed 1-s (only the B-epoch metric of seed 1-s, not the
2-seed mean, which would contain seed s's own noise), mean over s in {0, 1}; exactly
the comparison the seed-to-seed figure makes for a second full run. The same-seed
figure is printed for reference (it shares the seed's noise with the truth, so it is
optimistic). A ranking with no spread (every value equal) counts as correlation 0.

**Search regret at equal compute.** A tabular benchmark: for each mode, ``--search-seeds``
(4) searches with the product's searcher and scheduler (``search_setup`` on a real
``SearchSpace``: the grid's space, ``search: {algorithm: tpe, trial_seed: fixed}``,
``scheduler: {type: asha, grace_period: 1, reduction_factor: 2}`` (+ ``probe:
cooldown, probe_ratio: r`` for the cooldown modes), ``stop.max_epochs: T``), run by
``ray.tune.Tuner`` on a local Ray (2 CPUs, two trials at a time) with the product's
``ResultRecorder``. A trial replays the recorded metrics of training seed 0 (the fixed
trial seed) instantly, one report per epoch, as ``TuneReportHook`` would (the probe's
metric at the product's rung epochs, ``rung_epochs``; ``final`` at T). Then the
confirmation: ``select_top`` over the finished trials (top_k ``--top-k`` 2), each
"retrained" with the product's confirmation seed (``confirm_seeds``: 1), whose value
is seed 1's recorded metric at T of the mode's run kind; ``winner`` picks the best mean.
Regret = the grid's best truth - the winner's truth.

Compute is counted in epochs: every epoch a replayed trial reported, plus its probes
(probe iterations / iterations per epoch), plus the confirmation runs (top_k x T).
Every mode gets the same budget: ``--budget`` (0.25) x the grid's compute, the grid's
compute being configs x B epochs (one seed). The search phase gets the budget less the
confirmation's top_k x T, and a Tune ``Stopper`` ends it once what is left cannot pay
for one more epoch (num_samples is only a cap: how many trials fit depends on how
early ASHA stops them, which is the thing measured). The compute actually used is
counted from the recorded results afterwards and printed per search (two trials run at
once, so the last step may overshoot by a fraction of an epoch).

**The verdict at trial length against full length** (issue 21). For the searches of
the product's default fidelity (scaled + cool-down at the default probe ratio), each
search's winner is compared with the baseline by the product's ``paired_interval`` and
``outcome_of`` over the same training seeds 0..S-1 (``--verdict-seeds`` S, 2 by
default): from the scaled runs' metric at T (``confirm.length: trial``) and from the
full runs' metric at B (``full``). The agreement rate is how often the two outcomes
(better, worse, within noise) match; then the same over every pair of configs that has
all S seeds (gaps in both directions). Seeds 2..S-1 are trained after the searches, full
and scaled without probes, for the baseline and the winners only, and appended to
``grid.csv`` (a ``--grid-run`` reuses them). From the same full-length runs: the seed
spread, the paired differences' spread and the called-better rate of a gain of one
seed spread at 2..8 pairs beside its confirmation runs (``_power``), i.e. what
``search.confirm.seeds`` needs on this task.

**Targets** (printed, never asserted; truncated is the baseline, in the same run). The
best mode is the one with the highest fair rank correlation at T/2 (ties: at T/4),
not the one that meets the most targets: with 4 search seeds a target count is noisy,
and the rank correlation over the grid is the design measurement. For it: at the T/2
rung a rank correlation >= the seed-to-seed correlation; at T/4 within 0.1 of it;
regret within the seed spread in >= 3 of 4 search seeds at <= 25% of the grid's compute.

    python bench/fidelity.py [--keep DIR] [--grid-run DIR] [--scenes N]
        [--base-epochs 8] [--trial-epochs 4] [--adamw-lrs ...] [--sgd-lrs ...]
        [--policies cyclic cosine step] [--probe-ratios 0.1 0.25] [--search-seeds 4]
        [--budget 0.25] [--top-k 2] [--verdict-seeds 2] [--workers 2] [--quick]

The steps live in ``_fidelity/`` (grid, training, loading, replay, verdicts, report);
this file holds the design and the command line.

``--quick``: 2 AdamW LRs (3e-4 and the base's 1.8e-3) x {cyclic, step} = 4 configs x 2
seeds, 8 scenes (2 iterations an epoch), 4 epochs base, 2 trial (one rung, at epoch 1),
probe ratio 0.25, 2 search seeds, budget 0.75 of the tiny grid (0.25 would not pay for
the confirmation), same code path.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from _fidelity.grid import GRID_META, POLICY_NAMES, baseline_id, prepare, write_space
from _fidelity.loading import Grid, load_grid, modes_of
from _fidelity.report import report_correlations, report_searches, report_targets, report_truth
from _fidelity.training import train_grid
from _fidelity.verdicts import verdict_mode, verdict_step


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring); ``--quick`` sets the tiny sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None,
                        help="the run folder (default: a temporary folder)")
    parser.add_argument("--grid-run", type=Path, default=None,
                        help="reuse the grid of an earlier run folder (or its grid.csv)")
    parser.add_argument("--scenes", type=int, default=None, help="train scenes (default 160)")
    parser.add_argument("--base-epochs", type=int, default=8, help="the base length B")
    parser.add_argument("--trial-epochs", type=int, default=4, help="the trial budget T")
    parser.add_argument("--adamw-lrs", type=float, nargs="*",
                        default=[1.0e-4, 6.0e-4, 1.8e-3, 3.0e-3],
                        help="AdamW LRs (the base config's own is added when missing)")
    parser.add_argument("--sgd-lrs", type=float, nargs="*", default=[3.0e-3, 2.0e-2])
    parser.add_argument("--policies", nargs="+", choices=POLICY_NAMES, default=list(POLICY_NAMES))
    parser.add_argument("--probe-ratios", type=float, nargs="+", default=[0.1, 0.25])
    parser.add_argument("--search-seeds", type=int, default=None,
                        help="searches per mode (default 4; --quick 2)")
    parser.add_argument("--budget", type=float, default=0.25,
                        help="compute per search, as a fraction of the grid's (configs x B)")
    parser.add_argument("--top-k", type=int, default=2, help="configs confirmed per search")
    parser.add_argument("--grace-period", type=int, default=1,
                        help="ASHA's first rung in epochs (1: rungs at T/4 and T/2; 2: T/2 only)")
    parser.add_argument("--verdict-seeds", type=int, default=2,
                        help="paired training seeds of the verdicts (0..S-1; above 2, seeds "
                             "2..S-1 are trained for the baseline and the winners only)")
    parser.add_argument("--workers", type=int, default=2, help="training processes at once")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.adamw_lrs, args.sgd_lrs, args.policies = [3.0e-4, 1.8e-3], [], ["cyclic", "step"]
        args.base_epochs, args.trial_epochs, args.scenes = 4, 2, args.scenes or 8
        args.probe_ratios, args.budget = [0.25], 0.75
    if args.search_seeds is None:
        args.search_seeds = 2 if args.quick else 4
    if not 2 <= args.trial_epochs <= args.base_epochs:
        parser.error("--trial-epochs must be in [2, --base-epochs]")
    if args.verdict_seeds < 2:
        parser.error(f"--verdict-seeds must be at least 2 (the grid's seeds), got "
                     f"{args.verdict_seeds}")
    return args


def grid_of(folder: Path, args: argparse.Namespace) -> tuple[Grid, Path, float]:
    """The grid (trained into ``folder``, or read from ``--grid-run``), the folder that
    holds its ``grid.csv``, and the training's wall seconds (NaN: read)."""
    if args.grid_run:
        grid_folder = args.grid_run.parent if args.grid_run.is_file() else args.grid_run
        grid = load_grid(grid_folder)
        s = grid.settings
        print(f"grid from {grid_folder} (its settings win: B {s.base_epochs}, T "
              f"{s.trial_epochs}, probe ratios {list(s.probe_ratios)}, {len(grid.ids)} "
              "configs)", flush=True)
        return grid, grid_folder.resolve(), math.nan
    settings, base = prepare(folder, args)
    (folder / GRID_META).write_text(json.dumps(settings.to_json(), indent=1), encoding="utf-8")
    wall = train_grid(folder, base, settings, args.workers)
    return load_grid(folder), folder, wall


def main(argv: list[str] | None = None) -> int:
    """Train (or read) the grid, then each step's figures; the targets last."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rt3d_fidelity_") as tmp:
        folder = (args.keep or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        grid, grid_folder, wall = grid_of(folder, args)
        base = grid_folder / "fidelity_base.py"
        truth = report_truth(grid, wall, args.workers)
        rho = report_correlations(grid)
        outcomes = report_searches(folder, grid, base, args, truth)
        mode = verdict_mode(modes_of(grid.settings))
        space = write_space(folder / "spaces", "baseline", base, grid.settings.space,
                            trial_epochs=None)
        grid = verdict_step(grid_folder, base, grid, baseline_id(grid.settings, space), mode,
                            [(o.seed, o.winner) for o in outcomes[mode.name]],
                            args.verdict_seeds, args.workers)
        report_targets(grid, truth, rho, outcomes, args.search_seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
