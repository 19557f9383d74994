"""Every config snippet of the seed tutorial loads verbatim, and its user modules work.

The snippets live in tests/data/seed_configs/ (see its README); the tutorial's
``mmdet3d.core...`` modules are tests/seed_modules/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rt3d_tune import Config
from rt3d_tune.registry import HOOKS, OPTIMIZER_BUILDERS, OPTIMIZERS, build_from_cfg

SEED = Path(__file__).parent / "data" / "seed_configs"
TUTORIAL = (SEED / "TUTORIAL.zh.md").read_text(encoding="utf-8")
MODULE_NAMES = {
    "mmdet3d.core.optimizer.my_optimizer": "seed_modules.my_optimizer",
    "mmdet3d.core.utils.my_hook": "seed_modules.my_hook",
}

EXPECTED = {
    "optimizer_adam.py": {"optimizer": {"type": "Adam", "lr": 0.0003, "weight_decay": 0.0001}},
    "optimizer_sgd.py": {
        "optimizer": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001}
    },
    "optimizer_custom.py": {
        "optimizer": {"type": "MyOptimizer", "a": 0.01, "b": 0.9, "c": 0.0001},
        "custom_imports": {"imports": ["seed_modules.my_optimizer"], "allow_failed_imports": False},
    },
    "optimizer_constructor.py": {
        "optimizer": {"type": "MyOptimizer", "a": 0.01, "b": 0.9, "c": 0.0001,
                      "constructor": "MyOptimizerConstructor"},
    },
    "grad_clip.py": {
        "optimizer_config": {"grad_clip": {"max_norm": 35, "norm_type": 2}},
        "optimizer": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001},
        "runner": {"type": "EpochBasedRunner", "max_epochs": 12},
        "workflow": [("train", 1)],
    },
    "cyclic_momentum.py": {
        "lr_config": {"policy": "cyclic", "target_ratio": (10, 1e-4), "cyclic_times": 1,
                      "step_ratio_up": 0.4},
        "momentum_config": {"policy": "cyclic", "target_ratio": (0.85 / 0.95, 1),
                            "cyclic_times": 1, "step_ratio_up": 0.4},
    },
    "lr_poly.py": {
        "lr_config": {"policy": "poly", "power": 0.9, "min_lr": 1e-4, "by_epoch": False}
    },
    "lr_cosine.py": {
        "lr_config": {"policy": "CosineAnnealing", "warmup": "linear", "warmup_iters": 1000,
                      "warmup_ratio": 0.1, "min_lr_ratio": 1e-5}
    },
    "workflow_train.py": {"workflow": [("train", 1)]},
    "workflow_train_val.py": {"workflow": [("train", 1), ("val", 1)]},
    "hooks_custom.py": {"custom_hooks": [{"type": "MyHook", "a": 3, "b": "b"}]},
    "hooks_custom_priority.py": {
        "custom_hooks": [{"type": "MyHook", "a": 3, "b": "b", "priority": "NORMAL"}]
    },
    "checkpoint.py": {"checkpoint_config": {"interval": 1}},
    "log_config.py": {
        "log_config": {"interval": 50,
                       "hooks": [{"type": "TextLoggerHook"}, {"type": "TensorboardLoggerHook"}]}
    },
    "evaluation.py": {"evaluation": {"interval": 1, "metric": "bbox"}},
}


def _normalized(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _snippets(path: Path) -> list[str]:
    """The blocks after each '# tutorial snippet' line, up to the next blank line."""
    blocks = re.findall(r"^# tutorial snippet\n(.*?)(?:\n\s*\n|\Z)", path.read_text(), re.S | re.M)
    return [_normalized(block) for block in blocks]


def _tutorial_normalized() -> str:
    text = TUTORIAL
    for old, new in MODULE_NAMES.items():
        text = text.replace(old, new)
    return _normalized(text)


def test_every_seed_config_file_is_checked() -> None:
    assert sorted(p.name for p in SEED.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_config_loads_with_expected_values(name: str) -> None:
    cfg = Config.fromfile(SEED / name)
    for key, value in EXPECTED[name].items():
        assert cfg.to_dict()[key] == value, key
    assert "_base_" not in cfg


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if _snippets(SEED / n)))
def test_seed_config_snippets_are_verbatim_from_the_tutorial(name: str) -> None:
    tutorial = _tutorial_normalized()
    for snippet in _snippets(SEED / name):
        # workflow_train_val.py assigns the tutorial's bare list, so compare what follows "name ="
        body = re.sub(r"^\w+ = ", "", snippet, count=1)
        assert body in tutorial, snippet


def test_every_config_assignment_of_the_tutorial_has_a_seed_config() -> None:
    covered = "\n".join(s for p in SEED.glob("*.py") for s in _snippets(p)).splitlines()
    assignments = re.findall(r"^([a-z]\w* = .*)$", _tutorial_normalized(), re.M)  # not __all__
    assert len(assignments) >= 17
    for line in assignments:
        assert line.strip() in covered, line


def test_delete_replaces_the_inherited_optimizer_config() -> None:
    cfg = Config.fromfile(SEED / "grad_clip.py")
    assert cfg.optimizer_config.to_dict() == {"grad_clip": {"max_norm": 35, "norm_type": 2}}


def test_custom_optimizer_is_registered_and_steps_like_sgd_with_momentum() -> None:
    cfg = Config.fromfile(SEED / "optimizer_custom.py")
    from seed_modules.my_optimizer import MyOptimizer

    assert OPTIMIZERS.get("MyOptimizer") is MyOptimizer
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = build_from_cfg(cfg.optimizer, OPTIMIZERS, dict(params=[weight]))
    assert isinstance(opt, MyOptimizer) and opt.param_groups[0]["lr"] == 0.01
    for _ in range(2):
        opt.zero_grad()
        (weight**2).sum().backward()
        opt.step()
    # by hand: g = 2w + c*w, buf1 = g1, buf2 = b*buf1 + g2, w -= a*buf
    w = torch.tensor([1.0, -2.0])
    buf = (2 + 1e-4) * w
    w = w - 0.01 * buf
    buf = 0.9 * buf + (2 + 1e-4) * w
    w = w - 0.01 * buf
    torch.testing.assert_close(weight.detach(), w)


def test_custom_constructor_builds_the_optimizer_for_a_model() -> None:
    cfg = Config.fromfile(SEED / "optimizer_constructor.py")
    from seed_modules.my_optimizer import MyOptimizer

    optimizer_cfg = cfg.optimizer.to_dict()
    constructor_type = optimizer_cfg.pop("constructor")
    constructor = build_from_cfg(dict(type=constructor_type, optimizer_cfg=optimizer_cfg),
                                 OPTIMIZER_BUILDERS)
    model = torch.nn.Linear(3, 2)
    opt = constructor(model)
    assert isinstance(opt, MyOptimizer)
    assert [p for g in opt.param_groups for p in g["params"]] == list(model.parameters())


def test_custom_hook_is_registered_and_records_stages() -> None:
    cfg = Config.fromfile(SEED / "hooks_custom_priority.py")
    hook_cfg = cfg.custom_hooks[0].to_dict()
    assert hook_cfg.pop("priority") == "NORMAL"
    hook = HOOKS.build(hook_cfg)
    assert (hook.a, hook.b) == (3, "b")

    class FakeRunner:
        epoch, iter = 0, 0

    runner = FakeRunner()
    hook.before_run(runner)
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner)
    hook.after_train_iter(runner)
    hook.after_val_epoch(runner)
    hook.after_run(runner)
    assert hook.stages_called() == ["before_run", "before_epoch", "before_iter", "after_iter",
                                    "after_epoch", "after_run"]
