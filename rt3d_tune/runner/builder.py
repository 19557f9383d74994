"""build_runner: a config in, a runner with model, data, optimizer and every hook out.

The mmdet3d ``tools/train.py`` + ``train_detector`` job: seeds, model, data loaders
per workflow phase, optimizer (its LR scaled by ``auto_scale_lr``), the training hooks
at the priorities of the spec, the evaluation hook, custom hooks, then resume/load.

Inside a process group of several ranks (``rt3d_tune.runner.dist``), the model is
wrapped for data-parallel training, every loader reads this rank's shard of its data
(``samples_per_gpu`` per rank), and only rank 0 writes the log file and ``config.py``.
"""

from __future__ import annotations

import copy
import logging
import random
import tempfile
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
from rt3d_tune.runner.dist import StepDistributedDataParallel, get_dist_info
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.iter_based import IterBasedRunner
from rt3d_tune.runner.optimizer import build_optimizer
from rt3d_tune.runner.priority import get_priority
from rt3d_tune.runtime_checks import check_count

__all__ = ["build_runner", "close_logger", "dry_start", "init_seed", "runner_config", "scale_lr"]

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


def _make_logger(work_dir: Path, timestamp: str, rank: int = 0) -> logging.Logger:
    """The run's logger: INFO to ``<work_dir>/<timestamp>.log`` on rank 0; errors only,
    to no file, on the other ranks (mmcv's ``get_root_logger``)."""
    logger = logging.getLogger(f"rt3d_tune.run.{next(_LOGGER_IDS)}")
    logger.setLevel(logging.INFO if rank == 0 else logging.ERROR)
    logger.propagate = False
    if rank != 0:
        return logger
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
        check_count(interval, "log_config.interval", "log interval")
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
    rank, world_size = get_dist_info()
    work_path = _make_work_dir(work_dir, c, config.filename, create=rank == 0)
    dev = _device(device)
    seed = init_seed(c.get("seed"), bool(c.get("deterministic", False)))
    config.seed = seed
    timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    logger = _make_logger(work_path, timestamp, rank)
    try:  # a config refused half-way leaves no open log file behind
        config_text = _dump_config(config, work_path, logger) if rank == 0 else repr(c)
        model = MODELS.build(c.get("model") or {}, key_path="model").to(dev)
        workflow, loaders, eval_loader = _build_loaders(c, seed, rank, world_size)
        optimizer = _build_optimizer(model, scale_lr(c, world_size, logger))
        if world_size > 1:
            model = _wrap_data_parallel(model, c, dev)
        meta = {"seed": seed, "exp_name": Path(config.filename or "config").name,
                "config": config_text}
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
    except BaseException:
        close_logger(logger)
        raise


def dry_start(cfg: Config | Mapping[str, Any]) -> None:
    """Build everything a trial builds before its first iteration (``build_runner``
    itself, on the CPU, in a throw-away work dir), then drop it: what ``validate`` runs
    for each trial config, so that it refuses what a trial would, with the same message.

    Data loaders are built to their length; no sample is loaded.

    Raises:
        ConfigError: whatever ``build_runner`` raises for this config.
    """
    with tempfile.TemporaryDirectory(prefix="rt3d_dry_start_") as tmp:
        runner = build_runner(cfg, work_dir=tmp, device="cpu")
        close_logger(runner.logger)


def close_logger(logger: logging.Logger) -> None:
    """Close and detach the handlers of a run's logger (its log file)."""
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def _is_iter_based(runner_cfg: Mapping[str, Any]) -> bool:
    runner_type = runner_cfg["type"]
    if isinstance(runner_type, str):
        runner_type = RUNNERS.lookup(runner_type, "runner.type")
    return issubclass(runner_type, IterBasedRunner)


def _make_work_dir(
    work_dir: str | Path | None, c: Mapping[str, Any], filename: str | None, create: bool = True
) -> Path:
    """``work_dir``, else the config's ``work_dir``, else ``work_dirs/<config file name>``;
    created when ``create``."""
    if work_dir is None:
        work_dir = c.get("work_dir") or Path("work_dirs") / Path(filename or "config").stem
    work_path = Path(work_dir)
    if create:
        work_path.mkdir(parents=True, exist_ok=True)
    return work_path


def _dump_config(config: Config, work_path: Path, logger: logging.Logger) -> str:
    """Write ``work_path/config.py``; its text (the config's repr when it cannot be dumped)."""
    try:
        return config.dump(work_path / "config.py")
    except ConfigError as err:
        logger.warning("the config was not written to the work dir: %s", err.format())
        return repr(config.to_dict())


def _wrap_data_parallel(
    model: torch.nn.Module, c: Mapping[str, Any], dev: torch.device
) -> torch.nn.Module:
    """The model in DistributedDataParallel (``find_unused_parameters`` from the config,
    as mmdet3d's ``train_detector``); rank 0's weights go to every rank here."""
    find_unused = c.get("find_unused_parameters", False)
    if not isinstance(find_unused, bool):
        raise ConfigError("find_unused_parameters must be True or False",
                          key_path="find_unused_parameters", given=find_unused)
    return StepDistributedDataParallel(
        model,
        device_ids=[dev.index if dev.index is not None else torch.cuda.current_device()]
        if dev.type == "cuda"
        else None,
        find_unused_parameters=find_unused,
    )


