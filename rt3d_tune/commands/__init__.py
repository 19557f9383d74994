"""The subcommands of ``rt3d-tune``, one module each (``add_parser`` and ``run``)."""

from __future__ import annotations

import argparse

__all__ = ["add_run_arguments"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN_DIR (a run directory or a stored run's URI) and ``--output`` for its working
    copy: what ``export`` and ``report`` take."""
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a directory `rt3d-tune search` made, or the URI of a run kept "
                        "in storage (s3://bucket/prefix/NAME)")
    parser.add_argument("--output", default="runs", metavar="DIR",
                        help="for a run in storage: where its working copy goes (default: "
                        "runs); what is written is also stored back")
