"""best_mmengine.py: the exported runtime, loaded by mmengine's own Config and stepped
through mmengine's own parameter schedulers, gives our LR/momentum curve."""

from __future__ import annotations

import math

import pytest
import torch

from rt3d_tune import Config
from rt3d_tune.runner.simulate import simulate_schedule
from rt3d_tune.results.mmengine_export import to_mmengine

mmengine = pytest.importorskip("mmengine")

ITERS_PER_EPOCH = 7
EPOCHS = 6


def _runtime(lr_config, momentum_config=None, optimizer=None, runner=None):
    cfg = dict(
        optimizer=optimizer or dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=1e-4),
        optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2)),
        lr_config=lr_config,
        runner=runner or dict(type="EpochBasedRunner", max_epochs=EPOCHS),
        checkpoint_config=dict(interval=1),
        log_config=dict(interval=10, hooks=[dict(type="TextLoggerHook")]),
        evaluation=dict(interval=2),
    )
    if momentum_config:
        cfg["momentum_config"] = momentum_config
    return cfg


CASES = {
    "step_linear_warmup": _runtime(
        dict(policy="step", warmup="linear", warmup_iters=5, warmup_ratio=0.001, step=[2, 4])
    ),
    "step_int_constant_warmup": _runtime(
        dict(policy="step", warmup="constant", warmup_iters=3, warmup_ratio=0.25, step=2, gamma=0.5)
    ),
    "cosine_linear_warmup": _runtime(
        dict(
            policy="CosineAnnealing",
            warmup="linear",
            warmup_iters=6,
            warmup_ratio=0.1,
            min_lr_ratio=1e-5,
        )
    ),
    "cosine_by_iter": _runtime(dict(policy="CosineAnnealing", by_epoch=False, min_lr=1e-4)),
    "poly_by_iter": _runtime(dict(policy="poly", power=0.9, min_lr=1e-4, by_epoch=False)),
    "poly_by_epoch": _runtime(dict(policy="poly", power=2.0, min_lr=0.0)),
    "exp": _runtime(dict(policy="exp", gamma=0.8)),
    "flat_cosine": _runtime(
        dict(policy="FlatCosineAnnealing", start_percent=0.5, min_lr_ratio=0.01)
    ),
    "one_cycle": _runtime(dict(policy="OneCycle", max_lr=0.05, pct_start=0.25)),
    "one_cycle_three_phase": _runtime(
        dict(
            policy="OneCycle",
            max_lr=0.05,
            pct_start=0.3,
            three_phase=True,
            anneal_strategy="linear",
        )
    ),
    "cyclic_40e_style_adamw": _runtime(
        dict(policy="cyclic", target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4),
        momentum_config=dict(
            policy="cyclic", target_ratio=(0.85 / 0.95, 1), cyclic_times=1, step_ratio_up=0.4
        ),
        optimizer=dict(type="AdamW", lr=0.0018, betas=(0.95, 0.99), weight_decay=0.01),
        runner=dict(type="EpochBasedRunner", max_epochs=5),
    ),
    "iter_runner_step": _runtime(
        dict(policy="step", by_epoch=False, step=[20, 30], warmup="linear", warmup_iters=8),
        runner=dict(type="IterBasedRunner", max_iters=40),
    ),
}


def _mmengine_curve(path, runtime) -> list[tuple[float, float | None]]:
    """Step mmengine's schedulers the way its ParamSchedulerHook does."""
    import mmengine.optim  # noqa: F401  (registers the schedulers)
    from mmengine.config import Config as MMConfig
    from mmengine.registry import PARAM_SCHEDULERS

    mcfg = MMConfig.fromfile(str(path))
    opt_cfg = dict(mcfg.optim_wrapper.optimizer)
    opt_cls = getattr(torch.optim, opt_cfg.pop("type"))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = opt_cls([param], **opt_cfg)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer)) for s in mcfg.param_scheduler
    ]
    train_cfg = mcfg.train_cfg
    epochs = train_cfg.get("max_epochs", 1)
    iters = ITERS_PER_EPOCH if "max_epochs" in train_cfg else train_cfg.max_iters
    curve = []
    for _ in range(epochs):
        for _ in range(iters):
            group = optimizer.param_groups[0]
            momentum = group["betas"][0] if "betas" in group else group.get("momentum")
            curve.append((group["lr"], momentum))
            optimizer.step()
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return curve


@pytest.mark.parametrize("name", sorted(CASES))
def test_mmengine_curve_equals_ours(name, tmp_path):
    runtime = CASES[name]
    exported = to_mmengine(runtime, ITERS_PER_EPOCH)
    assert exported.unsupported == []
    path = tmp_path / "best_mmengine.py"
    path.write_text(exported.to_text())
    theirs = _mmengine_curve(path, runtime)
    ours = simulate_schedule(Config(runtime), ITERS_PER_EPOCH)
    assert len(theirs) == len(ours)
    for row, (lr, momentum) in zip(ours, theirs):
        assert math.isclose(row["lr"], lr, rel_tol=1e-9, abs_tol=1e-15), (row, lr)
        if "momentum_config" in runtime:
            assert math.isclose(row["momentum"], momentum, rel_tol=1e-9), (row, momentum)


def test_untranslatable_policies_are_named_not_approximated(tmp_path):
    runtime = _runtime(
        dict(policy="Inv", gamma=0.1, power=0.5, warmup="exp", warmup_iters=3),
        momentum_config=dict(policy="cyclic", cyclic_times=2),
    )
    exported = to_mmengine(runtime, ITERS_PER_EPOCH)
    text = exported.to_text()
    assert "lr_config.policy='Inv'" in text
    assert "warmup='exp'" in text
    assert "cyclic_times != 1" in text
    assert exported.config["param_scheduler"] == []
    from mmengine.config import Config as MMConfig

    path = tmp_path / "best_mmengine.py"
    path.write_text(text)
    loaded = MMConfig.fromfile(str(path))
    assert loaded.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert loaded.train_cfg == dict(type="EpochBasedTrainLoop", max_epochs=EPOCHS, val_interval=2)


def test_optim_wrapper_spelling():
    runtime = _runtime(dict(policy="Fixed"))
    runtime["optimizer_config"] = dict(
        type="GradientCumulativeFp16OptimizerHook",
        cumulative_iters=4,
        loss_scale=512.0,
        grad_clip=None,
    )
    runtime["optimizer"]["paramwise_cfg"] = dict(bias_lr_mult=2.0)
    wrapper = to_mmengine(runtime, ITERS_PER_EPOCH).config["optim_wrapper"]
    assert wrapper == dict(
        type="AmpOptimWrapper",
        optimizer=dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=1e-4),
        loss_scale=512.0,
        accumulative_counts=4,
        paramwise_cfg=dict(bias_lr_mult=2.0),
    )
