"""build_optimizer: every torch optimizer by name, argument checks, paramwise_cfg groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import OPTIMIZER_BUILDERS, OPTIMIZERS
from rt3d_tune.runner.optimizer import DefaultOptimizerConstructor, build_optimizer


class Net(nn.Module):
    """conv(+bias) -> bn -> depthwise conv -> gn -> ln -> head linear; one frozen param."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.dw = nn.Conv2d(4, 4, 3, groups=4, bias=False)
        self.gn = nn.GroupNorm(2, 4)
        self.backbone = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)


def _groups(opt: torch.optim.Optimizer, model: nn.Module) -> dict[str, dict]:
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in opt.param_groups:
        for p in group["params"]:
            out[names[id(p)]] = {k: v for k, v in group.items() if k in ("lr", "weight_decay")}
    return out


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_registered_optimizer_builds_by_name(name) -> None:
    model = nn.Linear(2, 1, bias=False)  # 2-D weights only: Muon refuses others
    opt = build_optimizer(
        model, dict(type=name, lr=0.01) if name != "SparseAdam" else dict(type=name)
    )
    assert isinstance(opt, torch.optim.Optimizer)
    assert type(opt).__name__ == name


def test_unknown_argument_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(nn.Linear(2, 1), dict(type="SGD", lr=0.1, momentun=0.9))
    assert err.value.key_path == "optimizer.momentun"
    assert "momentum" in err.value.expected and "weight_decay" in err.value.expected


def test_unknown_optimizer_suggests_close_names() -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(nn.Linear(2, 1), dict(type="AdamWW", lr=0.1))
    assert err.value.key_path == "optimizer.type"
    assert "AdamW" in err.value.hint


def test_no_paramwise_cfg_gives_one_group() -> None:
    opt = build_optimizer(Net(), dict(type="SGD", lr=0.1, weight_decay=1e-4))
    assert len(opt.param_groups) == 1


def test_paramwise_groups_follow_mmcv_precedence() -> None:
    model = Net()
    opt = build_optimizer(
        model,
        dict(
            type="SGD",
            lr=0.1,
            weight_decay=0.01,
            paramwise_cfg=dict(
                bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0, dwconv_decay_mult=0.3
            ),
        ),
    )
    g = _groups(opt, model)
    assert g["conv.weight"] == {"lr": 0.1, "weight_decay": 0.01}
    assert g["conv.bias"] == {"lr": pytest.approx(0.2), "weight_decay": pytest.approx(0.005)}
    # norm beats bias: a norm layer's bias gets the norm decay and the base lr
    assert g["bn.weight"] == {"lr": 0.1, "weight_decay": 0.0}
    assert g["bn.bias"] == {"lr": 0.1, "weight_decay": 0.0}
    assert g["gn.bias"]["weight_decay"] == 0.0
    assert g["backbone.1.weight"]["weight_decay"] == 0.0  # LayerNorm
    assert g["dw.weight"] == {"lr": 0.1, "weight_decay": pytest.approx(0.003)}
    assert g["head.bias"] == {"lr": pytest.approx(0.2), "weight_decay": pytest.approx(0.005)}
    assert g["frozen"] == {"lr": 0.1, "weight_decay": 0.01}  # own group, untouched
    frozen_group = next(gr for gr in opt.param_groups if gr["params"][0] is model.frozen)
    assert len(frozen_group["params"]) == 1


def test_custom_keys_longest_match_wins_and_override_everything() -> None:
    model = Net()
    opt = build_optimizer(
        model,
        dict(
            type="SGD",
            lr=0.1,
            weight_decay=0.01,
            paramwise_cfg=dict(
                norm_decay_mult=0.0,
                bias_lr_mult=5.0,
                custom_keys={
                    "backbone": dict(lr_mult=0.1),
                    "backbone.1": dict(lr_mult=0.5, decay_mult=2.0),
                    "head": dict(lr_mult=3.0, decay_mult=0.0),
                    "bn": dict(lr_mult=1.0),
                },
            ),
        ),
    )
    g = _groups(opt, model)
    assert g["backbone.0.weight"] == {"lr": pytest.approx(0.01), "weight_decay": 0.01}
    assert g["backbone.1.weight"] == {
        "lr": pytest.approx(0.05),
        "weight_decay": pytest.approx(0.02),
    }
    assert g["head.bias"] == {"lr": pytest.approx(0.3), "weight_decay": 0.0}  # beats bias_lr_mult
    assert g["bn.weight"] == {"lr": 0.1, "weight_decay": 0.01}  # beats norm_decay_mult


def test_custom_keys_ties_are_alphabetical() -> None:
    model = nn.Module()
    model.ab = nn.Linear(1, 1, bias=False)
    opt = build_optimizer(
        model,
        dict(
            type="SGD",
            lr=1.0,
            paramwise_cfg=dict(custom_keys={"b": dict(lr_mult=3.0), "a": dict(lr_mult=2.0)}),
        ),
    )
    assert opt.param_groups[0]["lr"] == 2.0


@pytest.mark.parametrize("key", ["bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult"])
def test_decay_mult_without_weight_decay_is_an_error(key) -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(Net(), dict(type="SGD", lr=0.1, paramwise_cfg={key: 0.0}))
    assert err.value.key_path == f"optimizer.paramwise_cfg.{key}"


def test_custom_key_decay_mult_without_weight_decay_is_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(
            Net(),
            dict(type="SGD", lr=0.1, paramwise_cfg=dict(custom_keys={"head": dict(decay_mult=0)})),
        )
    assert err.value.key_path == "optimizer.paramwise_cfg.custom_keys.head.decay_mult"


def test_unknown_paramwise_key_is_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        build_optimizer(Net(), dict(type="SGD", lr=0.1, paramwise_cfg=dict(bias_lr_mul=2)))
    assert err.value.key_path == "optimizer.paramwise_cfg.bias_lr_mul"


def test_bypass_duplicate_skips_shared_parameters() -> None:
    model = nn.Module()
    model.a = nn.Linear(2, 2)
    model.b = nn.Linear(2, 2)
    model.b.weight = model.a.weight  # tied weights
    with pytest.raises(ValueError):  # torch refuses a parameter in two groups
        build_optimizer(model, dict(type="SGD", lr=0.1, paramwise_cfg=dict(bias_lr_mult=1.0)))
    with pytest.warns(UserWarning, match="duplicate"):
        opt = build_optimizer(
            model, dict(type="SGD", lr=0.1, paramwise_cfg=dict(bypass_duplicate=True))
        )
    assert sum(len(g["params"]) for g in opt.param_groups) == 3


def test_per_module_optimizers() -> None:
    model = Net()
    opts = build_optimizer(
        model, dict(backbone=dict(type="SGD", lr=0.1), head=dict(type="Adam", lr=1e-3))
    )
    assert set(opts) == {"backbone", "head"}
    assert isinstance(opts["head"], torch.optim.Adam)
    with pytest.raises(ConfigError) as err:
        build_optimizer(model, dict(neck=dict(type="SGD", lr=0.1)))
    assert err.value.key_path == "optimizer.neck"


def test_custom_constructor_from_registry() -> None:
    @OPTIMIZER_BUILDERS.register_module(force=True)
    class HalfLrConstructor(DefaultOptimizerConstructor):
        def __call__(self, model):
            opt = super().__call__(model)
            for group in opt.param_groups:
                group["lr"] /= 2
            return opt

    opt = build_optimizer(
        nn.Linear(2, 1), dict(type="SGD", lr=0.4, constructor="HalfLrConstructor")
    )
    assert opt.param_groups[0]["lr"] == 0.2
