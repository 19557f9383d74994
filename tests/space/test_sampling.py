"""Sampling trial configs: grid size, seeded reproducibility, branches that never leak,
bounds and q respected, and merging overrides into the base config."""

from __future__ import annotations

import math
import textwrap
import time
import warnings
from pathlib import Path

import optuna
import pytest

from rt3d_tune.config import Config
from rt3d_tune.errors import ConfigError
from rt3d_tune.space import (
    ABSENT,
    apply_overrides,
    config_diff,
    define_by_run,
    format_diff,
    grid_params,
    grid_points,
    load_space,
    make_sampler,
    num_trials,
    overrides_from_params,
)
from rt3d_tune.space.sampling import grid_size

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE = """
model = dict(type='Toy')
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[8, 11], warmup='linear', warmup_iters=500)
runner = dict(type='EpochBasedRunner', max_epochs=12)
workflow = [('train', 1)]
"""

CONDITIONAL = """
space:
  optimizer:
    choice:
      - type: SGD
        lr: {loguniform: [1.0e-3, 1.0e-1]}
        momentum: {uniform: [0.8, 0.99], q: 0.01}
        nesterov: {choice: [true, false]}
      - type: AdamW
        lr: {loguniform: [1.0e-4, 1.0e-2]}
        betas: [0.9, 0.999]
        weight_decay: {choice: [0.01, 0.05]}
  optimizer_config.grad_clip.max_norm: {int: [5, 40], q: 5}
  lr_config:
    choice:
      - {policy: step, step: [8, 11], warmup: linear, warmup_iters: {logint: [10, 1000]}}
      - {policy: CosineAnnealing, min_lr_ratio: {loguniform: [1.0e-5, 1.0e-2]}}
"""

GRID = """
space:
  optimizer:
    choice:
      - {type: SGD, lr: {grid: [0.1, 0.01]}, momentum: {choice: [0.9, 0.95]}}
      - {type: AdamW, lr: {grid: [1.0e-3, 3.0e-3, 1.0e-2]}}
  optimizer_config.grad_clip.max_norm: {grid: [10, 35]}
  lr_config:
    choice:
      - {policy: step, step: {choice: [[8, 11], [16, 22]]}}
      - {policy: CosineAnnealing, min_lr_ratio: 1.0e-3}
search: {algorithm: grid}
"""

SGD_ONLY = {"momentum", "nesterov"}
ADAMW_ONLY = {"betas", "weight_decay"}


def make_space(tmp_path: Path, body: str, search: str = ""):
    (tmp_path / "base.py").write_text(BASE)
    path = tmp_path / "space.yaml"
    path.write_text("base: base.py\nmetric: acc\nmode: max\n" + textwrap.dedent(body) + search)
    return load_space(path)


def fake_metric(overrides: dict) -> float:
    """A deterministic score, so model-based samplers have something to learn from."""
    lr = overrides.get("optimizer", {}).get("lr", 0.01)
    return -abs(math.log10(lr) + 2.5) + 0.01 * overrides.get("runner.max_epochs", 0)


def run_study(space, algorithm: str, seed: int, n: int) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=make_sampler(algorithm, seed, space))
    sequence = []
    for _ in range(n):
        trial = study.ask()
        overrides = define_by_run(trial, space)
        assert overrides_from_params(space, trial.params) == overrides
        study.tell(trial, fake_metric(overrides))
        sequence.append(overrides)
    return sequence


def test_grid_counts_each_branch_with_its_own_nested_grid(tmp_path):
    space = make_space(tmp_path, GRID)
    # optimizer: SGD 2 lr x 2 momentum + AdamW 3 lr = 7; max_norm: 2;
    # lr_config: step 2 + cosine 1 = 3
    assert len(grid_params(space)) == (2 * 2 + 3) * 2 * (2 + 1) == num_trials(space) == 42
    points = grid_points(space)
    assert len({repr(sorted(p.items())) for p in points}) == 42
    assert {p["optimizer"]["type"] for p in points} == {"SGD", "AdamW"}
    assert all(p["lr_config"]["step"] in ([8, 11], [16, 22])
               for p in points if p["lr_config"]["policy"] == "step")


