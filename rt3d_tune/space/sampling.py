"""From a SearchSpace to trial configs: Optuna define-by-run, samplers, grid, merging.

Parameter names (what Optuna records, and what Ray puts in a trial's config):

- a domain at key path ``p`` is named ``p`` (``optimizer_config.grad_clip.max_norm``);
- a choice whose options are not all plain values (branches, lists) records the index
  of the chosen option as ``p@choice``, and the domains inside option ``i`` are named
  ``p@i.<key path inside the option>`` (``optimizer@1.lr``, ``lr_config@0.warmup_iters``).

``@`` never occurs in a config key, so names never collide with each other or with the
overrides, and the two branches of a choice never share a parameter.

Overrides are ``{dotted key path: value}``; a chosen branch is a whole mapping that
replaces the subtree at its key path.
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.config.limits import MAX_TRIALS, count_text
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.domains import (
    Choice,
    Domain,
    Grid,
    Int,
    LogInt,
    LogUniform,
    Uniform,
    is_primitive,
)
from rt3d_tune.space.space import SearchSpace

__all__ = [
    "ABSENT",
    "apply_overrides",
    "config_diff",
    "define_by_run",
    "format_diff",
    "grid_params",
    "grid_points",
    "grid_size",
    "lookup",
    "make_sampler",
    "num_trials",
    "overrides_from_params",
    "resolve_overrides",
    "uses_index",
]

Pick = Callable[[str, Domain], Any]


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()
"""Stands for a key that one side of a ``config_diff`` lacks."""


def uses_index(domain: Choice | Grid) -> bool:
    """True when Optuna records the chosen option's index (``p@choice``), not its value."""
    return not all(is_primitive(option) for option in domain.options)


def _resolve(domain: Domain, name: str, pick: Pick) -> Any:
    """The value of ``domain`` (branches materialized), with ``pick`` giving each parameter."""
    if isinstance(domain, (Choice, Grid)):
        if not uses_index(domain):
            return pick(name, domain)
        index = pick(f"{name}@choice", domain)
        return _materialize(domain.options[index], f"{name}@{index}", pick)
    return pick(name, domain)


def _materialize(template: Any, prefix: str, pick: Pick) -> Any:
    if isinstance(template, (Uniform, LogUniform, Int, LogInt, Choice, Grid)):
        return _resolve(template, prefix, pick)
    if isinstance(template, Mapping):
        return {key: _materialize(item, f"{prefix}.{key}", pick) for key, item in template.items()}
    if isinstance(template, list):
        return [_materialize(item, f"{prefix}.{i}", pick) for i, item in enumerate(template)]
    return copy.deepcopy(template)


def resolve_overrides(space: SearchSpace, pick: Pick) -> dict[str, Any]:
    """The overrides of ``space`` (fixed ones first), with ``pick(name, domain)`` giving
    each parameter's value (the option's index for ``p@choice`` names)."""
    overrides = copy.deepcopy(dict(space.fixed_overrides))
    for path, domain in space.params:
        overrides[path] = _resolve(domain, path, pick)
    return overrides


def define_by_run(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Suggest every domain of ``space`` on an Optuna trial; return the trial's overrides.

    Use with Ray's ``OptunaSearch(space=partial(define_by_run, space=space), metric=,
    mode=, sampler=make_sampler(...))``. Ray adds the returned overrides to the trial
    config next to the sampled parameters; a trainable should still rebuild them with
    ``overrides_from_params(space, config)``, since PBT mutates the parameters only.

    Args:
        trial: an ``optuna.Trial`` (or Ray's wrapper of one).
        space: the parsed space.

    Returns:
        ``{dotted key path: value}``, ``space.fixed_overrides`` included.
    """

    def suggest(name: str, domain: Domain) -> Any:
        if isinstance(domain, Uniform):
            return trial.suggest_float(name, domain.low, domain.high, step=domain.q)
        if isinstance(domain, LogUniform):
            return trial.suggest_float(name, domain.low, domain.high, log=True)
        if isinstance(domain, Int):
            return trial.suggest_int(name, domain.low, domain.high, step=domain.q or 1)
        if isinstance(domain, LogInt):
            return trial.suggest_int(name, domain.low, domain.high, log=True)
        labels = list(range(len(domain.options))) if uses_index(domain) else list(domain.options)
        return trial.suggest_categorical(name, labels)

    return resolve_overrides(space, suggest)


def overrides_from_params(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides for a set of parameter values (an Optuna trial's ``params``, a Ray config).

    Keys of ``params`` that are not parameters of the space are ignored.

    Raises:
        KeyError: a parameter the space needs is missing from ``params``.
    """

    def lookup(name: str, domain: Domain) -> Any:
        if name not in params:
            raise KeyError(f"no value for the search parameter {name!r}")
        value = params[name]
        if isinstance(domain, (Int, LogInt)):
            return int(value)
        if isinstance(domain, (Uniform, LogUniform)):
            return float(value)
        return int(value) if name.endswith("@choice") else value

    return resolve_overrides(space, lookup)


def _enumerate(domain: Domain, name: str, path: str) -> list[dict[str, Any]]:
    """Every parameter assignment of one grid/choice domain, branches expanded."""
    if not isinstance(domain, (Choice, Grid)):
        raise ConfigError(
            f"the grid algorithm cannot enumerate a {type(domain).__name__} domain",
            key_path=path,
            hint="use grid or choice with listed values, or another algorithm",
        )
    if not uses_index(domain):
        return [{name: option} for option in domain.options]
    kind = "choice" if isinstance(domain, Choice) else "grid"
    found = []
    for index, option in enumerate(domain.options):
        for sub in _enumerate_template(option, f"{name}@{index}", f"{path}.{kind}[{index}]"):
            found.append({f"{name}@choice": index, **sub})
    return found


def _enumerate_template(template: Any, prefix: str, path: str) -> list[dict[str, Any]]:
    if isinstance(template, (Uniform, LogUniform, Int, LogInt, Choice, Grid)):
        return _enumerate(template, prefix, path)
    if isinstance(template, Mapping):
        parts = [_enumerate_template(item, f"{prefix}.{key}", f"{path}.{key}")
                 for key, item in template.items()]
    elif isinstance(template, list):
        parts = [_enumerate_template(item, f"{prefix}.{i}", f"{path}[{i}]")
                 for i, item in enumerate(template)]
    else:
        return [{}]
    return [
        dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*parts)
    ]


