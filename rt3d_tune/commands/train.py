"""``rt3d-tune train CONFIG``: train one config (mmdet3d's ``tools/train.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rt3d_tune.config.options import DictAction


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
    dist = parser.add_argument_group(
        "data-parallel training",
        "samples_per_gpu is per worker: the global batch is workers x samples_per_gpu",
    )
    dist.add_argument(
        "--launcher",
        choices=("none", "pytorch", "ray"),
        default="none",
        help="none: one process; pytorch: one rank of torchrun --nproc_per_node=N "
        "(mmdet3d's tools/dist_train.sh); ray: --workers ranks as Ray actors",
    )
    dist.add_argument("--workers", type=int, default=1, metavar="N",
                      help="ranks for --launcher ray (default 1)")
    dist.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                      help="--launcher ray: CPUs (torch threads) per rank (default 1)")
    dist.add_argument("--gpus-per-worker", type=int, default=0, metavar="G",
                      help="--launcher ray: GPUs per rank (default 0: CPU, gloo)")
    dist.add_argument("--placement", choices=("pack", "spread"), default="pack",
                      help="--launcher ray: where the ranks go (default pack)")
    dist.add_argument("--address", help="--launcher ray: a Ray cluster to join "
                      "(default: an embedded local Ray)")
    return parser


def _check_launcher(args: argparse.Namespace) -> None:
    """Raises ConfigError: an argument that needs another launcher, or a bad count."""
    from rt3d_tune.errors import ConfigError

    if args.workers < 1:
        raise ConfigError("the worker count must be >= 1", key_path="--workers",
                          given=args.workers)
    if args.launcher != "ray":
        ray_only = [name for name, value, default in (
            ("--workers", args.workers, 1), ("--address", args.address, None),
            ("--gpus-per-worker", args.gpus_per_worker, 0),
        ) if value != default]
        if ray_only:
            raise ConfigError(
                f"{ray_only[0]} is for --launcher ray",
                key_path=ray_only[0],
                given=f"--launcher {args.launcher}",
                hint="add --launcher ray, or under torchrun set --nproc_per_node instead",
            )
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise ConfigError("a worker needs > 0 CPUs and >= 0 GPUs", key_path="--cpus-per-worker",
                          given=(args.cpus_per_worker, args.gpus_per_worker))


def run(args: argparse.Namespace) -> int:
    """Train. Returns 0, or 1 when training diverged. Raises ConfigError for user mistakes."""
    from rt3d_tune.backends import read_config
    from rt3d_tune.config.paths import check_writable_folder
    from rt3d_tune.errors import DivergenceError
    from rt3d_tune.runner.train import default_work_dir

    _check_launcher(args)
    backend, cfg = read_config(args.config, key_path="CONFIG")
    backend.check_launcher(args.launcher)
    work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config)
    check_writable_folder(work_dir, "--work-dir" if args.work_dir else "work_dir", parents=True)
    kwargs: dict[str, Any] = {
        "cfg_options": args.cfg_options,
        "resume_from": args.resume_from,
        "auto_resume": args.auto_resume,
        "seed": args.seed,
        "deterministic": args.deterministic,
    }
    try:
        if args.launcher == "ray":  # only a backend that accepts it (check_launcher)
            from rt3d_tune.search.ray_launcher import train_on_ray

            # Every rank writes to the same absolute folder, wherever Ray runs it.
            done = train_on_ray(args.config, {**kwargs, "work_dir": str(Path(work_dir).resolve())},
                                workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                                gpus_per_worker=args.gpus_per_worker, address=args.address,
                                placement=args.placement)
        else:
            done = backend.train_config(args.config, cfg, work_dir=args.work_dir,
                                        launcher=args.launcher, **kwargs)
    except DivergenceError as err:
        print(f"rt3d-tune train: {err}", file=sys.stderr)
        return 1
    _print_done(done)
    return 0


def _print_done(done: dict[str, Any] | None) -> None:
    if done is not None and not done.get("rank"):  # rank 0 (or the only process)
        print(f"done: {done['epoch']} epochs, {done['iter']} iterations; "
              f"work dir {done['work_dir']}")
