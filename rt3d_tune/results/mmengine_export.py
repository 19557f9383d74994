"""Translate an mmcv-1.x runtime config into mmdet3d 1.x (mmengine) spelling.

mmengine describes the LR curve as a chain of parameter schedulers, each one stepped
after every iteration (``by_epoch=False``) or epoch (``by_epoch=True``) and each one
multiplying or re-deriving the current value. The translation below is exact (equal
curves, iteration by iteration, up to float rounding) for the policies it emits; where
mmengine cannot express an mmcv policy exactly, the policy is left out of
``param_scheduler`` and named in a comment at the top of the file, never approximated
silently.

All iteration counts are written out explicitly (``by_epoch=False``) from the
``iters_per_epoch`` of the trial that produced the config; the file says which value
it assumed, since a different dataset size or batch size changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MmengineRuntime", "to_mmengine", "write_best_mmengine"]


@dataclass
class MmengineRuntime:
    """The translated runtime: the config dict, and what could not be translated."""

    config: dict[str, Any]
    unsupported: list[str] = field(default_factory=list)
    iters_per_epoch: int = 0

    def to_text(self) -> str:
        """The file's text: a header comment, then one ``name = value`` per key."""
        lines = [
            "# mmdet3d 1.x (mmengine) runtime written by rt3d-tune.",
            f"# Iteration counts assume {self.iters_per_epoch} iterations per epoch "
            "(dataset size / batch size of the tuned run).",
        ]
        if self.unsupported:
            lines.append("# NOT translated (mmengine cannot express these exactly; keep the mmcv")
            lines.append("# config for them or adapt by hand):")
            lines.extend(f"#   - {item}" for item in self.unsupported)
        from rt3d_tune.config_text import dumps

        return "\n".join(lines) + "\n\n" + dumps(self.config, "py")


def _schedule_length(cfg: Mapping[str, Any], iters_per_epoch: int) -> tuple[bool, int, int]:
    """(epoch_based, max_epochs_or_0, max_iters)."""
    runner = dict(cfg.get("runner") or {})
    if runner.get("type", "EpochBasedRunner") == "IterBasedRunner":
        return False, 0, int(runner["max_iters"])
    epochs = int(runner.get("max_epochs", cfg.get("total_epochs", 0)))
    return True, epochs, epochs * iters_per_epoch


def _policy_name(policy: str) -> str:
    return policy.title() if policy.islower() else policy


