"""The pure packages stay pure: reading a space or a run directory needs neither Ray nor torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    [
        ["rt3d_tune.space", "rt3d_tune.space.validate", "rt3d_tune.space.sampling"],
        ["rt3d_tune.results", "rt3d_tune.results.export", "rt3d_tune.results.report",
         "rt3d_tune.results.study", "rt3d_tune.results.mmengine_export"],
        ["rt3d_tune.search", "rt3d_tune.search.schedulers"],
        ["rt3d_tune.backends", "rt3d_tune.backends.mmcv.backend",
         "rt3d_tune.backends.mmengine.backend"],
    ],
    ids=["space", "results", "scheduler-building", "backends"],
)
def test_import_pulls_in_neither_torch_nor_ray(modules: list[str]) -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", f"{modules} imported {out.strip()}"
