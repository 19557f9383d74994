"""``rt3d-tune validate SPACE``: check a search space without Ray and list every problem.

What a space asks for is bounded first (``space.bounds``: trials, grid size, epochs), so
a space that would take forever is refused in about a second, with the number.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rt3d_tune.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``validate`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "validate", help="check a search space without running it",
        description="Parse a search space, merge a sample of trial configs into the base "
        "config, simulate each one's LR and momentum schedule and start it as its trial "
        "would (model, data loaders, optimizer, every hook; an mmengine config's Runner, "
        "loops, optim wrapper and schedulers), stopping before the first iteration; print "
        "the differences from the base, and report every problem with its key path. "
        "Starts no Ray. Exit status 2 when any problem.",
    )
    parser.add_argument("space", metavar="SPACE", help="the search space YAML file")
    parser.add_argument("--samples", type=int, default=4, metavar="N",
                        help="random trial configs (grid points under grid) to check, "
                        "besides one config per option of the widest choice (default: 4, "
                        f"at most {MAX_SAMPLES:,})")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed of the random draws (default: the space's search.seed)")
    parser.add_argument("--iters-per-epoch", type=int, default=None, metavar="N",
                        help="iterations per epoch for the schedule simulation (default: "
                        "the length of the base config's train data loader)")
    return parser


# Trial configs one `validate` may build (each builds a model and simulates a schedule).
MAX_SAMPLES = 1_000


def _check_args(args: argparse.Namespace) -> None:
    from rt3d_tune.config.limits import MAX_ITERS, MAX_SEED
    from rt3d_tune.errors import ConfigError

    for name, low, high in (("samples", 0, MAX_SAMPLES), ("iters_per_epoch", 1, MAX_ITERS),
                            ("seed", 0, MAX_SEED)):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise ConfigError("out of range", key_path=f"--{name.replace('_', '-')}",
                              expected=f"an integer from {low} to {high:,}", given=value)


def print_problems(command: str, problems: list[tuple[ConfigError, list[str]]]) -> None:
    """Every problem of a validation on stderr: one ``error:`` line each, key path first,
    then the trial configs that hit it (what ``validate`` and ``search`` print)."""
    print(f"\n{len(problems)} problem(s):", file=sys.stderr)
    for err, labels in problems:
        text = err.format().replace("\n", "\n  ")
        print(f"rt3d-tune {command}: error: {text}\n  in: {', '.join(labels)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Validate the space and print the report; 0 when sound, 2 when any problem.

    Raises:
        ConfigError: the space file itself is malformed, or asks for more work than the
            bounds of ``rt3d_tune.config.limits`` (the CLI prints it, exit 2).
    """
    from rt3d_tune.config.limits import MAX_ITERS
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.space.bounds import check_search_size, schedule_iters
    from rt3d_tune.space.sampling import format_diff
    from rt3d_tune.space.space import load_space
    from rt3d_tune.space.validate import validate_space

    _check_args(args)
    space = load_space(args.space)
    trials = check_search_size(space)
    if args.iters_per_epoch is not None and schedule_iters(space, args.iters_per_epoch) > MAX_ITERS:
        raise ConfigError(
            f"a trial would be {schedule_iters(space, args.iters_per_epoch):,} iterations long, "
            f"more than the {MAX_ITERS:,} validate simulates", key_path="--iters-per-epoch",
            given=args.iters_per_epoch, hint="leave it out: the train data loader's length is used")
    report = validate_space(space, samples=args.samples, seed=args.seed,
                            iters_per_epoch=args.iters_per_epoch)
    print(f"space {space.file}: base {space.base_path}")
    print(f"  {len(space.params)} key paths, algorithm {space.search.algorithm}, "
          f"{trials} trials, scheduler {space.scheduler.type}, metric "
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
    print_problems("validate", problems)
    return 2
