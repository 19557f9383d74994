"""Search-space domains: small value objects, and how a space file spells them.

A domain is written as a one-key mapping, optionally with ``q`` next to it::

    {uniform: [0.8, 0.99]}          Uniform(0.8, 0.99)        float, low <= x <= high
    {uniform: [0, 1], q: 0.1}       Uniform(0, 1, q=0.1)      low + k*q, both bounds reachable
    {loguniform: [1.0e-4, 1.0e-2]}  LogUniform(1e-4, 1e-2)    float, log scale, 0 < low
    {int: [0, 500]}                 Int(0, 500)               integer, both bounds included
    {int: [0, 500], q: 50}          Int(0, 500, q=50)         low + k*q
    {logint: [16, 256]}             LogInt(16, 256)           integer, log scale, 1 <= low
    {choice: [SGD, AdamW]}          Choice(('SGD', 'AdamW'))
    {grid: [10, 35]}                Grid((10, 35))

Every bound is inclusive. Integer bounds are within +-2**53 and a choice lists at most
``limits.MAX_CHOICE_OPTIONS`` options. A ``choice`` (or ``grid``) option that is a mapping is a
conditional branch: when chosen, the mapping replaces the whole subtree at the key
path, and the domains nested inside it are sampled only then. Under any algorithm but
``grid``, a ``grid`` domain is sampled exactly like a ``choice``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rt3d_tune.config.limits import MAX_CHOICE_OPTIONS, MAX_EXACT_INT
from rt3d_tune.errors import ConfigError

__all__ = [
    "DOMAIN_NAMES",
    "Choice",
    "Domain",
    "Grid",
    "Int",
    "LogInt",
    "LogUniform",
    "Uniform",
    "domain_name",
    "is_primitive",
    "parse_domain",
    "parse_template",
    "walk_domains",
]


@dataclass(frozen=True)
class Uniform:
    """A float in ``[low, high]`` (both inclusive); with ``q``, one of ``low + k*q``."""

    low: float
    high: float
    q: float | None = None


@dataclass(frozen=True)
class LogUniform:
    """A float in ``[low, high]`` (both inclusive) drawn on a log scale; ``0 < low``."""

    low: float
    high: float


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both inclusive); with ``q``, one of ``low + k*q``."""

    low: int
    high: int
    q: int | None = None


@dataclass(frozen=True)
class LogInt:
    """An integer in ``[low, high]`` (both inclusive) drawn on a log scale; ``1 <= low``."""

    low: int
    high: int


@dataclass(frozen=True)
class Choice:
    """One of ``options``; an option that is a mapping is a conditional branch."""

    options: tuple[Any, ...]

    @property
    def is_conditional(self) -> bool:
        """True when any option is a branch (a mapping) or holds nested domains."""
        return any(
            isinstance(option, Mapping) or walk_domains(option, "") for option in self.options
        )


@dataclass(frozen=True)
class Grid:
    """One of ``values``, every one of them tried under the ``grid`` algorithm."""

    values: tuple[Any, ...]

    @property
    def options(self) -> tuple[Any, ...]:
        return self.values

    @property
    def is_conditional(self) -> bool:
        return Choice(self.values).is_conditional


Domain = Uniform | LogUniform | Int | LogInt | Choice | Grid
DOMAIN_NAMES = ("uniform", "loguniform", "int", "logint", "choice", "grid")
_NUMERIC = ("uniform", "loguniform", "int", "logint")


