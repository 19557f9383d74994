"""Search efficiency: grid search with full schedules against samplers with early stopping.

On the built-in BEV task (``configs/pillar_bev/pillar_bev_synthetic.py``: AdamW, the
cyclic LR of cyclic_40e, 40 iterations an epoch), a fixed two-parameter space:
``optimizer.lr`` and ``optimizer.weight_decay``, both log-uniform, bounds around the
config's own values. Methods, all through ``run_search``, two trials at a time on a
local Ray with 2 CPUs, each trial on 1 CPU with the task's seed fixed:

    * grid + fifo: the Cartesian product of ``--grid`` log-spaced values per parameter,
      every trial its full schedule (what ``mim gridsearch`` does); run once;
    * random + fifo: as many trials as the grid, over the continuous box (the same
      compute as the grid);
    * tpe + asha, qmc + asha: ``--asha-factor`` times as many trials, over the same
      box (ASHA: grace ``--grace`` epochs, reduction factor 3);
    each sampler for ``--seeds`` seeds.

ASHA's grace period is 2 epochs by default: after one epoch every BEV config is at
bev_mAP 0.00-0.04 (the cyclic LR is still climbing), so a rung there ranks by noise;
the script prints the grid's metric after every epoch, which shows it.

Compute is counted in trial-epochs (one reported evaluation = one epoch trained). For
each method the script prints the best metric reached, the compute spent, and the
compute at which its best-so-far first reaches 99% of the grid's best, as a fraction of
the grid's total compute (the median over seeds; ``inf`` when never reached).

    python bench/search_efficiency.py [--task bev|pointnet] [--epochs 6] [--grid 4 3]
        [--seeds 3] [--asha-factor 2] [--grace 2] [--scenes N] [--val-samples 1000]
        [--methods grid random_fifo tpe_asha qmc_asha] [--keep DIR] [--grid-run DIR]

Target: tpe + asha needs at most 25% of the grid's compute.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import yaml

REPO = Path(__file__).resolve().parents[1]
TASKS = {
    # config, metric, lr bounds, weight-decay bounds
    "pointnet": (
        "configs/pointnet/pointnet_shapes.py",
        "accuracy",
        (3.0e-5, 1.0e-1),
        (1.0e-6, 1.0e-1),
    ),
    "bev": (
        "configs/pillar_bev/pillar_bev_synthetic.py",
        "bev_mAP",
        (3.0e-5, 1.0e-2),
        (1.0e-4, 3.0e-1),
    ),
}
METHODS = {  # name -> (algorithm, scheduler)
    "grid": ("grid", {"type": "fifo"}),
    "random_fifo": ("random", {"type": "fifo"}),
    "tpe_asha": ("tpe", {"type": "asha", "grace_period": 1, "reduction_factor": 3}),
    "qmc_asha": ("qmc", {"type": "asha", "grace_period": 1, "reduction_factor": 3}),
}
PARAMS = ("optimizer.lr", "optimizer.weight_decay")


def log_points(low: float, high: float, count: int) -> list[float]:
    """``count`` log-spaced values from ``low`` to ``high`` inclusive (3 significant digits)."""
    if count == 1:
        return [float(f"{math.sqrt(low * high):.3g}")]
    step = (math.log(high) - math.log(low)) / (count - 1)
    return [float(f"{math.exp(math.log(low) + i * step):.3g}") for i in range(count)]


def write_base(
    folder: Path, task: str, scenes: int | None, val_samples: int | None = None
) -> Path:
    """The task config with its seed fixed (fewer scenes, more validation shapes when asked).

    ``val_samples`` (pointnet) replaces the shipped config's 200 validation shapes, whose
    accuracy moves in steps of 0.005: too coarse to tell 99% of the grid's best apart.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"_base_ = [{str(REPO / TASKS[task][0])!r}]", "seed = 0"]
    if val_samples and task == "pointnet":
        lines.append(f"data = dict(val=dict(num_samples={val_samples}))")
    if scenes and task == "bev":
        lines.append(
            f"data = dict(train=dict(num_scenes={scenes}), "
            f"val=dict(num_scenes={max(10, scenes // 3)}))"
        )
    path = folder / f"{task}_seeded.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_space(
    folder: Path,
    base: Path,
    task: str,
    method: str,
    seed: int,
    grid: tuple[int, int],
    epochs: int,
    asha_factor: int,
) -> Path:
    """The space file of one method (grid domains for grid, log-uniform otherwise).

    Samplers get as many trials as the grid has points, times ``asha_factor`` under
    ASHA (whose stopped trials cost a fraction of a full schedule).
    """
    algorithm, scheduler = METHODS[method]
    bounds = TASKS[task][2:]
    if algorithm == "grid":
        space = {p: {"grid": log_points(*b, n)} for p, b, n in zip(PARAMS, bounds, grid)}
        search: dict[str, Any] = {"algorithm": "grid", "seed": seed, "max_concurrent": 2}
    else:
        space = {p: {"loguniform": list(b)} for p, b in zip(PARAMS, bounds)}
        search = {
            "algorithm": algorithm,
            "num_samples": grid[0] * grid[1] * (asha_factor if scheduler["type"] == "asha" else 1),
            "seed": seed,
            "max_concurrent": 2,
        }
    data = {
        "base": str(base),
        "metric": TASKS[task][1],
        "mode": "max",
        "space": space,
        "search": search,
        "scheduler": scheduler,
        "resources": {"cpu": 1},
        "stop": {"max_epochs": epochs},
    }
    path = folder / f"{method}_{seed}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def best_so_far(run_dir: Path, metric: str) -> list[float]:
    """Best metric after each trial-epoch, in the order results arrived (results.jsonl)."""
    import json

    curve: list[float] = []
    best = -math.inf
    for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") != "result":
            continue
        result = event["result"]
        value = result.get(metric)
        if isinstance(value, (int, float)) and not result.get("diverged") and math.isfinite(value):
            best = max(best, float(value))
        curve.append(best)
    return curve


