"""``rt3d-tune schedule CONFIG``: the LR and momentum curve of a config, without training.

Prints a compact table (the first iterations, the end of warmup, the start of each
epoch, the last iteration); ``--csv`` writes every iteration, ``--plot`` a PNG.

With ``--trial-epochs N`` (``--trial-iters N`` for an iteration runner) it shows a
search trial of that length instead: its schedule scaled to the budget by the config's
backend (:meth:`rt3d_tune.backends.base.Backend.scale_schedule`), or with ``--truncated``
the config as is with a shorter run. The table puts the full-budget values at the same fraction of
training beside each trial row, the CSV too, and the plot draws both curves against
the fraction of training.

An mmengine (OpenMMLab 2.x) config (``optim_wrapper`` / ``param_scheduler`` /
``train_cfg``) is loaded by mmengine's ``Config.fromfile`` and its curve comes from
mmengine's own schedulers; iterations per epoch come from ``train_dataloader`` and the
trial is scaled by :func:`rt3d_tune.backends.mmengine.schedule.scale_param_schedulers`. The
table, CSV and plot are the same: the command asks the config's backend
(:func:`rt3d_tune.backends.read_config`) and never which one it is.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rt3d_tune.backends import Backend, read_config
from rt3d_tune.config.options import DictAction
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget

__all__ = [
    "add_parser",
    "beside_full",
    "format_table",
    "key_rows",
    "plot_comparison",
    "plot_schedule",
    "run",
    "write_csv",
]

_FIRST_ITERS = 3
_MAX_EPOCH_ROWS = 50
# Table columns (row key -> header, width), in order; a table shows those its rows have.
_COLUMNS = {"iter": ("iter", 8), "epoch": ("epoch", 6), "lr": ("lr", 12),
            "momentum": ("momentum", 10), "full_iter": ("full iter", 9),
            "full_lr": ("full lr", 12), "full_momentum": ("full mom.", 10)}
_COUNT_COLUMNS = ("iter", "epoch", "full_iter")
_CURVE_COLUMNS = ("iter", "epoch", "lr", "momentum")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``schedule`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "schedule", help="print or plot a config's LR and momentum curve",
        description="Compute the LR and momentum at every training iteration of CONFIG, "
        "with the same hooks training uses, without training.",
    )
    parser.add_argument("config", metavar="CONFIG", help="a .py, .yaml, .yml or .json config")
    parser.add_argument("--iters-per-epoch", type=int, default=None, metavar="N",
                        help="iterations per epoch (default: from the train dataset's length "
                        "and data.samples_per_gpu, or train_dataloader.batch_size)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="data-parallel workers: each epoch is N shards of samples_per_gpu "
                        "batches, as the runner counts it (default 1)")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT.csv",
                        help="write every iteration: iter, epoch, lr, momentum")
    parser.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                        help="plot the curve into a PNG file")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        metavar="KEY=VALUE", help="override dotted keys: lr_config.step=[8,11]")
    trial = parser.add_mutually_exclusive_group()
    trial.add_argument("--trial-epochs", type=int, default=None, metavar="N",
                       help="show a search trial of N epochs beside the full budget "
                       "(epoch-based runner)")
    trial.add_argument("--trial-iters", type=int, default=None, metavar="N",
                       help="show a search trial of N iterations beside the full budget "
                       "(iteration runner)")
    parser.add_argument("--truncated", action="store_true",
                        help="the trial keeps the config's schedule and only stops early "
                        "(default: its schedule is scaled to the trial's budget)")
    return parser


def _iters_from_data(backend: Backend, cfg: Mapping[str, Any], workers: int = 1) -> int:
    """The train loader's length, as the backend counts it (one rank's shard)."""
    if workers < 1:
        raise ConfigError("the worker count must be >= 1", key_path="--workers", given=workers)
    try:
        return backend.iters_per_epoch(cfg, world_size=workers)
    except ConfigError as err:
        if "--iters-per-epoch" in (err.hint or ""):
            raise
        raise ConfigError(err.message, key_path=err.key_path,
                          hint="pass --iters-per-epoch N") from None


def key_rows(rows: Sequence[Mapping[str, Any]], warmup_iters: int | None = None
             ) -> list[Mapping[str, Any]]:
    """The rows worth printing: the first iterations, around the end of warmup, each
    epoch's first iteration (at most about 50 of them, evenly spread) and the last."""
    if not rows:
        return []
    wanted = set(range(min(_FIRST_ITERS, len(rows))))
    if warmup_iters:
        wanted.update(i for i in (warmup_iters - 1, warmup_iters) if 0 <= i < len(rows))
    starts = [i for i, row in enumerate(rows) if i == 0 or row["epoch"] != rows[i - 1]["epoch"]]
    stride = max(1, math.ceil(len(starts) / _MAX_EPOCH_ROWS))
    wanted.update(starts[::stride])
    wanted.add(len(rows) - 1)
    return [rows[i] for i in sorted(wanted)]


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [key for key in _COLUMNS if key in rows[0]] if rows else list(_CURVE_COLUMNS)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as an aligned text table: iter, epoch, lr, momentum, and the full-budget
    columns (full iter, full lr, full mom.) when the rows have them (:func:`beside_full`)."""
    keys = _columns(rows)
    lines = [" ".join(f"{_COLUMNS[key][0]:>{_COLUMNS[key][1]}}" for key in keys)]
    for row in rows:
        cells = ((key, str(row[key]) if key in _COUNT_COLUMNS else _fmt(row[key]))
                 for key in keys)
        lines.append(" ".join(f"{cell:>{_COLUMNS[key][1]}}" for key, cell in cells))
    return "\n".join(lines)


def beside_full(rows: Sequence[Mapping[str, Any]], full_rows: Sequence[Mapping[str, Any]]
                ) -> list[dict[str, Any]]:
    """Each trial row with the full-budget row at the same fraction of training: trial
    iteration ``j`` of ``M`` beside full iteration ``round(j * N / M)`` of ``N`` (halves
    up), as ``full_iter``, ``full_lr``, ``full_momentum``."""
    trial_len, full_len = len(rows), len(full_rows)
    out = []
    for row in rows:
        full = full_rows[min(full_len - 1, (2 * row["iter"] * full_len + trial_len)
                             // (2 * trial_len))]
        out.append({**row, "full_iter": full["iter"], "full_lr": full["lr"],
                    "full_momentum": full["momentum"]})
    return out


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Every row to ``path`` (columns iter, epoch, lr, momentum, and full_iter, full_lr,
    full_momentum when the rows have them; empty cells for a missing momentum)."""
    keys = _columns(rows)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row[key] is None else row[key] for key in keys})


