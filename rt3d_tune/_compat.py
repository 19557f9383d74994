"""Version gates for the few private library APIs the package uses.

Each private use (``results/_optuna_rows.py``, ``search/_ray_private.py``) names the
releases it was checked against and takes the public path on any other release: slower
or noisier, never wrong. A new release is added to its list after its test passes there.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["checked_release"]


def checked_release(version: str, checked: Collection[tuple[int, int]]) -> bool:
    """Whether ``version`` (e.g. ``"2.60.0"``) is a major.minor release in ``checked``.

    A version string that does not start with ``major.minor`` is never a checked one.
    """
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and (int(match[1]), int(match[2])) in checked
