"""Momentum updater hooks (``momentum_config``), number for number with mmcv 1.7.

The momentum of a param group is its ``momentum`` or, for Adam-like optimizers,
``betas[0]`` (written back as ``betas = (m, betas[1])``). ``before_run`` stores
``initial_momentum`` (setdefault, so resume keeps it). Updates follow the LR hooks:
at ``before_train_epoch`` with ``by_epoch``, else at ``before_train_iter``; warmup
divides the regular momentum by the warmup factor while ``iter < warmup_iters``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook, schedule_progress
from rt3d_tune.runner.hooks.lr_updater import (
    Groups,
    build_policy_hook,
    merge_signature,
    named_optimizers,
    per_group_values,
)
from rt3d_tune.schedules import policies as schedules

__all__ = [
    "CosineAnnealingMomentumUpdaterHook",
    "CyclicMomentumUpdaterHook",
    "LinearAnnealingMomentumUpdaterHook",
    "MomentumUpdaterHook",
    "OneCycleMomentumUpdaterHook",
    "StepMomentumUpdaterHook",
    "build_momentum_hook",
    "group_momentum",
]


def group_momentum(group: Mapping[str, Any]) -> float | None:
    """A param group's momentum: ``momentum``, else ``betas[0]``, else None."""
    if "momentum" in group:
        return group["momentum"]
    if "betas" in group:
        return group["betas"][0]
    return None


def _set_group_momentum(group: dict[str, Any], momentum: float) -> None:
    if "momentum" in group:
        group["momentum"] = momentum
    elif "betas" in group:
        group["betas"] = (momentum, group["betas"][1])


def _require_momentum(optimizer: Any, key_path: str) -> None:
    if any(group_momentum(group) is None for group in optimizer.param_groups):
        raise ConfigError(
            f"{type(optimizer).__name__} has no momentum (neither 'momentum' nor 'betas')",
            key_path=key_path, hint="remove momentum_config or use an optimizer with momentum",
        )


class MomentumUpdaterHook(Hook):
    """Base momentum hook: ``initial_momentum`` bookkeeping, updates, dividing warmup.

    Subclasses set ``self.schedule`` (``(progress, max_progress, base) -> momentum``).

    Args:
        by_epoch: update once per epoch (progress = epoch) instead of per iteration.
        warmup: None, 'constant', 'linear' or 'exp'.
        warmup_iters: warmup length in iterations.
        warmup_ratio: the first warmup momentum is ``regular / warmup_ratio``; in (0, 1].
        key_path: where this config sits, for error messages.

    Raises:
        ConfigError: bad warmup arguments; at ``before_run``, an optimizer without momentum.
    """

    schedule: Callable[[int, int, float], float]

    def __init__(self, by_epoch: bool = True, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.9, key_path: str = "momentum_config") -> None:
        schedules.check_warmup(warmup, warmup_iters, warmup_ratio, key_path)
        self.key_path = key_path
        self.by_epoch = by_epoch
        self.warmup = warmup
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.base_momentum: Groups = {}
        self.regular_momentum: Groups = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        merge_signature(cls, MomentumUpdaterHook)

    def get_momentum(self, runner: Any, base: Any) -> float:
        """The regular momentum for a group whose base momentum is ``base``."""
        return self.schedule(*schedule_progress(runner, self.by_epoch), base)

    def get_regular_momentum(self, runner: Any) -> Groups:
        return {name: [self.get_momentum(runner, base) for base in bases]
                for name, bases in self.base_momentum.items()}

    def get_warmup_momentum(self, cur_iter: int) -> Groups:
        assert self.warmup is not None
        factor = schedules.warmup_factor(self.warmup, cur_iter, self.warmup_iters,
                                         self.warmup_ratio)
        return {name: [m / factor for m in values]
                for name, values in self.regular_momentum.items()}

    @staticmethod
    def _set_momentum(runner: Any, groups: Groups) -> None:
        for name, optimizer in named_optimizers(runner.optimizer).items():
            for group, momentum in zip(optimizer.param_groups, groups.get(name, ())):
                _set_group_momentum(group, momentum)

    def before_run(self, runner: Any) -> None:
        self.base_momentum = {}
        for name, optimizer in named_optimizers(runner.optimizer).items():
            _require_momentum(optimizer, self.key_path)
            for group in optimizer.param_groups:
                group.setdefault("initial_momentum", group_momentum(group))
            self.base_momentum[name] = [g["initial_momentum"] for g in optimizer.param_groups]

    def before_train_epoch(self, runner: Any) -> None:
        if not self.by_epoch:
            return
        self.regular_momentum = self.get_regular_momentum(runner)
        self._set_momentum(runner, self.regular_momentum)

    def before_train_iter(self, runner: Any) -> None:
        cur_iter = runner.iter
        if not self.by_epoch:
            self.regular_momentum = self.get_regular_momentum(runner)
            if self.warmup is None or cur_iter >= self.warmup_iters:
                self._set_momentum(runner, self.regular_momentum)
            else:
                self._set_momentum(runner, self.get_warmup_momentum(cur_iter))
            return
        if not self.regular_momentum:
            raise ConfigError(
                "by_epoch=True needs a runner that starts train epochs",
                key_path=f"{self.key_path}.by_epoch", expected="False with IterBasedRunner",
                given=True,
            )
        if self.warmup is None or cur_iter > self.warmup_iters:
            return
        if cur_iter == self.warmup_iters:
            self._set_momentum(runner, self.regular_momentum)
        else:
            self._set_momentum(runner, self.get_warmup_momentum(cur_iter))


