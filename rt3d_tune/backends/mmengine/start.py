"""A trial's start on mmengine's Runner: everything ``Runner.train()`` builds before its
first iteration, with the config's mistakes said in rt3d-tune's words.

:func:`start_runner` is what an mmengine trial, ``rt3d-tune train`` of an mmengine config
and ``validate`` all call: it checks the config (:func:`config_problems`), then builds
the Runner and, through mmengine's own builders, its train loop (the data loader, to its
length), optim wrapper, param schedulers and validation loop, in the order
``Runner.train()`` builds them; ``runner.train()`` then finds them built.

:func:`config_problems` finds what mmengine would report in its own words, or not at
all: a ``type`` no registry has (the key path, the value, the closest registered names,
else the hint to ``custom_imports``: mmengine says "None is not a callable object" for a
misspelt optimizer), an argument the registered class does not take, and values no
library refuses (``rt3d_tune.runtime_checks``: a ``val_interval`` of 0 divides by zero
after the first epoch, a negative ``clip_grad.max_norm`` climbs the loss).
"""

from __future__ import annotations

import inspect
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rt3d_tune.backends.mmengine.dialect import default_scope, require_mmengine
from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import closest_names, unknown_name_error
from rt3d_tune.runtime_checks import check_count, check_max_norm

__all__ = ["config_problems", "dry_start_mmengine", "start_runner"]

_RUN_IDS = itertools.count()


def _entries(value: Any, key_path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(key path, dict) of a config dict, or of each dict of a list of them."""
    if isinstance(value, Mapping):
        yield key_path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield f"{key_path}.{i}", item


def _schedulers(value: Any, key_path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``param_scheduler`` entries: a dict, a list, or one list per optimizer (by name)."""
    if isinstance(value, Mapping) and "type" not in value:
        for name, item in value.items():
            yield from _entries(item, f"{key_path}.{name}")
    else:
        yield from _entries(value, key_path)


def _typed(cfg: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], str, bool]]:
    """(key path, dict, registry name, check its arguments) of every ``type`` the Runner
    builds from the config's top level."""
    yield from (("model", cfg["model"], "MODELS", False),) if isinstance(
        cfg.get("model"), Mapping) else ()
    wrapper = cfg.get("optim_wrapper")
    if isinstance(wrapper, Mapping):
        yield "optim_wrapper", wrapper, "OPTIM_WRAPPERS", False
        yield from ((path, entry, "OPTIMIZERS", True)
                    for path, entry in _entries(wrapper.get("optimizer"),
                                                "optim_wrapper.optimizer"))
    yield from ((path, entry, "PARAM_SCHEDULERS", True)
                for path, entry in _schedulers(cfg.get("param_scheduler"), "param_scheduler"))
    for key in ("train_cfg", "val_cfg", "test_cfg"):
        yield from ((path, entry, "LOOPS", True) for path, entry in _entries(cfg.get(key), key))
    hooks = cfg.get("default_hooks")
    for name, hook in (hooks.items() if isinstance(hooks, Mapping) else ()):
        yield from ((path, entry, "HOOKS", True)
                    for path, entry in _entries(hook, f"default_hooks.{name}"))
    yield from ((path, entry, "HOOKS", True)
                for path, entry in _entries(cfg.get("custom_hooks"), "custom_hooks"))
    for phase in ("train", "val", "test"):
        loader = cfg.get(f"{phase}_dataloader")
        if isinstance(loader, Mapping):
            for key, registry in (("dataset", "DATASETS"), ("sampler", "DATA_SAMPLERS")):
                yield from ((path, entry, registry, False)
                            for path, entry in _entries(loader.get(key),
                                                        f"{phase}_dataloader.{key}"))
        yield from ((path, entry, "METRICS", False)
                    for path, entry in _entries(cfg.get(f"{phase}_evaluator"),
                                                f"{phase}_evaluator"))
    for key, registry in (("visualizer", "VISUALIZERS"), ("log_processor", "LOG_PROCESSORS")):
        yield from ((path, entry, registry, False)
                    for path, entry in _entries(cfg.get(key), key))


def _registered_names(registry: Any) -> list[str]:
    """Every name of ``registry`` and of its scopes' child registries."""
    names = set(registry.module_dict)
    for child in registry.children.values():
        names.update(_registered_names(child))
    return sorted(names)


