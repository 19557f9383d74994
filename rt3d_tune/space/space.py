"""The search space file: read, check against the base config, and hold as a SearchSpace.

Everything here is pure and fast (no torch, no Ray). ``load_space`` reports the first
structural mistake as a ConfigError naming the file and the key path in it
(``space.lr_config.choice[1].warmup_iters``); semantic checks that need torch (is the
optimizer known, does the schedule build) live in ``rt3d_tune.space.validate``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rt3d_tune.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    Backend,
    backend_for,
    backend_named,
    read_config,
)
from rt3d_tune.config.keypaths import RUNTIME_KEYS, check_key_path, plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.domains import Choice, Domain, Grid, domain_name, parse_domain, walk_domains
from rt3d_tune.space.schema import check_known_keys, check_mapping, check_one_of, read_yaml
from rt3d_tune.space.sections import (
    ALGORITHMS,
    SCHEDULERS,
    Confirm,
    Resources,
    SchedulerSettings,
    SearchSettings,
    Stop,
    fixed_overrides,
    parse_resources,
    parse_scheduler,
    parse_search,
    parse_stop,
)
from rt3d_tune.storage import parse_storage

__all__ = [
    "ALGORITHMS",
    "SCHEDULERS",
    "Confirm",
    "Resources",
    "SchedulerSettings",
    "SearchSettings",
    "SearchSpace",
    "Stop",
    "check_resources",
    "load_run_space",
    "load_space",
    "parse_space",
    "plain_dict",
]

MODES = ("max", "min")


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
        base_config: the loaded base Config (an mmengine config's plain-dict view).
        backend: the :class:`~rt3d_tune.backends.base.Backend` that reads and trains
            the base config (``backend:``, else the one that detects it).
        storage: ``storage:``, where runs of this space are kept (a path every node
            mounts, or a URI such as ``s3://bucket/prefix``); ``--storage`` wins.
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
    backend: Backend = field(default_factory=lambda: backend_named(DEFAULT_BACKEND))
    storage: str | None = None

    @property
    def is_conditional(self) -> bool:
        """True when any choice has branches (mappings) or nested domains."""
        return any(isinstance(d, (Choice, Grid)) and d.is_conditional for _, d in self.params)

    @property
    def max_epochs(self) -> int | None:
        """Epochs per trial: ``stop.max_epochs``, else the base runner's.

        None for iteration runners.
        """
        if self.stop.max_epochs is not None:
            return self.stop.max_epochs
        return self.backend.base_max_epochs(plain_dict(self.base_config))

    @property
    def max_fidelity(self) -> int:
        """The most fidelities a trial can report (Tune's ``max_t``): epochs, evaluation
        rounds of an iteration runner, validation rounds of mmengine trials (the
        backend's ``fidelity_unit``)."""
        return self.backend.max_fidelity(plain_dict(self.base_config), self.max_epochs)


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


def parse_space(
    data: Any, file: str | Path, base_config: Any, base_path: str | Path
) -> SearchSpace:
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
    check_known_keys(top, ("base", "backend", "metric", "mode", "space", "search", "scheduler",
                           "resources", "stop", "storage"), "")
    metric, mode = _parse_objective(top)
    base = plain_dict(base_config)
    backend = _parse_backend(top, base)
    params = _parse_params(check_mapping(top["space"], "space"), base, backend.runtime_keys)
    search_section = check_mapping(top.get("search"), "search")
    search = parse_search(search_section, lambda: _check_grid(params))
    resources, concurrent = parse_resources(check_mapping(top.get("resources"), "resources"),
                                            search_section)
    stop = parse_stop(check_mapping(top.get("stop"), "stop"), base, backend)
    fixed = fixed_overrides(stop, base, [path for path, _ in params], backend)
    max_epochs = stop.max_epochs if stop.max_epochs is not None \
        else backend.base_max_epochs(base)
    scheduler = parse_scheduler(check_mapping(top.get("scheduler"), "scheduler"), max_epochs)
    if scheduler.type == "pbt" and search.baseline:
        if "baseline" in search_section:
            raise ConfigError("PBT changes every member's config as it trains: no member "
                              "stays the base config", key_path="search.baseline",
                              expected="false (or left out) under scheduler.type pbt",
                              given=True, hint="remove search.baseline")
        search = replace(search, baseline=False)
    return SearchSpace(
        file=file,
        base_path=base_path,
        metric=metric,
        mode=mode,
        params=tuple(params),
        search=search,
        scheduler=scheduler,
        resources=resources,
        stop=stop,
        max_concurrent=concurrent,
        fixed_overrides=fixed,
        base_config=base_config,
        backend=backend,
        storage=parse_storage(top["storage"], "storage") if top.get("storage") else None,
    )


def _parse_backend(top: Mapping[str, Any], base: Mapping[str, Any]) -> Backend:
    """``backend:`` when given, else the backend that detects the base config."""
    detected = backend_for(base)
    if "backend" not in top:
        return detected
    backend = backend_named(top["backend"], "backend")
    if backend != detected:
        raise ConfigError(f"the base config is an {detected.name} config (it sets "
                          f"{detected.signature})", key_path="backend", given=top["backend"],
                          hint=f"backend: {detected.name}, or leave backend out")
    return backend


def _parse_objective(top: Mapping[str, Any]) -> tuple[str, str]:
    """``metric`` and ``mode`` (``space`` must be there too)."""
    for key in ("metric", "mode", "space"):
        if key not in top:
            raise ConfigError(f"the space file needs {key!r}", key_path=key,
                              hint="see search_spaces/quickstart.yaml for a complete file")
    metric = top["metric"]
    if not isinstance(metric, str) or not metric:
        raise ConfigError("metric must be the name of an evaluation metric", key_path="metric",
                          expected="a string such as bev_mAP", given=metric)
    return metric, check_one_of(top["mode"], MODES, "mode")


def _parse_params(space: Mapping[str, Any], base: Mapping[str, Any],
                  runtime_keys: tuple[str, ...] = RUNTIME_KEYS) -> list[tuple[str, Domain]]:
    """The ``space`` section as (key path, domain), each key path checked against the base
    (``runtime_keys``: the top-level keys a space may create)."""
    if not space:
        raise ConfigError("the space is empty", key_path="space",
                          hint="name at least one key path with a domain")
    params = _flatten_space(space, "")
    _check_overlaps(params)
    for path, _ in params:
        check_key_path(base, path, runtime_keys)
    return params


def _check_grid(params: list[tuple[str, Domain]]) -> None:
    """The grid algorithm enumerates choices and grids only."""
    for path, domain in (hit for p, d in params for hit in walk_domains(d, f"space.{p}")):
        if not isinstance(domain, (Choice, Grid)):
            raise ConfigError(
                f"the grid algorithm cannot enumerate a {type(domain).__name__} domain",
                key_path=path,
                hint="use grid or choice with listed values, or another algorithm",
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
    base_config = _load_base(base_path, data.get("backend"))
    return parse_space(data, file, base_config, base_path)


def _load_base(path: Path, backend: Any) -> Any:
    """The base config, read by the backend the space names (``backend``), else by the
    one that detects it before any of its ``custom_imports`` run.

    Raises:
        ConfigError: the file does not load.
    """
    # An unknown name is told by parse_space, against the space file.
    name = backend if isinstance(backend, str) and backend in BACKENDS else None
    try:
        return read_config(path, name)[1]
    except ConfigError as err:
        raise err.with_context(file=str(path)) from None


def check_resources(space: SearchSpace, available: Mapping[str, float]) -> None:
    """Check that one trial (all its workers together) fits the cluster.

    Args:
        space: the parsed space.
        available: Ray's cluster resources (``ray.cluster_resources()``: 'CPU', 'GPU').

    Raises:
        ConfigError: a trial asks for more CPUs or GPUs than the cluster has; with
            several workers, ``resources.workers`` when fewer of them would fit.
    """
    res = space.resources
    for key, name, each, asked in (("CPU", "cpu", res.cpu, res.trial_cpu),
                                   ("GPU", "gpu", res.gpu, res.trial_gpu)):
        have = float(available.get(key, 0))
        if res.workers == 1:
            if asked > have:
                raise ConfigError(
                    f"each trial asks for {asked:g} {key}s but the cluster has {have:g}",
                    file=str(space.file),
                    key_path=f"resources.{name}",
                    expected=f"at most {have:g}",
                    given=asked,
                    hint="lower it, or join a cluster with more (--address)",
                )
            continue
        if asked <= have or math.isclose(asked, have):
            continue
        message = (f"each trial asks for {res.workers} workers x {each:g} {key}s = "
                   f"{asked:g} {key}s but the cluster has {have:g}")
        if each > have:  # not even one worker fits: fewer workers would not help
            raise ConfigError(message, file=str(space.file), key_path=f"resources.{name}",
                              expected=f"at most {have:g} per worker", given=each,
                              hint="lower it, or join a cluster with more (--address)")
        fit = math.floor(have / each + 1e-9)  # 0.3 / 0.1 is 2.999...
        raise ConfigError(message, file=str(space.file), key_path="resources.workers",
                          expected=f"at most {fit} workers of {each:g} {key}s", given=res.workers,
                          hint=f"use workers: {fit}, lower {name} per worker, or join a "
                               "cluster with more (--address)")


def load_run_space(run_dir: Path, info: dict[str, Any], base: Any = None) -> Any:
    """The run's SearchSpace, from its copies (valid even if the originals moved);
    ``base``: ``base_config.py`` when the caller has it loaded already."""
    from rt3d_tune.config import Config

    if base is None:
        base = Config.fromfile(str(run_dir / "base_config.py"), import_custom_modules=False)
    space_file = run_dir / "space.yaml"
    return parse_space(read_yaml(space_file), space_file, base, info["base_path"])
