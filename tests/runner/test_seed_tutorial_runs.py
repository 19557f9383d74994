"""The seed tutorial's optimizer, constructor and hook examples train as written."""

from __future__ import annotations

import textwrap

import pytest
import runner_fixtures as fx  # noqa: F401  (registers the toy task)

from rt3d_tune.config import Config
from rt3d_tune.runner.train import train

TASK = """
model = dict(type='ToyLinear')
data = dict(samples_per_gpu=4, workers_per_gpu=0,
            train=dict(type='ToyRegression', length=16), val=dict(type='ToyRegression', length=8))
runner = dict(type='EpochBasedRunner', max_epochs=2)
optimizer_config = dict(grad_clip=None)
checkpoint_config = dict(interval=1)
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
workflow = [('train', 1)]
seed = 0
"""

SNIPPETS = {
    "adam": "optimizer = dict(type='Adam', lr=0.0003, weight_decay=0.0001)",
    "my_optimizer": """
        custom_imports = dict(imports=['seed_modules.my_optimizer'], allow_failed_imports=False)
        optimizer = dict(type='MyOptimizer', a=0.01, b=0.9, c=0.0001)
    """,
    "my_constructor": """
        custom_imports = dict(imports=['seed_modules.my_constructor'], allow_failed_imports=False)
        optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001,
                         constructor='MyOptimizerConstructor')
    """,
    "grad_clip": """
        optimizer_config = dict(
            _delete_=True, grad_clip=dict(max_norm=35, norm_type=2))
    """,
    "cyclic": """
        runner = dict(_delete_=True, type='IterBasedRunner', max_iters=12)
        lr_config = dict(
            policy='cyclic',
            target_ratio=(10, 1e-4),
            cyclic_times=1,
            step_ratio_up=0.4,
        )
        momentum_config = dict(
            policy='cyclic',
            target_ratio=(0.85 / 0.95, 1),
            cyclic_times=1,
            step_ratio_up=0.4,
        )
    """,
    "poly": "lr_config = dict(policy='poly', power=0.9, min_lr=1e-4, by_epoch=False)",
    "cosine": """
        lr_config = dict(
            policy='CosineAnnealing',
            warmup='linear',
            warmup_iters=1000,
            warmup_ratio=1.0 / 10,
            min_lr_ratio=1e-5)
    """,
    "val_workflow": "workflow = [('train', 1), ('val', 1)]",
    "my_hook": """
        custom_imports = dict(imports=['seed_modules.my_hook'], allow_failed_imports=False)
        custom_hooks = [
            dict(type='MyHook', a=1, b=2, priority='NORMAL')
        ]
    """,
    "checkpoint": "checkpoint_config = dict(interval=1)",
    "evaluation": "evaluation = dict(interval=1, metric='bbox')",
}


SGD = "optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)\n"


def _write(tmp_path, snippet: str):
    """The snippet as written, on top of the toy task (with SGD unless it sets an optimizer)."""
    (tmp_path / "base.py").write_text(TASK)
    snippet = textwrap.dedent(snippet)
    path = tmp_path / "cfg.py"
    path.write_text("_base_ = './base.py'\n" + ("" if "optimizer = " in snippet else SGD) + snippet)
    return Config.fromfile(path)


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_tutorial_snippet_trains(tmp_path, name) -> None:
    cfg = _write(tmp_path, SNIPPETS[name])
    runner = train(cfg, work_dir=tmp_path / "work", progress=False)
    assert runner.iter == runner.max_iters
    assert (tmp_path / "work" / "latest.pth").is_file()
    if name == "my_optimizer":
        assert type(runner.optimizer).__name__ == "MyOptimizer"
    if name == "grad_clip":
        assert "grad_norm" in runner.log_buffer.val_history


def test_my_hook_sees_the_tutorial_stages_in_order(tmp_path) -> None:
    from seed_modules.my_hook import MyHook

    cfg = _write(tmp_path, textwrap.dedent(SNIPPETS["my_hook"]) + "runner = dict(max_epochs=1)\n")
    runner = train(cfg, work_dir=tmp_path / "work", progress=False)
    hook = next(h for h in runner.hooks if isinstance(h, MyHook))
    assert hook.priority == 50 and (hook.a, hook.b) == (1, 2)
    assert hook.stages_called() == (
        ["before_run", "before_epoch"]
        + ["before_iter", "after_iter"] * 4
        + ["after_epoch", "after_run"]
    )