def test_grid_has_no_optuna_sampler(tmp_path):
    """Grid search runs through tune.grid_search over grid_params, not an Optuna sampler."""
    space = make_space(tmp_path, GRID)
    with pytest.raises(ConfigError, match="no Optuna sampler") as info:
        make_sampler("grid", 0, space)
    assert info.value.key_path == "search.algorithm" and "grid_search" in info.value.hint


def test_grid_size_is_counted_without_listing_the_points(tmp_path):
    space = make_space(tmp_path, GRID)
    assert grid_size(space) == 42
    values = ", ".join(str(i) for i in range(100))
    huge = "space:\n" + "".join(f"  optimizer.k{i}: {{grid: [{values}]}}\n" for i in range(10))
    space = make_space(tmp_path, huge, "search: {algorithm: grid}\n")
    started = time.perf_counter()
    for count in (grid_size, grid_params, num_trials):
        with pytest.raises(ConfigError, match="10,000 trials") as info:
            count(space)
        assert "about 10^20 points" in info.value.message
        assert info.value.key_path.startswith("space.optimizer.k")
    assert time.perf_counter() - started < 1.0


def test_grid_rejects_continuous_domains(tmp_path):
    space = make_space(tmp_path, CONDITIONAL)
    with pytest.raises(ConfigError) as info:
        grid_params(space)
    assert info.value.key_path == "space.optimizer.choice[0].lr"


