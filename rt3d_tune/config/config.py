"""Config: mmcv 1.x style config files with attribute access.

``Config.fromfile(path)`` reads .py/.yaml/.yml/.json, substitutes the ``{{ }}``
variables, resolves ``_base_`` (recursively, relative to the naming file), merges
(dicts key by key, everything else replaced, ``_delete_=True`` replaces a dict) and
imports ``custom_imports``. The rules are in RUNTIME_SPEC.md, "Config files".
Differences from mmcv, on purpose: ``_delete_`` never survives into the result, and a
dotted override through a ``None`` creates the dict (mmcv raises).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.config.config_dict import ConfigDict, plain_values, wrap_values
from rt3d_tune.config.custom_imports import import_custom_modules
from rt3d_tune.config.limits import MAX_BASE_FILES, MAX_INDEX_DIGITS, read_user_file
from rt3d_tune.config.options import DictAction, parse_cfg_options
from rt3d_tune.config.text import (
    config_format,
    dumps,
    mark_base_refs,
    parse_text,
    substitute_file_vars,
)
from rt3d_tune.errors import ConfigError

__all__ = ["Config", "ConfigDict", "DictAction", "import_custom_modules", "parse_cfg_options"]

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
_MISSING = object()
# A list index; longer digit runs are out of range of any list (and of int()'s limit).
_INDEX = re.compile(r"-?[0-9]+")
_REF_MARK = "__rt3d_base_ref_"


def _join(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _merge(child: Mapping[Any, Any], base: Mapping[Any, Any], key_path: str, file: str | None
           ) -> dict[Any, Any]:
    """``child`` merged over ``base``: dicts recursively, the rest replaced, ``_delete_`` honoured.

    Raises:
        ConfigError: a dict (without ``_delete_=True``) over a base value that is not a dict.
    """
    out = dict(base)
    for key, value in child.items():
        path = _join(key_path, key)
        if isinstance(value, Mapping) and key in base and not value.get(DELETE_KEY, False):
            if not isinstance(base[key], Mapping):
                raise ConfigError(
                    "a dict cannot be merged into an inherited value that is not a dict",
                    key_path=path, file=file, expected="a dict in the base config",
                    given=base[key],
                    hint=f"add {DELETE_KEY}=True to this dict to replace the inherited value",
                )
            out[key] = _merge(value, base[key], path, file)
        else:
            out[key] = value
    return out


def _strip_delete(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_delete(v) for k, v in value.items() if k != DELETE_KEY}
    if isinstance(value, (list, tuple)):
        return type(value)(_strip_delete(v) for v in value)
    return value


def _lookup(data: Any, dotted: str) -> Any:
    for segment in dotted.split("."):
        if isinstance(data, Mapping) and segment in data:
            data = data[segment]
        elif isinstance(data, (list, tuple)) and _in_range(segment, data):
            data = data[int(segment)]
        else:
            return _MISSING
    return data


def _in_range(segment: str, items: list[Any] | tuple[Any, ...]) -> bool:
    """Whether ``segment`` is an index of ``items`` (checked before any int() of it)."""
    return (_INDEX.fullmatch(segment) is not None
            and len(segment.lstrip("-")) <= MAX_INDEX_DIGITS
            and -len(items) <= int(segment) < len(items))


def _resolve_refs(value: Any, refs: dict[str, str], base: Mapping[str, Any], file: Path) -> Any:
    """Swap ``{{ _base_.a.b }}`` placeholders for copies of the merged bases' values."""
    if isinstance(value, str) and _REF_MARK in value and value not in refs:
        raise ConfigError(
            "{{ _base_.x }} must be a whole value, not part of a string", file=str(file),
            given=value, hint="write key = {{ _base_.a.b }} and build strings in the base",
        )
    if isinstance(value, str) and value in refs:
        found = _lookup(base, refs[value])
        if found is _MISSING:
            raise ConfigError(
                "the base configs do not define this value", key_path=f"{BASE_KEY}.{refs[value]}",
                file=str(file), hint="{{ _base_.a.b }} names a value of the files in _base_",
            )
        return copy.deepcopy(found)
    if isinstance(value, Mapping):
        return {k: _resolve_refs(v, refs, base, file) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve_refs(v, refs, base, file) for v in value)
    return value


def _base_paths(data: dict[str, Any], path: Path) -> list[Path]:
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, (list, tuple)) or not all(
            isinstance(b, str) and b and "\0" not in b for b in bases):
        raise ConfigError(
            "_base_ must name config files", key_path=BASE_KEY, file=str(path),
            expected="a path or a list of paths, relative to this file", given=bases,
        )
    return [(path.parent / Path(base).expanduser()).resolve() for base in bases]


