"""The search space file: read, check against the base config, and hold as a SearchSpace.

Everything here is pure and fast (no torch, no Ray). ``load_space`` reports the first
structural mistake as a ConfigError naming the file and the key path in it
(``space.lr_config.choice[1].warmup_iters``); semantic checks that need torch (is the
optimizer known, does the schedule build) live in ``rt3d_tune.search.validate``.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rt3d_tune.errors import ConfigError
from rt3d_tune.search.domains import Choice, Domain, Grid, domain_name, parse_domain, walk_domains

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
# Top-level runtime keys a space may create even when the base config lacks them; any
# other top-level key must exist in the base (a new one is almost always a typo).
RUNTIME_KEYS = (
    "optimizer", "optimizer_config", "lr_config", "momentum_config", "custom_hooks",
    "checkpoint_config", "log_config", "evaluation", "runner", "workflow", "fp16",
)
# A new key under an existing dict this close to a sibling is reported as a typo.
_TYPO_CUTOFF = 0.8


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


def plain_dict(cfg: Any) -> dict[str, Any]:
    """A Config (or any nested mapping) as plain nested dicts and lists."""
    if cfg is None:
        return {}
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return convert(cfg)


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-4`` as a float (YAML 1.2) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("space file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the space file: {err}", file=str(path)) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        hint = None
        if "python/" in str(err) or "could not determine a constructor" in str(err):
            hint = "space files are plain YAML; tags such as !!python/object are refused"
        raise ConfigError(f"{line}invalid YAML: {problem}", file=str(path), hint=hint) from None


def _unknown_keys(section: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            raise ConfigError(
                f"unknown key {key!r}",
                key_path=f"{prefix}.{key}" if prefix else str(key),
                expected=f"one of {', '.join(allowed)}",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )


def _number(value: Any, path: str, *, integer: bool = False, minimum: float | None = None,
            above: float | None = None, maximum: float | None = None) -> Any:
    """Check a number read from the file; returns it unchanged."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer and not isinstance(value, int):
        ok = False
    bound = ""
    if ok and minimum is not None and value < minimum:
        ok, bound = False, f" >= {minimum}"
    if ok and above is not None and value <= above:
        ok, bound = False, f" > {above}"
    if ok and maximum is not None and value > maximum:
        ok, bound = False, f" <= {maximum}"
    if not ok:
        if not bound:
            bound = "".join(
                text for text, limit in ((f" >= {minimum}", minimum), (f" > {above}", above),
                                         (f" <= {maximum}", maximum)) if limit is not None
            )
        raise ConfigError(f"must be {kind}{bound}", key_path=path, expected=f"{kind}{bound}",
                          given=value)
    return value


def _one_of(value: Any, choices: tuple[str, ...], path: str) -> str:
    if value not in choices:
        close = difflib.get_close_matches(str(value).lower(), choices, n=1, cutoff=0.5)
        raise ConfigError(
            f"unknown value {value!r}",
            key_path=path,
            expected=f"one of {', '.join(choices)}",
            given=value,
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    return value


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping", key_path=path, expected="key: value lines",
                          given=value)
    return value


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


def check_key_path(base: Mapping[str, Any], path: str) -> None:
    """Check that a dotted key path exists in ``base`` or can be created there.

    A key may be created under a dict that exists (or a None value, which becomes a
    dict); integer segments index lists and must be in range. A new top-level key must
    be a runtime key (``lr_config``, ...). A new key that closely matches an existing
    sibling is reported as a typo.

    Raises:
        ConfigError: with key path ``space.<path>``, the closest existing keys as hint.
    """
    segments = path.split(".")
    node: Any = base
    for i, seg in enumerate(segments):
        here = ".".join(segments[: i + 1])
        where = f"space.{path}"
        if node is None:
            return
        if isinstance(node, (list, tuple)):
            if not seg.isdigit() or int(seg) >= len(node):
                raise ConfigError(
                    f"{'.'.join(segments[:i]) or 'the config'} is a list of {len(node)} in the "
                    f"base config; {seg!r} is not an index in it",
                    key_path=where,
                    expected=f"an index from 0 to {len(node) - 1}" if node else "a non-empty list",
                    given=seg,
                )
            node = node[int(seg)]
            continue
        if not isinstance(node, Mapping):
            parent = ".".join(segments[:i])
            raise ConfigError(
                f"cannot set {here!r}: {parent!r} is {node!r} in the base config, not a dict",
                key_path=where,
                hint=f"tune {parent!r} itself, e.g. with a choice of mappings",
            )
        if seg in node:
            node = node[seg]
            continue
        if i == 0 and seg in RUNTIME_KEYS:
            return
        names = [str(key) for key in node]
        if i == 0:
            names += [key for key in RUNTIME_KEYS if key not in node]
        close = difflib.get_close_matches(seg, names, n=3, cutoff=0.6 if i == 0 else _TYPO_CUTOFF)
        if i == 0 or close:
            raise ConfigError(
                f"{here!r} is not in the base config",
                key_path=where,
                hint=f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                else "check the spelling against the base config (rt3d-tune config BASE)",
            )
        return


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
        "grace_period": (1, lambda v, p: _number(v, p, integer=True, minimum=1)),
        "reduction_factor": (4, lambda v, p: _number(v, p, above=1)),
        "brackets": (1, lambda v, p: _number(v, p, integer=True, minimum=1)),
    },
    "hyperband": {"reduction_factor": (3, lambda v, p: _number(v, p, above=1))},
    "median": {
        "grace_period": (1, lambda v, p: _number(v, p, integer=True, minimum=1)),
        "min_samples_required": (3, lambda v, p: _number(v, p, integer=True, minimum=1)),
    },
    "pbt": {
        "perturbation_interval": (1, lambda v, p: _number(v, p, integer=True, minimum=1)),
        "quantile_fraction": (0.25, lambda v, p: _number(v, p, minimum=0, maximum=0.5)),
        "resample_probability": (0.25, lambda v, p: _number(v, p, minimum=0, maximum=1)),
    },
}


