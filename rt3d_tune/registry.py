"""Registries: name -> class maps that configs refer to by ``type``.

A registry is a flat dict with a decorator. Built-in entries are imported lazily the
first time a registry is looked up, so ``import rt3d_tune`` stays cheap (no torch) and
a user module that registers its own classes never imports ours by accident.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = [
    "DATASETS",
    "HOOKS",
    "MODELS",
    "OPTIMIZERS",
    "OPTIMIZER_BUILDERS",
    "RUNNERS",
    "Registry",
    "build_from_cfg",
    "closest_names",
    "unknown_name_error",
]


def _where(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "<unknown module>"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{module}.{name}"


def closest_names(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """The names closest to ``name`` (case-insensitive), best first."""
    lowered = {key.lower(): key for key in names}
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[hit] for hit in hits]


def unknown_name_error(registry: str, name: Any, names: Iterable[str], key_path: str,
                       register: str) -> ConfigError:
    """The error for a ``type`` no registry entry has, in either dialect: the key path,
    the value, the closest registered names, else how to register and import it.

    Args:
        registry: the registry, in words ("optimizer", "mmengine hook").
        name: the type that was given.
        names: every name registered there.
        key_path: dotted path of the ``type`` key.
        register: the decorator that registers a class there.
    """
    names = list(names)
    close = closest_names(str(name), names)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
            else f"register it with {register} and import its module through custom_imports")
    return ConfigError(f"{name!r} is not in the {registry} registry", key_path=key_path,
                       expected=f"one of {len(names)} registered {registry} names",
                       given=name, hint=hint)


class Registry:
    """A named map from strings to classes (or callables).

    Args:
        name: shown in error messages ("optimizer", "hook", ...).
        builtin_modules: modules imported on the first lookup; they register the
            built-in entries with ``@REGISTRY.register_module()``.
        populate: an optional callable run once on the first lookup, for entries that
            come from elsewhere (every ``torch.optim.Optimizer``).
    """

    def __init__(
        self,
        name: str,
        builtin_modules: tuple[str, ...] = (),
        populate: Callable[[Registry], None] | None = None,
    ) -> None:
        self.name = name
        self._modules: dict[str, Any] = {}
        self._builtin_modules = builtin_modules
        self._populate = populate
        self._populated = not builtin_modules and populate is None

    def __repr__(self) -> str:
        return f"Registry(name={self.name!r}, items={sorted(self._modules)})"

    def _ensure_populated(self) -> None:
        if self._populated:
            return
        self._populated = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        if self._populate is not None:
            self._populate(self)

    def __len__(self) -> int:
        self._ensure_populated()
        return len(self._modules)

    def __contains__(self, name: object) -> bool:
        self._ensure_populated()
        return name in self._modules

    def __iter__(self) -> Iterator[str]:
        self._ensure_populated()
        return iter(sorted(self._modules))

    def keys(self) -> list[str]:
        """All registered names, sorted."""
        return list(self)

    def get(self, name: str) -> Any | None:
        """The entry registered as ``name``, or None."""
        self._ensure_populated()
        return self._modules.get(name)

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Registered names closest to ``name`` (case-insensitive), best first."""
        self._ensure_populated()
        return closest_names(name, self._modules, n)

    def lookup(self, name: str, key_path: str = "type") -> Any:
        """The entry registered as ``name``; unknown names raise ConfigError with suggestions."""
        obj = self.get(name)
        if obj is not None:
            return obj
        raise unknown_name_error(self.name, name, list(self._modules), key_path,
                                 f"@{self.name.upper()}.register_module()")

    def _register(
        self, obj: Any, names: str | list[str] | tuple[str, ...] | None, force: bool
    ) -> None:
        if not callable(obj):
            raise TypeError(f"only classes and callables can be registered, got {obj!r}")
        if names is None:
            names = [obj.__name__]
        elif isinstance(names, str):
            names = [names]
        for key in names:
            if not isinstance(key, str):
                raise TypeError(f"registry names must be strings, got {key!r}")
            old = self._modules.get(key)
            if old is not None and old is not obj and not force:
                raise KeyError(
                    f"{key!r} is already registered in the {self.name} registry by "
                    f"{_where(old)}; {_where(obj)} tries to register it again "
                    "(pass force=True to replace it)"
                )
            self._modules[key] = obj

    def register_module(
        self,
        name: str | list[str] | tuple[str, ...] | None = None,
        force: bool = False,
        module: Any = None,
    ) -> Any:
        """Register a class, as a decorator or a call.

        ``@R.register_module()``, ``@R.register_module(name=['A', 'a'])``,
        ``R.register_module(module=Cls)``. ``name`` may be a list of aliases. A name
        that is taken raises KeyError naming both places unless ``force=True``.
        """
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj: Any) -> Any:
            self._register(obj, name, force)
            return obj

        return decorator

    def build(
        self,
        cfg: Mapping[str, Any],
        default_args: Mapping[str, Any] | None = None,
        key_path: str = "",
    ) -> Any:
        """``build_from_cfg(cfg, self, default_args, key_path)``."""
        return build_from_cfg(cfg, self, default_args, key_path=key_path)