def _accepted(cls: Any) -> list[str] | None:
    """The keyword arguments ``cls`` takes, following ``**kwargs`` handed on to the next
    ``__init__`` of its MRO (mmengine's LR mixins); None when it takes any keyword."""
    inits = ([klass.__dict__["__init__"] for klass in inspect.getmro(cls)
              if "__init__" in klass.__dict__] if isinstance(cls, type) else [cls])
    names: list[str] = []
    for init in inits:
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names += [p.name for p in params if p.name != "self" and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return names
    return None


def _check_arguments(cls: Any, entry: Mapping[str, Any], key_path: str) -> None:
    """Refuse a key of ``entry`` that ``cls`` does not take (unless it takes any keyword)."""
    accepted = _accepted(cls)
    if accepted is None:
        return
    for key in entry:
        if key != "type" and key not in accepted:
            close = closest_names(str(key), accepted)
            raise ConfigError(f"{getattr(cls, '__name__', cls)} takes no argument {key!r}",
                              key_path=f"{key_path}.{key}",
                              expected="one of " + ", ".join(accepted), given=entry[key],
                              hint=f"did you mean {close[0]!r}?" if close else None)


def _registry_problems(cfg: Mapping[str, Any]) -> list[ConfigError]:
    import mmengine.registry as registries
    import mmengine.runner  # noqa: F401 - registers mmengine's hooks, loops, optimizers...

    problems = []
    with default_scope(cfg):
        for key_path, entry, attr, arguments in _typed(cfg):
            name = entry.get("type")
            if not isinstance(name, str):
                continue  # a class (lazy-import configs), or a type the Runner defaults
            registry = getattr(registries, attr)
            try:
                cls = registry.get(name)
            except Exception:  # mmengine imports a scope's package here: anything
                cls = None
            if cls is None:
                problems.append(unknown_name_error(
                    f"mmengine {registry.name}", name, _registered_names(registry),
                    f"{key_path}.type", f"@{attr}.register_module()"))
            elif arguments:
                try:
                    _check_arguments(cls, entry, key_path)
                except ConfigError as err:
                    problems.append(err)
    return problems


def _hook_intervals(cfg: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    hooks = cfg.get("default_hooks")
    for name, hook in (hooks.items() if isinstance(hooks, Mapping) else ()):
        yield from _entries(hook, f"default_hooks.{name}")
    yield from _entries(cfg.get("custom_hooks"), "custom_hooks")


def _value_problems(cfg: Mapping[str, Any]) -> list[ConfigError]:
    """Values mmengine takes and no run can use (``rt3d_tune.runtime_checks``)."""
    checks: list[Callable[[], None]] = []
    train_cfg = cfg.get("train_cfg")
    if isinstance(train_cfg, Mapping) and "val_interval" in train_cfg:
        checks.append(lambda: check_count(train_cfg["val_interval"], "train_cfg.val_interval",
                                          "validation interval"))
    wrapper = cfg.get("optim_wrapper")
    if isinstance(wrapper, Mapping):
        clip = wrapper.get("clip_grad")
        if isinstance(clip, Mapping) and "max_norm" in clip:
            checks.append(lambda: check_max_norm(clip["max_norm"],
                                                 "optim_wrapper.clip_grad.max_norm"))
        if "accumulative_counts" in wrapper:
            checks.append(lambda: check_count(wrapper["accumulative_counts"],
                                              "optim_wrapper.accumulative_counts",
                                              "gradient accumulation count"))
    for phase in ("train", "val", "test"):
        loader = cfg.get(f"{phase}_dataloader")
        if isinstance(loader, Mapping) and "batch_size" in loader:
            checks.append(lambda loader=loader, phase=phase: check_count(
                loader["batch_size"], f"{phase}_dataloader.batch_size", "batch size"))
    for key_path, hook in _hook_intervals(cfg):
        if "interval" in hook:
            # CheckpointHook's -1 means "only at the end" (mmengine's default)
            off = -1 if str(hook.get("type", "")).endswith("CheckpointHook") else None
            checks.append(lambda hook=hook, key_path=key_path, off=off: check_count(
                hook["interval"], f"{key_path}.interval", "hook interval", off=off))
    problems = []
    for check in checks:
        try:
            check()
        except ConfigError as err:
            problems.append(err)
    return problems


def config_problems(cfg: Mapping[str, Any]) -> list[ConfigError]:
    """Every mistake of an mmengine config (plain dicts) found without building it:
    unknown types, arguments a registered class does not take, unusable values.

    Raises:
        ConfigError: mmengine is not installed.
    """
    require_mmengine()
    return _registry_problems(cfg) + _value_problems(cfg)


def _built(key_path: str, action: Callable[[], Any]) -> Any:
    """``action()``; anything but a ConfigError is said as the step it broke, at ``key_path``."""
    try:
        return action()
    except ConfigError:
        raise
    except Exception as err:  # mmengine's builders raise KeyError, TypeError, AssertionError...
        text = str(err).strip().splitlines()
        raise ConfigError(f"mmengine could not build it: {type(err).__name__}: "
                          f"{text[-1] if text else ''}", key_path=key_path) from None


def start_runner(cfg: Mapping[str, Any], filename: str | None = None) -> Any:
    """mmengine's Runner for ``cfg`` with everything ``train()`` builds before its first
    iteration built: train loop (and data loader), optim wrapper (LR scaled by
    ``auto_scale_lr``), param schedulers, validation loop.

    Args:
        cfg: the plain-dict config, with its ``work_dir`` and ``experiment_name``.
        filename: the config's file, for the Runner's record.

    Raises:
        ConfigError: the first of :func:`config_problems`, or a build step that fails
            (at the key path it builds from).
    """
    problems = config_problems(cfg)
    if problems:
        raise problems[0]
    from mmengine.config import Config as MMConfig
    from mmengine.runner import Runner

    runner = _built("model", lambda: Runner.from_cfg(MMConfig(dict(cfg), filename=filename)))
    _built("train_cfg", lambda: runner.train_loop)
    runner.optim_wrapper = _built("optim_wrapper",
                                  lambda: runner.build_optim_wrapper(runner.optim_wrapper))
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)
    runner.auto_scale_lr = None  # scaled once: train() must not scale again
    if runner.param_schedulers is not None:
        runner.param_schedulers = _built(
            "param_scheduler", lambda: runner.build_param_scheduler(runner.param_schedulers))
    _built("val_cfg", lambda: runner.val_loop)
    return runner


def dry_start_mmengine(cfg: Mapping[str, Any], filename: str | None = None) -> None:
    """:func:`start_runner` in a throw-away work dir, then dropped (what ``validate`` runs).

    Raises:
        ConfigError: as :func:`start_runner`.
    """
    with tempfile.TemporaryDirectory(prefix="rt3d_dry_start_") as tmp:
        runner = start_runner({**cfg, "work_dir": tmp,
                               "experiment_name": f"rt3d_dry_start_{os.getpid()}_{next(_RUN_IDS)}"},
                              filename)
        for handler in list(runner.logger.handlers):
            if hasattr(handler, "baseFilename"):  # the run's log file, in tmp
                handler.close()
                runner.logger.removeHandler(handler)
