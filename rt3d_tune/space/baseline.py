"""The baseline trial: the base config as the user wrote it, and where it sits in the space.

Every search (``search.baseline: true``, the default) runs the base config first, with
the trial budget and the common trial seed as every trial, so that the winner can be
compared with it. When the base lies inside the space (every tuned key holds a value
the space can draw: inside a range, one of a choice's options, one of its branches
exactly), :func:`baseline_params` gives the params that reproduce it, and the searcher
is told the baseline as one of its own trials (TPE learns from it). When it does not,
the baseline still runs, on its own, and the searcher never hears of it. Pure: no torch,
no Ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.space.domains import Choice, Domain, Grid, Int, LogInt, LogUniform, Uniform
from rt3d_tune.space.params import baseline_marked
from rt3d_tune.space.sampling import (
    ABSENT,
    apply_overrides,
    config_diff,
    lookup,
    overrides_from_params,
    uses_index,
)
from rt3d_tune.space.space import SearchSpace

__all__ = ["baseline_params", "baseline_point"]

_DOMAINS = (Uniform, LogUniform, Int, LogInt, Choice, Grid)


def baseline_params(space: SearchSpace) -> dict[str, Any] | None:
    """The params (Optuna's names) whose trial config is the base config itself, or None
    when the base lies outside the space.

    The check is the definition: the overrides of the params found, applied to the
    base, must leave it exactly as it is (types included).
    """
    base = plain_dict(space.base_config)
    params: dict[str, Any] = {}
    for path, domain in space.params:
        found = _fit(domain, path, lookup(base, path))
        if found is None:
            return None
        params.update(found)
    as_trial = apply_overrides(base, overrides_from_params(space, params))
    as_base = apply_overrides(base, space.fixed_overrides)
    return params if not config_diff(as_base, as_trial) else None


def baseline_point(space: SearchSpace) -> tuple[dict[str, Any], bool]:
    """(the baseline trial's params with its marker, whether the base fits the space)."""
    params = baseline_params(space)
    return baseline_marked(params), params is not None


def _fit(domain: Domain, name: str, value: Any) -> dict[str, Any] | None:
    """The params that make ``domain`` (named ``name``) give ``value``, or None."""
    if value is ABSENT:
        return None
    if isinstance(domain, (Choice, Grid)):
        if not uses_index(domain):
            return {name: value} if _among(value, domain.options) else None
        for index, option in enumerate(domain.options):
            found = _fit_template(option, f"{name}@{index}", value)
            if found is not None:
                return {f"{name}@choice": index, **found}
        return None
    return {name: value} if _in_range(domain, value) else None


def _fit_template(template: Any, prefix: str, value: Any) -> dict[str, Any] | None:
    """The params that make a choice's option (a value holding domains) give ``value``."""
    if isinstance(template, _DOMAINS):
        return _fit(template, prefix, value)
    if isinstance(template, Mapping):
        if not isinstance(value, Mapping) or set(value) != set(template):
            return None  # the branch replaces the subtree: its keys must be the base's
        return _merged(_fit_template(item, f"{prefix}.{key}", value[key])
                       for key, item in template.items())
    if isinstance(template, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(template):
            return None
        return _merged(_fit_template(item, f"{prefix}.{i}", value[i])
                       for i, item in enumerate(template))
    return {} if _same(template, value) else None


def _merged(parts: Any) -> dict[str, Any] | None:
    merged: dict[str, Any] = {}
    for part in parts:
        if part is None:
            return None
        merged.update(part)
    return merged


def _same(a: Any, b: Any) -> bool:
    """Equal as a YAML value and a config value can be: a list stands for a tuple."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _among(value: Any, options: tuple[Any, ...]) -> bool:
    return any(_same(option, value) for option in options)


def _in_range(domain: Domain, value: Any) -> bool:
    """True when ``domain`` can draw ``value`` (bounds inclusive, on the ``q`` grid)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(domain, (Int, LogInt)) and not isinstance(value, int):
        return False
    if not (math.isfinite(value) and domain.low <= value <= domain.high):
        return False
    step = getattr(domain, "q", None)
    if not step:
        return True
    steps = (value - domain.low) / step
    return math.isclose(steps, round(steps), abs_tol=1e-9)
