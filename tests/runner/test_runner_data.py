"""Data loaders: seeded per-epoch order, collate_fn, mid-pass start, worker seeds."""

from __future__ import annotations

import numpy as np
import pytest
import runner_fixtures as fx
import torch
from torch.utils.data import Dataset

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.data import build_dataloader, build_dataset


def _order(loader) -> list[int]:
    return [int(i) for batch in loader for i in batch]


class Indices(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> int:
        return i


class Pairs(Indices):
    @staticmethod
    def collate_fn(items):
        return {"items": list(items)}


class NumpyRandom(Indices):
    def __getitem__(self, i: int) -> float:
        return float(np.random.rand())


def test_order_depends_only_on_seed_and_epoch() -> None:
    a = build_dataloader(Indices(), 3, 0, shuffle=True, seed=5)
    b = build_dataloader(Indices(), 3, 0, shuffle=True, seed=5)
    orders = []
    for epoch in (0, 1, 0):
        a.sampler.set_epoch(epoch)
        orders.append(_order(a))
    b.sampler.set_epoch(1)
    assert orders[0] == orders[2] != orders[1]
    assert _order(b) == orders[1]
    assert sorted(orders[0]) == list(range(10))


def test_no_shuffle_keeps_dataset_order_and_start_skips_once() -> None:
    loader = build_dataloader(Indices(), 4, 0, shuffle=False)
    loader.sampler.set_start(4)
    assert _order(loader) == list(range(4, 10))
    assert _order(loader) == list(range(10))


def test_dataset_collate_fn_is_used() -> None:
    batch = next(iter(build_dataloader(Pairs(), 2, 0, shuffle=False)))
    assert batch == {"items": [0, 1]}


@pytest.mark.slow
def test_worker_seeds_follow_the_epoch() -> None:
    loader = build_dataloader(NumpyRandom(), 5, 2, shuffle=False, seed=1)
    draws = []
    for epoch in (0, 1, 0):
        loader.sampler.set_epoch(epoch)
        draws.append(torch.cat(list(loader)).tolist())
    assert draws[0] == draws[2] != draws[1]
    assert len(set(draws[0])) == 10  # workers draw different numbers


@pytest.mark.parametrize(
    ("args", "key_path"), [((0, 0), "data.samples_per_gpu"), ((2, -1), "data.workers_per_gpu")]
)
def test_bad_loader_arguments(args, key_path) -> None:
    with pytest.raises(ConfigError) as err:
        build_dataloader(Indices(), *args)
    assert err.value.key_path == key_path


def test_build_dataset_from_registry() -> None:
    ds = build_dataset(dict(type="ToyRegression", length=5), "data.train")
    assert isinstance(ds, fx.ToyRegression) and len(ds) == 5