def _plot(curves: Sequence[tuple[str | None, Sequence[float], Sequence[Mapping[str, Any]]]],
          path: Path, title: str, xlabel: str) -> None:
    """LR (and momentum, when any curve has one) of each ``(label, x, rows)``, as an image.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("--plot needs matplotlib, a dependency of rt3d-tune that is missing "
                          "here", hint="pip install matplotlib") from err
    has_momentum = any(row["momentum"] is not None for _, _, rows in curves for row in rows)
    fig, axes = plt.subplots(2 if has_momentum else 1, 1, sharex=True, squeeze=False,
                             figsize=(8, 5 if has_momentum else 3))
    for index, (label, xs, rows) in enumerate(curves):
        axes[0][0].plot(xs, [row["lr"] for row in rows], label=label)
        if has_momentum:
            color = "tab:orange" if len(curves) == 1 else f"C{index}"
            axes[1][0].plot(xs, [row["momentum"] for row in rows], color=color, label=label)
    axes[0][0].set_ylabel("lr")
    if has_momentum:
        axes[1][0].set_ylabel("momentum")
    if any(label for label, _, _ in curves):
        axes[0][0].legend()
    axes[-1][0].set_xlabel(xlabel)
    if title:
        axes[0][0].set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_schedule(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> None:
    """LR (and momentum, when there is one) against the iteration, saved as an image.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    _plot([(None, [row["iter"] for row in rows], rows)], path, title, "iteration")