def trial_curves(run_dir: Path, metric: str) -> list[tuple[dict[str, Any], list[float]]]:
    """Each trial's parameters and its metric after every epoch, in start order."""
    from rt3d_tune.results.recorder import load_records

    return [
        (
            record.params,
            [float(record.results[f].get(metric, math.nan)) for f in sorted(record.results)],
        )
        for record in load_records(run_dir).values()
    ]


def rank_correlation(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import numpy as np

    def ranks(values: list[float]) -> np.ndarray:
        arr = np.asarray(values, dtype=float)
        order = arr.argsort(kind="stable")
        out = np.empty(len(arr))
        out[order] = np.arange(len(arr), dtype=float)
        for value in np.unique(arr):  # ties share their mean rank
            tied = arr == value
            out[tied] = out[tied].mean()
        return out

    a, b = ranks(xs), ranks(ys)
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def compute_to_reach(curve: list[float], threshold: float) -> float:
    """Trial-epochs until the best-so-far first reaches ``threshold`` (inf: never)."""
    for i, value in enumerate(curve, start=1):
        if value >= threshold:
            return float(i)
    return math.inf


def run_method(
    folder: Path, base: Path, args: argparse.Namespace, method: str, seed: int
) -> tuple[Path, float]:
    """Run one search; returns (its run folder, wall seconds)."""
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    space = load_space(
        write_space(
            folder, base, args.task, method, seed, tuple(args.grid), args.epochs, args.asha_factor
        )
    )
    start = time.perf_counter()
    result = run_search(space, output=folder / "runs", name=f"{method}_{seed}", status=False)
    wall = time.perf_counter() - start
    return result.run_dir, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="bev")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the run folders here (default: a temporary folder)",
    )
    parser.add_argument("--epochs", type=int, default=6, help="full schedule, epochs")
    parser.add_argument(
        "--grid",
        type=int,
        nargs=2,
        default=[4, 3],
        metavar=("LR", "WD"),
        help="grid values per parameter",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each sampler")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(METHODS),
        default=["grid", "random_fifo", "tpe_asha", "qmc_asha"],
    )
    parser.add_argument(
        "--asha-factor",
        type=int,
        default=2,
        help="samplers under ASHA get this many times the grid's trial count",
    )
    parser.add_argument(
        "--grid-run",
        type=Path,
        default=None,
        help="reuse the grid's run folder of an earlier run (same task and options)",
    )
    parser.add_argument("--scenes", type=int, default=None, help="bev: train scenes")
    parser.add_argument(
        "--grace",
        type=int,
        default=2,
        help="ASHA's grace period, epochs (see the module docstring)",
    )
    parser.add_argument(
        "--val-samples",
        type=int,
        default=1000,
        help="pointnet: validation shapes (the shipped config has 200)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2x1 grid, 2 epochs, 1 seed, grid and tpe_asha only, 8 BEV scenes (smoke test)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.grid, args.seeds, args.methods = 2, [2, 1], 1, ["grid", "tpe_asha"]
        args.scenes, args.asha_factor, args.grace = args.scenes or 8, 1, 1
    for name in ("tpe_asha", "qmc_asha"):
        METHODS[name][1]["grace_period"] = args.grace
    if "grid" not in args.methods:
        args.methods = ["grid", *args.methods]
    metric = TASKS[args.task][1]
    _common.start_ray(2)
    fractions: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        folder = args.keep or Path(tmp)
        base = write_base(folder, args.task, args.scenes, args.val_samples)
        if args.grid_run:
            grid_dir, wall = args.grid_run, math.nan
        else:
            grid_dir, wall = run_method(folder, base, args, "grid", 0)
        grid_curve = best_so_far(grid_dir, metric)
        print(f"grid trials, {metric} after each epoch:")
        curves = trial_curves(grid_dir, metric)
        for params, values in curves:
            setting = " ".join(f"{k.split('.')[-1]} {v:.3g}" for k, v in params.items())
            print(f"    {setting}: " + " ".join(f"{v:.3f}" for v in values))
        # What an early-stopping rung at epoch e can see: how the grid's ranking after
        # e epochs agrees with its ranking at the end.
        full = [values for _, values in curves if len(values) == args.epochs]
        for epoch in range(1, args.epochs):
            _common.figure(
                f"grid rank correlation, {metric} after epoch {epoch} vs the last",
                rank_correlation([v[epoch - 1] for v in full], [v[-1] for v in full]),
                "",
                f"Spearman over {len(full)} trials",
            )
        grid_best, grid_compute = grid_curve[-1], len(grid_curve)
        threshold = 0.99 * grid_best
        _common.figure(
            f"grid best {metric}", grid_best, "", f"{grid_compute} trial-epochs, {wall:.0f} s wall"
        )
        for method in args.methods:
            if method == "grid":
                continue
            for seed in range(args.seeds):
                run_dir, wall = run_method(folder, base, args, method, seed)
                curve = best_so_far(run_dir, metric)
                need = compute_to_reach(curve, threshold)
                fractions.setdefault(method, []).append(need / grid_compute)
                _common.figure(
                    f"{method} seed {seed} best {metric}",
                    curve[-1],
                    "",
                    f"{len(curve)} trial-epochs, {wall:.0f} s wall, reaches 99% of "
                    "grid best "
                    + (
                        f"after {need:g} ({need / grid_compute:.0%} of grid)"
                        if math.isfinite(need)
                        else "never"
                    ),
                )
    for method, values in fractions.items():
        _common.figure(
            f"{method} compute to 99% of grid best",
            statistics.median(values),
            "x grid compute",
            "median over seeds; " + ", ".join(f"{v:.2f}" for v in values),
        )
    if "tpe_asha" in fractions:
        _common.ratio(
            "tpe_asha/grid compute to 99% of grid best",
            statistics.median(fractions["tpe_asha"]),
            0.25,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