@HOOKS.register_module()
class StepMomentumUpdaterHook(MomentumUpdaterHook):
    """Step: multiply by ``gamma`` every ``step`` or at each milestone, floored at
    ``min_momentum``."""

    def __init__(self, step: int | list[int], gamma: float = 0.5,
                 min_momentum: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.step_momentum(step, gamma, min_momentum, key_path=self.key_path)


@HOOKS.register_module()
class CosineAnnealingMomentumUpdaterHook(MomentumUpdaterHook):
    """Cosine from the base momentum to ``min_momentum`` (or ``base*min_momentum_ratio``)."""

    def __init__(self, min_momentum: float | None = None, min_momentum_ratio: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.cosine_annealing_momentum(min_momentum, min_momentum_ratio,
                                                            key_path=self.key_path)


@HOOKS.register_module()
class LinearAnnealingMomentumUpdaterHook(MomentumUpdaterHook):
    """Linear from the base momentum to ``min_momentum`` (or ``base*min_momentum_ratio``)."""

    def __init__(self, min_momentum: float | None = None, min_momentum_ratio: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.linear_annealing_momentum(min_momentum, min_momentum_ratio,
                                                            key_path=self.key_path)


@HOOKS.register_module()
class CyclicMomentumUpdaterHook(MomentumUpdaterHook):
    """Cyclic momentum per iteration (``by_epoch`` must be False), the cyclic LR formula."""

    def __init__(self, by_epoch: bool = False, target_ratio: Any = (0.85 / 0.95, 1),
                 cyclic_times: int = 1, step_ratio_up: float = 0.4, anneal_strategy: str = "cos",
                 gamma: float = 1, **kwargs: Any) -> None:
        super().__init__(by_epoch=False, **kwargs)
        self.schedule = schedules.cyclic_momentum(by_epoch, target_ratio, cyclic_times,
                                                  step_ratio_up, anneal_strategy, gamma,
                                                  key_path=self.key_path)


@HOOKS.register_module()
class OneCycleMomentumUpdaterHook(MomentumUpdaterHook):
    """One-cycle momentum per iteration between ``base_momentum`` and ``max_momentum``
    (each a number, a list per param group, or a dict per optimizer).

    ``before_run`` sets every group's momentum to its max momentum (as mmcv); the
    optimizer's own momentum is not used.
    """

    def __init__(self, base_momentum: Any = 0.85, max_momentum: Any = 0.95,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", three_phase: bool = False,
                 **kwargs: Any) -> None:
        if kwargs.get("by_epoch"):
            raise ConfigError("the OneCycle policy only works per iteration",
                              key_path=f"{kwargs.get('key_path', 'momentum_config')}.by_epoch",
                              expected="False", given=kwargs["by_epoch"])
        kwargs["by_epoch"] = False
        super().__init__(**kwargs)
        self.momentum_range = (base_momentum, max_momentum)
        self.one_cycle = schedules.one_cycle_momentum(pct_start, anneal_strategy, three_phase,
                                                      key_path=self.key_path)

    def get_momentum(self, runner: Any, base: Any) -> float:
        base_momentum, max_momentum = base
        return self.one_cycle(runner.iter, runner.max_iters, base_momentum, max_momentum)

    def before_run(self, runner: Any) -> None:
        self.base_momentum = {}
        for name, optimizer in named_optimizers(runner.optimizer).items():
            _require_momentum(optimizer, self.key_path)
            lows = per_group_values(name, optimizer, self.momentum_range[0], "base_momentum",
                                    self.key_path)
            highs = per_group_values(name, optimizer, self.momentum_range[1], "max_momentum",
                                     self.key_path)
            for group, high in zip(optimizer.param_groups, highs):
                _set_group_momentum(group, high)
            self.base_momentum[name] = list(zip(lows, highs))


def build_momentum_hook(momentum_config: Any, key_path: str = "momentum_config",
                        default_args: Mapping[str, Any] | None = None) -> Hook:
    """The momentum hook for ``momentum_config`` (register it at priority HIGH).

    Raises:
        ConfigError: no or an unknown ``policy``, or arguments the hook rejects.
    """
    return build_policy_hook(momentum_config, "MomentumUpdaterHook", key_path, default_args)
