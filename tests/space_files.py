"""Space files for tests: a small valid search over a base config, sections replaceable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_space(folder: Path, name: str, base: Path, **sections: Any) -> Path:
    """``folder/<name>.yaml``: two random trials of ``optimizer.lr`` over ``base``, one CPU
    each, maximizing ``accuracy``; each keyword replaces that top-level section."""
    data: dict[str, Any] = {
        "base": str(base),
        "metric": "accuracy",
        "mode": "max",
        "space": {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
        "search": {"algorithm": "random", "num_samples": 2, "seed": 0, "max_concurrent": 2},
        "scheduler": {"type": "fifo"},
        "resources": {"cpu": 1},
    }
    data.update(sections)
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
