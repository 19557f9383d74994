"""Runtime values no library refuses but no run can use, checked for both dialects.

mmcv's and mmengine's hooks take an interval of 0 and fail with a ZeroDivisionError
(or silently never fire) once training is under way; torch's ``clip_grad_norm_`` takes a
negative ``max_norm`` and turns every step uphill. The trial's start (rt3d-tune's
runner builder, and the mmengine trial's) refuses them here, so ``validate``, ``train``
and ``search`` say the same thing before the first iteration. Pure: no torch.
"""

from __future__ import annotations

from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = ["check_count", "check_max_norm"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_max_norm(value: Any, key_path: str) -> None:
    """A clipping norm must be > 0: torch's ``clip_grad_norm_`` scales the gradients by
    ``max_norm / norm``, so a negative one climbs the loss with no error.

    Raises:
        ConfigError: ``value`` is a number <= 0 (``key_path`` names it).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        raise ConfigError("a gradient-clipping max_norm must be > 0", key_path=key_path,
                          expected="a number > 0", given=value,
                          hint="grad_clip=None (clip_grad=None in an mmengine config) turns "
                          "clipping off")


def check_count(value: Any, key_path: str, what: str, *, off: int | None = None) -> None:
    """An interval or a batch size: an int >= 1 (or ``off``, the value that means never,
    such as a checkpoint interval of -1).

    Args:
        value: the value given.
        key_path: its dotted key path.
        what: what it counts, for the message ("evaluation interval").
        off: a value that switches the thing off, accepted as well.

    Raises:
        ConfigError: anything else (0 above all: it divides, or it never fires).
    """
    if _is_int(value) and (value >= 1 or value == off):
        return
    expected = "an int >= 1" + (f" ({off} turns it off)" if off is not None else "")
    raise ConfigError(f"a {what} must be a whole number >= 1", key_path=key_path,
                      expected=expected, given=value,
                      hint="0 has no meaning here" if value == 0 else None)