def is_primitive(value: Any) -> bool:
    """True for values Optuna can store as a categorical choice (None, bool, int, float, str)."""
    return value is None or isinstance(value, (bool, int, float, str))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def domain_name(value: Any, path: str) -> str | None:
    """The domain name when ``value`` spells a domain, None when it is a plain mapping.

    Raises:
        ConfigError: a domain name with keys other than ``q`` beside it, or a one-key
            mapping over a list whose key is a misspelt domain name.
    """
    if not isinstance(value, Mapping):
        return None
    names = [key for key in value if key in DOMAIN_NAMES]
    if len(names) > 1:
        raise ConfigError(
            f"one domain per key path, found {' and '.join(names)}",
            key_path=path,
            given=dict(value),
            hint="split them into separate key paths or nest them inside a choice branch",
        )
    if names:
        extra = [key for key in value if key not in (names[0], "q")]
        if extra:
            close = difflib.get_close_matches(str(extra[0]), ["q"], n=1, cutoff=0.0)
            raise ConfigError(
                f"unknown key {extra[0]!r} next to the {names[0]} domain",
                key_path=f"{path}.{extra[0]}",
                expected="only 'q' (the quantization step) beside the domain",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )
        return names[0]
    keys = [key for key in value if key != "q"]
    if len(keys) == 1 and isinstance(value[keys[0]], list):
        close = difflib.get_close_matches(str(keys[0]).lower(), DOMAIN_NAMES, n=1, cutoff=0.75)
        if close:
            raise ConfigError(
                f"unknown domain {keys[0]!r}",
                key_path=f"{path}.{keys[0]}",
                expected=f"one of {', '.join(DOMAIN_NAMES)}",
                hint=f"did you mean {close[0]!r}?",
            )
    return None


def _bounds(name: str, args: Any, path: str) -> tuple[Any, Any]:
    integer = name in ("int", "logint")
    kind = "integers" if integer else "numbers"
    where = f"{path}.{name}"
    if not isinstance(args, list) or len(args) != 2:
        raise ConfigError(
            f"{name} takes a list of two bounds",
            key_path=where,
            expected=f"[low, high] ({kind})",
            given=args,
        )
    for i, bound in enumerate(args):
        ok = _is_number(bound) and (not integer or isinstance(bound, int))
        if not ok:
            hint = None
            if isinstance(bound, str):
                hint = "write numbers without quotes"
            elif integer and _is_number(bound):
                hint = f"use uniform for floats, or write {int(bound)}"
            raise ConfigError(
                f"the {'low' if i == 0 else 'high'} bound of {name} must be one of the {kind}",
                key_path=f"{where}[{i}]",
                expected=f"{'an integer' if integer else 'a finite number'}",
                given=bound,
                hint=hint,
            )
    low, high = args
    for i, bound in enumerate(args):
        if integer and abs(bound) > MAX_EXACT_INT:
            raise ConfigError(
                f"the {'low' if i == 0 else 'high'} bound of {name} is too large to sample "
                "exactly", key_path=f"{where}[{i}]",
                expected=f"an integer from -2**53 to 2**53 ({MAX_EXACT_INT:,})", given=bound,
                hint="Optuna samples integers through floats; use loguniform for ranges "
                "that wide",
            )
    if low >= high:
        raise ConfigError(
            f"{name} bounds are reversed or equal: low must be below high",
            key_path=where,
            expected="[low, high] with low < high",
            given=args,
            hint=f"write [{high}, {low}]" if low > high else "a single value needs no search",
        )
    if name == "loguniform" and low <= 0:
        raise ConfigError(
            "loguniform needs a positive low bound (the log of 0 or less is undefined)",
            key_path=f"{where}[0]",
            expected="low > 0",
            given=low,
            hint="use uniform for ranges that include 0, or start at a small positive value",
        )
    if name == "logint" and low < 1:
        raise ConfigError(
            "logint needs a low bound of at least 1",
            key_path=f"{where}[0]",
            expected="low >= 1",
            given=low,
            hint="use int for ranges that include 0",
        )
    return low, high


def _quantum(name: str, value: Mapping[str, Any], low: Any, high: Any, path: str) -> Any:
    if "q" not in value:
        return None
    q = value["q"]
    where = f"{path}.q"
    if name in ("loguniform", "logint", "choice", "grid"):
        raise ConfigError(
            f"q is not supported with {name}",
            key_path=where,
            given=q,
            hint="use uniform or int with q, or list the values in a choice",
        )
    integer = name == "int"
    if not _is_number(q) or q <= 0 or (integer and not isinstance(q, int)):
        raise ConfigError(
            f"q of {name} must be a positive {'integer' if integer else 'number'}",
            key_path=where,
            expected="q > 0",
            given=q,
        )
    steps = (high - low) / q
    if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
        top = low + math.floor(steps) * q
        raise ConfigError(
            f"the range of {name} is not a whole number of q steps",
            key_path=where,
            expected=f"(high - low) / q to be a whole number, here ({high} - {low}) / {q}",
            given=q,
            hint=f"set high to {top:g} or {top + q:g}",
        )
    return q


