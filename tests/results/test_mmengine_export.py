"""best_mmengine.py: the exported runtime, loaded by mmengine's own Config, its schedulers
built by mmengine's registry and stepped by mmengine's ParamSchedulerHook as its train
loops call it, gives our LR/momentum curve to 1e-9, or its header says where it does not."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from rt3d_tune import Config
from rt3d_tune.backends.mmcv.mmengine_export import MmengineRuntime, to_mmengine
from rt3d_tune.backends.mmcv.simulate import simulate_schedule
from rt3d_tune.schedules.mmcv_to_mmengine import EXPLAINED, INEXACT, OMITTED

mmengine = pytest.importorskip("mmengine")

ITERS_PER_EPOCH = 7
EPOCHS = 6
# The issue's case: SGD lr 0.02, 5 epochs of 10 iterations, a linear warmup of 30
# iterations from 0.001 (so it still runs when epochs 1 and 2 begin).
WARMUP_30 = {"warmup": "linear", "warmup_iters": 30, "warmup_ratio": 0.001}


def _runtime(lr_config, momentum_config=None, optimizer=None, runner=None, epochs=EPOCHS):
    cfg = {
        "optimizer": optimizer or {"type": "SGD", "lr": 0.02, "momentum": 0.9,
                                   "weight_decay": 1e-4},
        "optimizer_config": {"grad_clip": {"max_norm": 35, "norm_type": 2}},
        "lr_config": lr_config,
        "runner": runner or {"type": "EpochBasedRunner", "max_epochs": epochs},
        "checkpoint_config": {"interval": 1},
        "log_config": {"interval": 10, "hooks": [{"type": "TextLoggerHook"}]},
        "evaluation": {"interval": 2},
    }
    if momentum_config:
        cfg["momentum_config"] = momentum_config
    return cfg


def _issue(lr_config, **kwargs):
    """The issue's setting (5 epochs of 10 iterations) with a warmup of 30 iterations."""
    return _runtime({**lr_config, **WARMUP_30}, epochs=5, **kwargs), 10


def _mmengine_curve(path, iters_per_epoch) -> list[tuple[float, float | None]]:
    """(lr, momentum) per iteration, from mmengine's own Config, registry and hook."""
    import mmengine.optim  # noqa: F401  (registers the schedulers)
    from mmengine.config import Config as MMConfig
    from mmengine.hooks import ParamSchedulerHook
    from mmengine.registry import PARAM_SCHEDULERS

    mcfg = MMConfig.fromfile(str(path))
    opt_cfg = dict(mcfg.optim_wrapper.optimizer)
    optimizer = getattr(torch.optim, opt_cfg.pop("type"))([torch.nn.Parameter(torch.zeros(1))],
                                                           **opt_cfg)
    runner = SimpleNamespace(param_schedulers=[
        PARAM_SCHEDULERS.build(s, default_args={"optimizer": optimizer})
        for s in mcfg.param_scheduler
    ])
    hook = ParamSchedulerHook()
    train_cfg = mcfg.train_cfg
    epochs = train_cfg.get("max_epochs", 1)
    iters = iters_per_epoch if "max_epochs" in train_cfg else train_cfg.max_iters
    curve = []
    for _ in range(epochs):  # EpochBasedTrainLoop.run_epoch / IterBasedTrainLoop.run
        for batch_idx in range(iters):
            group = optimizer.param_groups[0]
            momentum = group["betas"][0] if "betas" in group else group.get("momentum")
            curve.append((group["lr"], momentum))
            optimizer.step()
            hook.after_train_iter(runner, batch_idx)
        hook.after_train_epoch(runner)
    return curve


