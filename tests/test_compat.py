"""The release gate of the private library uses (``rt3d_tune._compat``)."""

from __future__ import annotations

import pytest

from rt3d_tune._compat import checked_release


@pytest.mark.parametrize(
    "version, checked",
    [("2.60.0", True), ("2.60.3rc1", True), ("2.61.0", False), ("2.6.0", False),
     ("3.60.0", False), ("dev", False), ("", False)],
)
def test_only_the_checked_major_minor_releases_pass(version: str, checked: bool) -> None:
    assert checked_release(version, {(2, 60)}) is checked
