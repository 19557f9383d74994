"""The search space file: read, check against the base config, and hold as a SearchSpace.

Everything here is pure and fast (no torch, no Ray). ``load_space`` reports the first
structural mistake as a ConfigError naming the file and the key path in it
(``space.lr_config.choice[1].warmup_iters``); semantic checks that need torch (is the
optimizer known, does the schedule build) live in ``rt3d_tune.space.validate``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.space.domains import Choice, Domain, Grid, domain_name, parse_domain, walk_domains
from rt3d_tune.space.keypaths import check_key_path, plain_dict
from rt3d_tune.space.schema import (
    check_bool,
    check_known_keys,
    check_mapping,
    check_number,
    check_one_of,
    read_yaml,
)

__all__ = [
    "ALGORITHMS",
    "SCHEDULERS",
    "Resources",
    "SchedulerSettings",
    "SearchSettings",
    "SearchSpace",
    "Stop",
    "check_resources",
    "load_space",
    "parse_space",
    "plain_dict",
]

ALGORITHMS = ("random", "grid", "qmc", "tpe", "cmaes")
SCHEDULERS = ("fifo", "asha", "hyperband", "median", "pbt")
QMC_TYPES = ("sobol", "halton")
MODES = ("max", "min")


@dataclass(frozen=True)
class SearchSettings:
    """``search:``: the Optuna algorithm, trial count (None under grid: the grid decides), seed."""

    algorithm: str = "random"
    num_samples: int | None = 10
    seed: int = 0
    qmc_type: str = "sobol"


@dataclass(frozen=True)
class SchedulerSettings:
    """``scheduler:``: the Tune scheduler and its arguments (Tune's keyword names; epochs)."""

    type: str = "fifo"
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    """``resources:``: per trial; ``gpu`` may be a fraction of one GPU."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class Stop:
    """``stop:``: ``max_epochs`` (sets the trial's runner) and a wall-clock budget in seconds."""

    max_epochs: int | None = None
    time_budget_s: float | None = None


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, checked space file.

    Attributes:
        file: the space file.
        base_path: the base config file (absolute).
        metric, mode: what to optimize ('max' or 'min').
        params: (config key path, domain) in file order; the key paths are checked
            against the base config.
        search, scheduler, resources, stop: the sections.
        max_concurrent: trials at once (from ``search`` or ``resources``), None = Ray decides.
        fixed_overrides: overrides every trial gets (``stop.max_epochs`` -> the runner).
        base_config: the loaded base Config.
    """

    file: Path
    base_path: Path
    metric: str
    mode: str
    params: tuple[tuple[str, Domain], ...]
    search: SearchSettings
    scheduler: SchedulerSettings
    resources: Resources
    stop: Stop
    max_concurrent: int | None = None
    fixed_overrides: Mapping[str, Any] = field(default_factory=dict)
    base_config: Any = field(default=None, compare=False, repr=False)

    @property
    def is_conditional(self) -> bool:
        """True when any choice has branches (mappings) or nested domains."""
        return any(isinstance(d, (Choice, Grid)) and d.is_conditional for _, d in self.params)

    @property
    def max_epochs(self) -> int | None:
        """Epochs per trial: ``stop.max_epochs``, else the base runner's; None for iteration runners."""
        if self.stop.max_epochs is not None:
            return self.stop.max_epochs
        return _base_max_epochs(plain_dict(self.base_config))


def _flatten_space(node: Mapping[str, Any], prefix: str) -> list[tuple[str, Domain]]:
    """Nested mappings of the ``space`` section -> (dotted key path, domain)."""
    found: list[tuple[str, Domain]] = []
    for key, value in node.items():
        if not isinstance(key, str) or not key or any(not seg for seg in key.split(".")):
            raise ConfigError("a key path must be dotted names", key_path=f"space.{prefix}{key}",
                              expected="names joined by dots (optimizer.lr)", given=key)
        path = f"{prefix}{key}"
        where = f"space.{path}"
        name = domain_name(value, where)
        if name is not None:
            found.append((path, parse_domain(name, value, where)))
        elif isinstance(value, Mapping) and value:
            found += _flatten_space(value, f"{path}.")
        else:
            raise ConfigError(
                "expected a domain",
                key_path=where,
                expected="{uniform|loguniform|int|logint: [low, high]}, {choice: [...]} or "
                "{grid: [...]}",
                given=value,
                hint="fixed values belong in the base config; a single fixed value can be "
                "written {choice: [value]}",
            )
    return found


def _check_overlaps(params: list[tuple[str, Domain]]) -> None:
    paths = sorted(path for path, _ in params)
    for first, second in itertools.pairwise(paths):
        if first == second or second.startswith(first + "."):
            raise ConfigError(
                f"key paths overlap: {first!r} and {second!r}",
                key_path=f"space.{second}",
                hint=f"tune {second!r} inside the branches of {first!r}, or drop one",
            )


def _base_max_epochs(base: Mapping[str, Any]) -> int | None:
    runner = base.get("runner")
    if isinstance(runner, Mapping):
        return runner.get("max_epochs")
    return base.get("total_epochs")


def _fixed_overrides(stop: Stop, base: Mapping[str, Any],
                     params: list[tuple[str, Domain]]) -> dict[str, Any]:
    if stop.max_epochs is None:
        return {}
    runner = base.get("runner")
    if isinstance(runner, Mapping) and "max_iters" in runner:
        raise ConfigError(
            "stop.max_epochs needs an epoch-based runner, but the base config sets max_iters",
            key_path="stop.max_epochs",
            hint="set runner.max_iters in the base config and leave stop.max_epochs out",
        )
    key = "runner.max_epochs" if isinstance(runner, Mapping) or "total_epochs" not in base \
        else "total_epochs"
    for path, _ in params:
        if path in ("runner", key) or path.startswith("runner."):
            raise ConfigError(
                f"stop.max_epochs sets {key} and the space tunes {path!r}",
                key_path="stop.max_epochs",
                hint="keep one of them",
            )
    if not isinstance(runner, Mapping) and key == "runner.max_epochs":
        return {"runner": {"type": "EpochBasedRunner", "max_epochs": stop.max_epochs}}
    return {key: stop.max_epochs}


_SCHEDULER_ARGS: dict[str, dict[str, tuple[Any, Callable[[Any, str], Any]]]] = {
    "fifo": {},
    "asha": {
        "grace_period": (1, lambda v, p: check_number(v, p, integer=True, minimum=1)),
        "reduction_factor": (4, lambda v, p: check_number(v, p, above=1)),
        "brackets": (1, lambda v, p: check_number(v, p, integer=True, minimum=1)),
    },
    "hyperband": {"reduction_factor": (3, lambda v, p: check_number(v, p, above=1))},
    "median": {
        "grace_period": (1, lambda v, p: check_number(v, p, integer=True, minimum=1)),
        "min_samples_required": (3, lambda v, p: check_number(v, p, integer=True, minimum=1)),
    },
    "pbt": {
        "perturbation_interval": (1, lambda v, p: check_number(v, p, integer=True, minimum=1)),
        "quantile_fraction": (0.25, lambda v, p: check_number(v, p, minimum=0, maximum=0.5)),
        "resample_probability": (0.25, lambda v, p: check_number(v, p, minimum=0, maximum=1)),
        # synchronous PBT: every trial waits at each perturbation point for the others
        "synch": (False, check_bool),
    },
}


def _parse_scheduler(section: Mapping[str, Any], max_epochs: int | None) -> SchedulerSettings:
    kind = check_one_of(section.get("type", "fifo"), SCHEDULERS, "scheduler.type")
    spec = _SCHEDULER_ARGS[kind]
    check_known_keys(section, ("type", *spec), "scheduler")
    args = {name: check(section.get(name, default), f"scheduler.{name}")
            for name, (default, check) in spec.items()}
    for name in ("grace_period", "perturbation_interval"):
        if name in args and max_epochs is not None and args[name] > max_epochs:
            raise ConfigError(
                f"{name} is longer than a trial ({max_epochs} epochs)",
                key_path=f"scheduler.{name}",
                expected=f"at most {max_epochs}",
                given=args[name],
            )
    return SchedulerSettings(kind, args)


def parse_space(data: Any, file: str | Path, base_config: Any, base_path: str | Path) -> SearchSpace:
    """Check a loaded space file (a mapping) against its already loaded base config.

    Raises:
        ConfigError: the first mistake, with ``file`` and the key path in the space file.
    """
    file = Path(file)
    try:
        return _parse(data, file, base_config, Path(base_path))
    except ConfigError as err:
        raise err.with_context(file=str(file)) from None


def _parse(data: Any, file: Path, base_config: Any, base_path: Path) -> SearchSpace:
    top = check_mapping(data, "")
    check_known_keys(top, ("base", "metric", "mode", "space", "search", "scheduler", "resources",
                        "stop"), "")
    for key in ("metric", "mode", "space"):
        if key not in top:
            raise ConfigError(f"the space file needs {key!r}", key_path=key,
                              hint="see search_spaces/quickstart.yaml for a complete file")
    metric = top["metric"]
    if not isinstance(metric, str) or not metric:
        raise ConfigError("metric must be the name of an evaluation metric", key_path="metric",
                          expected="a string such as bev_mAP", given=metric)
    mode = check_one_of(top["mode"], MODES, "mode")
    base = plain_dict(base_config)

    space = check_mapping(top["space"], "space")
    if not space:
        raise ConfigError("the space is empty", key_path="space",
                          hint="name at least one key path with a domain")
    params = _flatten_space(space, "")
    _check_overlaps(params)
    for path, _ in params:
        check_key_path(base, path)

    search = check_mapping(top.get("search"), "search")
    check_known_keys(search, ("algorithm", "num_samples", "seed", "max_concurrent", "qmc_type"),
                  "search")
    algorithm = check_one_of(search.get("algorithm", "random"), ALGORITHMS, "search.algorithm")
    if algorithm == "grid":
        for path, domain in (hit for p, d in params for hit in walk_domains(d, f"space.{p}")):
            if not isinstance(domain, (Choice, Grid)):
                raise ConfigError(
                    f"the grid algorithm cannot enumerate a {type(domain).__name__} domain",
                    key_path=path,
                    hint="use grid or choice with listed values, or another algorithm",
                )
        if "num_samples" in search:
            raise ConfigError("under the grid algorithm the grid decides the number of trials",
                              key_path="search.num_samples", hint="remove num_samples")
        num_samples = None
    else:
        num_samples = check_number(search.get("num_samples", 10), "search.num_samples",
                              integer=True, minimum=1)
    settings = SearchSettings(
        algorithm=algorithm,
        num_samples=num_samples,
        seed=check_number(search.get("seed", 0), "search.seed", integer=True, minimum=0),
        qmc_type=check_one_of(search.get("qmc_type", "sobol"), QMC_TYPES, "search.qmc_type"),
    )

    resources = check_mapping(top.get("resources"), "resources")
    check_known_keys(resources, ("cpu", "gpu", "max_concurrent"), "resources")
    gpu = check_number(resources.get("gpu", 0), "resources.gpu", minimum=0)
    if gpu > 1 and gpu != int(gpu):
        raise ConfigError("a trial may use a fraction of one GPU, or whole GPUs",
                          key_path="resources.gpu", given=gpu, hint=f"use {math.ceil(gpu)}")
    res = Resources(cpu=float(check_number(resources.get("cpu", 1), "resources.cpu", above=0)),
                    gpu=float(gpu))
    if "max_concurrent" in search and "max_concurrent" in resources:
        raise ConfigError("max_concurrent is set twice", key_path="resources.max_concurrent",
                          hint="keep it in one place (search or resources)")
    where = "search" if "max_concurrent" in search else "resources"
    concurrent = {**search, **resources}.get("max_concurrent")
    if concurrent is not None:
        check_number(concurrent, f"{where}.max_concurrent", integer=True, minimum=1)

    stop_section = check_mapping(top.get("stop"), "stop")
    check_known_keys(stop_section, ("max_epochs", "time_budget_s"), "stop")
    stop = Stop(
        max_epochs=None if stop_section.get("max_epochs") is None else check_number(
            stop_section["max_epochs"], "stop.max_epochs", integer=True, minimum=1),
        time_budget_s=None if stop_section.get("time_budget_s") is None else float(check_number(
            stop_section["time_budget_s"], "stop.time_budget_s", above=0)),
    )
    fixed = _fixed_overrides(stop, base, params)
    max_epochs = stop.max_epochs if stop.max_epochs is not None else _base_max_epochs(base)
    scheduler = _parse_scheduler(check_mapping(top.get("scheduler"), "scheduler"), max_epochs)
    return SearchSpace(
        file=file,
        base_path=base_path,
        metric=metric,
        mode=mode,
        params=tuple(params),
        search=settings,
        scheduler=scheduler,
        resources=res,
        stop=stop,
        max_concurrent=concurrent,
        fixed_overrides=fixed,
        base_config=base_config,
    )


def load_space(path: str | Path) -> SearchSpace:
    """Read a space file, load its base config, and check the space against it.

    Args:
        path: the space YAML file; its ``base`` is relative to it.

    Raises:
        ConfigError: bad YAML (with the line), a missing or broken base config, or any
            mistake in the space, named by file and key path.
    """
    file = Path(path)
    data = read_yaml(file)
    if not isinstance(data, Mapping):
        raise ConfigError("a space file is a mapping of base, metric, mode, space, ...",
                          file=str(file), given=data)
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise ConfigError("the space file needs 'base', the path of the base config",
                          file=str(file), key_path="base", given=base,
                          hint="a path relative to the space file, e.g. ../configs/x.py")
    base_path = (file.parent / base).resolve()
    if not base_path.is_file():
        raise ConfigError("base config not found", file=str(file), key_path="base",
                          given=base, hint=f"looked for {base_path}")
    from rt3d_tune.config import Config

    try:
        base_config = Config.fromfile(str(base_path))
    except ConfigError as err:
        raise err.with_context(file=str(base_path)) from None
    return parse_space(data, file, base_config, base_path)


def check_resources(space: SearchSpace, available: Mapping[str, float]) -> None:
    """Check that one trial fits the cluster.

    Args:
        space: the parsed space.
        available: Ray's cluster resources (``ray.cluster_resources()``: 'CPU', 'GPU').

    Raises:
        ConfigError: a trial asks for more CPUs or GPUs than the cluster has.
    """
    for key, name, asked in (("CPU", "cpu", space.resources.cpu),
                             ("GPU", "gpu", space.resources.gpu)):
        have = float(available.get(key, 0))
        if asked > have:
            raise ConfigError(
                f"each trial asks for {asked:g} {key}s but the cluster has {have:g}",
                file=str(space.file),
                key_path=f"resources.{name}",
                expected=f"at most {have:g}",
                given=asked,
                hint="lower it, or join a cluster with more (--address)",
            )
