"""The search space file: schema, domains, sampling, overrides, sections, validate.

Everything here runs before Ray starts and imports neither Ray nor torch itself:
``load_space`` (``space``) parses and checks a space file against its base config and
resolves its backend; ``schema``, ``domains``, ``params``, ``sections`` (the ``search``,
``scheduler``, ``stop``, ``resources``, ``confirm`` sections), ``sampling`` (sampled
params into config overrides and diffs), ``trials`` (a trial's overrides and config),
``baseline`` (the base config as a trial), ``bounds``, ``rungs`` (where a Tune scheduler
compares trials), and ``validate`` (a dry run: sample trial configs built and checked by
their backend, which imports torch inside its functions). The Ray side is
:mod:`rt3d_tune.search`; what a run leaves on disk is read and written by
:mod:`rt3d_tune.results`.
"""

from __future__ import annotations

from rt3d_tune.space.domains import Choice, Domain, Grid, Int, LogInt, LogUniform, Uniform
from rt3d_tune.space.params import PARAMS_KEY, trial_params
from rt3d_tune.space.sampling import (
    ABSENT,
    apply_overrides,
    config_diff,
    define_by_run,
    format_diff,
    grid_params,
    grid_points,
    make_sampler,
    num_trials,
    overrides_from_params,
)
from rt3d_tune.space.space import (
    ALGORITHMS,
    SCHEDULERS,
    Resources,
    SchedulerSettings,
    SearchSettings,
    SearchSpace,
    Stop,
    check_resources,
    load_space,
    parse_space,
)

__all__ = [
    "ABSENT",
    "ALGORITHMS",
    "PARAMS_KEY",
    "SCHEDULERS",
    "Choice",
    "Domain",
    "Grid",
    "Int",
    "LogInt",
    "LogUniform",
    "Resources",
    "SchedulerSettings",
    "SearchSettings",
    "SearchSpace",
    "Stop",
    "Uniform",
    "apply_overrides",
    "check_resources",
    "config_diff",
    "define_by_run",
    "format_diff",
    "grid_params",
    "grid_points",
    "load_space",
    "make_sampler",
    "num_trials",
    "overrides_from_params",
    "parse_space",
    "trial_params",
]
