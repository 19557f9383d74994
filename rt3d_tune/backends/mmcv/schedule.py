"""Budget-scaled ``lr_config``/``momentum_config``: a short trial of the mmcv backend
follows the full-budget LR and momentum curve.

Shortening ``runner`` alone truncates the schedules whose milestones are absolute (a
``step`` at epochs [8, 11] never fires in 3 epochs) while the relative ones (cosine,
cyclic) compress, so trials of different policies would train different shapes.
:func:`scale_schedule` rewrites ``lr_config`` and ``momentum_config`` so that the trial's
curve is the full-budget curve resampled onto the trial's iterations, by the rule of
:class:`rt3d_tune.schedules.budget.Scaling`. ``describe_scaling`` lists the changes in
words.

The hooks of :mod:`rt3d_tune.runner.hooks` stay the authority: each section is checked,
and its policy name resolved, by building its real hook. The hooks (and torch) are
imported when a function here is first called, not when this module is imported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rt3d_tune.config import Config
from rt3d_tune.config.config_dict import plain_values
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget, Scaling

__all__ = ["SECTIONS", "budget_of", "describe_scaling", "scale_schedule"]

SECTIONS = ("lr_config", "momentum_config")
"""The config sections :func:`scale_schedule` rewrites."""

_TRUNCATED_HINT = "use stop.schedule: truncated"


def budget_of(cfg: Mapping[str, Any] | Config, iters_per_epoch: int) -> Budget:
    """The budget of ``cfg``'s ``runner`` (``max_epochs``/``max_iters``, or the legacy
    ``total_epochs``), read as :func:`rt3d_tune.backends.mmcv.simulate.schedule_length` reads it.

    Args:
        cfg: a config.
        iters_per_epoch: iterations per epoch.

    Raises:
        ConfigError: a missing or malformed runner; ``iters_per_epoch`` < 1.
    """
    from rt3d_tune.backends.mmcv.simulate import schedule_length

    iter_based, length = schedule_length(cfg)
    if iter_based:
        return Budget(iters=length, iters_per_epoch=iters_per_epoch)
    return Budget(epochs=length, iters_per_epoch=iters_per_epoch)


@dataclass(frozen=True)
class _Section(Scaling):
    """A ``lr_config``/``momentum_config`` section rescaled by :class:`Scaling`."""

    section: str

    def milestones(self, points: Sequence[int], by_epoch: bool) -> tuple[bool, list[int]]:
        """Base milestones -> ``(by_epoch, trial milestones)``, as :meth:`Scaling.moved`,
        at least 1 in iterations (the hooks require positive milestones)."""
        in_epochs, moved = self.moved(points, by_epoch)
        return in_epochs, moved if in_epochs else [max(1, m) for m in moved]

    def check_units(self, by_epoch: bool) -> None:
        if by_epoch and self.full.iter_based:
            raise ConfigError("by_epoch=True needs a runner that starts train epochs",
                              key_path=f"{self.section}.by_epoch",
                              expected="False with IterBasedRunner", given=True)


Rule = Callable[[dict[str, Any], Any, _Section], None]
"""Rewrites a section (a copy) in place, given its built hook and the scaling."""


def _set_by_epoch(cfg: dict[str, Any], hook: Any, by_epoch: bool) -> None:
    if by_epoch != hook.by_epoch:
        cfg["by_epoch"] = by_epoch


def _unchanged(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """Policies that follow the runner's length already (cosine, poly, cyclic...)."""


