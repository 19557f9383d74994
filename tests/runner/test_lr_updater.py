"""LR updater hooks over a fake runner: param groups, dict optimizers, resume, building."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from schedule_hooks_testkit import FakeRunner, drive, params

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hooks.lr_updater import (
    CosineAnnealingLrUpdaterHook,
    LrUpdaterHook,
    OneCycleLrUpdaterHook,
    StepLrUpdaterHook,
    build_lr_hook,
)


def lrs(runner: FakeRunner) -> list[float]:
    return [group["lr"] for group in runner.optimizer.param_groups]


def test_each_param_group_follows_its_own_initial_lr() -> None:
    p1, p2 = params(2)
    optimizer = torch.optim.Adam([{"params": [p1]}, {"params": [p2], "lr": 0.01}], lr=0.1)
    runner = FakeRunner(optimizer, max_epochs=3, iters_per_epoch=2)
    hook = build_lr_hook({"policy": "step", "step": [1, 2], "gamma": 0.5})
    seen = drive(runner, [hook], record=lrs)
    assert seen == [[0.1, 0.01]] * 2 + [[0.05, 0.005]] * 2 + [[0.025, 0.0025]] * 2
    assert [g["initial_lr"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_dict_of_optimizers() -> None:
    optimizers = {"backbone": torch.optim.SGD(params(), lr=0.1),
                  "head": torch.optim.AdamW(params(), lr=0.02)}
    runner = FakeRunner(optimizers, max_epochs=2, iters_per_epoch=2)
    hook = build_lr_hook({"policy": "LinearAnnealing", "min_lr": 0.0, "by_epoch": False})
    seen = drive(runner, [hook], record=lambda r: (r.optimizer["backbone"].param_groups[0]["lr"],
                                                   r.optimizer["head"].param_groups[0]["lr"]))
    assert seen == [pytest.approx(row) for row in
                    [(0.1, 0.02), (0.075, 0.015), (0.05, 0.01), (0.025, 0.005)]]


def test_one_cycle_max_lr_per_optimizer_and_per_group() -> None:
    p1, p2, p3 = params(3)
    optimizers = {"a": torch.optim.SGD([{"params": [p1]}, {"params": [p2]}], lr=0.5),
                  "b": torch.optim.SGD([p3], lr=0.5)}
    runner = FakeRunner(optimizers, max_epochs=1, iters_per_epoch=10)
    hook = OneCycleLrUpdaterHook(max_lr={"a": [1.0, 2.0], "b": 4.0}, div_factor=4)
    first = drive(runner, [hook], until_iter=1,
                  record=lambda r: [g["lr"] for o in r.optimizer.values() for g in o.param_groups])
    # the base is max_lr / div_factor, not the optimizer's lr
    assert first == [[0.25, 0.5, 1.0]]
    assert optimizers["a"].param_groups[1]["initial_lr"] == 0.5


def test_one_cycle_dict_for_a_single_optimizer_uses_its_class_name() -> None:
    runner = FakeRunner(torch.optim.AdamW(params(), lr=0.5), max_epochs=1, iters_per_epoch=10)
    drive(runner, [OneCycleLrUpdaterHook(max_lr={"AdamW": 0.1})], until_iter=1)
    assert lrs(runner) == [pytest.approx(0.1 / 25)]


@pytest.mark.parametrize("max_lr,message", [([0.1, 0.2], "one value per param group"),
                                            ({"SGD": 0.1}, "no entry")])
def test_one_cycle_bad_max_lr(max_lr: Any, message: str) -> None:
    runner = FakeRunner(torch.optim.AdamW(params(), lr=0.5))
    hook = build_lr_hook({"policy": "OneCycle", "max_lr": max_lr})
    with pytest.raises(ConfigError, match=message) as info:
        hook.before_run(runner)
    assert info.value.key_path == "lr_config.max_lr"


def test_one_cycle_total_steps_shorter_than_training() -> None:
    runner = FakeRunner(torch.optim.SGD(params(), lr=0.1), max_epochs=2, iters_per_epoch=5)
    hook = build_lr_hook({"policy": "OneCycle", "max_lr": 0.1, "total_steps": 9})
    with pytest.raises(ConfigError, match="total_steps") as info:
        drive(runner, [hook])
    assert info.value.key_path == "lr_config.total_steps"


def _straight_and_resumed(cfg: dict[str, Any]) -> tuple[list[float], list[float]]:
    straight = FakeRunner(torch.optim.SGD(params(), lr=0.1), max_epochs=4, iters_per_epoch=3)
    want = drive(straight, [build_lr_hook(cfg)], record=lambda r: lrs(r)[0])

    first = FakeRunner(torch.optim.SGD(params(), lr=0.1), max_epochs=4, iters_per_epoch=3)
    got = drive(first, [build_lr_hook(cfg)], until_iter=6, record=lambda r: lrs(r)[0])
    state = first.optimizer.state_dict()
    # a new process: the optimizer is built from the config, then the checkpoint is loaded
    resumed = FakeRunner(torch.optim.SGD(params(), lr=0.1), max_epochs=4, iters_per_epoch=3)
    resumed.optimizer.load_state_dict(state)
    resumed.epoch, resumed.iter = first.epoch, first.iter
    got += drive(resumed, [build_lr_hook(cfg)], record=lambda r: lrs(r)[0])
    return want, got


@pytest.mark.parametrize("cfg", [
    {"policy": "step", "step": [1, 3]},
    {"policy": "CosineAnnealing", "min_lr": 0.0, "by_epoch": False, "warmup": "linear",
     "warmup_iters": 8},
])
def test_resume_continues_the_curve_from_the_saved_initial_lr(cfg: dict[str, Any]) -> None:
    want, got = _straight_and_resumed(cfg)
    assert got == want


def test_changed_initial_lr_is_the_new_base() -> None:
    """Population-based training rescales ``initial_lr`` in the optimizer state on purpose."""
    optimizer = torch.optim.SGD(params(), lr=0.1)
    optimizer.param_groups[0]["initial_lr"] = 0.4
    runner = FakeRunner(optimizer, max_epochs=2, iters_per_epoch=1)
    seen = drive(runner, [build_lr_hook({"policy": "step", "step": 1})], record=lambda r: lrs(r)[0])
    assert seen == pytest.approx([0.4, 0.04])


def test_warmup_by_epoch_counts_epochs_of_the_loader() -> None:
    runner = FakeRunner(torch.optim.SGD(params(), lr=1.0), max_epochs=3, iters_per_epoch=4)
    hook = build_lr_hook({"policy": "Fixed", "warmup": "linear", "warmup_iters": 2,
                          "warmup_ratio": 0.5, "warmup_by_epoch": True})
    seen = drive(runner, [hook], record=lambda r: lrs(r)[0])
    assert seen[:8] == pytest.approx([1 - (1 - t / 8) * 0.5 for t in range(8)])
    assert seen[8:] == [1.0] * 4


def test_by_epoch_without_train_epochs_is_an_error() -> None:
    runner = FakeRunner(torch.optim.SGD(params(), lr=1.0))
    hook = build_lr_hook({"policy": "step", "step": 2})
    hook.before_run(runner)
    with pytest.raises(ConfigError) as info:
        hook.before_train_iter(runner)
    assert info.value.key_path == "lr_config.by_epoch"


@pytest.mark.parametrize("policy,cls", [
    ("step", StepLrUpdaterHook),
    ("Step", StepLrUpdaterHook),
    ("CosineAnnealing", CosineAnnealingLrUpdaterHook),
    ("cosineannealing", CosineAnnealingLrUpdaterHook),
    ("cosine_annealing", CosineAnnealingLrUpdaterHook),
    ("onecycle", OneCycleLrUpdaterHook),
    ("OneCycle", OneCycleLrUpdaterHook),
])
def test_policy_names(policy: str, cls: type) -> None:
    args = {"step": 2, "min_lr": 0.0, "max_lr": 0.1}
    accepted = set(cls.__signature__.parameters)  # type: ignore[attr-defined]
    cfg = {"policy": policy, **{k: v for k, v in args.items() if k in accepted}}
    assert type(build_lr_hook(cfg)) is cls


def test_any_registered_lr_hook_is_a_policy() -> None:
    @HOOKS.register_module(force=True)
    class HalvingTestLrUpdaterHook(LrUpdaterHook):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.schedule = lambda p, n, base: base / 2 ** p

    runner = FakeRunner(torch.optim.SGD(params(), lr=1.0), max_epochs=3, iters_per_epoch=1)
    seen = drive(runner, [build_lr_hook({"policy": "HalvingTest"})], record=lambda r: lrs(r)[0])
    assert seen == [1.0, 0.5, 0.25]


def test_unknown_policy_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        build_lr_hook({"policy": "cosine_anealing", "min_lr": 0})
    err = info.value
    assert err.key_path == "lr_config.policy"
    assert "FlatCosineAnnealing" in err.expected and "Cyclic" in err.expected
    assert "CosineAnnealing" in err.hint


def test_wrong_argument_is_named() -> None:
    cfg = {"policy": "step", "step": [8, 11], "gama": 0.1}
    with pytest.raises(ConfigError, match="gama") as info:
        build_lr_hook(cfg, key_path="space.lr_config")
    assert info.value.key_path == "space.lr_config"
    assert "warmup_iters" in info.value.hint
    assert cfg == {"policy": "step", "step": [8, 11], "gama": 0.1}


@pytest.mark.parametrize("cfg,key", [
    ({"step": 2}, "lr_config"),
    ({"policy": "step"}, "lr_config"),
    ({"policy": "step", "step": 2, "warmup": "linear"}, "lr_config.warmup_iters"),
    ({"policy": "step", "step": 2, "warmup": "cos", "warmup_iters": 3}, "lr_config.warmup"),
    ({"policy": "cyclic", "by_epoch": True}, "lr_config.by_epoch"),
    ({"policy": "OneCycle", "max_lr": 0.1, "by_epoch": True}, "lr_config.by_epoch"),
    ({"policy": "OneCycle", "max_lr": "big"}, "lr_config.max_lr"),
    ({"policy": "CosineRestart", "periods": [2, 2], "restart_weights": [1], "min_lr": 0},
     "lr_config.restart_weights"),
])
def test_bad_configs_name_their_key(cfg: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_lr_hook(cfg)
    assert info.value.key_path == key


def test_default_args_fill_by_epoch() -> None:
    hook = build_lr_hook({"policy": "step", "step": 2}, default_args={"by_epoch": False})
    assert hook.by_epoch is False
    assert build_lr_hook({"policy": "step", "step": 2, "by_epoch": True},
                         default_args={"by_epoch": False}).by_epoch is True


def test_hook_instance_passes_through() -> None:
    hook = StepLrUpdaterHook(step=2)
    assert build_lr_hook(hook) is hook


def test_cyclic_lr_epoch_runner_matches_formula() -> None:
    runner = FakeRunner(torch.optim.SGD(params(), lr=1.0), max_epochs=2, iters_per_epoch=5)
    seen = drive(runner, [build_lr_hook({"policy": "cyclic"})], record=lambda r: lrs(r)[0])
    # L = 10, U = 4: up to 10x by iteration 4, then down to 1e-4 by the end
    assert seen[0] == pytest.approx(1.0)
    assert seen[2] == pytest.approx(5.5)
    assert seen[4] == pytest.approx(10.0)
    assert seen[9] == pytest.approx(1e-4 + (10 - 1e-4) * (1 + math.cos(math.pi * 5 / 6)) / 2)
