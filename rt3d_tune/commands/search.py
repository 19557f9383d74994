"""``rt3d-tune search SPACE``: run a search on Ray and export the winner.

Every check that does not need Ray runs before Ray starts, quickest first: the
arguments (counts, ``--name`` is one folder name, ``--output`` a folder this process
can write in), the run directory's lock (one driver per run), the cluster at
``--address`` (a probe of seconds, not Ray's minutes of retries), then the space (its
base config, every key path, the work it asks for, every problem of its trial configs,
all printed). A mistake exits 2 with its message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.space.space import SearchSpace
    from rt3d_tune.storage import Storage

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
                        help="where run directories go (default: runs); with --storage URI, "
                        "where the run's working copy goes")
    parser.add_argument("--storage", default=None, metavar="URI",
                        help="where the run is kept: a folder every node of the cluster "
                        "mounts, or a URI (s3://bucket/prefix, gs://..., abfs://..., "
                        "hdfs://...) that every node reaches (default: storage: in SPACE, "
                        "else --output on this machine)")
    parser.add_argument("--num-samples", type=int, default=None, metavar="N",
                        help="trials to run (overrides search.num_samples)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run --name (default: the latest run "
                        "of this space)")
    parser.add_argument("--max-failures", type=int, default=0, metavar="K",
                        help="retry a trial that raised up to K times, from its last "
                        "checkpoint (default: 0)")
    return parser


# Retries of one failing trial; each reruns it from its last checkpoint.
MAX_RETRIES = 100


def _check_args(args: argparse.Namespace) -> None:
    """The arguments on their own: counts, the run name, the output folder."""
    from rt3d_tune.config.paths import check_run_name, check_writable_folder
    from rt3d_tune.errors import ConfigError

    if args.num_samples is not None and args.num_samples < 1:  # the most: check_search_size
        raise ConfigError("must be at least 1", key_path="--num-samples",
                          expected="an integer >= 1", given=args.num_samples)
    if not 0 <= args.max_failures <= MAX_RETRIES:
        raise ConfigError("out of range", key_path="--max-failures",
                          expected=f"an integer from 0 to {MAX_RETRIES}", given=args.max_failures)
    if args.name is not None:
        check_run_name(args.name)
    check_writable_folder(args.output, "--output")
    if args.storage is not None:
        from rt3d_tune.storage import parse_storage

        parse_storage(args.storage)


def _check_storage(storage: str | None, key_path: str) -> None:
    """A URI the run will be kept in can be written (seconds, before Ray starts); a
    local storage path is a folder this process can write in."""
    from rt3d_tune.config.paths import check_writable_folder
    from rt3d_tune.storage import Storage, check_storage, parse_storage

    if storage is None:
        return
    if Storage(parse_storage(storage, key_path)).remote:
        check_storage(storage, key_path)
    else:
        check_writable_folder(parse_storage(storage, key_path), key_path)


def _trial_config_problems(space: SearchSpace) -> list[tuple[ConfigError, list[str]]]:
    """Every problem of the coverage trial configs (every choice option, both bounds)."""
    from rt3d_tune.space.validate import validate_space

    return validate_space(space, samples=0).problems


def run(args: argparse.Namespace) -> int:
    """Check everything that needs no Ray, search, export, and print the best trial.

    Returns 0, 1 when no trial reported the metric or the run directory stopped taking
    writes (the message says how to resume), 2 when the trial configs have problems
    (each printed).

    Raises:
        ConfigError: a bad argument, space, run directory or cluster address.
    """
    from rt3d_tune.commands.validate import print_problems
    from rt3d_tune.errors import ConfigError, RecordingError
    from rt3d_tune.results.param_labels import rounded_diff
    from rt3d_tune.results.run_lock import RunLock, StoredRunLock, refuse_if_held
    from rt3d_tune.results.stored_run import run_location
    from rt3d_tune.search.address import check_ray_address
    from rt3d_tune.space.bounds import check_search_size
    from rt3d_tune.space.sampling import config_diff, format_diff
    from rt3d_tune.space.space import load_space

    _check_args(args)
    output, _ = run_location(args.storage, args.output)
    if args.name is not None:  # at once, and the holder's pid says more than a used dir
        refuse_if_held(output / args.name)
    check_ray_address(args.address)
    space = load_space(args.space)
    storage = args.storage or space.storage
    _check_storage(storage, "--storage" if args.storage else "storage")
    if args.num_samples is not None and space.search.algorithm == "grid":
        raise ConfigError("under the grid algorithm the grid decides the number of trials",
                          key_path="--num-samples", hint="leave --num-samples out")
    check_search_size(space, args.num_samples)
    if not args.resume:
        problems = _trial_config_problems(space)
        if problems:
            print_problems("search", problems)
            print(f"(`rt3d-tune validate {args.space}` shows the trial configs behind them)",
                  file=sys.stderr)
            return 2
    from rt3d_tune.search.tuner import locate_run, run_search  # imports torch

    run_dir, run_store = locate_run(space, args.output, args.name, args.resume, storage)
    created = not args.resume and not run_dir.exists()
    where = f"--storage {storage} " if run_store is not None else f"--output {run_dir.parent} "
    to_continue = f"rt3d-tune search {args.space} {where}--name {run_dir.name} --resume"
    stored_lock = StoredRunLock(run_store) if run_store is not None else contextlib.nullcontext()
    try:
        with RunLock(run_dir), stored_lock:
            result = run_search(
                space,
                address=args.address,
                name=run_dir.name,
                output=run_dir.parent,
                storage=storage,
                num_samples=args.num_samples,
                resume=args.resume,
                max_failures=args.max_failures,
                debug=getattr(args, "debug", False),
                disconnect=False,
            )
    except RecordingError as err:
        print(f"rt3d-tune search: error: {err}\nthe search stopped; every result recorded "
              f"so far is kept. Once {Path(err.path).parent} can be written again, "
              f"continue it: {to_continue}", file=sys.stderr)
        return 1
    except ConfigError:
        if created:
            _remove_unstarted(run_dir, run_store)
        raise
    print(f"run directory: {result.run_dir}")
    if run_store is not None:
        print(f"kept in: {run_store.uri} (export it anywhere: rt3d-tune export {run_store.uri})")
    unfinished = sum(rec.status == "INTERRUPTED" for rec in result.records.values())
    if unfinished:
        print(f"{unfinished} trial(s) did not finish; to continue: {to_continue}")
    if result.budget_cut is not None and (
            len(result.records) < result.budget_cut[0] or result.budget_cut[1]):
        print(budget_line(space.stop.time_budget_s, len(result.records), *result.budget_cut,
                          args.space))
    if result.best is None:
        print(f"no trial reported {space.metric!r}; see {result.run_dir / 'results.csv'}")
        return 1
    summary = json.loads(result.exported["summary"].read_text(encoding="utf-8"))
    for line in _headline(summary):
        print(line)
    print(f"reproduce the trial on CPU: {summary['reproduce']}")
    print(f"train the winner at full length: {summary['train_full']}")
    from rt3d_tune.config import Config

    best_cfg = Config.fromfile(str(result.exported["best_config"]), import_custom_modules=False)
    print("changes against the base config:")
    diff = rounded_diff(config_diff(space.base_config, best_cfg))
    for line in format_diff(diff) or ["  (none)"]:
        print(line)
    print("exported:")
    for name, path in result.exported.items():
        print(f"  {name}: {path}")
    if summary.get("verdict") is not None:  # the answer the user came for, last
        print(f"verdict: {summary['verdict']['text']}")
    return 0


def _remove_unstarted(run_dir: Path, run_store: Storage | None) -> None:
    """Remove the run directory this search made (and its stored copy) when it was
    refused before any trial ran (too few CPUs or GPUs on the cluster, a node that
    cannot see the run directory): no run.json, space copy or lock is left to look like
    a run. One with a trial's result stays, for the user to read."""
    import shutil

    from rt3d_tune.results.recorder import RESULTS_JSONL

    if not (run_dir / RESULTS_JSONL).exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        if run_store is not None:
            run_store.remove()


