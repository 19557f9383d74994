"""The one YAML reader (and writer) of rt3d-tune: configs and space files alike.

Reading is safe and bounded:

* a SafeLoader (``!!python/...`` and every other unknown tag is refused, named by its
  key path) that reads ``1e-4`` as a float, as YAML 1.2 does;
* a duplicate key is an error naming its key path and both lines (PyYAML keeps the
  last one silently);
* before anything is built, one pass over the parser's events (no recursion, linear in
  the file) bounds the nesting depth (``MAX_NESTING``) and the number of values the
  document holds once its anchors and aliases are expanded (``MAX_YAML_VALUES``): a
  few hundred bytes of aliases can stand for billions of values, which every later
  walk over the config would visit;
* a plain scalar that would not construct (a timestamp such as ``2024-13-45``, an
  integer of thousands of digits) is refused with its key path.

Errors are ConfigError with the file, the key path (``space.optimizer.choice[1].lr``)
and the line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from rt3d_tune.config.limits import MAX_NESTING, MAX_YAML_VALUES, read_user_file
from rt3d_tune.errors import ConfigError

__all__ = ["FLOAT_1_2", "YamlDumper", "load_yaml", "read_yaml"]

FLOAT_1_2 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_TAG_PREFIX = "tag:yaml.org,2002:"
_MERGE = _TAG_PREFIX + "merge"
_STR = _TAG_PREFIX + "str"
_PLAIN_HINT = ("only plain YAML is accepted (mappings, lists, strings, numbers, booleans, "
               "null); tags such as !!python/object are refused")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""


class YamlDumper(yaml.SafeDumper):
    """SafeDumper that quotes strings the reader would take for floats (``'1e-4'``)."""


for _cls in (_Loader, YamlDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_1_2, list("-+0123456789."))


@dataclass
class _Frame:
    """An open mapping or sequence of the event pass."""

    kind: str  # "map" or "seq"
    path: str
    anchor: str | None
    size: int = 1  # values inside, itself included, aliases expanded
    index: int = 0  # next item (sequences)
    expect_key: bool = True  # the next node is a key (mappings)
    key: str = "?"  # the key whose value comes next (mappings)
    keys: dict[Any, int] = field(default_factory=dict)  # key -> its line (1-based)


def read_yaml(path: str | os.PathLike[str], what: str = "YAML file") -> Any:
    """The YAML document in ``path`` (see the module docstring for what is checked).

    Args:
        path: the file.
        what: how errors name it ("space file", "config file").

    Raises:
        ConfigError: an unreadable or oversized file, or any problem :func:`load_yaml` finds.
    """
    return load_yaml(read_user_file(path, what), file=str(path))


def load_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse one YAML document safely, within the bounds of :mod:`rt3d_tune.config.limits`.

    Args:
        text: the document.
        file: the file it came from, for errors.

    Raises:
        ConfigError: invalid YAML (line and column), an unsupported tag, a duplicate
            key, nesting deeper than ``MAX_NESTING``, more than ``MAX_YAML_VALUES``
            values once aliases are expanded, or a scalar that does not construct.
    """
    _check_events(text, file)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise _yaml_error(err, file) from None


def _yaml_error(err: yaml.YAMLError, file: str | None) -> ConfigError:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or str(err)
    if isinstance(err, yaml.constructor.ConstructorError) and "constructor" in problem:
        return ConfigError(f"unsupported YAML tag{where}: {problem}", file=file, hint=_PLAIN_HINT)
    return ConfigError(f"invalid YAML{where}: {problem}", file=file)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag


def _check_events(text: str, file: str | None) -> None:
    """One pass over the parser's events: tags, duplicate keys, depth, expanded size."""
    loader = _Loader("")
    frames: list[_Frame] = []
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node, once complete
    open_anchors: set[str] = set()
    biggest = (0, "", "")  # the alias that expands the most: (size, key path, anchor)
    root = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent,
                                  yaml.DocumentStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                frame = frames.pop()
                if frame.anchor is not None:
                    sizes[frame.anchor] = frame.size
                    open_anchors.discard(frame.anchor)
                root = _finish(frames, frame.size, root)
                continue
            path = _position(frames, event, loader, file)
            _check_tag(event, path, file)
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in open_anchors:
                    raise ConfigError(
                        f"the alias *{event.anchor} refers to the value that contains it",
                        key_path=path, file=file, hint="a recursive structure is no config; "
                        f"copy the values instead of *{event.anchor}")
                size = sizes.get(event.anchor, 1)  # an undefined alias: yaml.load names it
                biggest = max(biggest, (size, path, event.anchor))
                root = _finish(frames, size, root)
            elif isinstance(event, yaml.ScalarEvent):
                _check_scalar(event, path, loader, file)
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                root = _finish(frames, 1, root)
            else:
                if len(frames) >= MAX_NESTING:
                    raise ConfigError(
                        f"nested more than {MAX_NESTING} levels deep",
                        key_path=(path if len(path) <= 80 else path[:77] + "...") or None,
                        file=file, hint="configs and space files nest a few levels; "
                        "is this file generated by mistake?")
                kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
                frames.append(_Frame(kind, path, event.anchor))
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
    except yaml.YAMLError as err:
        raise _yaml_error(err, file) from None
    if root > MAX_YAML_VALUES:
        size, path, anchor = biggest
        if size > 1:
            raise ConfigError(
                f"the document holds {root:,} values once its aliases are expanded, more "
                f"than the {MAX_YAML_VALUES:,} a file may hold; the alias *{anchor} alone "
                f"stands for {size:,} of them", key_path=path or None, file=file,
                hint="aliases (*name) that repeat anchors (&name) multiply; write the values out")
        raise ConfigError(f"the document holds {root:,} values, more than the "
                          f"{MAX_YAML_VALUES:,} a file may hold", file=file,
                          hint="configs and space files hold a few thousand; is this the "
                          "right file?")


def _position(frames: list[_Frame], event: Any, loader: _Loader, file: str | None) -> str:
    """The key path of the node ``event`` starts; records (and checks) mapping keys."""
    if not frames:
        return ""
    parent = frames[-1]
    if parent.kind == "seq":
        return f"{parent.path}[{parent.index}]"
    if not parent.expect_key:
        return _join(parent.path, parent.key)
    if not isinstance(event, yaml.ScalarEvent):
        parent.key = "?"
        return _join(parent.path, "?")
    parent.key = event.value
    path = _join(parent.path, event.value)
    tag = _tag(event, loader)
    if tag == _MERGE:
        return path
    try:  # the key as the mapping will hold it: 1 and 1.0 (and true) are one key
        identity = _construct(tag, event.value, loader)
        first = parent.keys.get(identity)
    except (TypeError, ValueError, OverflowError, yaml.YAMLError):
        return path  # unhashable or unconstructible: reported by _check_scalar or yaml.load
    line = event.start_mark.line + 1
    if first is not None:
        raise ConfigError(
            f"duplicate key {event.value!r} at line {line} (first on line {first})",
            key_path=path, file=file, hint="YAML keeps only the last of them; remove or rename one")
    parent.keys[identity] = line
    return path


def _finish(frames: list[_Frame], size: int, root: int) -> int:
    """A node of ``size`` values is complete: count it in its parent (or as the root)."""
    if not frames:
        return root + size
    parent = frames[-1]
    parent.size += size
    if parent.kind == "map":
        parent.expect_key = not parent.expect_key
    else:
        parent.index += 1
    return root


def _tag(event: Any, loader: _Loader) -> str:
    if event.tag not in (None, "!"):
        return str(event.tag)
    return str(loader.resolve(yaml.ScalarNode, event.value, event.implicit))


def _construct(tag: str, value: str, loader: _Loader) -> Any:
    """The Python value of a scalar (what yaml.load will build for it)."""
    constructor = _Loader.yaml_constructors.get(tag)
    if constructor is None or tag == _STR:
        return value
    return constructor(loader, yaml.ScalarNode(tag, value))


def _check_tag(event: Any, path: str, file: str | None) -> None:
    tag = getattr(event, "tag", None)
    if tag in (None, "!") or tag in _Loader.yaml_constructors:
        return
    raise ConfigError(f"unsupported YAML tag {_short_tag(tag)} at line "
                      f"{event.start_mark.line + 1}", key_path=path or None, file=file,
                      hint=_PLAIN_HINT)


def _check_scalar(event: Any, path: str, loader: _Loader, file: str | None) -> None:
    tag = _tag(event, loader)
    if tag == _STR:
        return
    try:
        _construct(tag, event.value, loader)
    except (ValueError, OverflowError, yaml.YAMLError) as err:
        raise ConfigError(
            f"the value at line {event.start_mark.line + 1} is no valid "
            f"{_short_tag(tag)[2:]}: {str(err).splitlines()[0]}",
            key_path=path or None, file=file, given=event.value[:40],
            hint="quote it to keep it as a string") from None