def _target_kwargs(lr_cfg: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``eta_min`` / ``eta_min_ratio`` from mmcv's ``min_lr`` / ``min_lr_ratio``."""
    if lr_cfg.get(f"min_{prefix}_ratio") is not None:
        return {"eta_min_ratio": lr_cfg[f"min_{prefix}_ratio"]}
    return {"eta_min": lr_cfg.get(f"min_{prefix}", 0.0)}


def _warmup(lr_cfg: Mapping[str, Any], iters_per_epoch: int, unsupported: list[str]) -> list[dict]:
    warmup = lr_cfg.get("warmup")
    if not warmup:
        return []
    iters = int(lr_cfg.get("warmup_iters", 0))
    if lr_cfg.get("warmup_by_epoch", False):
        iters *= iters_per_epoch
    ratio = float(lr_cfg.get("warmup_ratio", 0.1))
    # mmcv stops warming up at iteration == warmup_iters; mmengine's LinearLR and
    # ConstantLR reach factor 1 at step end - begin - 1, hence end = iters + 1.
    if warmup == "linear":
        return [
            dict(
                type="LinearLR",
                start_factor=ratio,
                end_factor=1.0,
                by_epoch=False,
                begin=0,
                end=iters + 1,
            )
        ]
    if warmup == "constant":
        return [dict(type="ConstantLR", factor=ratio, by_epoch=False, begin=0, end=iters + 1)]
    unsupported.append(f"lr_config.warmup={warmup!r} (mmengine has no exponential warmup)")
    return []


def _lr_schedulers(
    cfg: Mapping[str, Any], iters_per_epoch: int, unsupported: list[str]
) -> list[dict]:
    lr_cfg = dict(cfg.get("lr_config") or {})
    if not lr_cfg:
        return []
    policy = _policy_name(str(lr_cfg.get("policy", "Fixed")))
    epoch_based, max_epochs, max_iters = _schedule_length(cfg, iters_per_epoch)
    by_epoch = bool(lr_cfg.get("by_epoch", True)) and epoch_based
    if policy.lower() in ("cyclic", "onecycle"):
        by_epoch = False
    length = max_epochs if by_epoch else max_iters
    where = f"lr_config.policy={lr_cfg.get('policy')!r}"
    out = _warmup(lr_cfg, iters_per_epoch, unsupported)
    base = dict(by_epoch=by_epoch)
    if policy == "Fixed":
        pass
    elif policy == "Step":
        if lr_cfg.get("min_lr") is not None:
            unsupported.append(f"{where} with min_lr (mmengine's step schedulers do not clamp)")
        step = lr_cfg["step"]
        gamma = lr_cfg.get("gamma", 0.1)
        if isinstance(step, int):
            out.append(
                dict(type="StepLR", step_size=step, gamma=gamma, begin=0, end=length, **base)
            )
        else:
            out.append(
                dict(
                    type="MultiStepLR",
                    milestones=list(step),
                    gamma=gamma,
                    begin=0,
                    end=length,
                    **base,
                )
            )
    elif policy == "Exp":
        out.append(dict(type="ExponentialLR", gamma=lr_cfg["gamma"], begin=0, end=length, **base))
    elif policy == "Poly":
        # mmengine's PolyLR reaches eta_min at step end - begin - 1: end = length + 1
        # makes (1 - t / length) ** power, as mmcv.
        out.append(
            dict(
                type="PolyLR",
                eta_min=lr_cfg.get("min_lr", 0.0),
                power=lr_cfg.get("power", 1.0),
                begin=0,
                end=length + 1,
                **base,
            )
        )
    elif policy == "CosineAnnealing":
        out.append(
            dict(
                type="CosineAnnealingLR",
                T_max=length,
                begin=0,
                end=length,
                **_target_kwargs(lr_cfg, "lr"),
                **base,
            )
        )
    elif policy == "FlatCosineAnnealing":
        start = round(length * lr_cfg.get("start_percent", 0.75))
        out.append(
            dict(
                type="CosineAnnealingLR",
                T_max=length - start,
                begin=start,
                end=length,
                **_target_kwargs(lr_cfg, "lr"),
                **base,
            )
        )
    elif policy == "LinearAnnealing" and lr_cfg.get("min_lr_ratio") is not None:
        out.append(
            dict(
                type="LinearLR",
                start_factor=1.0,
                end_factor=lr_cfg["min_lr_ratio"],
                begin=0,
                end=length + 1,
                **base,
            )
        )
    elif policy == "CosineRestart" and (
        all(w == 1 for w in lr_cfg.get("restart_weights", [1]))
        or not _target_kwargs(lr_cfg, "lr").get("eta_min", 1)
    ):
        out.append(
            dict(
                type="CosineRestartLR",
                periods=list(lr_cfg["periods"]),
                restart_weights=list(lr_cfg.get("restart_weights", [1])),
                begin=0,
                end=length,
                **_target_kwargs(lr_cfg, "lr"),
                **base,
            )
        )
    elif policy == "Cyclic":
        out.extend(_cyclic(lr_cfg, max_iters, "LR", (10, 1e-4), unsupported, where))
    elif policy == "OneCycle":
        total = int(lr_cfg.get("total_steps") or max_iters)
        out.append(
            dict(
                type="OneCycleLR",
                eta_max=lr_cfg["max_lr"],
                total_steps=total,
                pct_start=float(lr_cfg.get("pct_start", 0.3)),
                anneal_strategy=lr_cfg.get("anneal_strategy", "cos"),
                div_factor=lr_cfg.get("div_factor", 25.0),
                final_div_factor=lr_cfg.get("final_div_factor", 1e4),
                three_phase=lr_cfg.get("three_phase", False),
                by_epoch=False,
                begin=0,
                end=total,
            )
        )
    else:
        unsupported.append(f"{where} (no exact mmengine scheduler)")
    return out


def _cyclic(
    cfg: Mapping[str, Any],
    max_iters: int,
    kind: str,
    default_ratio: tuple,
    unsupported: list[str],
    where: str,
) -> list[dict]:
    """mmcv's one-cycle ``cyclic`` policy as two cosine phases (up, then down).

    The up phase runs one step longer (``end = up + 1``) so that it lands exactly on
    the peak at the iteration where mmcv starts the down phase; the down phase then
    starts from that value.
    """
    ratio = cfg.get("target_ratio", default_ratio)
    if isinstance(ratio, (int, float)):
        ratio = (ratio, ratio / 1e5)
    if cfg.get("cyclic_times", 1) != 1 or cfg.get("anneal_strategy", "cos") != "cos":
        unsupported.append(f"{where} with cyclic_times != 1 or linear annealing")
        return []
    length = max_iters
    up = int(cfg.get("step_ratio_up", 0.4) * length)
    scheduler = f"CosineAnnealing{'LR' if kind == 'LR' else 'Momentum'}"
    return [
        dict(type=scheduler, T_max=up, eta_min_ratio=ratio[0], by_epoch=False, begin=0, end=up + 1),
        dict(
            type=scheduler,
            T_max=length - up,
            eta_min_ratio=ratio[1],
            by_epoch=False,
            begin=up,
            end=length,
        ),
    ]


def _momentum_schedulers(
    cfg: Mapping[str, Any], iters_per_epoch: int, unsupported: list[str]
) -> list[dict]:
    m_cfg = dict(cfg.get("momentum_config") or {})
    if not m_cfg:
        return []
    policy = _policy_name(str(m_cfg.get("policy", "")))
    where = f"momentum_config.policy={m_cfg.get('policy')!r}"
    if m_cfg.get("warmup"):
        unsupported.append(f"momentum_config.warmup={m_cfg['warmup']!r}")
        return []
    epoch_based, max_epochs, max_iters = _schedule_length(cfg, iters_per_epoch)
    by_epoch = (
        bool(m_cfg.get("by_epoch", True)) and epoch_based and policy not in ("Cyclic", "OneCycle")
    )
    length = max_epochs if by_epoch else max_iters
    if policy == "Cyclic":
        return _cyclic(m_cfg, max_iters, "Momentum", (0.85 / 0.95, 1), unsupported, where)
    if policy == "CosineAnnealing":
        target = (
            {"eta_min_ratio": m_cfg["min_momentum_ratio"]}
            if m_cfg.get("min_momentum_ratio") is not None
            else {"eta_min": m_cfg.get("min_momentum", 0.0)}
        )
        return [
            dict(
                type="CosineAnnealingMomentum",
                T_max=length,
                begin=0,
                end=length,
                by_epoch=by_epoch,
                **target,
            )
        ]
    if policy == "Step" and m_cfg.get("min_momentum") is None:
        step = m_cfg["step"]
        gamma = m_cfg.get("gamma", 0.5)
        if isinstance(step, int):
            return [
                dict(
                    type="StepMomentum",
                    step_size=step,
                    gamma=gamma,
                    by_epoch=by_epoch,
                    begin=0,
                    end=length,
                )
            ]
        return [
            dict(
                type="MultiStepMomentum",
                milestones=list(step),
                gamma=gamma,
                by_epoch=by_epoch,
                begin=0,
                end=length,
            )
        ]
    unsupported.append(f"{where} (no exact mmengine scheduler)")
    return []


def _optim_wrapper(cfg: Mapping[str, Any]) -> dict[str, Any]:
    optimizer = {
        k: v
        for k, v in dict(cfg.get("optimizer") or {}).items()
        if k not in ("constructor", "paramwise_cfg")
    }
    opt_cfg = dict(cfg.get("optimizer_config") or {})
    hook_type = opt_cfg.get("type", "OptimizerHook")
    fp16 = cfg.get("fp16") is not None or "Fp16" in hook_type
    wrapper: dict[str, Any] = dict(
        type="AmpOptimWrapper" if fp16 else "OptimWrapper", optimizer=optimizer
    )
    if fp16:
        wrapper["loss_scale"] = opt_cfg.get("loss_scale") or dict(cfg.get("fp16") or {}).get(
            "loss_scale", "dynamic"
        )
    if opt_cfg.get("grad_clip"):
        wrapper["clip_grad"] = dict(opt_cfg["grad_clip"])
    if "Cumulative" in hook_type:
        wrapper["accumulative_counts"] = opt_cfg.get("cumulative_iters", 1)
    source = dict(cfg.get("optimizer") or {})
    if source.get("paramwise_cfg"):
        wrapper["paramwise_cfg"] = source["paramwise_cfg"]
    if source.get("constructor"):
        wrapper["constructor"] = source["constructor"]
    return wrapper


def to_mmengine(cfg: Mapping[str, Any], iters_per_epoch: int) -> MmengineRuntime:
    """Translate the runtime part of an mmcv-1.x config (a plain dict).

    Args:
        cfg: the full config, as plain dicts/lists.
        iters_per_epoch: train iterations per epoch of the tuned run; iteration-based
            schedulers and warmups are written with explicit iteration counts from it.
    """
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
    unsupported: list[str] = []
    epoch_based, max_epochs, max_iters = _schedule_length(cfg, iters_per_epoch)
    evaluation = dict(cfg.get("evaluation") or {})
    interval = int(evaluation.get("interval", 1))
    if epoch_based:
        train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=interval)
    else:
        train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=interval)
    checkpoint = dict(cfg.get("checkpoint_config") or {})
    ckpt_hook = dict(type="CheckpointHook", interval=checkpoint.get("interval", 1))
    for key in ("max_keep_ckpts", "save_optimizer", "save_last", "out_dir", "by_epoch"):
        if key in checkpoint:
            ckpt_hook[key] = checkpoint[key]
    if evaluation.get("save_best"):
        ckpt_hook["save_best"] = evaluation["save_best"]
    log_interval = dict(cfg.get("log_config") or {}).get("interval", 50)
    out: dict[str, Any] = dict(
        optim_wrapper=_optim_wrapper(cfg),
        param_scheduler=_lr_schedulers(cfg, iters_per_epoch, unsupported)
        + _momentum_schedulers(cfg, iters_per_epoch, unsupported),
        train_cfg=train_cfg,
        val_cfg=dict(type="ValLoop"),
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=log_interval),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=ckpt_hook,
        ),
    )
    if cfg.get("custom_hooks"):
        out["custom_hooks"] = list(cfg["custom_hooks"])
        unsupported.append("custom_hooks are copied as written: check each exists for mmengine")
    return MmengineRuntime(config=out, unsupported=unsupported, iters_per_epoch=iters_per_epoch)


def write_best_mmengine(ctx: Any) -> dict[str, Any]:
    """Exporter: ``best/best_mmengine.py`` from ``best/best_config.py`` (see export.py)."""
    from pathlib import Path

    from rt3d_tune.config import Config

    best_config = Path(ctx.best_dir, "best_config.py")
    if ctx.best is None or not best_config.exists():
        return {}
    iters = int(ctx.best.last_result.get("iters_per_epoch") or 0)
    if iters < 1:
        return {}
    cfg = Config.fromfile(str(best_config), import_custom_modules=False).to_dict()
    path = Path(ctx.best_dir, "best_mmengine.py")
    path.write_text(to_mmengine(cfg, iters).to_text(), encoding="utf-8")
    return {"best_mmengine": path}


def _register() -> None:
    from rt3d_tune.results.export import register_exporter

    register_exporter(write_best_mmengine)


_register()