def _parse_scheduler(section: Mapping[str, Any], max_epochs: int | None) -> SchedulerSettings:
    kind = _one_of(section.get("type", "fifo"), SCHEDULERS, "scheduler.type")
    spec = _SCHEDULER_ARGS[kind]
    _unknown_keys(section, ("type", *spec), "scheduler")
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
    top = _mapping(data, "")
    _unknown_keys(top, ("base", "metric", "mode", "space", "search", "scheduler", "resources",
                        "stop"), "")
    for key in ("metric", "mode", "space"):
        if key not in top:
            raise ConfigError(f"the space file needs {key!r}", key_path=key,
                              hint="see search_spaces/quickstart.yaml for a complete file")
    metric = top["metric"]
    if not isinstance(metric, str) or not metric:
        raise ConfigError("metric must be the name of an evaluation metric", key_path="metric",
                          expected="a string such as bev_mAP", given=metric)
    mode = _one_of(top["mode"], MODES, "mode")
    base = plain_dict(base_config)

    space = _mapping(top["space"], "space")
    if not space:
        raise ConfigError("the space is empty", key_path="space",
                          hint="name at least one key path with a domain")
    params = _flatten_space(space, "")
    _check_overlaps(params)
    for path, _ in params:
        check_key_path(base, path)

    search = _mapping(top.get("search"), "search")
    _unknown_keys(search, ("algorithm", "num_samples", "seed", "max_concurrent", "qmc_type"),
                  "search")
    algorithm = _one_of(search.get("algorithm", "random"), ALGORITHMS, "search.algorithm")
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
        num_samples = _number(search.get("num_samples", 10), "search.num_samples",
                              integer=True, minimum=1)
    settings = SearchSettings(
        algorithm=algorithm,
        num_samples=num_samples,
        seed=_number(search.get("seed", 0), "search.seed", integer=True, minimum=0),
        qmc_type=_one_of(search.get("qmc_type", "sobol"), QMC_TYPES, "search.qmc_type"),
    )

    resources = _mapping(top.get("resources"), "resources")
    _unknown_keys(resources, ("cpu", "gpu", "max_concurrent"), "resources")
    gpu = _number(resources.get("gpu", 0), "resources.gpu", minimum=0)
    if gpu > 1 and gpu != int(gpu):
        raise ConfigError("a trial may use a fraction of one GPU, or whole GPUs",
                          key_path="resources.gpu", given=gpu, hint=f"use {math.ceil(gpu)}")
    res = Resources(cpu=float(_number(resources.get("cpu", 1), "resources.cpu", above=0)),
                    gpu=float(gpu))
    if "max_concurrent" in search and "max_concurrent" in resources:
        raise ConfigError("max_concurrent is set twice", key_path="resources.max_concurrent",
                          hint="keep it in one place (search or resources)")
    where = "search" if "max_concurrent" in search else "resources"
    concurrent = {**search, **resources}.get("max_concurrent")
    if concurrent is not None:
        _number(concurrent, f"{where}.max_concurrent", integer=True, minimum=1)

    stop_section = _mapping(top.get("stop"), "stop")
    _unknown_keys(stop_section, ("max_epochs", "time_budget_s"), "stop")
    stop = Stop(
        max_epochs=None if stop_section.get("max_epochs") is None else _number(
            stop_section["max_epochs"], "stop.max_epochs", integer=True, minimum=1),
        time_budget_s=None if stop_section.get("time_budget_s") is None else float(_number(
            stop_section["time_budget_s"], "stop.time_budget_s", above=0)),
    )
    fixed = _fixed_overrides(stop, base, params)
    max_epochs = stop.max_epochs if stop.max_epochs is not None else _base_max_epochs(base)
    scheduler = _parse_scheduler(_mapping(top.get("scheduler"), "scheduler"), max_epochs)
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
    data = _read_yaml(file)
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