def plot_comparison(curves: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], path: Path,
                    title: str = "") -> None:
    """Several ``(label, rows)`` curves (the full budget and a trial) against the fraction
    of training (iteration / iterations, 0..1), saved as an image.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    _plot([(label, [row["iter"] / len(rows) for row in rows], rows) for label, rows in curves],
          path, title, "fraction of training")


def _trial_budget(args: argparse.Namespace, base: Budget, backend: Backend) -> Budget:
    """The trial's budget from ``--trial-epochs``/``--trial-iters``, checked against the
    run length of the config (``base``, read by ``backend``)."""
    flag, value = (("--trial-epochs", args.trial_epochs) if args.trial_epochs is not None
                   else ("--trial-iters", args.trial_iters))
    if value < 1:
        raise ConfigError(f"{flag} is too small", expected="1 or more", given=value)
    if (flag == "--trial-iters") != base.iter_based:
        other = "--trial-iters" if base.iter_based else "--trial-epochs"
        raise ConfigError(f"{flag} does not fit the config's {backend.loop_name} "
                          f"({base.describe()})", key_path=backend.length_key,
                          hint=f"use {other} N")
    if base.iter_based:
        return Budget(iters=value, iters_per_epoch=base.iters_per_epoch)
    return Budget(epochs=value, iters_per_epoch=base.iters_per_epoch)


def run(args: argparse.Namespace) -> int:
    """Simulate the schedule and print/write it. Raises ConfigError for user mistakes."""
    if args.truncated and args.trial_epochs is None and args.trial_iters is None:
        raise ConfigError("--truncated needs a trial length",
                          hint="add --trial-epochs N (or --trial-iters N)")
    backend, cfg = read_config(args.config, options=args.cfg_options, key_path="CONFIG",
                               keep_first_error=True)
    workers = getattr(args, "workers", 1)
    iters_per_epoch = args.iters_per_epoch
    if iters_per_epoch is None:
        iters_per_epoch = _iters_from_data(backend, cfg, workers)
        shards = f", {workers} workers" if workers > 1 else ""
        print(f"iterations per epoch: {iters_per_epoch} (from {backend.train_data_key}{shards})")
    full_rows = backend.simulate(cfg, iters_per_epoch, world_size=workers)
    if not full_rows:
        raise ConfigError(f"the {backend.name} backend has no schedule simulator",
                          key_path="CONFIG", hint="rt3d-tune schedule shows mmcv and "
                          "mmengine configs")
    if args.trial_epochs is None and args.trial_iters is None:
        _show_full(args, full_rows, backend.warmup_end(cfg, iters_per_epoch))
        return 0
    base = backend.budget(cfg, iters_per_epoch)
    trial = _trial_budget(args, base, backend)
    trial_cfg = cfg if args.truncated else backend.scale_schedule(cfg, base, trial)
    if not args.truncated:
        _show_changes(base, trial, backend.describe_scaling(cfg, trial_cfg))
    rows = backend.simulate(trial_cfg, iters_per_epoch, max_epochs=trial.epochs,
                            max_iters=trial.iters, world_size=workers)
    _show_trial(args, base, trial, rows, full_rows, backend.warmup_end(trial_cfg, iters_per_epoch))
    return 0


def _show_full(args: argparse.Namespace, rows: list[dict[str, Any]], warmup_iters: int | None
               ) -> None:
    """Print the full-budget curve's key rows; write every row (--csv) and the plot."""
    print(format_table(key_rows(rows, warmup_iters)))
    if args.csv is not None:
        write_csv(rows, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    if args.plot is not None:
        plot_schedule(rows, args.plot, title=Path(args.config).name)
        print(f"wrote {args.plot}")


def _show_changes(base: Budget, trial: Budget, changes: list[str]) -> None:
    print(f"schedule scaled from {base.describe()} to {trial.describe()}:")
    print("\n".join(f"  {line}" for line in changes or ["(unchanged)"]))


def _show_trial(args: argparse.Namespace, base: Budget, trial: Budget,
                rows: list[dict[str, Any]], full_rows: list[dict[str, Any]],
                warmup_iters: int | None) -> None:
    """Print the trial's key rows beside the full budget; write the CSV and the plot."""
    how = "truncated" if args.truncated else "scaled"
    print(f"trial ({trial.describe()}, {how}) beside the full budget ({base.describe()}) "
          "at the same fraction of training:")
    compared = beside_full(rows, full_rows)
    print(format_table(key_rows(compared, warmup_iters)))
    if args.csv is not None:
        write_csv(compared, args.csv)
        print(f"wrote {len(compared)} rows to {args.csv}")
    if args.plot is not None:
        plot_comparison([(f"full budget ({base.describe()})", full_rows),
                         (f"trial ({trial.describe()}, {how})", rows)],
                        args.plot, title=Path(args.config).name)
        print(f"wrote {args.plot}")