def _load_file(path: Path, stack: tuple[Path, ...], loaded: list[Path]
               ) -> tuple[dict[str, Any], list[Path]]:
    """One file merged over its bases; also the folders of files that set custom_imports.

    ``loaded`` collects every file read for this config (bounded by MAX_BASE_FILES:
    bases that name each other twice over double the files at every level).

    Raises:
        ConfigError: a missing or unreadable file, a base cycle, too many files, two
            sibling bases defining the same top-level key, or any parse or merge error.
    """
    if path in stack:
        cycle = " -> ".join(str(p) for p in stack[stack.index(path):] + (path,))
        raise ConfigError(f"the _base_ files form a cycle: {cycle}", key_path=BASE_KEY,
                          file=str(stack[-1]), hint="remove one of the _base_ entries")
    if not path.exists():
        if not stack:
            raise ConfigError("config file not found", file=str(path))
        raise ConfigError(f"base config file not found: {path}", key_path=BASE_KEY,
                          file=str(stack[-1]),
                          hint="_base_ paths are relative to the file naming them")
    loaded.append(path)
    if len(loaded) > MAX_BASE_FILES:
        raise ConfigError(
            f"the _base_ chains load more than {MAX_BASE_FILES} files", key_path=BASE_KEY,
            file=str(stack[-1]) if stack else str(path),
            hint="a base named by several files is read once per naming file; "
            "flatten the chain")
    fmt = config_format(path)
    source = read_user_file(path, "config file")
    text, refs = mark_base_refs(substitute_file_vars(source, path))
    data = parse_text(text, fmt, path)
    import_dirs = [path.parent] if "custom_imports" in data else []
    merged: dict[str, Any] = {}
    owner: dict[str, Path] = {}
    for base_path in _base_paths(data, path):
        base_data, base_dirs = _load_file(base_path, stack + (path,), loaded)
        for key in base_data:
            if key in owner:
                raise ConfigError(
                    f"two base files define the same top-level key: {owner[key]} and {base_path}",
                    key_path=key, file=str(path),
                    hint="define the key in one base only, or set it in this file instead",
                )
            owner[key] = base_path
        merged.update(base_data)
        import_dirs += [d for d in base_dirs if d not in import_dirs]
    data = _resolve_refs(data, refs, merged, path)
    return _strip_delete(_merge(data, merged, "", str(path))), import_dirs


