"""Hook priorities: lower runs first, in every stage."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = ["Priority", "get_priority"]


class Priority(IntEnum):
    """Named priorities, as in mmcv."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: Any, key_path: str = "priority") -> int:
    """An int 0..100 or a case-insensitive Priority name -> int.

    Raises:
        ConfigError: out of range, an unknown name, or another type.
    """
    if isinstance(priority, Priority):
        return int(priority)
    if isinstance(priority, bool):
        pass
    elif isinstance(priority, int):
        if 0 <= priority <= 100:
            return priority
        raise ConfigError(
            "priority out of range",
            key_path=key_path,
            expected="an int in [0, 100]",
            given=priority,
        )
    elif isinstance(priority, str):
        name = priority.strip().upper()
        if name in Priority.__members__:
            return int(Priority[name])
        raise ConfigError(
            "unknown priority name",
            key_path=key_path,
            expected=f"one of {', '.join(Priority.__members__)} (any case) or an int 0..100",
            given=priority,
        )
    raise ConfigError(
        "priority must be a name or an int",
        key_path=key_path,
        expected="a Priority name or an int in [0, 100]",
        given=priority,
    )
