"""rt3d-tune: Ray-based hyperparameter search for mmdetection3d-style runtime configs."""

from __future__ import annotations

from rt3d_tune.config import Config

__all__ = ["Config", "__version__"]
__version__ = "0.1.0"
