"""mmengine's own LR and momentum curves, and its iteration count.

The mmengine counterpart of :mod:`rt3d_tune.backends.mmcv.simulate`:
:func:`simulate_mmengine_schedule` gives the LR and momentum at every iteration by
building the config's optimizer and schedulers with mmengine itself and stepping them as
``ParamSchedulerHook`` does, so the curve is mmengine's own, not a re-implementation;
:func:`iters_from_dataloader` counts an epoch's iterations as the Runner does.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

from rt3d_tune.backends.mmengine.dialect import default_scope, require_mmengine, train_loop
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError

__all__ = ["iters_from_dataloader", "simulate_mmengine_schedule"]


def iters_from_dataloader(cfg: Mapping[str, Any], world_size: int = 1) -> int:
    """Iterations per epoch of ``train_dataloader``, as the Runner counts them: its
    dataset built from mmengine's DATASETS (in ``default_scope``), split over ``world_size``
    ranks as DefaultSampler splits it, in batches of ``batch_size`` (the last one
    partial unless ``drop_last``).

    Raises:
        ConfigError: no ``train_dataloader``, a bad ``batch_size``, a dataset that does
            not build (each hinting at ``--iters-per-epoch N``), ``world_size`` < 1.
    """
    hint = "pass --iters-per-epoch N"
    if world_size < 1:
        raise ConfigError("the worker count must be >= 1", key_path="--workers", given=world_size)
    loader = cfg.get("train_dataloader")
    if not isinstance(loader, Mapping) or not isinstance(loader.get("dataset"), Mapping):
        raise ConfigError("no train dataset to count iterations from",
                          key_path="train_dataloader.dataset", given=loader, hint=hint)
    batch = loader.get("batch_size")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError("a batch size must be a positive integer",
                          key_path="train_dataloader.batch_size", expected="an int >= 1",
                          given=batch, hint=hint)
    require_mmengine()
    from mmengine.registry import DATASETS

    try:
        with default_scope(cfg):
            dataset = DATASETS.build(copy.deepcopy(dict(loader["dataset"])))
        size = len(dataset)
    except Exception as err:  # a dataset's own code raises anything
        raise ConfigError(f"building the train dataset failed: {type(err).__name__}: {err}",
                          key_path="train_dataloader.dataset", hint=hint) from err
    shard = math.ceil(size / world_size)
    iters = shard // batch if loader.get("drop_last", False) else math.ceil(shard / batch)
    if iters < 1:
        raise ConfigError("the train dataset gives no batch", key_path="train_dataloader",
                          expected=f"at least {batch} samples per worker", given=size, hint=hint)
    return iters


def _build_optim_wrapper(cfg: Mapping[str, Any]) -> Any:
    """The config's optimizer over one parameter, built by mmengine's
    ``build_optim_wrapper`` with its constructor and ``paramwise_cfg``. The wrapper is a
    plain OptimWrapper (AmpOptimWrapper needs a GPU): the wrapper type never changes the
    LR or momentum."""
    import torch
    from mmengine.optim import OptimWrapperDict, build_optim_wrapper

    wrapper_cfg = cfg.get("optim_wrapper")
    if not isinstance(wrapper_cfg, Mapping) or not isinstance(wrapper_cfg.get("optimizer"),
                                                              Mapping):
        raise ConfigError("the schedule needs one optimizer", key_path="optim_wrapper",
                          expected="dict(type='OptimWrapper', optimizer=dict(type=..., lr=...))",
                          given=wrapper_cfg)
    args = {key: copy.deepcopy(wrapper_cfg[key]) for key in ("optimizer", "constructor",
                                                              "paramwise_cfg")
            if wrapper_cfg.get(key) is not None}

    class _Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

    try:
        wrapper = build_optim_wrapper(_Probe(), {"type": "OptimWrapper", **args})
    except Exception as err:  # mmengine and the optimizer raise anything
        raise ConfigError(f"building the optimizer failed: {type(err).__name__}: {err}",
                          key_path="optim_wrapper") from err
    if isinstance(wrapper, OptimWrapperDict):
        raise ConfigError("the schedule of several optimizers is not simulated",
                          key_path="optim_wrapper", expected="one optimizer")
    return wrapper


def _scale_lr(cfg: Mapping[str, Any], wrapper: Any, world_size: int) -> None:
    """``auto_scale_lr``, as ``Runner.scale_lr`` applies it before building schedulers."""
    auto = cfg.get("auto_scale_lr")
    if not isinstance(auto, Mapping) or not auto.get("enable", False):
        return
    batch = (cfg.get("train_dataloader") or {}).get("batch_size")
    if "base_batch_size" not in auto or not isinstance(batch, int):
        raise ConfigError("auto_scale_lr needs base_batch_size and train_dataloader.batch_size",
                          key_path="auto_scale_lr", given=dict(auto))
    ratio = float(world_size * batch) / float(auto["base_batch_size"])
    for group in wrapper.optimizer.param_groups:
        group["lr"] = group["lr"] * ratio


def _build_schedulers(cfg: Mapping[str, Any], wrapper: Any, iters_per_epoch: int,
                      loop_epochs: int, loop_iters: int) -> list[Any]:
    """``param_scheduler`` built as ``Runner._build_param_scheduler`` builds it: each
    ``end`` defaults to the loop's max epochs (by_epoch) or iterations, and
    ``epoch_length`` is the loader's length (for ``convert_to_iter_based``)."""
    from mmengine.registry import PARAM_SCHEDULERS

    schedulers = cfg.get("param_scheduler")
    if schedulers is None:
        return []
    if isinstance(schedulers, Mapping) and "type" not in schedulers:
        raise ConfigError("per-optimizer schedulers are not simulated",
                          key_path="param_scheduler", expected="one scheduler or a list")
    built = []
    items = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]
    for index, entry in enumerate(items):
        key = f"param_scheduler.{index}" if isinstance(schedulers, (list, tuple)) \
            else "param_scheduler"
        if not isinstance(entry, Mapping):
            raise ConfigError("a scheduler is a dict", key_path=key, given=entry)
        args = copy.deepcopy(dict(entry))
        args.setdefault("end", loop_epochs if args.get("by_epoch", True) else loop_iters)
        try:
            built.append(PARAM_SCHEDULERS.build(
                args, default_args={"optimizer": wrapper, "epoch_length": iters_per_epoch}))
        except Exception as err:  # mmengine's schedulers raise anything on bad arguments
            raise ConfigError(f"building the scheduler failed: {type(err).__name__}: {err}",
                              key_path=key, given=dict(entry)) from err
    return built