@pytest.mark.parametrize("algorithm", ["random", "tpe", "qmc", "cmaes"])
def test_same_seed_same_trials(tmp_path, algorithm):
    space = make_space(tmp_path, CONDITIONAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = run_study(space, algorithm, 7, 14)
        again = run_study(space, algorithm, 7, 14)
        other = run_study(space, algorithm, 8, 14)
    assert first == again
    assert first != other


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_branches_never_leak_parameters(tmp_path, algorithm):
    space = make_space(tmp_path, CONDITIONAL)
    seen = set()
    study = optuna.create_study(direction="maximize", sampler=make_sampler(algorithm, 0, space))
    for _ in range(50):
        trial = study.ask()
        overrides = define_by_run(trial, space)
        study.tell(trial, fake_metric(overrides))
        cfg = apply_overrides(space.base_config, overrides)
        optimizer = cfg.to_dict()["optimizer"]
        kind = optimizer["type"]
        seen.add(kind)
        names = {name for name in trial.params if name.startswith("optimizer@")}
        if kind == "SGD":
            assert not ADAMW_ONLY & set(optimizer), optimizer
            assert all(not n.startswith("optimizer@1.") for n in names)
        else:
            # the base config's SGD momentum must not survive into an AdamW trial
            assert not SGD_ONLY & set(optimizer), optimizer
            assert all(not n.startswith("optimizer@0.") for n in names)
        lr_config = cfg.to_dict()["lr_config"]
        if lr_config["policy"] == "CosineAnnealing":
            assert set(lr_config) == {"policy", "min_lr_ratio"}
    assert seen == {"SGD", "AdamW"}


@pytest.mark.parametrize("algorithm", ["random", "tpe", "qmc", "cmaes"])
def test_values_stay_within_inclusive_bounds_and_q(tmp_path, algorithm):
    space = make_space(tmp_path, CONDITIONAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = run_study(space, algorithm, 0, 40)
    for overrides in trials:
        optimizer = overrides["optimizer"]
        if optimizer["type"] == "SGD":
            assert 1e-3 <= optimizer["lr"] <= 1e-1
            assert 0.8 <= optimizer["momentum"] <= 0.99
            momentum = optimizer["momentum"]
            assert abs(round((momentum - 0.8) / 0.01) * 0.01 + 0.8 - momentum) < 1e-9
            assert optimizer["nesterov"] in (True, False)
        else:
            assert 1e-4 <= optimizer["lr"] <= 1e-2
            assert optimizer["weight_decay"] in (0.01, 0.05)
            assert optimizer["betas"] == [0.9, 0.999]
        max_norm = overrides["optimizer_config.grad_clip.max_norm"]
        assert isinstance(max_norm, int) and 5 <= max_norm <= 40 and max_norm % 5 == 0
        lr_config = overrides["lr_config"]
        if lr_config["policy"] == "step":
            warmup_iters = lr_config["warmup_iters"]
            assert isinstance(warmup_iters, int) and 10 <= warmup_iters <= 1000
        else:
            assert 1e-5 <= lr_config["min_lr_ratio"] <= 1e-2


def test_int_bounds_are_both_reachable(tmp_path):
    space = make_space(tmp_path, "space:\n  runner.max_epochs: {int: [1, 3]}\n")
    values = {o["runner.max_epochs"] for o in run_study(space, "random", 0, 60)}
    assert values == {1, 2, 3}


def test_cmaes_warns_about_choices(tmp_path):
    space = make_space(tmp_path, CONDITIONAL)
    with pytest.warns(UserWarning, match="cmaes"):
        make_sampler("cmaes", 0, space)


def test_stop_max_epochs_is_a_fixed_override(tmp_path):
    space = make_space(tmp_path, CONDITIONAL, "stop: {max_epochs: 3}\n")
    overrides = run_study(space, "random", 0, 1)[0]
    assert overrides["runner.max_epochs"] == 3
    assert apply_overrides(space.base_config, overrides).to_dict()["runner"]["max_epochs"] == 3


def test_overrides_from_params_needs_every_parameter(tmp_path):
    space = make_space(tmp_path, CONDITIONAL)
    with pytest.raises(KeyError, match="optimizer@choice"):
        overrides_from_params(space, {})


def test_apply_overrides_replaces_subtrees_and_sets_paths():
    base = Config({"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
                   "optimizer_config": {"grad_clip": None},
                   "log_config": {"hooks": [{"type": "TextLoggerHook", "interval": 5}]}})
    cfg = apply_overrides(base, {
        "optimizer": {"type": "AdamW", "lr": 1e-3},
        "optimizer_config.grad_clip.max_norm": 35,
        "log_config.hooks.0.interval": 10,
    })
    out = cfg.to_dict()
    assert out["optimizer"] == {"type": "AdamW", "lr": 1e-3}
    assert out["optimizer_config"] == {"grad_clip": {"max_norm": 35}}
    assert out["log_config"]["hooks"][0] == {"type": "TextLoggerHook", "interval": 10}
    assert base.to_dict()["optimizer"] == {"type": "SGD", "lr": 0.1, "momentum": 0.9}


def test_config_diff_lists_changed_added_and_removed_leaves():
    base = {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9}, "steps": [8, 11],
            "hooks": [{"interval": 5}]}
    trial = {"optimizer": {"type": "SGD", "lr": 0.01, "betas": [0.9, 0.99]}, "steps": [8, 11],
             "hooks": [{"interval": 10}]}
    diff = config_diff(base, trial)
    assert diff == [
        ("optimizer.lr", 0.1, 0.01),
        ("optimizer.momentum", 0.9, ABSENT),
        ("optimizer.betas", ABSENT, [0.9, 0.99]),
        ("hooks.0.interval", 5, 10),
    ]
    assert format_diff(diff)[1] == "  optimizer.momentum: 0.9 -> <absent>"
    assert config_diff(base, base) == []


def test_yaml_lists_become_tuples_where_the_base_has_tuples():
    from rt3d_tune.config import Config
    from rt3d_tune.space.sampling import apply_overrides, config_diff

    base = Config({"optimizer": {"type": "AdamW", "lr": 0.1, "betas": (0.9, 0.99)},
                       "lr_config": {"policy": "cyclic", "target_ratio": (10, 1e-4)},
                       "workflow": [("train", 1)]})
    trial = apply_overrides(base, {
        "optimizer": {"type": "AdamW", "lr": 0.2, "betas": [0.9, 0.99]},
        "lr_config.target_ratio": [10, 1e-4],
        "workflow": [["train", 1], ["val", 1]],
    })
    assert trial.optimizer.betas == (0.9, 0.99) and trial.lr_config.target_ratio == (10, 1e-4)
    assert trial.to_dict()["workflow"] == [("train", 1), ("val", 1)]
    assert [path for path, _, _ in config_diff(base.to_dict(), trial.to_dict())] == [
        "optimizer.lr", "workflow"]
