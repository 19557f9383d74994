"""LR updater hooks (``lr_config``), number for number with mmcv 1.7.

``before_run`` stores each param group's ``initial_lr`` (setdefault: a resumed
optimizer keeps the one in its checkpoint, and population-based training changes it
on purpose). With ``by_epoch`` the regular LR is set at ``before_train_epoch``, else at
``before_train_iter``; warmup applies per iteration while ``iter < warmup_iters`` on
top of the regular LR. The formulas live in :mod:`rt3d_tune.schedules.policies`.

``build_lr_hook`` maps ``policy`` to a class: an all-lowercase name is title-cased
(``step`` -> ``StepLrUpdaterHook``), a mixed-case one is used as written, and, unlike
mmcv (which turns ``onecycle`` into a missing ``Onecycle``), a name that matches a
registered policy ignoring case and underscores is accepted too.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS, build_from_cfg
from rt3d_tune.runner.hook import Hook, schedule_progress
from rt3d_tune.schedules import policies as schedules

__all__ = [
    "CosineAnnealingLrUpdaterHook",
    "CosineRestartLrUpdaterHook",
    "CyclicLrUpdaterHook",
    "ExpLrUpdaterHook",
    "FixedLrUpdaterHook",
    "FlatCosineAnnealingLrUpdaterHook",
    "InvLrUpdaterHook",
    "LinearAnnealingLrUpdaterHook",
    "LrUpdaterHook",
    "OneCycleLrUpdaterHook",
    "PolyLrUpdaterHook",
    "StepLrUpdaterHook",
    "build_lr_hook",
    "build_policy_hook",
    "merge_signature",
    "named_optimizers",
]

Groups = dict[Any, list[Any]]
"""Per optimizer name (None for a single optimizer), one value per param group."""


def named_optimizers(optimizer: Any) -> dict[Any, Any]:
    """``runner.optimizer`` as ``{name: optimizer}``; a single optimizer is named None."""
    return dict(optimizer) if isinstance(optimizer, Mapping) else {None: optimizer}


def per_group_values(name: Any, optimizer: Any, value: Any, arg: str, key_path: str) -> list[Any]:
    """A number, a list (one per param group) or a dict (per optimizer) -> one value per group.

    A dict is looked up by the optimizer's name, or by its class name for a single
    optimizer (as mmcv's ``format_param``).

    Raises:
        ConfigError: a list of the wrong length, a dict without this optimizer, another type.
    """
    n_groups = len(optimizer.param_groups)
    where = f"{key_path}.{arg}" if key_path else arg
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [value] * n_groups
    if isinstance(value, (list, tuple)):
        if len(value) != n_groups:
            raise ConfigError(f"{arg} needs one value per param group", key_path=where,
                              expected=f"{n_groups} values", given=value)
        return list(value)
    if isinstance(value, Mapping):
        key = type(optimizer).__name__ if name is None else name
        if key not in value:
            raise ConfigError(f"{arg} has no entry for optimizer {key!r}", key_path=where,
                              expected=f"a key {key!r}", given=value)
        return per_group_values(name, optimizer, value[key], arg, key_path)
    raise ConfigError(f"invalid {arg}", key_path=where,
                      expected="a number, a list (per param group) or a dict (per optimizer)",
                      given=value)


def merge_signature(cls: type, base: type) -> None:
    """Give ``cls`` a signature listing its own arguments and ``base``'s, so that an
    unknown-argument error names every accepted argument."""
    own = [p for p in inspect.signature(cls.__init__).parameters.values()
           if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    names = {p.name for p in own}
    inherited = [p.replace(kind=p.KEYWORD_ONLY)
                 for p in inspect.signature(base.__init__).parameters.values()
                 if p.name != "self" and p.name not in names]
    cls.__signature__ = inspect.Signature(own + inherited)  # type: ignore[attr-defined]


class LrUpdaterHook(Hook):
    """Base LR hook: ``initial_lr`` bookkeeping, by-epoch/by-iteration updates, warmup.

    Subclasses set ``self.schedule`` (``(progress, max_progress, base) -> lr``).

    Args:
        by_epoch: the regular LR changes once per epoch (progress = epoch) instead of
            every iteration (progress = global iteration).
        warmup: None, 'constant', 'linear' or 'exp'.
        warmup_iters: warmup length in iterations (in epochs with ``warmup_by_epoch``).
        warmup_ratio: the first warmup LR is ``warmup_ratio * regular LR``; in (0, 1].
        warmup_by_epoch: ``warmup_iters`` counts epochs, converted to iterations with
            ``len(runner.data_loader)`` at the first train epoch.
        key_path: where this config sits, for error messages.

    Raises:
        ConfigError: an unknown warmup type, ``warmup_iters`` <= 0 or ``warmup_ratio``
            outside (0, 1] with warmup set.
    """

    schedule: Callable[[int, int, float], float]

    def __init__(self, by_epoch: bool = True, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.1, warmup_by_epoch: bool = False,
                 key_path: str = "lr_config") -> None:
        schedules.check_warmup(warmup, warmup_iters, warmup_ratio, key_path)
        self.key_path = key_path
        self.by_epoch = by_epoch
        self.warmup = warmup
        self.warmup_ratio = warmup_ratio
        self.warmup_by_epoch = warmup_by_epoch
        self.warmup_epochs: int | None = warmup_iters if warmup_by_epoch else None
        self.warmup_iters: int | None = None if warmup_by_epoch else warmup_iters
        self.base_lr: Groups = {}
        self.regular_lr: Groups = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        merge_signature(cls, LrUpdaterHook)

    # values ----------------------------------------------------------------------
    def get_lr(self, runner: Any, base_lr: float) -> float:
        """The regular LR for a group whose base LR is ``base_lr``."""
        return self.schedule(*schedule_progress(runner, self.by_epoch), base_lr)

    def get_regular_lr(self, runner: Any) -> Groups:
        return {name: [self.get_lr(runner, base) for base in bases]
                for name, bases in self.base_lr.items()}

    def final_lr(self, runner: Any) -> list[float] | dict[str, list[float]]:
        """Where the schedule ends: the regular LR of every param group at the run's last
        epoch (``by_epoch``) or last iteration, warmup long over.

        Shaped like ``runner.current_lr()`` (a dict name -> list for dict optimizers).
        A rung probe cools down towards it.

        Raises:
            RuntimeError: called before ``before_run`` (the base LRs are not known yet).
        """
        if not self.base_lr:
            raise RuntimeError("final_lr needs the base LRs that before_run sets")
        total = runner.max_epochs if self.by_epoch else runner.max_iters
        lrs = {name: [self.schedule(total - 1, total, base) for base in bases]
               for name, bases in self.base_lr.items()}
        return lrs.get(None, lrs)  # a single optimizer is named None

    def get_warmup_lr(self, cur_iter: int) -> Groups:
        assert self.warmup is not None and self.warmup_iters is not None
        factor = schedules.warmup_factor(self.warmup, cur_iter, self.warmup_iters,
                                         self.warmup_ratio)
        return {name: [lr * factor for lr in lrs] for name, lrs in self.regular_lr.items()}

    @staticmethod
    def _set_lr(runner: Any, lr_groups: Groups) -> None:
        for name, optimizer in named_optimizers(runner.optimizer).items():
            for group, lr in zip(optimizer.param_groups, lr_groups.get(name, ())):
                group["lr"] = lr

    def _resolve_warmup_iters(self, runner: Any) -> int:
        if self.warmup_iters is None:
            assert self.warmup_epochs is not None
            self.warmup_iters = self.warmup_epochs * len(runner.data_loader)
        return self.warmup_iters

    # stages ----------------------------------------------------------------------
    def before_run(self, runner: Any) -> None:
        self.base_lr = {}
        for name, optimizer in named_optimizers(runner.optimizer).items():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
            self.base_lr[name] = [group["initial_lr"] for group in optimizer.param_groups]

    def before_train_epoch(self, runner: Any) -> None:
        self._resolve_warmup_iters(runner)
        if not self.by_epoch:
            return
        self.regular_lr = self.get_regular_lr(runner)
        self._set_lr(runner, self.regular_lr)

    def before_train_iter(self, runner: Any) -> None:
        cur_iter = runner.iter
        warmup_iters = self._resolve_warmup_iters(runner)
        if not self.by_epoch:
            self.regular_lr = self.get_regular_lr(runner)
            if self.warmup is None or cur_iter >= warmup_iters:
                self._set_lr(runner, self.regular_lr)
            else:
                self._set_lr(runner, self.get_warmup_lr(cur_iter))
            return
        if not self.regular_lr:
            raise ConfigError(
                "by_epoch=True needs a runner that starts train epochs",
                key_path=f"{self.key_path}.by_epoch", expected="False with IterBasedRunner",
                given=True,
            )
        if self.warmup is None or cur_iter > warmup_iters:
            return
        if cur_iter == warmup_iters:
            self._set_lr(runner, self.regular_lr)
        else:
            self._set_lr(runner, self.get_warmup_lr(cur_iter))


@HOOKS.register_module()
class FixedLrUpdaterHook(LrUpdaterHook):
    """Fixed: the LR stays at ``initial_lr`` (warmup still applies)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.fixed()


@HOOKS.register_module()
class StepLrUpdaterHook(LrUpdaterHook):
    """Step: multiply by ``gamma`` every ``step`` (int) or at each milestone (list), floored
    at ``min_lr``. Steps count epochs or iterations as ``by_epoch`` says."""

    def __init__(self, step: int | list[int], gamma: float = 0.1, min_lr: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.step(step, gamma, min_lr, key_path=self.key_path)


@HOOKS.register_module()
class ExpLrUpdaterHook(LrUpdaterHook):
    """Exp: ``base * gamma**progress``."""

    def __init__(self, gamma: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.exp(gamma, key_path=self.key_path)


@HOOKS.register_module()
class PolyLrUpdaterHook(LrUpdaterHook):
    """Poly: ``(base - min_lr) * (1 - p/P)**power + min_lr``."""

    def __init__(self, power: float = 1.0, min_lr: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.poly(power, min_lr, key_path=self.key_path)


@HOOKS.register_module()
class InvLrUpdaterHook(LrUpdaterHook):
    """Inv: ``base * (1 + gamma*p)**(-power)``."""

    def __init__(self, gamma: float, power: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.inv(gamma, power, key_path=self.key_path)


@HOOKS.register_module()
class CosineAnnealingLrUpdaterHook(LrUpdaterHook):
    """Cosine from base to ``min_lr`` (or ``base*min_lr_ratio``) over the training."""

    def __init__(self, min_lr: float | None = None, min_lr_ratio: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.cosine_annealing(min_lr, min_lr_ratio, key_path=self.key_path)


@HOOKS.register_module()
class LinearAnnealingLrUpdaterHook(LrUpdaterHook):
    """Linear from base to ``min_lr`` (or ``base*min_lr_ratio``) over the training."""

    def __init__(self, min_lr: float | None = None, min_lr_ratio: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.linear_annealing(min_lr, min_lr_ratio, key_path=self.key_path)


@HOOKS.register_module()
class FlatCosineAnnealingLrUpdaterHook(LrUpdaterHook):
    """Flat at base for ``start_percent`` of the training, then cosine to the target."""

    def __init__(self, start_percent: float = 0.75, min_lr: float | None = None,
                 min_lr_ratio: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.flat_cosine_annealing(start_percent, min_lr, min_lr_ratio,
                                                        key_path=self.key_path)


@HOOKS.register_module()
class CosineRestartLrUpdaterHook(LrUpdaterHook):
    """Cosine annealing restarted after each of ``periods`` (epochs or iterations)."""

    def __init__(self, periods: list[int], restart_weights: list[float] | tuple[float, ...] = (1,),
                 min_lr: float | None = None, min_lr_ratio: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedules.cosine_restart(periods, restart_weights, min_lr, min_lr_ratio,
                                                 key_path=self.key_path)


@HOOKS.register_module()
class CyclicLrUpdaterHook(LrUpdaterHook):
    """Cyclic LR per iteration (``by_epoch`` must be False); see :func:`schedules.cyclic`."""

    def __init__(self, by_epoch: bool = False, target_ratio: Any = (10, 1e-4),
                 cyclic_times: int = 1, step_ratio_up: float = 0.4, anneal_strategy: str = "cos",
                 gamma: float = 1, **kwargs: Any) -> None:
        super().__init__(by_epoch=False, **kwargs)
        self.schedule = schedules.cyclic(by_epoch, target_ratio, cyclic_times, step_ratio_up,
                                         anneal_strategy, gamma, key_path=self.key_path)


@HOOKS.register_module()
class OneCycleLrUpdaterHook(LrUpdaterHook):
    """One-cycle LR per iteration from ``max_lr/div_factor`` up to ``max_lr`` and down.

    The base of each group is ``max_lr/div_factor`` (``max_lr``: a number, a list per
    param group, or a dict per optimizer), not the optimizer's ``lr``; ``initial_lr``
    is set to it with setdefault, as mmcv. ``by_epoch`` is always False.

    Raises:
        ConfigError: ``by_epoch=True``, a bad ``max_lr`` or schedule argument; at run
            time, ``total_steps`` below the runner's max iterations.
    """

    def __init__(self, max_lr: Any, total_steps: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", div_factor: float = 25,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 **kwargs: Any) -> None:
        if kwargs.get("by_epoch"):
            raise ConfigError("the OneCycle policy only works per iteration",
                              key_path=f"{kwargs.get('key_path', 'lr_config')}.by_epoch",
                              expected="False", given=kwargs["by_epoch"])
        kwargs["by_epoch"] = False
        super().__init__(**kwargs)
        if not isinstance(max_lr, (numbers.Real, list, tuple, Mapping)) or isinstance(max_lr, bool):
            raise ConfigError("invalid max_lr", key_path=f"{self.key_path}.max_lr",
                              expected="a number, a list (per param group) or a dict "
                              "(per optimizer)", given=max_lr)
        self.max_lr = max_lr
        self.div_factor = div_factor
        self.schedule = schedules.one_cycle(total_steps, pct_start, anneal_strategy, div_factor,
                                            final_div_factor, three_phase, key_path=self.key_path)

    def before_run(self, runner: Any) -> None:
        self.base_lr = {}
        for name, optimizer in named_optimizers(runner.optimizer).items():
            max_lrs = per_group_values(name, optimizer, self.max_lr, "max_lr", self.key_path)
            self.base_lr[name] = [lr / self.div_factor for lr in max_lrs]
            for group, lr in zip(optimizer.param_groups, self.base_lr[name]):
                group.setdefault("initial_lr", lr)


def build_policy_hook(cfg: Any, suffix: str, key_path: str,
                      default_args: Mapping[str, Any] | None = None) -> Hook:
    """Build ``<Policy><suffix>`` from ``cfg`` (``policy`` plus the hook's arguments).

    A Hook instance is returned as is.

    Raises:
        ConfigError: no ``policy``, an unknown one (listing the known policies and the
            closest), or arguments the hook rejects (naming the argument).
    """
    if isinstance(cfg, Hook):
        return cfg
    if not isinstance(cfg, Mapping) or "policy" not in cfg:
        raise ConfigError("a schedule config needs a 'policy'", key_path=key_path,
                          expected="dict(policy=..., ...)", given=cfg)
    args = {k: v for k, v in cfg.items() if k not in ("policy", "type")}
    for name, value in (default_args or {}).items():
        args.setdefault(name, value)
    args["type"] = _policy_class(cfg["policy"], suffix, f"{key_path}.policy")
    args["key_path"] = key_path
    return build_from_cfg(args, HOOKS, key_path=key_path)


def _policy_class(policy: Any, suffix: str, key_path: str) -> type:
    known = {name[: -len(suffix)]: name for name in HOOKS
             if name.endswith(suffix) and len(name) > len(suffix)}
    if isinstance(policy, str):
        name = policy.title() if policy == policy.lower() else policy
        if name in known:
            return HOOKS.lookup(known[name])
        loose = {k.lower(): v for k, v in known.items()}
        wanted = policy.replace("_", "").replace("-", "").lower()
        if wanted in loose:
            return HOOKS.lookup(loose[wanted])
    close = difflib.get_close_matches(str(policy).lower(), [k.lower() for k in known], n=3,
                                      cutoff=0.5)
    by_lower = {k.lower(): k for k in known}
    hint = f"did you mean {' or '.join(repr(by_lower[c]) for c in close)}?" if close else None
    raise ConfigError("unknown policy", key_path=key_path,
                      expected=f"one of {', '.join(sorted(known))}", given=policy, hint=hint)


def build_lr_hook(lr_config: Any, key_path: str = "lr_config",
                  default_args: Mapping[str, Any] | None = None) -> Hook:
    """The LR hook for ``lr_config`` (register it at priority VERY_HIGH).

    Args:
        lr_config: ``dict(policy=..., ...)`` or a Hook instance.
        key_path: where the config sits, for error messages.
        default_args: arguments filled in when missing (the iteration-based runner
            passes ``by_epoch=False``).

    Raises:
        ConfigError: see :func:`build_policy_hook`.
    """
    return build_policy_hook(lr_config, "LrUpdaterHook", key_path, default_args)