def _count(domain: Domain, path: str) -> int:
    """How many assignments ``_enumerate`` gives for one domain, without listing them."""
    if not isinstance(domain, (Choice, Grid)):
        _enumerate(domain, path, path)  # raises: not enumerable
    if not uses_index(domain):
        return len(domain.options)
    kind = "choice" if isinstance(domain, Choice) else "grid"
    return sum(_count_template(option, f"{path}.{kind}[{i}]")
               for i, option in enumerate(domain.options))


def _count_template(template: Any, path: str) -> int:
    if isinstance(template, (Uniform, LogUniform, Int, LogInt, Choice, Grid)):
        return _count(template, path)
    items: Any = ()
    if isinstance(template, Mapping):
        items = ((f"{path}.{key}", item) for key, item in template.items())
    elif isinstance(template, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(template))
    return math.prod(_count_template(item, where) for where, item in items)


def grid_size(space: SearchSpace) -> int:
    """The number of points of the grid (the Cartesian product), counted, not listed.

    Counting walks the space once, so it answers at once for a product of any size.

    Raises:
        ConfigError: more than ``MAX_TRIALS`` points (the error names the number and the
            key paths that multiply it), or a domain the grid cannot enumerate.
    """
    factors = [(_count(domain, f"space.{path}"), f"space.{path}") for path, domain in space.params]
    size = math.prod(count for count, _ in factors)
    if size > MAX_TRIALS:
        largest = sorted(factors, key=lambda factor: -factor[0])[:4]
        shown = " x ".join(f"{path}: {count_text(count)}" for count, path in largest)
        raise ConfigError(
            f"the grid has {count_text(size)} points ({shown}"
            f"{' x ...' if len(factors) > 4 else ''}), more than the {MAX_TRIALS:,} trials a "
            "search may run",
            key_path=largest[0][1],
            hint="list fewer values, or sample with search.algorithm: random or tpe",
        )
    return size


def grid_params(space: SearchSpace) -> list[dict[str, Any]]:
    """The full Cartesian product of the space's choices and grids, as parameter dicts.

    Each branch of a conditional choice expands its own nested choices, so the count
    is a sum over branches, not a plain product. The order is fixed (file order, first
    option first, the last key path varying fastest).

    Raises:
        ConfigError: a continuous or integer-range domain anywhere in the space, or a
            grid of more than ``MAX_TRIALS`` points (counted before anything is listed).
    """
    grid_size(space)
    parts = [_enumerate(domain, path, f"space.{path}") for path, domain in space.params]
    return [
        dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*parts)
    ]


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """``grid_params`` as overrides, one dict per trial."""
    return [overrides_from_params(space, params) for params in grid_params(space)]


def num_trials(space: SearchSpace) -> int:
    """How many trials the search runs: the grid size under grid, else ``num_samples``."""
    if space.search.algorithm == "grid":
        return grid_size(space)
    return int(space.search.num_samples or 0)


