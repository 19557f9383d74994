"""Run a function on N local ranks joined in a gloo process group (torch.multiprocessing).

The rank functions live here, at module level, so that spawned processes can import
them; each writes what the test checks to ``out_dir/rank<r>.pt`` (outside every work
dir: which rank writes into its work dir is one of the things tested).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import runner_fixtures as fx  # registers the toy model and dataset
import torch
import torch.multiprocessing as mp

from rt3d_tune.registry import DATASETS, HOOKS
from rt3d_tune.runner.hook import Hook


@DATASETS.register_module(force=True)
class CountedRegression(fx.ToyRegression):
    """ToyRegression whose metrics also say how many predictions the evaluation got."""

    def evaluate(self, results: list[Any], **kwargs: Any) -> dict[str, float]:
        return {**super().evaluate(results), "n_results": float(len(results))}


@HOOKS.register_module(force=True)
class RecordLr(Hook):
    """Keeps the LR of every training iteration, as the optimizer step saw it."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def after_train_iter(self, runner: Any) -> None:
        self.lrs.append(float(runner.current_lr()[0]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_ranks(fn: Any, world_size: int, *args: Any) -> None:
    """``fn(rank, world_size, port, *args)`` on ``world_size`` processes; raises if one fails."""
    mp.spawn(fn, args=(world_size, free_port(), *args), nprocs=world_size, join=True)


def _join(rank: int, world_size: int, port: int) -> None:
    from rt3d_tune.runner.dist import init_process_group

    torch.set_num_threads(1)
    init_process_group("gloo", "127.0.0.1", port, rank, world_size)


def train_rank(rank: int, world_size: int, port: int, cfg: dict[str, Any], work_root: str,
               out_dir: str, resume_from: str | None = None) -> None:
    """Train ``cfg`` as ``rank``, work dir ``work_root/rank<r>``; record weights, LRs,
    metrics, loader lengths."""
    from rt3d_tune.runner.dist import process_group

    if world_size > 1:
        _join(rank, world_size, port)
    with process_group():
        _train(rank, cfg, work_root, out_dir, resume_from)


def _train(rank: int, cfg: dict[str, Any], work_root: str, out_dir: str,
           resume_from: str | None) -> None:
    from rt3d_tune.runner.builder import build_runner

    if resume_from is not None:
        cfg = {**cfg, "resume_from": resume_from}
    record = RecordLr()
    runner = build_runner(cfg, work_dir=Path(work_root, f"rank{rank}"), device="cpu",
                          extra_hooks=[(record, "LOWEST")])
    resumed = {k: v.clone() for k, v in fx_state(runner).items()}
    runner.run()
    torch.save({
        "state": fx_state(runner),
        "resumed": resumed,
        "lrs": record.lrs,
        "eval_results": dict(getattr(runner, "eval_results", {})),
        "iters_per_epoch": len(runner.data_loaders[0]),
        "max_iters": runner.max_iters,
        "epoch": runner.epoch,
    }, Path(out_dir, f"rank{rank}.pt"))


def fx_state(runner: Any) -> dict[str, torch.Tensor]:
    from rt3d_tune.runner.dist import unwrap_model

    return {k: v.detach().clone() for k, v in unwrap_model(runner.model).state_dict().items()}


def mmengine_divergence_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Rank 1's loss is NaN, rank 0's is finite: record whether each rank stopped."""
    import math
    from types import SimpleNamespace

    from rt3d_tune.backends.mmengine.hooks import MMTuneReportHook
    from rt3d_tune.errors import DivergenceError
    from rt3d_tune.runner.dist import process_group

    _join(rank, world_size, port)
    stopped = False
    with process_group():
        hook = MMTuneReportHook(reporter=None, rank=rank)  # type: ignore[arg-type]
        loss = math.nan if rank == 1 else 0.5
        try:
            hook.after_train_iter(SimpleNamespace(iter=3, epoch=0), 0,
                                  outputs={"loss": torch.tensor(loss)})
        except DivergenceError:
            stopped = True
    Path(out_dir, f"rank{rank}.txt").write_text(str(stopped))
