"""Does the built-in BEV task tell good runtime configs from bad ones? (issue 4)

Trains the default config (``configs/pillar_bev/pillar_bev_synthetic.py``, full
schedule) and runtime variants of it through the real runner, one thread each, and
prints the final BEV metrics as a table. The spread of the default over two seeds is
the noise a tuner has to see through; the variants must differ from the default by
more than that. Usage::

    python bench/bev_runtime_table.py                 # every row (about 2 min a row)
    python bench/bev_runtime_table.py --only sgd      # one row
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import torch

from rt3d_tune import Config
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.space.sampling import apply_overrides

CONFIG = "configs/pillar_bev/pillar_bev_synthetic.py"

# name -> (what it shows, overrides; a mapping replaces the whole subtree)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default_seed0": ("default (AdamW 1.8e-3, cyclic 10x / 1e-4)", {"seed": 0}),
    "default_seed1": ("default, seed 1", {"seed": 1}),
    "lr_too_small": ("LR far too small (1e-2 x)", {"seed": 0, "optimizer.lr": 1.8e-5}),
    "lr_too_large": ("LR far too large (28 x)", {"seed": 0, "optimizer.lr": 0.05}),
    "cyclic_no_warmup": (
        "cyclic without its warm-up phase (starts at the 10x peak)",
        {"seed": 0, "lr_config.step_ratio_up": 0.0, "momentum_config.step_ratio_up": 0.0},
    ),
    "sgd": (
        "SGD (momentum 0.9, lr 0.01) instead of AdamW",
        {
            "seed": 0,
            "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        },
    ),
    "adam": (
        "Adam (no decoupled decay) instead of AdamW",
        {"seed": 0, "optimizer.type": "Adam", "optimizer.weight_decay": 0.0},
    ),
}


def train_variant(overrides: dict[str, Any]) -> tuple[dict[str, float], float]:
    """Final evaluation metrics and wall seconds of one full training run."""
    torch.set_num_threads(1)
    cfg = apply_overrides(Config.fromfile(CONFIG), overrides)
    cfg.merge_from_dict(
        {"log_config.hooks": [dict(type="TextLoggerHook")], "checkpoint_config.interval": -1}
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_runner(cfg, work_dir=work_dir, device="cpu")
        runner.run()
    return dict(runner.eval_results), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="rows to run")
    args = parser.parse_args(argv)
    names = args.only or list(VARIANTS)
    print("| run | bev_mAP | AP Car@0.7 | AP Ped@0.5 | mAP@0.5 | s | command |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        label, overrides = VARIANTS[name]
        metrics, seconds = train_variant(overrides)
        print(
            f"| {label} | {metrics['bev_mAP']:.3f} | {metrics.get('bev_AP_Car', 0):.3f} | "
            f"{metrics.get('bev_AP_Pedestrian', 0):.3f} | {metrics.get('bev_mAP50', 0):.3f} | "
            f"{seconds:.0f} | `python bench/bev_runtime_table.py --only {name}` |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
