"""Datasets and data loaders from config, seeded so that a run is reproducible.

The shuffle order and the data workers' seeds are functions of (seed, epoch) only, so a
run resumed at epoch k sees the same batches as a straight run does at epoch k.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import DATASETS

__all__ = [
    "DistributedEpochSampler",
    "EpochSampler",
    "build_dataloader",
    "build_dataset",
    "split_loader_args",
    "train_iters_per_epoch",
]


def build_dataset(
    cfg: Mapping[str, Any],
    key_path: str = "data.train",
    default_args: Mapping[str, Any] | None = None,
) -> Dataset:
    """Build a dataset from ``dict(type=<DATASETS name>, ...)``.

    Raises:
        ConfigError: an unknown type or bad arguments, with ``key_path``.
    """
    return DATASETS.build(cfg, default_args=default_args, key_path=key_path)


def split_loader_args(
    ds_cfg: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[dict[str, Any], int, int]:
    """A dataset config without its loader keys, and its batch size and worker count
    (``samples_per_gpu`` / ``workers_per_gpu`` of the dataset, else of ``data``)."""
    ds_cfg = dict(ds_cfg)
    batch = ds_cfg.pop("samples_per_gpu", data.get("samples_per_gpu", 1))
    workers = ds_cfg.pop("workers_per_gpu", data.get("workers_per_gpu", 0))
    return ds_cfg, batch, workers


def train_iters_per_epoch(cfg: Mapping[str, Any], world_size: int = 1) -> int:
    """The train loader's length as the runner will count it (datasets build lazily, so
    this is cheap): ``ceil(ceil(len(data.train) / world_size) / samples_per_gpu)``, one
    rank's shard in batches of ``samples_per_gpu`` (mmdet3d's count).

    Raises:
        ConfigError: no ``data.train``, or a dataset that does not build.
    """
    data = cfg.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("train"), Mapping):
        raise ConfigError("cannot tell the iterations per epoch without data.train",
                          key_path="data.train", given=data)
    train_cfg, batch, _ = split_loader_args(data["train"], data)
    shard = math.ceil(len(build_dataset(train_cfg, "data.train")) / max(1, world_size))
    return max(1, math.ceil(shard / max(1, int(batch))))


class EpochSampler(Sampler[int]):
    """Indices in order, or shuffled by a permutation seeded with ``seed + epoch``.

    ``set_epoch`` also reseeds the loader's generator (shared with the DataLoader), from
    which the workers' base seed is drawn at each pass.

    Args:
        length: the dataset length.
        shuffle: permute each epoch.
        seed: the run's seed.
        generator: the DataLoader's generator.
    """

    def __init__(self, length: int, shuffle: bool, seed: int, generator: torch.Generator) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.generator = generator
        self.epoch = 0
        self.start = 0
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select the pass over the data (0-based); the pass starts at its first sample."""
        self.epoch = epoch
        self.start = 0
        self.generator.manual_seed(self.seed + epoch)

    def set_start(self, start: int) -> None:
        """Begin the current pass at position ``start`` of its order (resuming mid-pass)."""
        self.start = start

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            order = list(range(self.length))
        else:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        start, self.start = self.start, 0
        return iter(order[start:])

    def __len__(self) -> int:
        return self.length


class DistributedEpochSampler(EpochSampler):
    """One rank's shard of ``EpochSampler``'s order (mmcv's DistributedSampler).

    Every rank draws the same permutation (seeded with ``seed + epoch``), pads it with
    its own first indices to a multiple of ``world_size`` and takes every
    ``world_size``-th index from ``rank``: the shards are disjoint, of equal length
    ``ceil(length / world_size)``, and together cover the data (the padding repeats a
    few samples; the evaluation drops their predictions).

    Args:
        rank: this process's rank.
        world_size: the number of ranks.
    """

    def __init__(self, length: int, shuffle: bool, seed: int, generator: torch.Generator,
                 rank: int, world_size: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.num_samples = math.ceil(length / world_size)
        super().__init__(length, shuffle, seed, generator)

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        order = list(super().__iter__())
        total = self.num_samples * self.world_size
        while len(order) < total:  # pad with the first indices (mmcv's DistributedSampler)
            order += order[: total - len(order)]
        return iter(order[self.rank : total : self.world_size][start:])

    def __len__(self) -> int:
        return self.num_samples


def _seed_worker(worker_id: int) -> None:
    # torch gives each worker base_seed + worker_id, and base_seed comes from the
    # loader's generator (reseeded per epoch); numpy and random follow it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataloader(
    dataset: Dataset,
    samples_per_gpu: int,
    workers_per_gpu: int,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader over ``dataset`` (its ``collate_fn`` attribute is used when present);
    over the ``rank``-th shard of it when ``world_size > 1``.

    Args:
        samples_per_gpu: batch size.
        workers_per_gpu: loader worker processes (0: load in the main process).
        shuffle: a new seeded order each epoch.
        seed: the run's seed.
        drop_last: drop a last incomplete batch.
        rank, world_size: this rank's shard (``DistributedEpochSampler``).

    Raises:
        ConfigError: a batch size < 1 or a negative worker count.
    """
    if (
        not isinstance(samples_per_gpu, int)
        or isinstance(samples_per_gpu, bool)
        or samples_per_gpu < 1
    ):
        raise ConfigError(
            "bad batch size",
            key_path="data.samples_per_gpu",
            expected="an int >= 1",
            given=samples_per_gpu,
        )
    if (
        not isinstance(workers_per_gpu, int)
        or isinstance(workers_per_gpu, bool)
        or workers_per_gpu < 0
    ):
        raise ConfigError(
            "bad worker count",
            key_path="data.workers_per_gpu",
            expected="an int >= 0",
            given=workers_per_gpu,
        )
    generator = torch.Generator()
    sampler: EpochSampler
    if world_size > 1:
        sampler = DistributedEpochSampler(len(dataset), shuffle, seed, generator,  # type: ignore[arg-type]
                                          rank, world_size)
    else:
        sampler = EpochSampler(len(dataset), shuffle, seed, generator)  # type: ignore[arg-type]
    collate = getattr(dataset, "collate_fn", None)
    return DataLoader(
        dataset,
        batch_size=samples_per_gpu,
        sampler=sampler,
        num_workers=workers_per_gpu,
        collate_fn=collate if callable(collate) else None,
        drop_last=drop_last,
        worker_init_fn=_seed_worker if workers_per_gpu > 0 else None,
        generator=generator,
    )
