"""Readable names and values for a search's parameters, for people (the report).

Optuna and Ray name a parameter by where it sits in the space (see
:mod:`rt3d_tune.space.sampling`): ``optimizer@choice`` is the index of the chosen
branch, ``optimizer@1.lr`` a domain inside branch 1. A reader wants the branch by what
it is::

    optimizer@choice = 1      optimizer=AdamW         (the branch's ``type`` or ``policy``)
    optimizer@1.lr            AdamW.lr
    lr_config@choice = 0      lr_config=cyclic
    lr_config.step@choice     lr_config.step=[8, 11]  (a short plain option shows as itself)
    grad_clip@1.max_norm      grad_clip#1.max_norm    (a branch with neither: its index)

Two branches of one choice with the same ``type`` get their index too (``SGD#0.lr``);
two choices whose branches share a name are told apart by their key path
(``optimizer[SGD].lr``). Numbers show 4 significant digits. Without the space (its
file unreadable) every branch shows by its index. ``results.csv`` and
``summary.json`` keep the exact names and values; this module is only for display.
:meth:`ParamLabels.short` names a whole config in a few words (``AdamW lr 0.0008236``),
as the verdict names the winner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rt3d_tune.space.domains import Choice, Grid, walk_domains
from rt3d_tune.space.space import SearchSpace

__all__ = ["ParamLabels", "format_number", "round_numbers", "rounded_diff", "run_labels",
           "short_value"]

_BRANCH_KEYS = ("type", "policy")
_SHORT = 30  # longest plain option shown as itself


def format_number(value: float) -> str:
    """A number to 4 significant digits (``0.0005375``, ``35``, ``1.235e+06``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def short_value(value: Any) -> str:
    """A value as a person reads it: numbers to 4 significant digits, strings bare,
    lists and mappings in Python-like brackets."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {short_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(short_value(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return format_number(value)


def _tag(option: Any) -> str | None:
    """An option's own name: its ``type``/``policy``; a list of such (a whole
    ``param_scheduler``) their names joined by ``+``; else None."""
    if isinstance(option, (list, tuple)):
        names = [_tag(item) if isinstance(item, Mapping) else None for item in option]
        return "+".join(names) if names and None not in names else None  # type: ignore[arg-type]
    found = [option[k] for k in _BRANCH_KEYS if isinstance(option, Mapping) and k in option]
    return found[0] if found and isinstance(found[0], str) else None


def _tags(domain: Choice | Grid) -> list[str | None]:
    """Each option's name (:func:`_tag`, indexed when two options share one), else None."""
    names = [_tag(option) for option in domain.options]
    return [f"{n}#{i}" if n is not None and names.count(n) > 1 else n
            for i, n in enumerate(names)]


def _inner(option: Any, sub: str) -> Any:
    """The value at a dotted key path inside a branch (None when there is none)."""
    for key in sub.split(".") if sub else ():
        if isinstance(option, Mapping):
            option = option.get(key)
        elif isinstance(option, (list, tuple)) and key.isdigit() and int(key) < len(option):
            option = option[int(key)]
        else:
            return None
    return option