def _compare(runtime, iters_per_epoch, tmp_path) -> tuple[MmengineRuntime, float, float]:
    """(the export, the largest relative LR and momentum differences from our curve)."""
    exported = to_mmengine(runtime, iters_per_epoch)
    path = tmp_path / "best_mmengine.py"
    path.write_text(exported.to_text())
    theirs = _mmengine_curve(path, iters_per_epoch)
    ours = simulate_schedule(Config(runtime), iters_per_epoch)
    assert len(theirs) == len(ours)
    lr_error = max(abs(row["lr"] - lr) / abs(row["lr"]) for row, (lr, _) in zip(ours, theirs))
    momentum_error = max(
        (abs(row["momentum"] - m) / abs(row["momentum"])
         for row, (_, m) in zip(ours, theirs) if "momentum_config" in runtime),
        default=0.0,
    )
    return exported, lr_error, momentum_error


EXACT = {
    "step_linear_warmup": (_runtime({"policy": "step", "warmup": "linear", "warmup_iters": 5,
                                     "warmup_ratio": 0.001, "step": [2, 4]}), ITERS_PER_EPOCH),
    "step_int_constant_warmup": (_runtime({"policy": "step", "warmup": "constant",
                                           "warmup_iters": 3, "warmup_ratio": 0.25, "step": 2,
                                           "gamma": 0.5}), ITERS_PER_EPOCH),
    "step_min_lr_never_binds": (_runtime({"policy": "step", "step": [2, 4], "min_lr": 1e-5}),
                                ITERS_PER_EPOCH),
    "cosine_linear_warmup": (_runtime({"policy": "CosineAnnealing", "warmup": "linear",
                                       "warmup_iters": 6, "warmup_ratio": 0.1,
                                       "min_lr_ratio": 1e-5}), ITERS_PER_EPOCH),
    "cosine_by_iter": (_runtime({"policy": "CosineAnnealing", "by_epoch": False,
                                 "min_lr": 1e-4}), ITERS_PER_EPOCH),
    "poly_by_iter": (_runtime({"policy": "poly", "power": 0.9, "min_lr": 1e-4,
                               "by_epoch": False}), ITERS_PER_EPOCH),
    "poly_by_epoch": (_runtime({"policy": "poly", "power": 2.0, "min_lr": 0.0}),
                      ITERS_PER_EPOCH),
    "exp": (_runtime({"policy": "exp", "gamma": 0.8}), ITERS_PER_EPOCH),
    "flat_cosine": (_runtime({"policy": "FlatCosineAnnealing", "start_percent": 0.5,
                              "min_lr_ratio": 0.01}), ITERS_PER_EPOCH),
    "one_cycle": (_runtime({"policy": "OneCycle", "max_lr": 0.05, "pct_start": 0.25}),
                  ITERS_PER_EPOCH),
    "one_cycle_three_phase": (_runtime({"policy": "onecycle", "max_lr": 0.05, "pct_start": 0.3,
                                        "three_phase": True, "anneal_strategy": "linear"}),
                              ITERS_PER_EPOCH),
    "cyclic_40e_style_adamw": (_runtime(
        {"policy": "cyclic", "target_ratio": (10, 1e-4), "cyclic_times": 1,
         "step_ratio_up": 0.4},
        momentum_config={"policy": "cyclic", "target_ratio": (0.85 / 0.95, 1),
                         "cyclic_times": 1, "step_ratio_up": 0.4},
        optimizer={"type": "AdamW", "lr": 0.0018, "betas": (0.95, 0.99), "weight_decay": 0.01},
        epochs=5,
    ), ITERS_PER_EPOCH),
    "iter_runner_step": (_runtime(
        {"policy": "step", "by_epoch": False, "step": [20, 30], "warmup": "linear",
         "warmup_iters": 8},
        runner={"type": "IterBasedRunner", "max_iters": 40},
    ), ITERS_PER_EPOCH),
    # A by-epoch step towards a minimum while the warmup runs: bracketed, exact.
    "issue_cosine_min_lr_ratio": _issue({"policy": "CosineAnnealing", "min_lr_ratio": 0.01}),
    "issue_cosine_min_lr": _issue({"policy": "CosineAnnealing", "min_lr": 1e-4}),
    "issue_poly_min_lr": _issue({"policy": "poly", "power": 0.9, "min_lr": 1e-4}),
    "issue_flat_cosine_start_0": _issue({"policy": "FlatCosineAnnealing", "start_percent": 0.0,
                                         "min_lr_ratio": 0.01}),
    "issue_flat_cosine_start_0.2": _issue({"policy": "FlatCosineAnnealing",
                                           "start_percent": 0.2, "min_lr": 1e-4}),
    "issue_cosine_restart": _issue({"policy": "CosineRestart", "periods": [2, 3],
                                    "restart_weights": [1, 1], "min_lr_ratio": 0.01}),
    "cosine_constant_warmup_by_epoch": (_runtime(
        {"policy": "CosineAnnealing", "min_lr_ratio": 0.01, "warmup": "constant",
         "warmup_iters": 2, "warmup_ratio": 0.25, "warmup_by_epoch": True},
    ), ITERS_PER_EPOCH),
    # Momentum schedules with an exact mmengine scheduler.
    "linear_annealing_momentum_ratio": _issue(
        {"policy": "CosineAnnealing", "min_lr_ratio": 0.01},
        momentum_config={"policy": "LinearAnnealing", "min_momentum_ratio": 0.9},
    ),
    "linear_annealing_momentum_by_iter_adamw": (_runtime(
        {"policy": "Fixed"},
        momentum_config={"policy": "LinearAnnealing", "min_momentum": 0.85, "by_epoch": False},
        optimizer={"type": "AdamW", "lr": 0.002, "betas": (0.95, 0.999)},
    ), ITERS_PER_EPOCH),
    "step_momentum_clamp_never_binds": (_runtime(
        {"policy": "step", "step": [3]},
        momentum_config={"policy": "step", "step": [2, 4], "gamma": 0.9, "min_momentum": 0.5},
    ), ITERS_PER_EPOCH),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_mmengine_curve_equals_ours(name, tmp_path):
    runtime, iters = EXACT[name]
    exported, lr_error, momentum_error = _compare(runtime, iters, tmp_path)
    assert exported.exact, exported.notes
    assert lr_error <= 1e-9 and momentum_error <= 1e-9, (lr_error, momentum_error)
    assert "param_scheduler gives the mmcv config's LR and momentum" in exported.to_text()


def _types(exported: MmengineRuntime) -> list[str]:
    return [s["type"] for s in exported.config["param_scheduler"]]


def test_issue_cosine_under_a_long_warmup_is_bracketed_and_says_how(tmp_path):
    runtime, iters = _issue({"policy": "CosineAnnealing", "min_lr_ratio": 0.01})
    exported, lr_error, _ = _compare(runtime, iters, tmp_path)
    assert lr_error <= 1e-9
    assert _types(exported) == ["LinearLR", "MultiStepLR", "MultiStepLR", "CosineAnnealingLR",
                                "MultiStepLR", "MultiStepLR"]
    (note,) = exported.notes
    assert note.kind == EXPLAINED and "epochs 1, 2 begin" in note.text
    assert "How param_scheduler keeps the mmcv curve" in exported.to_text()


def test_momentum_schedules_use_mmengine_momentum_schedulers():
    runtime, iters = EXACT["linear_annealing_momentum_ratio"]
    assert _types(to_mmengine(runtime, iters))[-1] == "LinearMomentum"
    runtime, iters = EXACT["step_momentum_clamp_never_binds"]
    assert _types(to_mmengine(runtime, iters))[-1] == "MultiStepMomentum"


DECLARED = {
    # (runtime, iters per epoch, kind, what the note says)
    "step_min_lr_binds": (_runtime({"policy": "step", "step": [1, 2, 3], "min_lr": 1e-4}),
                          ITERS_PER_EPOCH, INEXACT,
                          "MultiStepLR has no floor: from epoch 3 on mmcv holds the lr at 0.0001"),
    "step_min_momentum_binds": (_runtime(
        {"policy": "Fixed"},
        momentum_config={"policy": "step", "step": [1, 2], "gamma": 0.5, "min_momentum": 0.4},
    ), ITERS_PER_EPOCH, INEXACT, "MultiStepMomentum has no floor: from epoch 2 on"),
    "cosine_by_iter_under_warmup": (_runtime({"policy": "CosineAnnealing", "by_epoch": False,
                                              "min_lr_ratio": 0.01, **WARMUP_30}),
                                    10, INEXACT, "differs from mmcv's from iteration 1 on"),
    "poly_by_iter_under_warmup": (_runtime({"policy": "poly", "by_epoch": False,
                                            "min_lr": 1e-4, **WARMUP_30}),
                                  10, INEXACT, "PolyLR steps towards its minimum"),
    "one_cycle_under_warmup": (_runtime({"policy": "OneCycle", "max_lr": 0.05, **WARMUP_30}),
                               10, OMITTED, "warmup='linear' under OneCycle"),
    "exp_warmup": (_runtime({"policy": "step", "step": [3], "warmup": "exp",
                             "warmup_iters": 5}), ITERS_PER_EPOCH, OMITTED,
                   "no exponential warmup"),
    "inv": (_runtime({"policy": "Inv", "gamma": 0.1, "power": 0.5}), ITERS_PER_EPOCH, OMITTED,
            "lr_config.policy='Inv'"),
    "momentum_warmup": (_runtime({"policy": "Fixed"}, momentum_config={
        "policy": "CosineAnnealing", "min_momentum_ratio": 0.9, "warmup": "linear",
        "warmup_iters": 5}), ITERS_PER_EPOCH, OMITTED, "no momentum warmup"),
    "cyclic_twice": (_runtime({"policy": "cyclic", "cyclic_times": 2}), ITERS_PER_EPOCH,
                     OMITTED, "cyclic_times != 1"),
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_what_is_not_exact_is_declared_in_the_file(name, tmp_path):
    runtime, iters, kind, says = DECLARED[name]
    exported, lr_error, momentum_error = _compare(runtime, iters, tmp_path)
    assert max(lr_error, momentum_error) > 1e-9  # the note is not a false alarm
    assert not exported.exact
    assert [n.kind for n in exported.notes if n.kind in (INEXACT, OMITTED)] == [kind]
    text = exported.to_text()
    heading = {INEXACT: "param_scheduler differs from the mmcv schedule here:",
               OMITTED: "Left out (no mmengine equivalent"}[kind]
    assert heading in text
    assert says in " ".join(line.lstrip("# ").strip() for line in text.splitlines()), text


def test_a_step_floor_that_binds_keeps_the_unclamped_scheduler_and_says_so():
    runtime, iters, _, _ = DECLARED["step_min_lr_binds"]
    exported = to_mmengine(runtime, iters)
    assert exported.config["param_scheduler"] == [
        {"type": "MultiStepLR", "milestones": [1, 2, 3], "gamma": 0.1, "by_epoch": True,
         "begin": 0, "end": EPOCHS},
    ]
    (note,) = exported.notes
    assert "this file goes on down to 2e-05" in note.text


_POLICIES = {
    "fixed": {"policy": "Fixed"},
    "step": {"policy": "step", "step": [2, 4], "min_lr": 1e-4},
    "exp": {"policy": "exp", "gamma": 0.8},
    "poly": {"policy": "poly", "power": 0.9, "min_lr": 1e-4},
    "poly_to_0": {"policy": "poly", "power": 2.0},
    "cosine": {"policy": "CosineAnnealing", "min_lr_ratio": 0.01},
    "cosine_to_0": {"policy": "CosineAnnealing", "min_lr": 0.0},
    "flat_cosine": {"policy": "FlatCosineAnnealing", "start_percent": 0.3, "min_lr": 1e-4},
    "linear": {"policy": "LinearAnnealing", "min_lr": 1e-4},
    "restart": {"policy": "CosineRestart", "periods": [2, 3], "restart_weights": [1, 1],
                "min_lr_ratio": 0.01},
    "restart_to_0": {"policy": "CosineRestart", "periods": [3, 2], "restart_weights": [1, 0.5],
                     "min_lr": 0.0},
    "cyclic": {"policy": "cyclic"},
    "one_cycle": {"policy": "OneCycle", "max_lr": 0.05},
}
_WARMUPS = {
    "no_warmup": {},
    "linear_5": {"warmup": "linear", "warmup_iters": 5, "warmup_ratio": 0.01},
    "linear_30": WARMUP_30,
    "constant_25": {"warmup": "constant", "warmup_iters": 25, "warmup_ratio": 0.25},
}


def _grid_case(policy: str, warmup: str, unit: str) -> dict:
    lr_config = {**_POLICIES[policy], **_WARMUPS[warmup]}
    if unit == "by_iter":
        lr_config["by_epoch"] = False
        if "periods" in lr_config:
            lr_config["periods"] = [p * 10 for p in lr_config["periods"]]
        if "step" in lr_config:
            lr_config["step"] = [s * 10 for s in lr_config["step"]]
    return _runtime(lr_config, epochs=5)


@pytest.mark.parametrize(
    "policy,warmup,unit",
    [(p, w, u) for p, w, u in itertools.product(_POLICIES, _WARMUPS, ("by_epoch", "by_iter"))
     if not (u == "by_iter" and p in ("cyclic", "one_cycle"))],  # always by iteration
)
def test_every_policy_and_warmup_is_exact_or_declared(policy, warmup, unit, tmp_path):
    exported, lr_error, _ = _compare(_grid_case(policy, warmup, unit), 10, tmp_path)
    assert exported.exact == (lr_error <= 1e-9), (lr_error, exported.notes)


def test_untranslatable_policies_leave_an_empty_param_scheduler_that_loads(tmp_path):
    runtime = _runtime(
        {"policy": "Inv", "gamma": 0.1, "power": 0.5, "warmup": "exp", "warmup_iters": 3},
        momentum_config={"policy": "cyclic", "cyclic_times": 2},
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
    assert loaded.optim_wrapper.clip_grad == {"max_norm": 35, "norm_type": 2}
    assert loaded.train_cfg == {"type": "EpochBasedTrainLoop", "max_epochs": EPOCHS,
                                "val_interval": 2}


def test_custom_hooks_are_copied_and_named():
    runtime = _runtime({"policy": "Fixed"})
    runtime["custom_hooks"] = [{"type": "EMAHook", "momentum": 0.001}]
    exported = to_mmengine(runtime, ITERS_PER_EPOCH)
    assert exported.exact
    assert exported.config["custom_hooks"] == [{"type": "EMAHook", "momentum": 0.001}]
    assert "Copied as written (check that mmengine has them):" in exported.to_text()
    assert "custom_hooks: EMAHook" in exported.to_text()


def test_optim_wrapper_spelling():
    runtime = _runtime({"policy": "Fixed"})
    runtime["optimizer_config"] = {
        "type": "GradientCumulativeFp16OptimizerHook",
        "cumulative_iters": 4,
        "loss_scale": 512.0,
        "grad_clip": None,
    }
    runtime["optimizer"]["paramwise_cfg"] = {"bias_lr_mult": 2.0}
    wrapper = to_mmengine(runtime, ITERS_PER_EPOCH).config["optim_wrapper"]
    assert wrapper == {
        "type": "AmpOptimWrapper",
        "optimizer": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4},
        "loss_scale": 512.0,
        "accumulative_counts": 4,
        "paramwise_cfg": {"bias_lr_mult": 2.0},
    }
