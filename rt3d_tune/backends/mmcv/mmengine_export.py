"""Translate an mmcv-1.x runtime config into mmdet3d 1.x (mmengine) spelling (the mmcv
backend's :meth:`~rt3d_tune.backends.base.Backend.mmengine_spelling`).

``best/best_mmengine.py`` holds ``optim_wrapper``, ``param_scheduler``, ``train_cfg``,
``val_cfg``, ``default_hooks`` and ``custom_hooks``. Its LR and momentum curve is mmcv's,
iteration by iteration up to float rounding, except where a comment at the top of the
file says otherwise: what differs and from when, what was left out, and how an unusual
construction keeps the curve exact (see :mod:`mmengine_schedulers`). Nothing is
approximated silently.

All iteration counts are written out explicitly from the ``iters_per_epoch`` of the
trial that produced the config; the file says which value it assumed, since a
different dataset size or batch size changes them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rt3d_tune.schedules.mmcv_to_mmengine import (
    COPIED,
    EXPLAINED,
    INEXACT,
    OMITTED,
    Note,
    param_schedulers,
    run_length,
)

__all__ = ["MmengineRuntime", "Note", "to_mmengine"]

_HEADINGS = (
    (INEXACT, "param_scheduler differs from the mmcv schedule here:"),
    (OMITTED, "Left out (no mmengine equivalent; keep the mmcv config or adapt by hand):"),
    (COPIED, "Copied as written (check that mmengine has them):"),
    (EXPLAINED, "How param_scheduler keeps the mmcv curve:"),
)


@dataclass
class MmengineRuntime:
    """The translated runtime: the config dict, and notes on what is not plain mmcv."""

    config: dict[str, Any]
    notes: list[Note] = field(default_factory=list)
    iters_per_epoch: int = 0

    @property
    def exact(self) -> bool:
        """True when the file's LR and momentum curve is mmcv's everywhere."""
        return not any(note.kind in (INEXACT, OMITTED) for note in self.notes)

    def to_text(self) -> str:
        """The file's text: a header comment, then one ``name = value`` per key."""
        from rt3d_tune.config.text import dumps

        lines = [
            "# mmdet3d 1.x (mmengine) runtime written by rt3d-tune.",
            f"# Iteration counts assume {self.iters_per_epoch} iterations per epoch "
            + "(dataset size / batch size of the tuned run).",
        ]
        if self.exact:
            lines.append("# param_scheduler gives the mmcv config's LR and momentum, "
                         "iteration by iteration.")
        for kind, heading in _HEADINGS:
            texts = [note.text for note in self.notes if note.kind == kind]
            if texts:
                lines.append(f"# {heading}")
            for text in texts:
                wrapped = textwrap.wrap(text, width=84)
                lines.append(f"#   - {wrapped[0]}")
                lines.extend(f"#     {line}" for line in wrapped[1:])
        return "\n".join(lines) + "\n\n" + dumps(self.config, "py")


def _optim_wrapper(cfg: Mapping[str, Any]) -> dict[str, Any]:
    optimizer = {
        k: v
        for k, v in dict(cfg.get("optimizer") or {}).items()
        if k not in ("constructor", "paramwise_cfg")
    }
    opt_cfg = dict(cfg.get("optimizer_config") or {})
    hook_type = opt_cfg.get("type", "OptimizerHook")
    fp16 = cfg.get("fp16") is not None or "Fp16" in hook_type
    wrapper: dict[str, Any] = {
        "type": "AmpOptimWrapper" if fp16 else "OptimWrapper",
        "optimizer": optimizer,
    }
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
    schedulers, notes = param_schedulers(cfg, iters_per_epoch)
    epoch_based, max_epochs, max_iters = run_length(cfg, iters_per_epoch)
    evaluation = dict(cfg.get("evaluation") or {})
    interval = int(evaluation.get("interval", 1))
    if epoch_based:
        train_cfg = {"type": "EpochBasedTrainLoop", "max_epochs": max_epochs}
    else:
        train_cfg = {"type": "IterBasedTrainLoop", "max_iters": max_iters}
    train_cfg["val_interval"] = interval
    checkpoint = dict(cfg.get("checkpoint_config") or {})
    ckpt_hook = {"type": "CheckpointHook", "interval": checkpoint.get("interval", 1)}
    for key in ("max_keep_ckpts", "save_optimizer", "save_last", "out_dir", "by_epoch"):
        if key in checkpoint:
            ckpt_hook[key] = checkpoint[key]
    if evaluation.get("save_best"):
        ckpt_hook["save_best"] = evaluation["save_best"]
    log_interval = dict(cfg.get("log_config") or {}).get("interval", 50)
    out: dict[str, Any] = {
        "optim_wrapper": _optim_wrapper(cfg),
        "param_scheduler": schedulers,
        "train_cfg": train_cfg,
        "val_cfg": {"type": "ValLoop"},
        "default_hooks": {
            "timer": {"type": "IterTimerHook"},
            "logger": {"type": "LoggerHook", "interval": log_interval},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": ckpt_hook,
        },
    }
    if cfg.get("custom_hooks"):
        out["custom_hooks"] = list(cfg["custom_hooks"])
        notes.append(Note(COPIED, "custom_hooks: " + ", ".join(
            str(dict(hook).get("type")) for hook in cfg["custom_hooks"])))
    return MmengineRuntime(config=out, notes=notes, iters_per_epoch=iters_per_epoch)
