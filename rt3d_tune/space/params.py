"""How a trial's sampled params sit in its Ray Tune config (no Ray, no torch).

Optuna's define-by-run search gives Tune a flat ``{param name: value}`` config; grid
search and PBT nest the params under ``PARAMS_KEY`` so that Tune's own grid expansion
and PBT's mutations see one mapping.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PARAMS_KEY", "trial_params"]

PARAMS_KEY = "params"


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The sampled params of a trial: nested under ``params`` (grid, PBT) or flat (Optuna)."""
    if PARAMS_KEY in config and isinstance(config[PARAMS_KEY], dict):
        return dict(config[PARAMS_KEY])
    return dict(config)
