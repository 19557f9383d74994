"""Reading a space file: safe YAML with line numbers, and checks of single fields.

``read_yaml`` uses a SafeLoader (``!!python/...`` tags are refused) that reads ``1e-4``
as a float, as YAML 1.2 does, and rejects duplicate keys. The field checkers raise
ConfigError with the dotted key path, what was expected and what was given.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rt3d_tune.errors import ConfigError

__all__ = ["check_known_keys", "check_mapping", "check_number", "check_one_of", "read_yaml"]


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


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``.

    Raises:
        ConfigError: a missing or unreadable file, or invalid YAML (with line and column).
    """
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


def check_known_keys(section: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    """Raise ConfigError for the first key of ``section`` not in ``allowed`` (with a close match)."""
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            raise ConfigError(
                f"unknown key {key!r}",
                key_path=f"{prefix}.{key}" if prefix else str(key),
                expected=f"one of {', '.join(allowed)}",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )


def check_number(value: Any, path: str, *, integer: bool = False, minimum: float | None = None,
                 above: float | None = None, maximum: float | None = None) -> Any:
    """Check a number read from the file (bools and non-finite values are refused).

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: not a number (an integer when ``integer``) or out of the bounds.
    """
    kind = "an integer" if integer else "a number"
    bounds = "".join(text for text, limit in ((f" >= {minimum}", minimum), (f" > {above}", above),
                                              (f" <= {maximum}", maximum)) if limit is not None)
    ok = (isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
          and math.isfinite(value)
          and (minimum is None or value >= minimum)
          and (above is None or value > above)
          and (maximum is None or value <= maximum))
    if not ok:
        raise ConfigError(f"must be {kind}{bounds}", key_path=path, expected=f"{kind}{bounds}",
                          given=value)
    return value


def check_one_of(value: Any, choices: tuple[str, ...], path: str) -> str:
    """``value`` when it is one of ``choices``; else ConfigError with the closest one."""
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


def check_bool(value: Any, path: str) -> bool:
    """``value`` when it is true or false; else ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError("must be true or false", key_path=path, expected="true or false",
                          given=value)
    return value


def check_mapping(value: Any, path: str) -> Mapping[str, Any]:
    """``value`` as a mapping (None -> empty); anything else raises ConfigError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping", key_path=path, expected="key: value lines",
                          given=value)
    return value
