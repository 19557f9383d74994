"""``rt3d-tune search SPACE``: run a search on Ray and export the winner.

Every check that does not need Ray (the space, its base config, every key path) runs
before Ray starts; a mistake exits 2 with one message.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``search`` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "search",
        help="run a hyperparameter search on Ray",
        description="Sample trial configs from SPACE, train each on Ray (an embedded local "
        "instance unless --address is given), stop bad trials early, and export the best "
        "config into <output>/<name>/best/.",
    )
    parser.add_argument("space", metavar="SPACE", help="the search space YAML file")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="join a Ray cluster: auto, ray://host:port or host:port "
                        "(default: RAY_ADDRESS, else an embedded local instance)")
    parser.add_argument("--name", default=None, metavar="N",
                        help="the run's directory name (default: <space stem>-<time>)")
    parser.add_argument("--output", default="runs", metavar="DIR",
                        help="where run directories go (default: runs)")
    parser.add_argument("--num-samples", type=int, default=None, metavar="N",
                        help="trials to run (overrides search.num_samples)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run --name (default: the latest run "
                        "of this space)")
    parser.add_argument("--max-failures", type=int, default=0, metavar="K",
                        help="retry a trial that raised up to K times, from its last "
                        "checkpoint (default: 0)")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    from rt3d_tune.errors import ConfigError

    if args.num_samples is not None and args.num_samples < 1:
        raise ConfigError("must be at least 1", key_path="--num-samples",
                          expected="an integer >= 1", given=args.num_samples)
    if args.max_failures < 0:
        raise ConfigError("cannot be negative", key_path="--max-failures",
                          expected="an integer >= 0", given=args.max_failures)


def _check_trial_configs(space: Any, space_file: str) -> None:
    """Build the coverage trial configs (every choice option, both bounds) before Ray.

    Raises:
        ConfigError: the first problem ``rt3d-tune validate`` would report.
    """
    from rt3d_tune.space.validate import validate_space

    problems = validate_space(space, samples=0).problems
    if problems:
        err, _labels = problems[0]
        more = f"{len(problems) - 1} more problem(s); " if len(problems) > 1 else ""
        hint = (f"{err.hint}; " if err.hint else "") + (
            f"{more}`rt3d-tune validate {space_file}` lists every problem")
        raise err.with_context(hint=hint)


def run(args: argparse.Namespace) -> int:
    """Validate, search, export, and print the best trial. Raises ConfigError."""
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.space.sampling import config_diff, format_diff
    from rt3d_tune.space.space import load_space
    from rt3d_tune.search.tuner import run_search

    _check_args(args)
    space = load_space(args.space)
    if not args.resume:
        _check_trial_configs(space, args.space)
    if args.num_samples is not None and space.search.algorithm == "grid":
        raise ConfigError("under the grid algorithm the grid decides the number of trials",
                          key_path="--num-samples", hint="leave --num-samples out")
    result = run_search(
        space,
        address=args.address,
        name=args.name,
        output=args.output,
        num_samples=args.num_samples,
        resume=args.resume,
        max_failures=args.max_failures,
        debug=getattr(args, "debug", False),
    )
    print(f"run directory: {result.run_dir}")
    unfinished = sum(rec.status == "INTERRUPTED" for rec in result.records.values())
    if unfinished:
        print(f"{unfinished} trial(s) did not finish; to continue: rt3d-tune search "
              f"{args.space} --output {args.output} --name {result.run_dir.name} --resume")
    if result.best is None:
        print(f"no trial reported {space.metric!r}; see {result.run_dir / 'results.csv'}")
        return 1
    value = result.best.metric(space.metric)
    print(f"best {space.metric} ({space.mode}): {value:.6g}  trial {result.best.trial_id}, "
          f"{result.best.fidelity} epochs")
    summary = json.loads(result.exported["summary"].read_text(encoding="utf-8"))
    print(f"reproduce on CPU: {summary['reproduce']}")
    from rt3d_tune.config import Config

    best_cfg = Config.fromfile(str(result.exported["best_config"]), import_custom_modules=False)
    print("changes against the base config:")
    for line in format_diff(config_diff(space.base_config, best_cfg)) or ["  (none)"]:
        print(line)
    print("exported:")
    for name, path in result.exported.items():
        print(f"  {name}: {path}")
    return 0
