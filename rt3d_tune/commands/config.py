"""``rt3d-tune config show CONFIG``: print the merged config (mmcv's ``print_config``)."""

from __future__ import annotations

import argparse
from typing import Any

from rt3d_tune.config.options import DictAction


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``config`` and its ``show`` action to the CLI's subparsers."""
    parser = subparsers.add_parser("config", help="inspect configs",
                                   description="Inspect configs.")
    actions = parser.add_subparsers(dest="config_command")
    actions.required = True
    show = actions.add_parser(
        "show", help="print the merged config",
        description="Print a config with its _base_ files merged, {{ }} variables "
        "substituted and the --cfg-options applied.",
    )
    show.add_argument("config", metavar="CONFIG", help="a .py, .yaml, .yml or .json config")
    show.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                      metavar="KEY=VALUE",
                      help="override dotted keys: optimizer.lr=0.01 workflow.0.1=2 "
                      "lr_config.step=[8,11]")
    show.add_argument("--format", choices=("py", "yaml", "json"), default="py",
                      help="output format (default: py, literal-only Python)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Load, override and print the config. Raises ConfigError for user mistakes."""
    from rt3d_tune.config import Config

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    print(cfg.dumps(args.format), end="")
    return 0
