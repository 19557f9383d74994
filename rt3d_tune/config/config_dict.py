"""ConfigDict: the dict with attribute access that holds a config's values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ConfigDict", "plain_values", "wrap_values"]


def wrap_values(value: Any) -> Any:
    """A copy of ``value`` with every mapping (also inside lists/tuples) a ConfigDict."""
    if isinstance(value, Mapping):
        return ConfigDict(value)
    if isinstance(value, list):
        return [wrap_values(v) for v in value]
    if isinstance(value, tuple):
        return tuple(wrap_values(v) for v in value)
    return value


def plain_values(value: Any) -> Any:
    """A copy of ``value`` made of plain dicts, lists and tuples."""
    if isinstance(value, Mapping):
        return {k: plain_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_values(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_values(v) for v in value)
    return value


class ConfigDict(dict):
    """A dict whose keys are also attributes (``d.lr`` is ``d['lr']``); nested dicts too.

    Values assigned to it are copied with their mappings turned into ConfigDicts.
    A missing key read as an attribute raises AttributeError (so ``hasattr`` works).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.update(*args, **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, wrap_values(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"the config has no key {name!r}") from None

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> ConfigDict:
        return ConfigDict(self)

    def to_dict(self) -> dict[Any, Any]:
        """Plain dicts, lists and tuples."""
        return plain_values(self)