class ParamLabels:
    """Labels for the parameter names of one search space.

    Args:
        space: the run's space; None labels branches by index.
    """

    def __init__(self, space: SearchSpace | None) -> None:
        self._domains: dict[str, Any] = dict(space.params) if space is not None else {}
        self._order = {path: i for i, path in enumerate(self._domains)}
        self._qualified: set[str] = set()

    def _walk(self, param: str) -> tuple[str, Any, bool]:
        """(label, the domain the name ends at or None, whether it is a choice index)."""
        head, *segments = param.split("@")
        label, domain = head, self._domains.get(head)
        for segment in segments:
            if segment == "choice":
                return label, domain, True
            index, _, sub = segment.partition(".")
            options = domain.options if isinstance(domain, (Choice, Grid)) else ()
            i = int(index) if index.isdigit() else -1
            tag = _tags(domain)[i] if 0 <= i < len(options) else None
            if tag is None:
                prefix = f"{label}#{index}"
            else:
                prefix = f"{label}[{tag}]" if param in self._qualified else tag
            label = f"{prefix}.{sub}" if sub else prefix
            domain = _inner(options[i], sub) if 0 <= i < len(options) else None
        return label, domain, False

    def name(self, param: str) -> str:
        """``optimizer@1.lr`` -> ``AdamW.lr``; ``optimizer@choice`` -> ``optimizer``."""
        return self._walk(param)[0]

    def value(self, param: str, value: Any) -> str:
        """The value as shown: a branch index as the branch's name, numbers to 4 digits."""
        _, domain, is_index = self._walk(param)
        if not is_index:
            return short_value(value)
        options = domain.options if isinstance(domain, (Choice, Grid)) else ()
        if not (isinstance(value, int) and 0 <= value < len(options)):
            return f"#{value}"
        tag = _tags(domain)[value]
        if tag is not None:
            return tag
        option = options[value]
        shown = short_value(option)
        plain = not walk_domains(option, "")
        return shown if plain and len(shown) <= _SHORT else f"#{value}"

    def is_choice(self, param: str) -> bool:
        """True for a branch index or a choice among plain values (categorical)."""
        _, domain, is_index = self._walk(param)
        return is_index or isinstance(domain, (Choice, Grid))

    def options(self, param: str) -> list[str]:
        """The shown values of every option of a choice, in the space's order."""
        _, domain, is_index = self._walk(param)
        if not isinstance(domain, (Choice, Grid)):
            return []
        if is_index:
            return [self.value(param, i) for i in range(len(domain.options))]
        return [short_value(option) for option in domain.options]

    def order(self, params: Iterable[str]) -> list[str]:
        """The names in the space's order, each choice just before its branches'
        parameters; names the space does not know go last, alphabetically."""
        def key(param: str) -> tuple[int, str]:
            head = param.split("@")[0]
            return self._order.get(head, len(self._order)), param.replace("@choice", "@")

        return sorted(params, key=key)

    def qualify_clashes(self, params: Iterable[str]) -> None:
        """Tell apart names that would show the same label (two choices whose branches
        share a ``type``): those show their choice's key path as well."""
        params = list(params)
        seen: dict[str, list[str]] = {}
        for param in params:
            seen.setdefault(self.name(param), []).append(param)
        self._qualified |= {p for group in seen.values() if len(group) > 1 for p in group}

    def pairs(self, params: Mapping[str, Any]) -> list[str]:
        """``["optimizer=AdamW", "AdamW.lr=0.0005375", ...]`` in the space's order."""
        return [f"{self.name(p)}={self.value(p, params[p])}" for p in self.order(params)]

    def short(self, params: Mapping[str, Any],
              reference: Mapping[str, Any] | None = None) -> str:
        """A config in a few words, as a person names it: ``AdamW lr 0.0008236``.

        In the space's order, a choice shows its branch's name and any other parameter
        its name and value (inside a branch, its name there: ``lr``, not ``AdamW.lr``);
        each key path of the space is one group, groups separated by commas
        (``CosineAnnealing, AdamW lr 0.0008236``).
        Parameters holding the same value as in ``reference`` (the baseline's params)
        are left out, and a choice too unless a parameter inside its branch changed.

        Args:
            params: the config's params (Optuna's names).
            reference: the params to leave out where equal; None shows every one.

        Returns:
            The words; ``the base config`` when nothing differs from ``reference``.
        """
        def same(param: str) -> bool:
            return reference is not None and param in reference \
                and reference[param] == params[param]

        groups: dict[str, list[str]] = {}  # per choice or key path of the space
        for param in self.order(params):
            label, domain, is_index = self._walk(param)
            words = groups.setdefault(param.split("@")[0], [])
            if is_index:
                inside = f"{param[:-len('@choice')]}@{params[param]}."
                if same(param) and all(same(p) for p in params if p.startswith(inside)):
                    continue
                index, shown = params[param], self.value(param, params[param])
                options = domain.options if isinstance(domain, (Choice, Grid)) else ()
                named = _tags(domain)[index] if isinstance(index, int) \
                    and 0 <= index < len(options) else None
                # a branch without a name of its own says whose branch it is
                words.append(shown if named is not None else f"{label} {shown}")
            elif not same(param):
                sub = param.rpartition("@")[2].partition(".")[2] if "@" in param else ""
                # inside a list branch, the key rather than its index: eta_min, not 1.eta_min
                sub = ".".join(key for key in sub.split(".") if not key.isdigit())
                words.append(f"{sub or label} {self.value(param, params[param])}")
        return ", ".join(" ".join(words) for words in groups.values() if words) \
            or "the base config"

    @classmethod
    def for_params(cls, space: SearchSpace | None, params: Iterable[str]) -> ParamLabels:
        """Labels for a space, with clashes among ``params`` told apart."""
        labels = cls(space)
        labels.qualify_clashes(params)
        return labels


def run_labels(ctx: Any) -> ParamLabels:
    """Labels of a run's params from its own copy of its space (branches by index when
    that copy is unreadable)."""
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.space.space import load_run_space

    try:
        space = load_run_space(ctx.run_dir, ctx.info)
    except (ConfigError, OSError, KeyError, ValueError):
        space = None
    names = {name for rec in ctx.records.values() for name in rec.params}
    return ParamLabels.for_params(space, names)


def round_numbers(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists, tuples and dicts too."""
    if isinstance(value, float):
        return float(format_number(value))
    if isinstance(value, (list, tuple)):
        return type(value)(round_numbers(v) for v in value)
    if isinstance(value, Mapping):
        return {k: round_numbers(v) for k, v in value.items()}
    return value


def rounded_diff(diff: Iterable[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """``config_diff``'s (path, old, new) with every float to 4 significant digits, as
    the search prints and the report shows a trial's changes."""
    return [(path, round_numbers(old), round_numbers(new)) for path, old, new in diff]
