"""build_runner: a config in, a runner with model, data, optimizer and every hook out.

The mmdet3d ``tools/train.py`` + ``train_detector`` job, minus distribution: seeds,
model, data loaders per workflow phase, optimizer, the training hooks at the
priorities of the spec, the evaluation hook, custom hooks, then resume/load.
"""

from __future__ import annotations

import copy
import logging
import random
import time
import warnings
from collections.abc import Iterable, Mapping
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rt3d_tune.config import Config
from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS, MODELS, RUNNERS
from rt3d_tune.runner.base import BaseRunner
from rt3d_tune.runner.checkpoint_io import find_latest_checkpoint
from rt3d_tune.runner.data import build_dataloader, build_dataset, split_loader_args
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.iter_based import IterBasedRunner
from rt3d_tune.runner.optimizer import build_optimizer
from rt3d_tune.runner.priority import get_priority

__all__ = ["build_runner", "init_seed", "runner_config"]

_LOGGER_IDS = count()


def init_seed(seed: int | None, deterministic: bool = False) -> int:
    """Seed python, numpy and torch (all devices); draw a seed when None. Returns it.

    ``deterministic`` also makes cuDNN pick deterministic kernels (slower).
    """
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def runner_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``runner`` dict, from ``runner`` or the legacy ``total_epochs``.

    Raises:
        ConfigError: no runner, both max_epochs and max_iters, the length missing for
            the runner type, or total_epochs disagreeing with runner.max_epochs.
    """
    runner = cfg.get("runner")
    total = cfg.get("total_epochs")
    if runner is None:
        if total is None:
            raise ConfigError(
                "no training length",
                key_path="runner",
                expected="runner = dict(type='EpochBasedRunner', max_epochs=N)",
            )
        warnings.warn(
            "config: 'total_epochs' is the legacy spelling; write "
            "runner = dict(type='EpochBasedRunner', max_epochs=N)",
            UserWarning,
            stacklevel=3,
        )
        return {"type": "EpochBasedRunner", "max_epochs": total}
    if not isinstance(runner, Mapping):
        raise ConfigError(
            "runner must be a dict",
            key_path="runner",
            expected="dict(type='EpochBasedRunner', max_epochs=N)",
            given=runner,
        )
    runner = dict(runner)
    if runner.get("max_epochs") is not None and runner.get("max_iters") is not None:
        raise ConfigError(
            "set only one of max_epochs and max_iters",
            key_path="runner",
            given=runner,
            hint="max_epochs for EpochBasedRunner, max_iters for IterBasedRunner",
        )
    runner.setdefault("type", "EpochBasedRunner")
    cls = (
        RUNNERS.lookup(runner["type"], key_path="runner.type")
        if isinstance(runner["type"], str)
        else runner["type"]
    )
    need = (
        "max_iters" if isinstance(cls, type) and issubclass(cls, IterBasedRunner) else "max_epochs"
    )
    value = runner.get(need)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"{runner['type']} needs {need}",
            key_path=f"runner.{need}",
            expected="an int >= 1",
            given=value,
        )
    if total is not None and need == "max_epochs" and total != value:
        raise ConfigError(
            "total_epochs and runner.max_epochs disagree",
            key_path="total_epochs",
            given=total,
            hint="drop total_epochs",
        )
    return runner


def _make_logger(work_dir: Path, timestamp: str) -> logging.Logger:
    logger = logging.getLogger(f"rt3d_tune.run.{next(_LOGGER_IDS)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(work_dir / f"{timestamp}.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
    logger.addHandler(handler)
    return logger


def _data_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    data = cfg.get("data")
    if not isinstance(data, Mapping) or "train" not in data:
        raise ConfigError(
            "the config needs data.train",
            key_path="data",
            expected="data = dict(samples_per_gpu=, workers_per_gpu=, train=dict(type=...))",
            given=data,
        )
    return copy.deepcopy(dict(data))


def _hook_cfg(value: Any, key_path: str, default_type: str | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            "a hook config must be a dict",
            key_path=key_path,
            expected="dict(type=..., ...)",
            given=value,
        )
    out = dict(value)
    if default_type is not None:
        out.setdefault("type", default_type)
    return out


def optimizer_hook_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    hook = _hook_cfg(cfg.get("optimizer_config") or {}, "optimizer_config", "OptimizerHook")
    fp16 = cfg.get("fp16")
    if fp16 is None:
        return hook
    if not isinstance(fp16, Mapping):
        raise ConfigError(
            "fp16 must be a dict", key_path="fp16", expected="dict(loss_scale=...)", given=fp16
        )
    promote = {
        "OptimizerHook": "Fp16OptimizerHook",
        "GradientCumulativeOptimizerHook": "GradientCumulativeFp16OptimizerHook",
    }
    hook["type"] = promote.get(hook["type"], hook["type"])
    for key, value in fp16.items():
        hook.setdefault(key, value)
    return hook


def _register_training_hooks(
    runner: BaseRunner, cfg: Mapping[str, Any], iter_based: bool, val_loader: Any
) -> None:
    from rt3d_tune.runner.hooks.lr_updater import build_lr_hook
    from rt3d_tune.runner.hooks.momentum_updater import build_momentum_hook

    by_iter = {"by_epoch": False} if iter_based else None
    if cfg.get("lr_config") is not None:
        runner.register_hook(build_lr_hook(cfg["lr_config"], "lr_config", by_iter), "VERY_HIGH")
    if cfg.get("momentum_config") is not None:
        # mmcv leaves momentum by_epoch=True under the iteration runner, where no train
        # epoch ever starts and the schedule silently never runs; default it like lr_config.
        runner.register_hook(
            build_momentum_hook(cfg["momentum_config"], "momentum_config", by_iter), "HIGH"
        )
    runner.register_hook(
        HOOKS.build(optimizer_hook_cfg(cfg), key_path="optimizer_config"), "ABOVE_NORMAL"
    )
    if cfg.get("checkpoint_config") is not None:
        ckpt = _hook_cfg(cfg["checkpoint_config"], "checkpoint_config", "CheckpointHook")
        if iter_based:
            ckpt.setdefault("by_epoch", False)
        runner.register_hook(HOOKS.build(ckpt, key_path="checkpoint_config"), "NORMAL")
    runner.register_hook(HOOKS.build({"type": "IterTimerHook"}, key_path="timer"), "LOW")
    if val_loader is not None:
        from rt3d_tune.runner.hooks.evaluation import build_eval_hook

        eval_cfg = _hook_cfg(cfg.get("evaluation") or {}, "evaluation", "EvalHook")
        runner.register_hook(build_eval_hook(eval_cfg, val_loader, not iter_based), "LOW")
    log_cfg = cfg.get("log_config")
    if log_cfg is not None:
        interval = log_cfg.get("interval", 50)
        for i, item in enumerate(log_cfg.get("hooks", [])):
            item = _hook_cfg(item, f"log_config.hooks.{i}", "TextLoggerHook")
            if iter_based:
                item.setdefault("by_epoch", False)
            runner.register_hook(
                HOOKS.build(
                    item, default_args={"interval": interval}, key_path=f"log_config.hooks.{i}"
                ),
                "VERY_LOW",
            )
    for i, item in enumerate(cfg.get("custom_hooks") or []):
        item = _hook_cfg(item, f"custom_hooks.{i}", None)
        priority = get_priority(item.pop("priority", "NORMAL"), f"custom_hooks.{i}.priority")
        runner.register_hook(HOOKS.build(item, key_path=f"custom_hooks.{i}"), priority)


def build_runner(
    cfg: Config | Mapping[str, Any],
    *,
    work_dir: str | Path | None = None,
    extra_hooks: Iterable[Hook | tuple[Hook, int | str]] = (),
    device: str | torch.device | None = None,
) -> BaseRunner:
    """Build a ready-to-run runner from a config (``runner.run()`` trains).

    Args:
        cfg: the full config (model, data, optimizer, runner, hooks...). ``seed``
            (drawn when missing) and ``deterministic`` are read from it.
        work_dir: where checkpoints, logs and ``config.py`` go; default
            ``cfg.work_dir``, else ``./work_dirs/<config file name>``.
        extra_hooks: hooks registered after the config's, each a (hook, priority) pair
            or a Hook (its ``priority`` attribute when set, else NORMAL).
        device: default 'cuda' when available, else 'cpu'.

    Raises:
        ConfigError: any problem in the config, with its key path.
    """
    config = cfg if isinstance(cfg, Config) else Config(cfg)
    c = config.to_dict()
    runner_cfg = runner_config(c)
    iter_based = _is_iter_based(runner_cfg)
    work_path = _make_work_dir(work_dir, c, config.filename)
    dev = _device(device)
    seed = init_seed(c.get("seed"), bool(c.get("deterministic", False)))
    config.seed = seed
    timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    logger = _make_logger(work_path, timestamp)
    try:
        config_text = config.dump(work_path / "config.py")
    except ConfigError as err:
        logger.warning("the config was not written to the work dir: %s", err.format())
        config_text = repr(c)

    model = MODELS.build(c.get("model") or {}, key_path="model").to(dev)
    workflow, loaders, eval_loader = _build_loaders(c, seed)
    optimizer = _build_optimizer(model, c)
    meta = {"seed": seed, "exp_name": Path(config.filename or "config").name, "config": config_text}
    runner = RUNNERS.build(
        runner_cfg,
        default_args={
            "model": model,
            "optimizer": optimizer,
            "work_dir": str(work_path),
            "logger": logger,
            "meta": meta,
            "device": dev,
            "seed": seed,
            "timestamp": timestamp,
        },
        key_path="runner",
    )
    runner.data_loaders = loaders
    runner.workflow = workflow
    _register_training_hooks(runner, c, iter_based, eval_loader)
    for item in extra_hooks:
        hook, priority = (
            item if isinstance(item, tuple) else (item, getattr(item, "priority", "NORMAL"))
        )
        runner.register_hook(hook, priority)
    _resume_or_load(runner, c, work_path, logger)
    return runner


def _is_iter_based(runner_cfg: Mapping[str, Any]) -> bool:
    runner_type = runner_cfg["type"]
    if isinstance(runner_type, str):
        runner_type = RUNNERS.lookup(runner_type, "runner.type")
    return issubclass(runner_type, IterBasedRunner)


def _make_work_dir(
    work_dir: str | Path | None, c: Mapping[str, Any], filename: str | None
) -> Path:
    """``work_dir``, else the config's ``work_dir``, else ``work_dirs/<config file name>``;
    created."""
    if work_dir is None:
        work_dir = c.get("work_dir") or Path("work_dirs") / Path(filename or "config").stem
    work_path = Path(work_dir)
    work_path.mkdir(parents=True, exist_ok=True)
    return work_path


def _device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _build_loaders(c: Mapping[str, Any], seed: int) -> tuple[list[Any], list[Any], Any | None]:
    """The workflow, one data loader per workflow phase, and the evaluation hook's loader
    (None when there is no ``data.val`` or ``evaluation=None``).

    Raises:
        ConfigError: no data.train; a 'val' phase or an evaluation without data.val.
    """
    data = _data_cfg(c)
    workflow = [
        tuple(flow) if isinstance(flow, (list, tuple)) else flow
        for flow in c.get("workflow", [("train", 1)])
    ]
    train_cfg, batch, workers = split_loader_args(data["train"], data)
    train_set = build_dataset(train_cfg, "data.train")
    val_set = None
    val_batch, val_workers = batch, workers
    if data.get("val") is not None:
        val_cfg, val_batch, val_workers = split_loader_args(data["val"], data)
        val_set = build_dataset(val_cfg, "data.val")
    loaders = []
    for i, flow in enumerate(workflow):
        phase = flow[0] if isinstance(flow, tuple) and flow else flow
        if phase == "val":
            if val_set is None:
                raise ConfigError(
                    "a 'val' workflow phase needs data.val", key_path=f"workflow.{i}", given=flow
                )
            loaders.append(
                build_dataloader(val_set, val_batch, val_workers, shuffle=False, seed=seed)
            )
        else:
            loaders.append(build_dataloader(train_set, batch, workers, shuffle=True, seed=seed))
    eval_loader = None
    if val_set is not None and c.get("evaluation", {}) is not None:
        eval_loader = build_dataloader(val_set, val_batch, val_workers, shuffle=False, seed=seed)
    elif c.get("evaluation") is not None:
        raise ConfigError(
            "evaluation needs data.val", key_path="evaluation", hint="add data.val = dict(type=...)"
        )
    return workflow, loaders, eval_loader


def _build_optimizer(
    model: torch.nn.Module, c: Mapping[str, Any]
) -> torch.optim.Optimizer | dict[str, torch.optim.Optimizer]:
    if "optimizer" not in c:
        raise ConfigError(
            "the config needs an optimizer",
            key_path="optimizer",
            expected="optimizer = dict(type='SGD', lr=..., ...)",
        )
    return build_optimizer(model, c["optimizer"], "optimizer")


def _resume_or_load(
    runner: BaseRunner, c: Mapping[str, Any], work_path: Path, logger: logging.Logger
) -> None:
    """Resume from ``resume_from`` (or, with ``auto_resume``, the work dir's latest
    checkpoint), else load the weights of ``load_from``; neither when both are unset.

    Raises:
        ConfigError: the checkpoint does not fit, under the key that named it.
    """
    resume_from = c.get("resume_from")
    if resume_from is None and c.get("auto_resume"):
        found = find_latest_checkpoint(work_path)
        if found is not None:
            resume_from = str(found)
            logger.info("auto_resume: resuming from %s", found)
    try:
        if resume_from is not None:
            runner.resume(resume_from)
        elif c.get("load_from") is not None:
            runner.load_checkpoint(c["load_from"])
    except ConfigError as err:
        raise err.with_context(
            key_path="resume_from" if resume_from is not None else "load_from"
        ) from err
