"""``rt3d-tune train CONFIG``: train one config (mmdet3d's ``tools/train.py``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rt3d_tune.config_options import DictAction


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "train",
        help="train one config",
        description="Train a config: model, data, optimizer, schedule and hooks as it says. "
        "A progress bar on a terminal, plain log lines otherwise; checkpoints, the config and the "
        "logs go to the work dir.",
    )
    parser.add_argument("config", metavar="CONFIG", help="a .py, .yaml, .yml or .json config")
    parser.add_argument("--work-dir", help="default: ./work_dirs/<config name>")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        metavar="KEY=VALUE",
        help="override dotted keys: optimizer.lr=0.01 runner.max_epochs=4",
    )
    parser.add_argument("--resume-from", metavar="CKPT", help="resume from this checkpoint")
    parser.add_argument(
        "--auto-resume",
        action="store_true",
        help="resume from the newest checkpoint in the work dir, if there is one",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: the config's, else drawn)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic cuDNN kernels")
    return parser


def run(args: argparse.Namespace) -> int:
    """Train. Returns 0, or 1 when training diverged. Raises ConfigError for user mistakes."""
    from rt3d_tune.config import Config
    from rt3d_tune.errors import DivergenceError
    from rt3d_tune.paths import check_writable_folder
    from rt3d_tune.runner.train import default_work_dir, train

    cfg = Config.fromfile(args.config)
    check_writable_folder(args.work_dir or cfg.get("work_dir") or default_work_dir(args.config),
                          "--work-dir" if args.work_dir else "work_dir", parents=True)
    try:
        runner = train(
            cfg,
            work_dir=args.work_dir,
            cfg_options=args.cfg_options,
            resume_from=args.resume_from,
            auto_resume=args.auto_resume,
            seed=args.seed,
            deterministic=args.deterministic,
        )
    except DivergenceError as err:
        print(f"rt3d-tune train: {err}", file=sys.stderr)
        return 1
    print(f"done: {runner.epoch} epochs, {runner.iter} iterations; work dir {runner.work_dir}")
    return 0
