"""With one seed for every trial, the searcher never spends a trial on a config it has
already drawn (that trial would train to the earlier one's result)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import space_files

from rt3d_tune.search.searchers import search_setup
from rt3d_tune.space.space import load_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
CHOICES = {"optimizer.lr": {"choice": [1.0e-3, 3.0e-3, 1.0e-2]},
           "optimizer.weight_decay": {"choice": [0.0, 1.0e-4]}}  # 6 configs


def draws(tmp_path: Path, trial_seed: str, count: int, search_seed: int = 0) -> list[str]:
    space = load_space(space_files.write_space(
        tmp_path, trial_seed, POINTNET, space=CHOICES,
        search={"algorithm": "tpe", "num_samples": count, "seed": search_seed,
                "trial_seed": trial_seed}))
    searcher, _, _, _ = search_setup(space, count)
    return [json.dumps(searcher.suggest(f"t{i}"), sort_keys=True) for i in range(count)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixed_seed_draws_every_config_once_before_repeating(tmp_path, seed):
    found = draws(tmp_path, "fixed", 6, seed)
    assert len(set(found)) == 6  # the whole space, no trial wasted on a repeat


def test_random_seeds_may_repeat_a_config(tmp_path):
    # With a seed of its own, a repeat is a second sample of a noisy result: allowed.
    found = draws(tmp_path, "random", 12)
    assert len(found) == 12 and len(set(found)) < 12
