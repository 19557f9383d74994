"""``rt3d-tune validate SPACE``: check a search space without Ray and list every problem."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``validate`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "validate", help="check a search space without running it",
        description="Parse a search space, merge a sample of trial configs into the base "
        "config, build each one's model, optimizer and hooks, simulate its LR and "
        "momentum schedule, print the differences from the base, and report every "
        "problem with its key path. Starts no Ray. Exit status 2 when any problem.",
    )
    parser.add_argument("space", metavar="SPACE", help="the search space YAML file")
    parser.add_argument("--samples", type=int, default=4, metavar="N",
                        help="random trial configs (grid points under grid) to check, "
                        "besides one config per option of the widest choice (default: 4)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed of the random draws (default: the space's search.seed)")
    parser.add_argument("--iters-per-epoch", type=int, default=None, metavar="N",
                        help="iterations per epoch for the schedule simulation (default: "
                        "the length of the base config's train data loader)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Validate the space and print the report; 0 when sound, 2 when any problem.

    Raises:
        ConfigError: the space file itself is malformed (the CLI prints it, exit 2).
    """
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.space.sampling import format_diff, num_trials
    from rt3d_tune.space.space import load_space
    from rt3d_tune.space.validate import validate_space

    for name in ("samples", "iters_per_epoch"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "samples" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} is too small", key_path=None,
                              expected="0 or more" if name == "samples" else "1 or more",
                              given=value)
    space = load_space(args.space)
    report = validate_space(space, samples=args.samples, seed=args.seed,
                            iters_per_epoch=args.iters_per_epoch)
    print(f"space {space.file}: base {space.base_path}")
    print(f"  {len(space.params)} key paths, algorithm {space.search.algorithm}, "
          f"{num_trials(space)} trials, scheduler {space.scheduler.type}, metric "
          f"{space.metric} ({space.mode})")
    for note in report.notes:
        print(f"  note: {note}")
    for check in report.checks:
        status = "ok" if not check.problems else f"{len(check.problems)} problem(s)"
        print(f"\n{check.label}: {status}")
        print("\n".join(format_diff(check.diff, indent="  ")) or "  (same as the base)")
    problems = report.problems
    if not problems:
        print(f"\nok: {len(report.checks)} trial configs built and simulated "
              f"({report.iters_per_epoch} iterations per epoch)")
        return 0
    print(f"\n{len(problems)} problem(s):", file=sys.stderr)
    for err, labels in problems:
        text = err.format().replace("\n", "\n  ")
        print(f"rt3d-tune validate: error: {text}\n  in: {', '.join(labels)}", file=sys.stderr)
    return 2