def make_sampler(algorithm: str, seed: int, space: SearchSpace) -> Any:
    """The Optuna sampler for ``search.algorithm``.

    random: RandomSampler; tpe: multivariate TPE (grouped when the space is
    conditional); qmc: scrambled Sobol or Halton (``search.qmc_type``); cmaes: CMA-ES
    with a seeded random sampler for categorical and conditional parameters (warns,
    since CMA-ES only models the continuous ones). The same seed gives the same sequence
    of trials. (The grid algorithm has no sampler: the tuner hands ``grid_params`` to
    ``tune.grid_search``.)

    Raises:
        ConfigError: an algorithm without an Optuna sampler (grid, or an unknown one).
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if algorithm == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if algorithm == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                              group=space.is_conditional)
        if algorithm == "qmc":
            return optuna.samplers.QMCSampler(qmc_type=space.search.qmc_type, scramble=True,
                                              seed=seed, warn_independent_sampling=False)
        if algorithm == "cmaes":
            if space.is_conditional or any(isinstance(d, (Choice, Grid)) for _, d in space.params):
                warnings.warn(
                    "cmaes models only the numeric parameters; choices and branches are "
                    "sampled at random (consider tpe for this space)",
                    UserWarning,
                    stacklevel=2,
                )
            return optuna.samplers.CmaEsSampler(
                seed=seed,
                independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                warn_independent_sampling=False,
            )
    hint = "grid search runs through tune.grid_search over grid_params" \
        if algorithm == "grid" else None
    raise ConfigError(f"no Optuna sampler for the search algorithm {algorithm!r}",
                      key_path="search.algorithm", expected="one of random, qmc, tpe, cmaes",
                      given=algorithm, hint=hint)


def lookup(data: Any, key_path: str) -> Any:
    """The value at a dotted key path of plain containers, or ABSENT."""
    for part in key_path.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif (
            isinstance(data, (list, tuple))
            and part.lstrip("-").isdigit()
            and -len(data) <= int(part) < len(data)
        ):
            data = data[int(part)]
        else:
            return ABSENT
    return data


def _like_base(value: Any, base: Any) -> Any:
    """A list from YAML becomes a tuple where the base config has a tuple there.

    YAML has no tuples: ``betas: [0.95, 0.99]`` in a space file means the base's
    ``betas=(0.95, 0.99)``, and must not show up as a change of the config.
    """
    if isinstance(value, list) and isinstance(base, tuple):
        return tuple(_like_base(v, b) for v, b in zip(value, base)) + tuple(value[len(base):])
    if isinstance(value, list) and isinstance(base, list) and base:
        # items past the base's end follow its last item (workflow phases, say)
        return [_like_base(v, base[min(i, len(base) - 1)]) for i, v in enumerate(value)]
    if isinstance(value, Mapping) and isinstance(base, Mapping):
        return {k: _like_base(v, base.get(k, ABSENT)) for k, v in value.items()}
    return value


def apply_overrides(base_cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """A new Config: ``base_cfg`` with the overrides set (``base_cfg`` is not changed).

    A mapping value replaces the whole subtree at its key path (a chosen branch never
    inherits keys of the base's subtree); any other value is set as is. Missing dicts
    on the way are created, as ``Config.merge_from_dict`` does.

    Raises:
        ConfigError: a key path the base config cannot take (see merge_from_dict).
    """
    from rt3d_tune.config import Config

    cfg = copy.deepcopy(base_cfg) if isinstance(base_cfg, Config) else Config(base_cfg)
    plain = cfg.to_dict()
    for key, value in overrides.items():
        value = _like_base(copy.deepcopy(value), lookup(plain, key))
        if isinstance(value, Mapping):
            value = {**value, "_delete_": True}
        cfg.merge_from_dict({key: value})
    return cfg


def config_diff(base: Any, trial: Any) -> list[tuple[str, Any, Any]]:
    """Every leaf that differs between two configs: (dotted key path, old, new).

    Dicts are compared key by key, lists and tuples of equal length item by item; a
    key that one side lacks shows as ``ABSENT``.
    """
    diff: list[tuple[str, Any, Any]] = []

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in list(old) + [k for k in new if k not in old]:
                walk(
                    old.get(key, ABSENT),
                    new.get(key, ABSENT),
                    f"{path}.{key}" if path else str(key),
                )
        elif (isinstance(old, (list, tuple)) and isinstance(new, (list, tuple))
              and len(old) == len(new) and old != new
              and any(isinstance(x, (Mapping, list, tuple)) for x in (*old, *new))):
            for i, (a, b) in enumerate(zip(old, new)):
                walk(a, b, f"{path}.{i}")
        elif old != new or type(old) is not type(new):
            diff.append((path, old, new))

    walk(plain_dict(base), plain_dict(trial), "")
    return diff


def format_diff(diff: list[tuple[str, Any, Any]], indent: str = "  ") -> list[str]:
    """One line per difference: ``optimizer.lr: 0.01 -> 0.003``."""
    return [f"{indent}{path}: {old!r} -> {new!r}" for path, old, new in diff]
