"""The baseline trial: the base config as written, inside the space or not (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
import space_files

from rt3d_tune.errors import ConfigError
from rt3d_tune.space.baseline import baseline_params, baseline_point
from rt3d_tune.space.params import BASELINE_KEY, is_baseline, without_marker
from rt3d_tune.space.sampling import apply_overrides, config_diff
from rt3d_tune.space.space import load_space
from rt3d_tune.space.trials import full_length, trial_overrides

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"  # Adam lr 0.003, cosine


def _space(tmp_path, space, **sections):
    return load_space(space_files.write_space(tmp_path, "s", POINTNET, space=space,
                                              stop={"max_epochs": 2}, **sections))


BRANCHES = {"choice": [{"type": "SGD", "lr": {"loguniform": [1.0e-3, 1.0e-1]},
                        "weight_decay": 1.0e-4},
                       {"type": "Adam", "lr": {"loguniform": [1.0e-3, 1.0e-2]},
                        "weight_decay": {"choice": [1.0e-4, 1.0e-3]}}]}


def test_a_base_inside_the_space_gets_the_params_that_reproduce_it(tmp_path):
    space = _space(tmp_path, {"optimizer": BRANCHES,
                              "lr_config.min_lr_ratio": {"uniform": [0.001, 0.1]}})
    assert baseline_params(space) == {"optimizer@choice": 1, "optimizer@1.lr": 0.003,
                                      "optimizer@1.weight_decay": 1.0e-4,
                                      "lr_config.min_lr_ratio": 0.01}
    params, fits = baseline_point(space)
    assert fits and is_baseline(params) and without_marker(params) == baseline_params(space)


@pytest.mark.parametrize("space", [
    {"optimizer.lr": {"loguniform": [1.0e-2, 1.0e-1]}},  # 0.003 below the range
    {"optimizer.lr": {"choice": [0.001, 0.01]}},  # not one of the options
    {"optimizer.lr": {"uniform": [0.0, 0.01], "q": 0.002}},  # off the q grid
    # the branch lacks the base's weight_decay: choosing it changes the config
    {"optimizer": {"choice": [{"type": "Adam", "lr": {"loguniform": [1.0e-3, 1.0e-2]}}]}},
    {"optimizer": {"choice": [{"type": "AdamW", "lr": 0.003, "weight_decay": 1.0e-4}]}},
])
def test_a_base_outside_the_space_has_no_params(tmp_path, space):
    space = _space(tmp_path, space)
    assert baseline_params(space) is None
    params, fits = baseline_point(space)
    assert not fits and params == {BASELINE_KEY: True}


@pytest.mark.parametrize("inside", [True, False])
def test_the_baseline_trial_config_is_the_base_with_budget_and_seed_only(tmp_path, inside):
    lr = {"loguniform": [1.0e-3, 1.0e-2] if inside else [1.0e-2, 1.0e-1]}
    space = _space(tmp_path, {"optimizer": {"choice": [{"type": "Adam", "lr": lr,
                                                        "weight_decay": 1.0e-4}]}})
    params, fits = baseline_point(space)
    assert fits is inside
    base = space.base_config
    trial = apply_overrides(base, trial_overrides(space, params))
    assert sorted((p, n) for p, _, n in config_diff(base, trial)) == [
        ("runner.max_epochs", 2), ("seed", 0)]
    full = apply_overrides(base, trial_overrides(space, params, full_budget=True))
    assert [(p, n) for p, _, n in config_diff(base, full)] == [("seed", 0)]
    # a sampled trial is different: its params do change the base
    other = apply_overrides(base, trial_overrides(space, {"optimizer@choice": 0,
                                                          "optimizer@0.lr": 0.005}))
    assert ("optimizer.lr", 0.003, 0.005) in config_diff(base, other)


def test_full_length_drops_the_trial_budget(tmp_path):
    space = _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}})
    full = full_length(space)
    assert space.max_epochs == 2 and full.max_epochs == 6 and full.fixed_overrides == {}
    assert apply_overrides(space.base_config, trial_overrides(
        full, {"optimizer.lr": 0.004})).runner.max_epochs == 6


def test_baseline_and_confirm_length_settings(tmp_path):
    space = _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}})
    assert space.search.baseline is True and space.search.confirm.length == "trial"
    off = _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
                 search={"baseline": False, "confirm": {"length": "full"}})
    assert off.search.baseline is False and off.search.confirm.length == "full"
    with pytest.raises(ConfigError) as err:
        _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
               search={"confirm": {"length": "half"}})
    assert err.value.key_path == "search.confirm.length"
    with pytest.raises(ConfigError) as err:
        _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
               search={"baseline": "yes"})
    assert err.value.key_path == "search.baseline"
    pbt = {"type": "pbt", "perturbation_interval": 1}
    assert _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
                  scheduler=pbt).search.baseline is False
    with pytest.raises(ConfigError) as err:
        _space(tmp_path, {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
               scheduler=pbt, search={"baseline": True})
    assert err.value.key_path == "search.baseline"