class Config:
    """A config: a ConfigDict with a file name, loaders, overrides and dumpers.

    ``cfg.optimizer.lr``, ``cfg['optimizer']['lr']``, ``cfg.get('x')``, ``'x' in cfg``,
    iteration over the top-level keys, and ``cfg.x = value`` all work; nested dicts come
    back as ConfigDicts that are live views of the config.

    Args:
        cfg_dict: the values (copied).
        filename: where they came from, if anywhere.
    """

    def __init__(self, cfg_dict: Mapping[str, Any] | None = None, filename: str | Path | None = None
                 ) -> None:
        if isinstance(cfg_dict, Config):
            cfg_dict = cfg_dict.to_dict()
        if cfg_dict is not None and not isinstance(cfg_dict, Mapping):
            raise ConfigError("a config is built from a dict", expected="a dict", given=cfg_dict)
        object.__setattr__(self, "_cfg_dict", ConfigDict(cfg_dict or {}))
        object.__setattr__(self, "_filename", None if filename is None else str(filename))
        dirs = [] if filename is None else [Path(filename).resolve().parent]
        object.__setattr__(self, "_import_dirs", dirs)

    @classmethod
    def fromfile(cls, path: str | Path, import_custom_modules: bool = True) -> Config:
        """Load a .py/.yaml/.yml/.json config with its bases, and import its custom_imports.

        Raises:
            ConfigError: see the module docstring; every error names the file.
        """
        data, import_dirs = _load_file(Path(path).expanduser().resolve(), (), [])
        cfg = cls(data, filename=path)
        object.__setattr__(cfg, "_import_dirs", import_dirs + cfg._import_dirs)
        if import_custom_modules:
            cfg.import_custom_modules()
        return cfg

    def import_custom_modules(self) -> list[str]:
        """Import the modules of ``custom_imports`` (again); a no-op without it.

        The folders of the files that set it are searched after ``sys.path`` (kept when
        the Config is pickled, so a Ray worker can call this). Returns the modules imported.
        """
        if self._cfg_dict.get("custom_imports") is None:
            return []
        return import_custom_modules(self._cfg_dict["custom_imports"], self._import_dirs,
                                     file=self._filename)

    @property
    def filename(self) -> str | None:
        """The file this config was loaded from (as given), or None."""
        return self._filename

    def to_dict(self) -> dict[str, Any]:
        """The config as plain dicts, lists and tuples (a copy)."""
        return plain_values(self._cfg_dict)

    def merge_from_dict(self, options: Mapping[str, Any]) -> None:
        """Apply overrides ``{'a.b': 1, 'c.0.d': 2}``.

        Dotted keys walk dicts (creating missing ones, and replacing a ``None`` by a new
        dict) and lists or tuples (integer segments). A dict value merges into an
        existing dict unless it has ``_delete_=True``; any other value replaces.

        Raises:
            ConfigError: an index out of range, an integer segment on a dict, a
                non-integer segment on a list, a key inside a scalar, or a dict over a
                scalar; each names the key path.
        """
        for key, value in options.items():
            segments = str(key).split(".")
            _set_path(self._cfg_dict, segments, 0, value)

    def dumps(self, fmt: str = "py") -> str:
        """The config as text: 'py' (literal-only Python), 'yaml' or 'json'.

        Raises:
            ConfigError: a value that is not a literal (a class, a function).
        """
        return dumps(self.to_dict(), fmt)

    def dump(self, file: str | Path | None = None) -> str:
        """Write the config to ``file`` (format from its suffix) and return the text.

        Without ``file``, return the text in the format of ``filename`` (py by default).
        """
        fmt = config_format(file) if file is not None else (
            config_format(self._filename) if self._filename else "py")
        text = self.dumps(fmt)
        if file is not None:
            Path(file).write_text(text, encoding="utf-8")
        return text

    @property
    def pretty_text(self) -> str:
        """The config as literal-only Python source."""
        return self.dumps("py")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_cfg_dict", "_filename", "_import_dirs"):
            raise AttributeError(name)
        return getattr(self._cfg_dict, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._cfg_dict[name] = value

    def __delattr__(self, name: str) -> None:
        delattr(self._cfg_dict, name)

    def __getitem__(self, key: str) -> Any:
        return self._cfg_dict[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._cfg_dict[key] = value

    def __delitem__(self, key: str) -> None:
        del self._cfg_dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self._cfg_dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._cfg_dict)

    def __len__(self) -> int:
        return len(self._cfg_dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == plain_values(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Config(filename={self._filename!r}, {self.to_dict()!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.to_dict(), "filename": self._filename, "dirs": self._import_dirs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_cfg_dict", ConfigDict(state["cfg"]))
        object.__setattr__(self, "_filename", state["filename"])
        object.__setattr__(self, "_import_dirs", list(state["dirs"]))

    def __copy__(self) -> Config:
        return self.__deepcopy__({})

    def __deepcopy__(self, memo: dict[int, Any]) -> Config:
        new = Config.__new__(Config)
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new


def _index(node: list[Any] | tuple[Any, ...], segment: str, path: str) -> int:
    if not _INDEX.fullmatch(segment):
        raise ConfigError(f"this value is a {type(node).__name__}, so the key must be an index",
                          key_path=path, expected=f"an integer from 0 to {len(node) - 1}",
                          given=segment)
    if not _in_range(segment, node):
        raise ConfigError("list index out of range", key_path=path,
                          expected=f"an index from 0 to {len(node) - 1}", given=segment,
                          hint=f"the {type(node).__name__} has {len(node)} items")
    return int(segment)


def _set_path(node: Any, segments: list[str], depth: int, value: Any) -> Any:
    """Set ``segments[depth:]`` under ``node`` to ``value``; return the (new) node."""
    segment = segments[depth]
    path = ".".join(segments[: depth + 1])
    last = depth == len(segments) - 1
    if isinstance(node, Mapping):
        if _INDEX.fullmatch(segment) and segment not in node:
            raise ConfigError("an integer key indexes a list, but this value is a dict",
                              key_path=path, expected=f"one of the keys {sorted(map(str, node))}",
                              given=segment)
        old = node.get(segment, _MISSING)
    else:
        old = node[_index(node, segment, path)]
    if last:
        new = _override(old, value, path)
    else:
        if old is _MISSING or old is None:
            old = ConfigDict()
        elif not isinstance(old, (Mapping, list, tuple)):
            raise ConfigError(f"this value has no keys (it is of type {type(old).__name__})",
                              key_path=path, given=old,
                              hint=f"override {path} itself instead of {'.'.join(segments)}")
        new = _set_path(old, segments, depth + 1, value)
    if isinstance(node, tuple):
        items = list(node)
        items[_index(node, segment, path)] = new
        return tuple(wrap_values(items))
    if isinstance(node, list):
        node[_index(node, segment, path)] = wrap_values(new)
    else:
        node[segment] = new
    return node


def _override(old: Any, value: Any, path: str) -> Any:
    if isinstance(value, Mapping) and old is not _MISSING and old is not None:
        if value.get(DELETE_KEY, False):
            return _strip_delete(value)
        if not isinstance(old, Mapping):
            raise ConfigError("a dict cannot be merged into a value that is not a dict",
                              key_path=path, expected="a dict", given=old,
                              hint=f"add {DELETE_KEY}=True to the dict to replace the value")
        return _strip_delete(_merge(value, old, path, None))
    return _strip_delete(value)
