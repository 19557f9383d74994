"""Momentum updater hooks over a fake runner: SGD momentum, Adam betas, dict optimizers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from schedule_hooks_testkit import FakeRunner, drive, params

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hooks.momentum_updater import (
    CyclicMomentumUpdaterHook,
    OneCycleMomentumUpdaterHook,
    build_momentum_hook,
)


def test_adam_betas_first_entry_follows_the_schedule() -> None:
    optimizer = torch.optim.Adam(params(), lr=0.1, betas=(0.9, 0.999))
    runner = FakeRunner(optimizer, max_epochs=2, iters_per_epoch=2)
    hook = build_momentum_hook({"policy": "LinearAnnealing", "min_momentum": 0.5,
                                "by_epoch": False})
    seen = drive(runner, [hook], record=lambda r: r.optimizer.param_groups[0]["betas"])
    assert [b[0] for b in seen] == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert all(b[1] == 0.999 and isinstance(b, tuple) for b in seen)
    assert optimizer.param_groups[0]["initial_momentum"] == 0.9


def test_sgd_momentum_with_dividing_warmup() -> None:
    optimizer = torch.optim.SGD(params(), lr=0.1, momentum=0.8)
    runner = FakeRunner(optimizer, max_epochs=2, iters_per_epoch=2)
    hook = build_momentum_hook({"policy": "step", "step": 1, "warmup": "constant",
                                "warmup_iters": 1, "warmup_ratio": 0.5})
    seen = drive(runner, [hook], record=lambda r: r.optimizer.param_groups[0]["momentum"])
    assert seen == pytest.approx([1.6, 0.8, 0.4, 0.4])


def test_dict_of_optimizers() -> None:
    optimizers = {"a": torch.optim.SGD(params(), lr=0.1, momentum=0.9),
                  "b": torch.optim.AdamW(params(), lr=0.1, betas=(0.8, 0.99))}
    runner = FakeRunner(optimizers, max_epochs=2, iters_per_epoch=1)
    hook = build_momentum_hook({"policy": "step", "step": 1})
    seen = drive(runner, [hook], record=lambda r: (r.optimizer["a"].param_groups[0]["momentum"],
                                                   r.optimizer["b"].param_groups[0]["betas"][0]))
    assert seen == [pytest.approx((0.9, 0.8)), pytest.approx((0.45, 0.4))]


def test_resume_keeps_initial_momentum() -> None:
    optimizer = torch.optim.SGD(params(), lr=0.1, momentum=0.45)
    optimizer.param_groups[0]["initial_momentum"] = 0.9  # as loaded from a checkpoint
    runner = FakeRunner(optimizer, max_epochs=3, iters_per_epoch=1)
    runner.epoch = runner.iter = 1
    seen = drive(runner, [build_momentum_hook({"policy": "step", "step": 1})],
                 record=lambda r: r.optimizer.param_groups[0]["momentum"])
    assert seen == pytest.approx([0.45, 0.225])


def test_one_cycle_per_group_and_per_optimizer() -> None:
    p1, p2, p3 = params(3)
    optimizers = {"a": torch.optim.SGD([{"params": [p1]}, {"params": [p2]}], lr=0.1,
                                       momentum=0.5),
                  "b": torch.optim.Adam([p3], lr=0.1)}
    runner = FakeRunner(optimizers, max_epochs=1, iters_per_epoch=8)
    hook = OneCycleMomentumUpdaterHook(base_momentum={"a": [0.8, 0.7], "b": 0.85},
                                       max_momentum=0.95, pct_start=0.25)
    hook.before_run(runner)
    # before_run starts every group at its max momentum
    assert [g["momentum"] for g in optimizers["a"].param_groups] == [0.95, 0.95]
    seen = drive(runner, [hook], record=lambda r: (
        [g["momentum"] for g in r.optimizer["a"].param_groups],
        r.optimizer["b"].param_groups[0]["betas"][0]))
    assert seen[1] == (pytest.approx([0.8, 0.7]), pytest.approx(0.85))
    assert seen[7] == (pytest.approx([0.95, 0.95]), pytest.approx(0.95))


@pytest.mark.parametrize("cfg", [
    {"policy": "step", "step": 2},
    {"policy": "OneCycle"},
])
def test_optimizer_without_momentum_is_an_error(cfg: dict[str, Any]) -> None:
    runner = FakeRunner(torch.optim.Adagrad(params(), lr=0.1))
    with pytest.raises(ConfigError, match="Adagrad has no momentum") as info:
        build_momentum_hook(cfg).before_run(runner)
    assert info.value.key_path == "momentum_config"


def test_policy_names() -> None:
    assert type(build_momentum_hook({"policy": "cyclic"})) is CyclicMomentumUpdaterHook
    assert type(build_momentum_hook({"policy": "onecycle"})) is OneCycleMomentumUpdaterHook
    with pytest.raises(ConfigError) as info:
        build_momentum_hook({"policy": "Fixed"})
    assert info.value.key_path == "momentum_config.policy"
    assert "OneCycle" in info.value.expected


@pytest.mark.parametrize("cfg,key", [
    ({"policy": "cyclic", "by_epoch": True}, "momentum_config.by_epoch"),
    ({"policy": "OneCycle", "by_epoch": True}, "momentum_config.by_epoch"),
    ({"policy": "CosineAnnealing"}, "momentum_config"),
    ({"policy": "step", "step": 2, "warmup": "exp", "warmup_iters": 0},
     "momentum_config.warmup_iters"),
    ({"policy": "step", "step": 2, "min_lr": 0.1}, "momentum_config"),
])
def test_bad_configs_name_their_key(cfg: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_momentum_hook(cfg)
    assert info.value.key_path == key