def _momentum(group: Mapping[str, Any]) -> float | None:
    """``momentum`` (SGD, or a momentum scheduler's copy of ``betas[0]``), ``betas[0]``,
    or None."""
    if "momentum" in group:
        return group["momentum"]
    if "betas" in group:
        return group["betas"][0]
    return None


def simulate_mmengine_schedule(cfg: Mapping[str, Any], iters_per_epoch: int,
                               max_epochs: int | None = None, *, max_iters: int | None = None,
                               world_size: int = 1) -> list[dict[str, Any]]:
    """The LR and momentum at every training iteration of an mmengine config, stepped
    by mmengine's own schedulers.

    Builds ``optim_wrapper``'s optimizer over one parameter (``build_optim_wrapper``),
    applies ``auto_scale_lr``, builds ``param_scheduler`` from mmengine's
    PARAM_SCHEDULERS as the Runner does, then replays ``ParamSchedulerHook``: after every
    train iteration the ``by_epoch=False`` schedulers step (``convert_to_iter_based`` ones
    included), after every train epoch the ``by_epoch`` ones (an iteration loop runs one
    epoch, ending after the last iteration).

    Args:
        cfg: an mmengine config (``optim_wrapper``, ``train_cfg``, optional
            ``param_scheduler``, ``default_scope``, ``auto_scale_lr``).
        iters_per_epoch: iterations per epoch (``len`` of the train loader).
        max_epochs: overrides ``train_cfg.max_epochs`` (an epoch loop).
        max_iters: overrides ``train_cfg.max_iters`` (an iteration loop).
        world_size: ranks, for ``auto_scale_lr``'s real batch size.

    Returns:
        One dict per iteration: ``iter`` (0-based), ``epoch`` (0-based; passes over the
        data for an iteration loop), ``lr`` and ``momentum`` (``betas[0]`` for Adam, None
        when the optimizer has none) of the first param group, as the optimizer step
        sees them.

    Raises:
        ConfigError: mmengine missing, a bad ``train_cfg``, optimizer or scheduler (as
            mmengine rejects it), ``iters_per_epoch`` < 1.
    """
    if not isinstance(iters_per_epoch, int) or isinstance(iters_per_epoch, bool) \
            or iters_per_epoch < 1:
        raise ConfigError("iters_per_epoch must be a positive integer", key_path="iters_per_epoch",
                          expected="an int >= 1", given=iters_per_epoch)
    cfg = plain_dict(cfg)
    iter_based, length = train_loop(cfg)
    if iter_based:
        epochs, iters = 1, length if max_iters is None else max_iters  # mmengine: 1 epoch
    else:
        epochs = length if max_epochs is None else max_epochs
        iters = epochs * iters_per_epoch
    require_mmengine()
    with default_scope(cfg):
        wrapper = _build_optim_wrapper(cfg)
        _scale_lr(cfg, wrapper, world_size)
        schedulers = _build_schedulers(cfg, wrapper, iters_per_epoch, epochs, iters)
    by_iter = [s for s in schedulers if not s.by_epoch]
    by_epoch = [s for s in schedulers if s.by_epoch]
    group = wrapper.optimizer.param_groups[0]
    rows: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        # No optimizer step is taken (none would change a value the schedulers read).
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `scheduler.step()`"),
                                category=UserWarning)
        for it in range(iters):
            rows.append({"iter": it, "epoch": it // iters_per_epoch, "lr": group["lr"],
                         "momentum": _momentum(group)})
            for scheduler in by_iter:
                scheduler.step()
            if not iter_based and (it + 1) % iters_per_epoch == 0:
                for scheduler in by_epoch:
                    scheduler.step()
    return rows
