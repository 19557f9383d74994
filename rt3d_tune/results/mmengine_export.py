"""The exporter of ``best/best_mmengine.py``: the winner in mmdet3d 1.x (mmengine) spelling,
written by its backend (:meth:`rt3d_tune.backends.base.Backend.mmengine_spelling`; an
mmengine config needs none, it is one already)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rt3d_tune.backends import backend_for
from rt3d_tune.config import Config

__all__ = ["write_best_mmengine"]


def write_best_mmengine(ctx: Any) -> dict[str, Any]:
    """Exporter: ``best/best_mmengine.py`` from ``best/best_config.py`` (see export.py)."""
    best_config = Path(ctx.best_dir, "best_config.py")
    if ctx.best is None or not best_config.exists():
        return {}
    iters = int(ctx.best.last_result.get("iters_per_epoch") or 0)
    if iters < 1:
        return {}
    cfg = Config.fromfile(str(best_config), import_custom_modules=False).to_dict()
    spelled = backend_for(cfg).mmengine_spelling(cfg, iters)
    if spelled is None:
        return {}
    path = Path(ctx.best_dir, "best_mmengine.py")
    path.write_text(spelled.to_text(), encoding="utf-8")
    return {"best_mmengine": path}


def _register() -> None:
    from rt3d_tune.results.export import register_exporter

    register_exporter(write_best_mmengine)


_register()