def budget_line(budget_s: float, ran: int, planned: int, cut: int, space_file: str) -> str:
    """What ``stop.time_budget_s`` did to the search, said where the user looks."""
    cut_text = f", {cut} of them cut short" if cut else ""
    return (f"stop.time_budget_s ({budget_s:g} s) ended the search: {ran} of {planned} "
            f"trials ran{cut_text}; raise it in {space_file} to run them all")


def _headline(summary: dict[str, Any]) -> list[str]:
    """The best line (the confirmed mean when there is one) and the other confirmed configs."""
    metric, mode = summary["metric"], summary["mode"]
    budget = summary["budget"]
    trial_len = budget["trial"].get("max_epochs") or budget["trial"].get("max_iters")
    full_len = budget["full"].get("max_epochs") or budget["full"].get("max_iters")
    length = f"trained {trial_len} of {full_len} ({budget['trial']['schedule']})" \
        if trial_len != full_len else f"trained {trial_len}"
    head = f"best {metric} ({mode}): "
    if not summary["confirmed"]:
        return [f"{head}{summary['best_value']:.4g}  trial {summary['trial_id']}, {length}"]
    lines = []
    for group in summary["confirmation"]:
        values = [run["value"] for run in group["runs"] if run["value"] is not None]
        spread = f"{group['mean']:.4g} +- {group['std']:.2g} over {len(values)} new seed(s)" \
            if group["mean"] is not None else "no confirmation run finished"
        searched = group["search_value"]
        searched = f"{searched:.4g}" if searched is not None else "did not finish its budget"
        who = "your base config" if group.get("baseline") else "trial"
        text = f"{who} {group['trial_id']}: {spread} (search trial {searched})"
        if group["trial_id"] == summary["trial_id"]:
            lines.insert(0, f"{head}{text}, {length}")
        else:
            lines.append(f"  also confirmed: {text}")
    return lines