def scale_lr(c: Mapping[str, Any], world_size: int,
             logger: logging.Logger | None = None) -> dict[str, Any]:
    """The config with its optimizer LR scaled by ``auto_scale_lr`` (mmdet's rule).

    With ``auto_scale_lr = dict(enable=True, base_batch_size=B)``, every optimizer's
    ``lr`` is multiplied by the global batch (``world_size x samples_per_gpu`` of
    data.train) over ``B``, before the schedule sees it (so warmup and policies scale
    with it). Disabled or absent: the config unchanged.

    Raises:
        ConfigError: a malformed ``auto_scale_lr``, or an optimizer without ``lr``.
    """
    auto = c.get("auto_scale_lr")
    if auto is None:
        return dict(c)
    if not isinstance(auto, Mapping):
        raise ConfigError("auto_scale_lr must be a dict", key_path="auto_scale_lr",
                          expected="dict(enable=False, base_batch_size=16)", given=auto)
    enable = auto.get("enable", False)
    if not isinstance(enable, bool):
        raise ConfigError("auto_scale_lr.enable must be True or False",
                          key_path="auto_scale_lr.enable", given=enable)
    base = auto.get("base_batch_size")
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ConfigError("auto_scale_lr needs the batch size its LR was set for",
                          key_path="auto_scale_lr.base_batch_size", expected="an int >= 1",
                          given=base, hint="the published schedules use 16 (8 GPUs x 2)")
    if not enable:
        return dict(c)
    _, batch, _ = split_loader_args(_data_cfg(c)["train"], c["data"])
    factor = world_size * int(batch) / base
    out = copy.deepcopy(dict(c))
    optimizer = out.get("optimizer")
    single = isinstance(optimizer, Mapping) and "type" in optimizer
    named = {"": optimizer} if single else dict(optimizer or {})
    for name, opt in named.items():
        key = "optimizer" if single else f"optimizer.{name}"
        if not isinstance(opt, dict) or not isinstance(opt.get("lr"), (int, float)):
            raise ConfigError("auto_scale_lr scales the optimizer's lr, which is not set",
                              key_path=f"{key}.lr", given=None if not isinstance(opt, dict)
                              else opt.get("lr"))
        before = opt["lr"]
        opt["lr"] = before * factor
        if logger is not None:
            logger.info("LR has been automatically scaled from %g to %g (global batch %d = "
                        "%d x %d, base_batch_size %d)", before, opt["lr"], world_size * batch,
                        world_size, batch, base)
    return out


def _device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _build_loaders(
    c: Mapping[str, Any], seed: int, rank: int = 0, world_size: int = 1
) -> tuple[list[Any], list[Any], Any | None]:
    """The workflow, one data loader per workflow phase, and the evaluation hook's loader
    (None when there is no ``data.val`` or ``evaluation=None``); each over this rank's
    shard of its data.

    Raises:
        ConfigError: no data.train; a 'val' phase or an evaluation without data.val.
    """
    data = _data_cfg(c)
    workflow = [
        tuple(flow) if isinstance(flow, (list, tuple)) else flow
        for flow in c.get("workflow", [("train", 1)])
    ]
    train_cfg, batch, workers = split_loader_args(data["train"], data)
    check_count(batch, _batch_key(data, "train"), "batch size")
    train_set = build_dataset(train_cfg, "data.train")
    val_set = None
    val_batch, val_workers = batch, workers
    if data.get("val") is not None:
        val_cfg, val_batch, val_workers = split_loader_args(data["val"], data)
        check_count(val_batch, _batch_key(data, "val"), "batch size")
        val_set = build_dataset(val_cfg, "data.val")
    shard = {"rank": rank, "world_size": world_size}
    loaders = []
    for i, flow in enumerate(workflow):
        phase = flow[0] if isinstance(flow, tuple) and flow else flow
        if phase == "val":
            if val_set is None:
                raise ConfigError(
                    "a 'val' workflow phase needs data.val", key_path=f"workflow.{i}", given=flow
                )
            loaders.append(build_dataloader(val_set, val_batch, val_workers, shuffle=False,
                                            seed=seed, **shard))
        else:
            loaders.append(build_dataloader(train_set, batch, workers, shuffle=True, seed=seed,
                                            **shard))
    eval_loader = None
    if val_set is not None and c.get("evaluation", {}) is not None:
        eval_loader = build_dataloader(val_set, val_batch, val_workers, shuffle=False, seed=seed,
                                       **shard)
    elif c.get("evaluation") is not None:
        raise ConfigError(
            "evaluation needs data.val", key_path="evaluation", hint="add data.val = dict(type=...)"
        )
    return workflow, loaders, eval_loader


def _batch_key(data: Mapping[str, Any], phase: str) -> str:
    """Where a phase's batch size comes from: its own ``samples_per_gpu``, else data's."""
    own = isinstance(data.get(phase), Mapping) and "samples_per_gpu" in data[phase]
    return f"data.{phase}.samples_per_gpu" if own else "data.samples_per_gpu"


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