def parse_domain(name: str, value: Mapping[str, Any], path: str) -> Domain:
    args = value[name]
    where = f"{path}.{name}"
    if name in _NUMERIC:
        low, high = _bounds(name, args, path)
        q = _quantum(name, value, low, high, path)
        if name == "uniform":
            return Uniform(float(low), float(high), None if q is None else float(q))
        if name == "loguniform":
            return LogUniform(float(low), float(high))
        if name == "int":
            return Int(int(low), int(high), q)
        return LogInt(int(low), int(high))
    _quantum(name, value, None, None, path)
    if not isinstance(args, list):
        raise ConfigError(
            f"{name} takes a list of options",
            key_path=where,
            expected="a list",
            given=args,
        )
    if not args:
        raise ConfigError(
            f"{name} has no options",
            key_path=where,
            expected="at least one option",
            given=args,
        )
    if len(args) > MAX_CHOICE_OPTIONS:
        raise ConfigError(
            f"{name} lists {len(args):,} options, more than the {MAX_CHOICE_OPTIONS:,} a "
            f"{name} may have", key_path=where, expected=f"at most {MAX_CHOICE_OPTIONS:,} options",
            hint="sample a range with int, uniform or loguniform instead of listing it",
        )
    options = tuple(parse_template(option, f"{where}[{i}]") for i, option in enumerate(args))
    primitive = [repr(option) for option in options if is_primitive(option)]
    duplicates = sorted({text for text in primitive if primitive.count(text) > 1})
    if duplicates:
        raise ConfigError(
            f"{name} lists {duplicates[0]} more than once",
            key_path=where,
            given=args,
            hint="list each option once",
        )
    return Choice(options) if name == "choice" else Grid(options)


def parse_template(value: Any, path: str) -> Any:
    """Parse a value of the space file: a domain, or a structure with domains inside.

    Mappings and lists are walked; a mapping that spells a domain becomes a domain
    object; everything else is kept as written.

    Args:
        value: the YAML value.
        path: its key path in the space file (``space.lr_config.choice[1]``), for errors.

    Raises:
        ConfigError: any malformed domain, named by its key path.
    """
    name = domain_name(value, path)
    if name is not None:
        return parse_domain(name, value, path)
    if isinstance(value, Mapping):
        parsed = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    "config keys must be strings",
                    key_path=f"{path}.{key}",
                    given=key,
                    hint="quote the key",
                )
            parsed[key] = parse_template(item, f"{path}.{key}")
        return parsed
    if isinstance(value, list):
        return [parse_template(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def walk_domains(template: Any, path: str) -> list[tuple[str, Domain]]:
    """Every domain in a parsed structure, branches included, with its space-file key path.

    Args:
        template: a parsed value (a domain, or mappings/lists holding domains).
        path: the key path of ``template`` in the space file (``space.optimizer``).
    """
    if isinstance(template, (Choice, Grid)):
        name = "choice" if isinstance(template, Choice) else "grid"
        found: list[tuple[str, Domain]] = [(path, template)]
        for i, option in enumerate(template.options):
            found += walk_domains(option, f"{path}.{name}[{i}]")
        return found
    if isinstance(template, (Uniform, LogUniform, Int, LogInt)):
        return [(path, template)]
    if isinstance(template, Mapping):
        return [
            hit for key, item in template.items() for hit in walk_domains(item, f"{path}.{key}")
        ]
    if isinstance(template, list):
        return [
            hit for i, item in enumerate(template) for hit in walk_domains(item, f"{path}[{i}]")
        ]
    return []
