"""Command-line config overrides: ``--cfg-options a.b=1 c.0.d=x lr_config.step=[8,11]``.

Values parse as mmcv's ``DictAction`` does, with one fix: a value in matching quotes
stays a string (``work_dir='123'`` is the string ``'123'``, where mmcv gives the int).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rt3d_tune.config.limits import MAX_NESTING
from rt3d_tune.errors import ConfigError

__all__ = ["DictAction", "parse_cfg_options", "parse_value"]

_PAIRS = {"[": "]", "(": ")"}
_HINT = (
    "write KEY=VALUE with a dotted KEY (optimizer.lr=0.01, workflow.0.1=2) and a VALUE "
    "that is a number, true/false, None, a string, a list a,b or [a,b], or a tuple (a,b); "
    "quote the whole item for the shell"
)


def _scalar(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text == "None":
        return None
    return text


def _split_top_level(text: str, item: str) -> list[str]:
    """Split at commas outside brackets and quotes; check that brackets balance."""
    parts: list[str] = []
    stack: list[str] = []
    quote = ""
    start = 0
    previous = ","  # the last non-blank character; a quote opens only at an element's start
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and previous in ",[(":
            quote = char
        elif char in _PAIRS:
            stack.append(_PAIRS[char])
        elif char in ")]":
            if not stack or stack.pop() != char:
                raise ConfigError(f"unbalanced {char!r} in the value", given=item, hint=_HINT)
        elif char == "," and not stack:
            parts.append(text[start:i])
            start = i + 1
        if not char.isspace():
            previous = char
    if stack or quote:
        missing = stack[-1] if stack else quote
        raise ConfigError(f"the value is missing a closing {missing!r}", given=item, hint=_HINT)
    parts.append(text[start:])
    return parts


def parse_value(text: str, item: str | None = None, depth: int = 0) -> Any:
    """Parse one override value: int, float, bool, None, list, tuple (nested) or string.

    ``a,b`` and ``[a,b]`` are lists, ``(a,b)`` a tuple, ``[(1,2),(3,4)]`` nests.
    ``item`` is the whole ``KEY=VALUE`` text, shown in errors; ``depth`` is how deep in
    brackets ``text`` is.

    Raises:
        ConfigError: unbalanced brackets or quotes, an empty element, or brackets nested
            more than MAX_NESTING deep.
    """
    item = text if item is None else item
    if depth > MAX_NESTING:
        raise ConfigError(f"the value nests brackets more than {MAX_NESTING} deep",
                          given=item, hint=_HINT)
    text = text.strip()
    parts = _split_top_level(text, item)
    if len(parts) > 1:
        if not parts[-1].strip():
            parts.pop()  # a trailing comma: a,
        return [_element(part, item, depth + 1) for part in parts]
    if text[:1] in _PAIRS and _closes_at_end(text):
        inner = text[1:-1].strip()
        parts = _split_top_level(inner, item) if inner else []
        if parts and not parts[-1].strip():
            parts.pop()  # a trailing comma: (1,) or [a,]
        values = [_element(part, item, depth + 1) for part in parts]
        return tuple(values) if text[0] == "(" else values
    return _scalar(text)


def _closes_at_end(text: str) -> bool:
    """Whether the bracket opening ``text`` is closed by its last character."""
    depth = 0
    quote = ""
    previous = ","
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and previous in ",[(":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
        if not char.isspace():
            previous = char
    return False


def _element(text: str, item: str, depth: int) -> Any:
    if not text.strip():
        raise ConfigError("the value has an empty element between commas", given=item,
                          hint=_HINT)
    return parse_value(text, item, depth)


def parse_cfg_options(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``['a.b=1', 'c.0.d=x']`` into ``{'a.b': 1, 'c.0.d': 'x'}`` (later items win).

    Raises:
        ConfigError: an item without '=', an empty key or key segment, or a malformed
            value; the message shows the item and the accepted forms.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError("a config override needs '='", given=item, hint=_HINT)
        if not key or any(not segment for segment in key.split(".")):
            raise ConfigError("a config override needs a dotted key without empty parts",
                              given=item, hint=_HINT)
        if key.count(".") >= MAX_NESTING:
            raise ConfigError(f"the key has more than {MAX_NESTING} parts", given=item,
                              hint=_HINT)
        options[key] = parse_value(value, item)
    return options


class DictAction(argparse.Action):
    """argparse action for ``--cfg-options KEY=VALUE ...`` (use with ``nargs='+'``).

    Stores a dict of dotted keys to parsed values; repeated options accumulate. A
    malformed item is an argparse error (usage message, exit status 2).
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = [values] if isinstance(values, str) else list(values or [])
        try:
            parsed = parse_cfg_options(items)
        except ConfigError as err:
            raise argparse.ArgumentError(self, err.format()) from err
        options = dict(getattr(namespace, self.dest, None) or {})
        options.update(parsed)
        setattr(namespace, self.dest, options)
