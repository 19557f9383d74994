"""``rt3d-tune export RUN_DIR``: write the best config, summary and results table again.

Works on a finished run and on an interrupted one (trials that never ended are
marked INTERRUPTED).
"""

from __future__ import annotations

import argparse
from typing import Any

from rt3d_tune.commands import add_run_arguments

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "export",
        help="export a search run's best config and results",
        description="Write best/best_config.py, best/best_runtime.py, best/summary.json and "
        "results.csv of RUN_DIR from what its trials recorded.",
    )
    add_run_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Export and print the written paths, then the verdict against the base config; 1
    (with the reason) when no trial reported the metric, so there is no best config.
    Raises ConfigError for a wrong directory."""
    import sys

    from rt3d_tune.results.export import export_run, load_context
    from rt3d_tune.results.stored_run import upload_run, working_copy

    run_dir, stored = working_copy(args.run_dir, getattr(args, "output", "runs"))
    context = load_context(run_dir)
    paths = export_run(run_dir, context)
    if stored is not None:
        upload_run(run_dir, stored)
    for name, path in paths.items():
        print(f"{name}: {path}")
    if "best_config" not in paths:
        print(f"rt3d-tune export: no trial of {len(context.records)} reported the metric "
              f"{context.info['metric']!r}, so there is no best config to export; the trials' "
              f"statuses and errors are in {paths['results_csv']}", file=sys.stderr)
        return 1
    if context.verdict is not None:
        print(f"verdict: {context.verdict.text()}")
    return 0
