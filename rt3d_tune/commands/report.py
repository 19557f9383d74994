"""``rt3d-tune report RUN_DIR``: write report.html (and its PNG plots) for a search run."""

from __future__ import annotations

import argparse
from typing import Any

from rt3d_tune.commands import add_run_arguments

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "report",
        help="write the HTML report of a search run",
        description="Write RUN_DIR/report.html with PNG plots beside it: best metric against "
        "compute, learning curves, parallel coordinates, parameter importance, the top trials "
        "and the LR/momentum curve of the best config. Opens offline.",
    )
    add_run_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report and print its path; of a search still running too (it reads the
    run, it does not take its lock), and then says so. Raises ConfigError for a wrong
    directory."""
    from rt3d_tune.results.export import load_context
    from rt3d_tune.results.report import write_report
    from rt3d_tune.results.run_lock import StoredRunLock, lock_holder
    from rt3d_tune.results.stored_run import upload_run, working_copy

    run_dir, stored = working_copy(args.run_dir, getattr(args, "output", "runs"))
    holder = lock_holder(run_dir) or (StoredRunLock(stored).holder() if stored else None)
    paths = write_report(load_context(run_dir, finished=holder is None), in_progress=holder)
    if stored is not None:
        upload_run(run_dir, stored)
    if holder is not None:
        print(f"the run is not finished ({holder} is still searching): the report shows "
              "the trials recorded so far")
    print(f"report: {paths['report']}")
    return 0