def _type_error_message(cls: Any, err: TypeError) -> tuple[str, str | None]:
    """Explain a constructor's TypeError: which argument, and which are accepted."""
    text = str(err)
    try:
        params = [
            p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")
        ]
    except (TypeError, ValueError):
        params = []
    accepted = f"accepted arguments: {', '.join(params)}" if params else None
    return text, accepted


def build_from_cfg(
    cfg: Mapping[str, Any],
    registry: Registry,
    default_args: Mapping[str, Any] | None = None,
    key_path: str = "",
) -> Any:
    """Build an object from a config dict with a ``type`` key.

    The input is deep-copied and never mutated. ``type`` is a registered name or a
    class/callable; ``default_args`` fill missing keys (setdefault).

    Raises:
        ConfigError: no ``type``, an unknown name (with the closest registered
            names), or a constructor that rejects the arguments (with the class name
            and the accepted arguments) or refuses a value (its ValueError).
    """
    type_path = f"{key_path}.type" if key_path else "type"
    if not isinstance(cfg, Mapping):
        raise ConfigError(
            f"a {registry.name} config must be a dict",
            key_path=key_path or None,
            expected="dict(type=..., ...)",
            given=cfg,
        )
    args = dict(copy.deepcopy(dict(cfg)))
    if default_args:
        for name, value in default_args.items():
            args.setdefault(name, value)
    if "type" not in args:
        raise ConfigError(
            f"a {registry.name} config needs a 'type'",
            key_path=key_path or None,
            expected=f"dict(type=<a {registry.name} name>, ...)",
            given=dict(cfg),
        )
    obj_type = args.pop("type")
    if isinstance(obj_type, str):
        obj_cls = registry.lookup(obj_type, key_path=type_path)
    elif callable(obj_type):
        obj_cls = obj_type
    else:
        raise ConfigError(
            f"'type' must be a {registry.name} name or a class",
            key_path=type_path,
            expected="a string or a class",
            given=obj_type,
        )
    try:
        return obj_cls(**args)
    except ConfigError as err:
        # A constructor names keys relative to its own config; put ours in front
        # unless the path is already absolute (starts at our root key).
        root = key_path.split(".")[0]
        if not key_path or (err.key_path or "").split(".")[0] == root:
            raise
        raise err.with_context(key_path=key_path) from err
    except TypeError as err:
        name = getattr(obj_cls, "__name__", repr(obj_cls))
        text, accepted = _type_error_message(obj_cls, err)
        if "argument" not in text and "positional" not in text:
            raise
        raise ConfigError(
            f"{name} rejected its arguments: {text}",
            key_path=key_path or None,
            given=args,
            hint=accepted,
        ) from err
    except ValueError as err:  # torch's "Invalid learning rate: -0.01", at the key path
        name = getattr(obj_cls, "__name__", repr(obj_cls))
        raise ConfigError(f"{name} refused a value: {err}", key_path=key_path or None) from err


def _add_torch_optimizers(registry: Registry) -> None:
    import torch

    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
            and name not in registry._modules
        ):
            registry.register_module(module=obj)


MODELS = Registry("model", builtin_modules=("rt3d_tune.tasks",))
DATASETS = Registry("dataset", builtin_modules=("rt3d_tune.tasks",))
HOOKS = Registry("hook", builtin_modules=("rt3d_tune.runner.hooks",))
OPTIMIZERS = Registry("optimizer", populate=_add_torch_optimizers)
OPTIMIZER_BUILDERS = Registry("optimizer builder", builtin_modules=("rt3d_tune.runner.optimizer",))
RUNNERS = Registry("runner", builtin_modules=("rt3d_tune.runner",))