def _scale_step(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """``step``: a period, kept when it scales to a whole trial unit, else expanded to the
    milestones inside the base run; a list of milestones, each moved."""
    scaling.check_units(hook.by_epoch)
    step = cfg["step"]
    if not isinstance(step, (list, tuple)):
        (place,) = scaling.places([step], hook.by_epoch)
        if place.denominator == 1:
            by_epoch, (period,) = scaling.milestones([step], hook.by_epoch)
            cfg["step"] = period
            _set_by_epoch(cfg, hook, by_epoch)
            return
        last = scaling.length(scaling.full, hook.by_epoch) - 1
        # A period longer than the run decays never: its first milestone scales past the
        # trial's end too, so it still never fires.
        step = list(range(step, last + 1, step)) or [step]
    by_epoch, milestones = scaling.milestones(step, hook.by_epoch)
    cfg["step"] = milestones
    _set_by_epoch(cfg, hook, by_epoch)


def _scale_restart(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """``periods``: the cumulative restart boundaries move (so rounding never adds up);
    a period that shrinks to nothing is dropped with its restart weight."""
    scaling.check_units(hook.by_epoch)
    periods = list(cfg["periods"])
    boundaries = [sum(periods[: i + 1]) for i in range(len(periods))]
    by_epoch, moved = scaling.milestones(boundaries, hook.by_epoch)
    lengths = [end - start for start, end in zip([0, *moved[:-1]], moved, strict=True)]
    weights = cfg.get("restart_weights", (1,))
    kept = [i for i, length in enumerate(lengths) if length > 0]
    cfg["periods"] = [lengths[i] for i in kept]
    if len(kept) < len(lengths):
        cfg["restart_weights"] = type(weights)(weights[i] for i in kept)
    _set_by_epoch(cfg, hook, by_epoch)


def _progress_ratio(hook: Any, scaling: _Section) -> Fraction:
    """Base progress length over trial progress length, in the policy's own unit."""
    scaling.check_units(hook.by_epoch)
    return Fraction(scaling.length(scaling.full, hook.by_epoch),
                    scaling.length(scaling.trial, hook.by_epoch))


def _scale_exp(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """Exp ``base*gamma**p``: gamma becomes ``gamma**(base length / trial length)``."""
    gamma = cfg["gamma"]
    if gamma < 0:
        raise ConfigError("a negative exp gamma cannot be rescaled",
                          key_path=f"{scaling.section}.gamma", expected="a number >= 0",
                          given=gamma, hint=_TRUNCATED_HINT)
    cfg["gamma"] = gamma ** float(_progress_ratio(hook, scaling))


def _scale_inv(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """Inv ``base*(1 + gamma*p)**-power``: gamma becomes ``gamma * base/trial length``."""
    cfg["gamma"] = cfg["gamma"] * float(_progress_ratio(hook, scaling))


def _scale_one_cycle(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """OneCycle ``total_steps`` (iterations) moves; None already means max_iters."""
    if cfg.get("total_steps") is not None:
        _, (cfg["total_steps"],) = scaling.milestones([cfg["total_steps"]], False)


def _scale_warmup(cfg: dict[str, Any], hook: Any, scaling: _Section) -> None:
    """An epoch-count warm-up moves like a milestone. An iteration-count one is kept: it
    guards the first updates of a fresh model, whatever the length of training."""
    if hook.warmup is None:
        return
    if getattr(hook, "warmup_by_epoch", False):
        by_epoch, (length,) = scaling.milestones([hook.warmup_epochs], True)
        cfg["warmup_iters"] = length
        if not by_epoch:
            cfg["warmup_by_epoch"] = False
        return
    if hook.warmup_iters > scaling.trial.total_iters:
        raise ConfigError(
            "the warm-up is longer than the whole trial",
            key_path=f"{scaling.section}.warmup_iters",
            expected=f"at most the trial's {scaling.trial.total_iters} iterations "
            f"({scaling.trial.describe()})", given=hook.warmup_iters,
            hint="an iteration-count warm-up is not scaled with the budget: shorten it, "
            "count it in epochs (warmup_by_epoch=True, LR only), or give trials a longer budget",
        )


@functools.cache
def _rules() -> dict[type, Rule]:
    """Our hook classes -> how their policy scales. A policy missing here cannot be scaled."""
    from rt3d_tune.runner.hooks import lr_updater as lr
    from rt3d_tune.runner.hooks import momentum_updater as mom

    return {
        lr.FixedLrUpdaterHook: _unchanged,
        lr.StepLrUpdaterHook: _scale_step,
        lr.ExpLrUpdaterHook: _scale_exp,
        lr.PolyLrUpdaterHook: _unchanged,
        lr.InvLrUpdaterHook: _scale_inv,
        lr.CosineAnnealingLrUpdaterHook: _unchanged,
        lr.LinearAnnealingLrUpdaterHook: _unchanged,
        lr.FlatCosineAnnealingLrUpdaterHook: _unchanged,
        lr.CosineRestartLrUpdaterHook: _scale_restart,
        lr.CyclicLrUpdaterHook: _unchanged,
        lr.OneCycleLrUpdaterHook: _scale_one_cycle,
        mom.StepMomentumUpdaterHook: _scale_step,
        mom.CosineAnnealingMomentumUpdaterHook: _unchanged,
        mom.LinearAnnealingMomentumUpdaterHook: _unchanged,
        mom.CyclicMomentumUpdaterHook: _unchanged,
        mom.OneCycleMomentumUpdaterHook: _unchanged,
    }


def _plain(cfg: Mapping[str, Any] | Config) -> dict[str, Any]:
    return cfg.to_dict() if isinstance(cfg, Config) else plain_values(cfg)


def scale_schedule(cfg: Mapping[str, Any] | Config, base: Budget, trial: Budget
                   ) -> dict[str, Any]:
    """``cfg`` with ``lr_config`` and ``momentum_config`` rescaled from ``base`` to ``trial``.

    The trial's curve becomes the full-budget curve resampled onto the trial's
    iterations (``r = trial.total_iters / base.total_iters``, shorter or longer):

    * milestones tied to the training length move from full iteration ``i`` to
      ``round(i * r)`` (halves up): Step ``step`` (an int period that does not scale to a
      whole trial unit is expanded to the milestones inside the base run), CosineRestart
      ``periods`` (the cumulative boundaries move, so rounding never accumulates; a
      period that shrinks to nothing is dropped with its restart weight), OneCycle
      ``total_steps`` when set, and an epoch-count warm-up (``warmup_by_epoch``). A
      by-epoch milestone stays in epochs when every one lands on a whole trial epoch;
      otherwise the section switches to ``by_epoch=False`` (``warmup_by_epoch=False``)
      with milestones in iterations, each within one iteration of its scaled place.
    * Exp and Inv, which are not relative to the run length, get a new ``gamma``
      (``gamma**(1/r)``, ``gamma/r``, with ``r`` in their own unit), keeping their units.
    * An iteration-count warm-up is NOT scaled: it guards the first updates of a fresh
      model whatever the length of training.
    * Fixed, Poly, (Flat)CosineAnnealing, LinearAnnealing, Cyclic, OneCycle without
      ``total_steps`` and the momentum Cosine/Linear/Cyclic/OneCycle policies follow the
      runner's length already and are kept as they are.

    A by-epoch CosineRestart that switches to iterations anneals smoothly within each
    period instead of in one step per epoch, so it goes a little deeper before each
    restart (at most one full-budget epoch's worth of annealing). ``runner`` is not
    changed: the caller sets the trial's length. Scale from the config as written: the
    iteration counts of a scaled config are absolute, so an epoch warm-up that became
    iterations is not scaled again.

    Args:
        cfg: a config (a Config or a mapping); not modified.
        base: the full budget ``cfg`` was written for.
        trial: the trial's budget (same kind, epochs or iterations, as ``base``).

    Returns:
        A new config of plain dicts, lists and tuples (a copy even when nothing changes).

    Raises:
        ConfigError: a bad section (as building its hook would raise, e.g. an unknown
            ``lr_config.policy``); a policy that is not rt3d-tune's own (a custom hook, or
            a hook instance) and so cannot be scaled; an iteration-count
            ``*.warmup_iters`` longer than the trial; ``by_epoch=True`` under an iteration
            runner; budgets of different kinds or not matching ``cfg``'s runner kind.
    """
    from rt3d_tune.backends.mmcv.simulate import schedule_hooks, schedule_length

    out = _plain(cfg)
    if base.iter_based != trial.iter_based:
        raise ConfigError("the trial and the full budget count different units",
                          key_path="runner", expected=f"a trial counted like {base.describe()}",
                          given=trial.describe())
    if base == trial or not any(out.get(section) is not None for section in SECTIONS):
        return out
    iter_based, _ = schedule_length(out)
    if iter_based != base.iter_based:
        raise ConfigError("the budget does not match the config's runner", key_path="runner",
                          expected="max_iters" if base.iter_based else "max_epochs",
                          given=out.get("runner"))
    hooks = schedule_hooks(out, iter_based)
    for section, hook in hooks.items():
        if not isinstance(out[section], Mapping):
            raise ConfigError("a hook object cannot be scaled to the trial's budget",
                              key_path=section, given=out[section], hint=_TRUNCATED_HINT)
        rule = _rules().get(type(hook))
        if rule is None:
            raise ConfigError(
                f"{type(hook).__name__} is not one of rt3d-tune's policies, so its "
                "milestones cannot be scaled to the trial's budget",
                key_path=f"{section}.policy", given=out[section]["policy"],
                hint=_TRUNCATED_HINT)
        scaling = _Section(base, trial, section)
        rule(out[section], hook, scaling)
        _scale_warmup(out[section], hook, scaling)
    return out


# in words ----------------------------------------------------------------------------
_UNIT_KEYS = {"step": "by_epoch", "periods": "by_epoch", "warmup_iters": "warmup_by_epoch"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_fmt(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' * (len(value) == 1)})"
    return repr(value)


def _unit(section: Mapping[str, Any], flag: str, by_epoch_default: bool) -> bool:
    default = by_epoch_default if flag == "by_epoch" else False
    return bool(section.get(flag, default))


def describe_scaling(base_cfg: Mapping[str, Any] | Config,
                     scaled_cfg: Mapping[str, Any] | Config) -> list[str]:
    """One line per value :func:`scale_schedule` changed, e.g.
    ``lr_config.step: [8, 11] (epochs) -> [80, 110] (iterations, by_epoch=False)``.

    Milestones and warm-up lengths carry their unit (and the flag that changed it);
    an exp/inv ``gamma`` its progress unit. Empty when nothing changed.

    Raises:
        ConfigError: ``base_cfg`` has no valid runner.
    """
    from rt3d_tune.backends.mmcv.simulate import schedule_length

    base, scaled = _plain(base_cfg), _plain(scaled_cfg)
    by_epoch_default = not schedule_length(base)[0]
    lines: list[str] = []
    for section in SECTIONS:
        old, new = base.get(section), scaled.get(section)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old == new:
            continue
        for key in [*new, *(k for k in old if k not in new)]:
            if key in ("by_epoch", "warmup_by_epoch"):
                continue
            flag = _UNIT_KEYS.get(key)
            units = [None if flag is None else _unit(cfg, flag, by_epoch_default)
                     for cfg in (old, new)]
            if old.get(key) == new.get(key) and units[0] == units[1]:
                continue
            text = [_fmt(old.get(key)), _fmt(new.get(key))]
            if flag is not None:
                text[0] += f" ({'epochs' if units[0] else 'iterations'})"
                text[1] += f" ({'epochs' if units[1] else 'iterations'}"
                text[1] += f", {flag}={units[1]})" if units[0] != units[1] else ")"
            elif key == "gamma":  # only exp and inv have theirs rescaled
                per = "epoch" if _unit(new, "by_epoch", by_epoch_default) else "iteration"
                text[1] += f" (per {per})"
            lines.append(f"{section}.{key}: {text[0]} -> {text[1]}")
    return lines
