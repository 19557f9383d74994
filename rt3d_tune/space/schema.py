"""Reading a space file, and checks of single fields.

``read_yaml`` is the project's one YAML reader (:mod:`rt3d_tune.config.yaml_io`: safe, YAML 1.2
floats, duplicate keys refused, sizes bounded). The field checkers raise ConfigError
with the dotted key path, what was expected and what was given.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.config import yaml_io
from rt3d_tune.errors import ConfigError

__all__ = ["check_known_keys", "check_mapping", "check_number", "check_one_of", "read_yaml"]


def read_yaml(path: Path) -> Any:
    """The YAML document of a space file, read by the one YAML reader
    (``rt3d_tune.config.yaml_io``).

    Raises:
        ConfigError: a missing, oversized or unreadable file, or invalid YAML (with the
            line and the key path: duplicate keys, unknown tags, alias bombs included).
    """
    data = yaml_io.read_yaml(path, "space file")
    if isinstance(data, Mapping) and isinstance(data.get("base"), str) and "\0" in data["base"]:
        raise ConfigError("the base path holds a NUL character", key_path="base", file=str(path),
                          given=data["base"], hint="a path relative to the space file, "
                          "e.g. ../configs/x.py")
    return data


def check_known_keys(section: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    """Raise ConfigError for the first key of ``section`` not in ``allowed``.

    The message suggests a close match when there is one.
    """
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
