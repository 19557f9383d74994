"""Config key paths: the plain-dict view of a config, and whether a path fits a base config."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from rt3d_tune.config.limits import MAX_INDEX_DIGITS, MAX_NESTING
from rt3d_tune.errors import ConfigError

__all__ = ["RUNTIME_KEYS", "check_key_path", "plain_dict"]

# Top-level runtime keys a space may create even when the base config lacks them; any
# other top-level key must exist in the base (a new one is almost always a typo).
RUNTIME_KEYS = (
    "optimizer", "optimizer_config", "lr_config", "momentum_config", "custom_hooks",
    "checkpoint_config", "log_config", "evaluation", "runner", "workflow", "fp16",
)
# A new key under an existing dict this close to a sibling is reported as a typo.
_TYPO_CUTOFF = 0.8


def plain_dict(cfg: Any) -> dict[str, Any]:
    """A Config (or any nested mapping) as plain nested dicts and lists."""
    if cfg is None:
        return {}
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return convert(cfg)


def check_key_path(base: Mapping[str, Any], path: str,
                   runtime_keys: tuple[str, ...] = RUNTIME_KEYS) -> None:
    """Check that a dotted key path exists in ``base`` or can be created there.

    A key may be created under a dict that exists (or a None value, which becomes a
    dict); integer segments index lists and must be in range. A new top-level key must
    be a runtime key (``lr_config``, ...). A new key that closely matches an existing
    sibling is reported as a typo.

    Raises:
        ConfigError: with key path ``space.<path>``, the closest existing keys as hint;
            also a path of more than MAX_NESTING parts.
    """
    segments = path.split(".")
    if len(segments) > MAX_NESTING:
        raise ConfigError(f"the key path has {len(segments)} parts, more than the "
                          f"{MAX_NESTING} a config nests", key_path=f"space.{path[:80]}...",
                          expected=f"at most {MAX_NESTING} names joined by dots")
    node: Any = base
    where = f"space.{path}"
    for i, seg in enumerate(segments):
        here = ".".join(segments[: i + 1])
        if node is None:
            _check_created(segments, i, where, "None")
            return
        if isinstance(node, (list, tuple)):
            if not (seg.isascii() and seg.isdigit() and len(seg) <= MAX_INDEX_DIGITS
                    and int(seg) < len(node)):
                raise ConfigError(
                    f"{'.'.join(segments[:i]) or 'the config'} is a list of {len(node)} items "
                    f"in the base config; {seg!r} is not an index in it",
                    key_path=where,
                    expected=f"an index from 0 to {len(node) - 1}" if node else "a non-empty list",
                    given=seg,
                )
            node = node[int(seg)]
            continue
        if not isinstance(node, Mapping):
            parent = ".".join(segments[:i])
            raise ConfigError(
                f"cannot set {here!r}: {parent!r} is {node!r} in the base config, not a dict",
                key_path=where,
                hint=f"tune {parent!r} itself, e.g. with a choice of mappings",
            )
        if seg in node:
            node = node[seg]
            continue
        if _is_index(seg):
            parent = ".".join(segments[:i]) or "the config"
            raise ConfigError(
                f"{seg!r} indexes a list, but {parent} is a dict in the base config",
                key_path=where, expected=f"one of its keys {sorted(map(str, node))}", given=seg)
        if i == 0 and seg in runtime_keys:
            _check_created(segments, i + 1, where, "absent")
            return
        names = [str(key) for key in node]
        if i == 0:
            names += [key for key in runtime_keys if key not in node]
        close = difflib.get_close_matches(seg, names, n=3, cutoff=0.6 if i == 0 else _TYPO_CUTOFF)
        if i == 0 or close:
            raise ConfigError(
                f"{here!r} is not in the base config",
                key_path=where,
                hint=f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                else "check the spelling against the base config (rt3d-tune config BASE)",
            )
        _check_created(segments, i + 1, where, "absent")
        return


def _is_index(segment: str) -> bool:
    return segment.isascii() and segment.isdigit()


def _check_created(segments: list[str], start: int, where: str, found: str) -> None:
    """The rest of a key path from ``segments[start]`` on is created as dicts (what the
    base lacks, or has as None): an index there has no list to index.

    Raises:
        ConfigError: an integer segment, naming the list it would index (of 0 items).
    """
    for j in range(start, len(segments)):
        if _is_index(segments[j]):
            listed = ".".join(segments[:j])
            raise ConfigError(
                f"{listed} is {found} in the base config, so index {segments[j]} of it does "
                "not exist: the list has 0 items",
                key_path=where, expected=f"an index into a list the base config sets at {listed}",
                given=segments[j],
                hint=f"tune {listed} as a whole (a choice of lists), or set the list in the "
                "base config")
