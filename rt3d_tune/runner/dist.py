"""Data-parallel training: the process group, who writes, and what the ranks exchange.

mmcv's ``get_dist_info`` / ``master_only`` habits: every rank runs the same runner over
its shard of the data; rank 0 alone writes files (logs, TensorBoard, checkpoints) and
reports to Tune; the log variables are averaged across ranks before anything reads
them; the evaluation predicts each rank's shard and gathers the predictions in dataset
order, the padding a distributed sampler adds dropped.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from rt3d_tune.errors import ConfigError

__all__ = [
    "TORCHRUN_ENV",
    "StepDistributedDataParallel",
    "all_reduce_mean",
    "backend_for",
    "broadcast_object",
    "gather_in_order",
    "get_dist_info",
    "init_from_torchrun_env",
    "init_process_group",
    "is_distributed",
    "process_group",
    "unwrap_model",
]

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# A rank that waits longer than this on a collective (a peer died without closing its
# socket) fails instead of hanging the trial.
COLLECTIVE_TIMEOUT = _dt.timedelta(minutes=10)


def is_distributed() -> bool:
    """Whether a process group of more than one rank is set up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def backend_for(device: torch.device | str) -> str:
    """nccl for CUDA, gloo for CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_process_group(backend: str, address: str, port: int, rank: int,
                       world_size: int) -> None:
    """Join the process group at ``tcp://address:port`` as ``rank`` of ``world_size``."""
    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{address}:{port}",
        rank=rank,
        world_size=world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Leave the process group set up before the body when the body ends: after a
    barrier when it succeeded (no rank tears its sockets down while another still
    finishes its last collective), at once when it failed (a barrier would wait for a
    rank that is gone)."""
    try:
        yield
        if dist.is_initialized():
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def init_from_torchrun_env(device: str | None = None) -> torch.device:
    """Join the process group torchrun describes in the environment (``--launcher
    pytorch``). Returns the device of this rank (``cuda:LOCAL_RANK`` when CUDA is there).

    Raises:
        ConfigError: the environment lacks torchrun's variables.
    """
    missing = [name for name in TORCHRUN_ENV if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            "--launcher pytorch runs under torchrun, which sets " + ", ".join(TORCHRUN_ENV),
            key_path="--launcher",
            given=f"missing {', '.join(missing)}",
            hint="torchrun --nproc_per_node=N -m rt3d_tune train CONFIG --launcher pytorch, "
            "or --launcher ray --workers N",
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend_for(dev), timeout=COLLECTIVE_TIMEOUT)
    return dev


def all_reduce_mean(values: Mapping[str, float]) -> dict[str, float]:
    """The mean of each value over the ranks (one collective for all of them).

    Every rank must pass the same keys (the same model logs the same variables).
    """
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist(), strict=True))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (itself without a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_in_order(part: Sequence[Any], size: int) -> list[Any]:
    """Every rank's part of a sharded pass, back in dataset order, ``size`` long.

    The sampler gives rank r the samples r, r + world, r + 2 world, ... of the (padded)
    order, so interleaving the parts restores the order; the padding at its end is
    dropped. Every rank gets the whole list.
    """
    if not is_distributed():
        return list(part)
    parts: list[Any] = [None] * dist.get_world_size()
    # Pickled once here: all_gather_object would move CUDA tensors through the GPU.
    dist.all_gather_object(parts, pickle.dumps(list(part)))
    lists = [pickle.loads(p) for p in parts]
    ordered = [item for group in zip(*lists, strict=True) for item in group]
    return ordered[:size]


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The user's model inside a data-parallel wrapper (itself when not wrapped)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class StepDistributedDataParallel(DistributedDataParallel):
    """DistributedDataParallel for models that train through ``train_step``.

    The runner calls ``model.train_step(batch, optimizer)``; DDP synchronizes gradients
    only for what runs through its ``forward``. So each step runs as DDP's forward, the
    wrapped model's ``forward`` standing in for the step until the step starts (mmcv's
    MMDistributedDataParallel does the same through DDP internals). ``module`` is the
    user's model, so checkpoints hold its plain state dict.
    """

    def train_step(self, data_batch: Any, optimizer: Any) -> Any:
        return self._step("train_step", data_batch, optimizer)

    def val_step(self, data_batch: Any, optimizer: Any) -> Any:
        return self._step("val_step", data_batch, optimizer)

    def _step(self, name: str, *args: Any) -> Any:
        module = self.module
        step = getattr(module, name)

        def forward(*inputs: Any) -> Any:
            del module.forward  # the step's own calls of model(...) reach the real forward
            return step(*inputs)

        module.forward = forward  # an instance attribute shadows the method, for one call
        try:
            return self(*args)
        finally:
            module.__dict__.pop("forward", None)
