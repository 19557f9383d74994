"""``rt3d-tune schedule CONFIG``: the LR and momentum curve of a config, without training.

Prints a compact table (the first iterations, the end of warmup, the start of each
epoch, the last iteration); ``--csv`` writes every iteration, ``--plot`` a PNG.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rt3d_tune.config_options import DictAction
from rt3d_tune.errors import ConfigError

__all__ = ["add_parser", "format_table", "key_rows", "plot_schedule", "run", "write_csv"]

_FIRST_ITERS = 3
_MAX_EPOCH_ROWS = 50


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
                        "and data.samples_per_gpu)")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT.csv",
                        help="write every iteration: iter, epoch, lr, momentum")
    parser.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                        help="plot the curve (needs matplotlib: pip install rt3d-tune[plot])")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        metavar="KEY=VALUE", help="override dotted keys: lr_config.step=[8,11]")
    return parser


def _iters_from_data(cfg: Mapping[str, Any]) -> int:
    """``ceil(len(train dataset) / samples_per_gpu)``, the train loader's length."""
    from rt3d_tune.runner.data import build_dataset

    data = cfg.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("train"), Mapping):
        raise ConfigError("cannot tell the iterations per epoch", key_path="data.train",
                          hint="pass --iters-per-epoch N")
    batch = data.get("samples_per_gpu", 1)
    return max(1, math.ceil(len(build_dataset(data["train"])) / batch))


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


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as an aligned text table: iter, epoch, lr, momentum."""
    lines = [f"{'iter':>8} {'epoch':>6} {'lr':>12} {'momentum':>10}"]
    for row in rows:
        lines.append(f"{row['iter']:>8} {row['epoch']:>6} {_fmt(row['lr']):>12} "
                     f"{_fmt(row['momentum']):>10}")
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Every row to ``path`` (columns iter, epoch, lr, momentum; empty momentum when none)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["iter", "epoch", "lr", "momentum"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "momentum": "" if row["momentum"] is None else row["momentum"]})


def plot_schedule(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> None:
    """LR (and momentum, when there is one) against the iteration, saved as an image.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("--plot needs matplotlib", hint="pip install rt3d-tune[plot]") from err
    iters = [row["iter"] for row in rows]
    has_momentum = any(row["momentum"] is not None for row in rows)
    fig, axes = plt.subplots(2 if has_momentum else 1, 1, sharex=True, squeeze=False,
                             figsize=(8, 5 if has_momentum else 3))
    axes[0][0].plot(iters, [row["lr"] for row in rows])
    axes[0][0].set_ylabel("lr")
    if has_momentum:
        axes[1][0].plot(iters, [row["momentum"] for row in rows], color="tab:orange")
        axes[1][0].set_ylabel("momentum")
    axes[-1][0].set_xlabel("iteration")
    if title:
        axes[0][0].set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Simulate the schedule and print/write it. Raises ConfigError for user mistakes."""
    from rt3d_tune.config import Config
    from rt3d_tune.runner.simulate import simulate_schedule

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    iters_per_epoch = args.iters_per_epoch
    if iters_per_epoch is None:
        iters_per_epoch = _iters_from_data(cfg)
        print(f"iterations per epoch: {iters_per_epoch} (from data.train)")
    rows = simulate_schedule(cfg, iters_per_epoch)
    lr_cfg = cfg.get("lr_config") or {}
    warmup_iters = lr_cfg.get("warmup_iters") if lr_cfg.get("warmup") else None
    if warmup_iters and lr_cfg.get("warmup_by_epoch"):
        warmup_iters *= iters_per_epoch
    print(format_table(key_rows(rows, warmup_iters)))
    if args.csv is not None:
        write_csv(rows, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    if args.plot is not None:
        plot_schedule(rows, args.plot, title=Path(args.config).name)
        print(f"wrote {args.plot}")
    return 0
