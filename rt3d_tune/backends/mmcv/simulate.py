"""The LR and momentum curve of an mmcv config, without training.

It belongs to the mmcv backend because it drives that backend's own hooks: the curve is
the one its runner would follow, not a second implementation of the policies.

``simulate_schedule`` builds the config's real optimizer over one parameter and its
real ``lr_config``/``momentum_config`` hooks, and calls their stages in the order the
runners do (``rt3d_tune.runner.epoch_based`` / ``iter_based``), so the curve is the
one training would follow, iteration by iteration. ``rt3d-tune schedule``, the report
and ``validate`` use it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import OPTIMIZERS, RUNNERS, build_from_cfg
from rt3d_tune.runner.builder import runner_config
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.lr_updater import build_lr_hook
from rt3d_tune.runner.hooks.momentum_updater import build_momentum_hook, group_momentum
from rt3d_tune.runner.iter_based import IterBasedRunner

__all__ = ["schedule_hooks", "schedule_length", "simulate_schedule"]

# Keys of ``optimizer`` that configure the optimizer constructor, not the optimizer.
_CONSTRUCTOR_KEYS = ("constructor", "paramwise_cfg")


class _ScheduleRunner:
    """The runner attributes the LR and momentum hooks read."""

    def __init__(self, optimizer: torch.optim.Optimizer, iters_per_epoch: int,
                 max_epochs: int | None, max_iters: int) -> None:
        self.optimizer = optimizer
        self.data_loader = range(iters_per_epoch)
        self.max_epochs = max_epochs
        self.max_iters = max_iters
        self.epoch = 0
        self.iter = 0
        self.inner_iter = 0
        self.mode = "train"

    def record(self) -> dict[str, Any]:
        group = self.optimizer.param_groups[0]
        return {"iter": self.iter, "epoch": self.epoch, "lr": group["lr"],
                "momentum": group_momentum(group)}


def schedule_length(cfg: Mapping[str, Any]) -> tuple[bool, int]:
    """``(iter_based, length)`` from ``runner`` (or legacy ``total_epochs``).

    ``length`` is ``max_iters`` for an iteration-based runner, else ``max_epochs``.

    Raises:
        ConfigError: see ``rt3d_tune.runner.builder.runner_config``.
    """
    runner = runner_config(cfg)
    cls = RUNNERS.lookup(runner["type"], key_path="runner.type") \
        if isinstance(runner["type"], str) else runner["type"]
    iter_based = isinstance(cls, type) and issubclass(cls, IterBasedRunner)
    return iter_based, runner["max_iters" if iter_based else "max_epochs"]


def schedule_hooks(cfg: Mapping[str, Any], iter_based: bool) -> dict[str, Hook]:
    """The ``lr_config`` and ``momentum_config`` hooks of ``cfg`` (the sections that are
    set, in that order), built as ``build_runner`` builds them: under an iteration
    runner both default to ``by_epoch=False``.

    Raises:
        ConfigError: no or an unknown ``policy``, or arguments a hook rejects.
    """
    defaults = {"by_epoch": False} if iter_based else None
    builders = {"lr_config": build_lr_hook, "momentum_config": build_momentum_hook}
    return {key: build(cfg[key], key, default_args=defaults)
            for key, build in builders.items() if cfg.get(key) is not None}


def _build_optimizer(cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    opt_cfg = cfg.get("optimizer")
    if not isinstance(opt_cfg, Mapping):
        raise ConfigError("the schedule needs an optimizer", key_path="optimizer",
                          expected="dict(type=..., lr=...)", given=opt_cfg)
    args = {k: v for k, v in dict(opt_cfg).items() if k not in _CONSTRUCTOR_KEYS}
    param = torch.nn.Parameter(torch.zeros(1))
    return build_from_cfg(args, OPTIMIZERS, default_args={"params": [param]}, key_path="optimizer")


def _stages(iter_based: bool, iters_per_epoch: int, max_epochs: int | None, max_iters: int,
            runner: _ScheduleRunner) -> Iterator[str]:
    """Yield each stage name after moving the runner to where the real runner calls it."""
    yield "before_run"
    if iter_based:
        yield "before_epoch"
        while runner.iter < max_iters:
            runner.epoch, runner.inner_iter = divmod(runner.iter, iters_per_epoch)
            yield "before_train_iter"
            yield "after_train_iter"
            runner.iter += 1
        yield "after_epoch"
    else:
        assert max_epochs is not None
        while runner.epoch < max_epochs:
            yield "before_train_epoch"
            for inner in range(iters_per_epoch):
                runner.inner_iter = inner
                yield "before_train_iter"
                yield "after_train_iter"
                runner.iter += 1
            yield "after_train_epoch"
            runner.epoch += 1
    yield "after_run"


def simulate_schedule(cfg: Mapping[str, Any], iters_per_epoch: int,
                      max_epochs: int | None = None, max_iters: int | None = None
                      ) -> list[dict[str, Any]]:
    """The LR and momentum at every training iteration of ``cfg``.

    Args:
        cfg: a config (``optimizer``, ``runner`` or ``total_epochs``, optional
            ``lr_config`` and ``momentum_config``).
        iters_per_epoch: iterations per epoch (``len`` of the train data loader).
        max_epochs: overrides the config's epochs (epoch-based runner).
        max_iters: overrides the config's iterations (iteration-based runner).

    Returns:
        One dict per iteration: ``iter`` (0-based), ``epoch`` (0-based; passes over the
        data for an iteration-based runner), ``lr`` and ``momentum`` (None when the
        optimizer has none) of the first param group, as the optimizer step sees them.

    Raises:
        ConfigError: a bad optimizer, runner, lr_config or momentum_config, or
            ``iters_per_epoch`` < 1.
    """
    if not isinstance(iters_per_epoch, int) or isinstance(iters_per_epoch, bool) \
            or iters_per_epoch < 1:
        raise ConfigError("iters_per_epoch must be a positive integer", key_path="iters_per_epoch",
                          expected="an int >= 1", given=iters_per_epoch)
    iter_based, length = schedule_length(cfg)
    if iter_based:
        epochs, iters = None, length if max_iters is None else max_iters
    else:
        epochs = length if max_epochs is None else max_epochs
        iters = epochs * iters_per_epoch
    hooks = list(schedule_hooks(cfg, iter_based).values())
    runner = _ScheduleRunner(_build_optimizer(cfg), iters_per_epoch, epochs, iters)
    rows: list[dict[str, Any]] = []
    for stage in _stages(iter_based, iters_per_epoch, epochs, iters, runner):
        for hook in hooks:
            getattr(hook, stage)(runner)
        if stage == "before_train_iter":
            rows.append(runner.record())
    return rows
