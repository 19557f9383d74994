"""The search layer's pure half: space files, domains, sampling and validation (no Ray).

The Ray side (trainable, tuner, export) builds on these.
"""

from __future__ import annotations

from rt3d_tune.search.domains import Choice, Domain, Grid, Int, LogInt, LogUniform, Uniform
from rt3d_tune.search.sampling import (
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
from rt3d_tune.search.space import (
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
]
