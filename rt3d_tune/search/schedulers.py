"""The space's ``scheduler`` section -> a Ray Tune trial scheduler.

Fidelity is ``training_iteration``: epochs trained (or evaluation rounds for
iteration-based runners), as the trial's report hook sets it. PBT mutates the same
parameters the space samples (those every trial has: parameters inside a conditional
branch exist only in some trials and are left alone); a perturbed value is clipped
back into its domain's bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.space.domains import Choice, Grid, Int, LogInt, LogUniform, Uniform, is_primitive
from rt3d_tune.space.params import PARAMS_KEY
from rt3d_tune.space.sections import SCHEDULERS, SchedulerSettings

if TYPE_CHECKING:
    from rt3d_tune.space.space import SearchSpace

__all__ = [
    "build_scheduler",
    "clip_to_domains",
    "mutable_params",
    "pbt_mutations",
]



def _pick(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: options[name] for name in names if options.get(name) is not None}


def build_scheduler(
    settings: SchedulerSettings,
    *,
    metric: str,
    mode: str,
    max_t: int,
    mutations: dict[str, Any] | None = None,
    domains: Sequence[tuple[str, Any]] = (),
) -> Any:
    """A Tune scheduler for the space's ``scheduler`` section.

    Args:
        settings: the space's SchedulerSettings (``type`` and Tune keyword ``args``).
        metric, mode: what the trials report and which way is better.
        max_t: the most fidelity a trial can reach (epochs, or evaluation rounds).
        mutations: PBT's hyperparam_mutations (see :func:`pbt_mutations`).
        domains: (param name, domain) pairs PBT clips perturbed values to.

    Raises:
        ConfigError: an unknown scheduler type.
    """
    from ray.tune import schedulers

    options = dict(settings.args)
    kind = settings.type
    common = {"time_attr": "training_iteration", "metric": metric, "mode": mode}
    if kind == "fifo":
        return schedulers.FIFOScheduler()
    if kind == "asha":
        return schedulers.ASHAScheduler(
            max_t=max_t, **common, **_pick(options, "grace_period", "reduction_factor", "brackets")
        )
    if kind == "hyperband":
        return schedulers.HyperBandScheduler(
            max_t=max_t, **common, **_pick(options, "reduction_factor")
        )
    if kind == "median":
        return schedulers.MedianStoppingRule(
            **common, **_pick(options, "grace_period", "min_samples_required")
        )
    if kind == "pbt":
        return schedulers.PopulationBasedTraining(
            **common,
            perturbation_interval=options.get("perturbation_interval") or 1,
            hyperparam_mutations={PARAMS_KEY: dict(mutations or {})},
            custom_explore_fn=_Clipper(tuple(domains)),
            **_pick(options, "quantile_fraction", "resample_probability", "synch"),
        )
    raise ConfigError(
        "unknown scheduler",
        key_path="scheduler.type",
        expected=f"one of {', '.join(SCHEDULERS)}",
        given=kind,
    )


def mutable_params(space: SearchSpace) -> list[tuple[str, Any]]:
    """(param name, domain) of the parameters every trial has: PBT can perturb these.

    Names follow ``rt3d_tune.space.sampling``: a top-level numeric domain or a choice
    among plain values is named by its key path; a choice among lists by
    ``<path>@choice`` (the option index). Parameters inside conditional branches
    exist only in some trials and are left out.
    """
    found: list[tuple[str, Any]] = []
    for path, domain in space.params:
        if not isinstance(domain, (Choice, Grid)) or all(map(is_primitive, domain.options)):
            found.append((path, domain))
        elif not domain.is_conditional:
            found.append((f"{path}@choice", Choice(tuple(range(len(domain.options))))))
    return found


def pbt_mutations(domains: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """PBT's hyperparam_mutations (Tune domains, or lists for choices) for ``domains``."""
    from ray import tune

    mutations: dict[str, Any] = {}
    for name, domain in domains:
        if isinstance(domain, Uniform):
            mutations[name] = tune.uniform(domain.low, domain.high)
        elif isinstance(domain, LogUniform):
            mutations[name] = tune.loguniform(domain.low, domain.high)
        elif isinstance(domain, Int):
            mutations[name] = tune.randint(domain.low, domain.high + 1)
        elif isinstance(domain, LogInt):
            mutations[name] = tune.lograndint(domain.low, domain.high + 1)
        elif isinstance(domain, (Choice, Grid)):
            mutations[name] = list(domain.options)
    return mutations


def clip_to_domains(params: dict[str, Any], domains: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Clip (and quantize) numeric params into their domains' inclusive bounds."""
    out = dict(params)
    for name, domain in domains:
        if name not in out or not isinstance(domain, (Uniform, LogUniform, Int, LogInt)):
            continue
        value = min(max(out[name], domain.low), domain.high)
        q = getattr(domain, "q", None)
        if q:
            value = domain.low + round((value - domain.low) / q) * q
            value = min(value, domain.high)
        if isinstance(domain, (Int, LogInt)):
            value = round(value)
        elif not math.isfinite(value):
            value = domain.low
        out[name] = value
    return out


class _Clipper:
    """PBT's custom_explore_fn (a picklable callable: Tune saves its scheduler)."""

    def __init__(self, domains: tuple[tuple[str, Any], ...]) -> None:
        self.domains = domains

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        config = dict(config)
        config[PARAMS_KEY] = clip_to_domains(config[PARAMS_KEY], self.domains)
        return config
