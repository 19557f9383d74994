"""How a trial's sampled params sit in its Ray Tune config (no Ray, no torch).

Optuna's define-by-run search gives Tune a flat ``{param name: value}`` config; grid
search and PBT nest the params under ``PARAMS_KEY`` so that Tune's own grid expansion
and PBT's mutations see one mapping; a confirmation run (a top trial trained again with
a new seed) carries ``{CONFIRM_KEY: {"params": ..., "of": trial id, "seed": int}}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONFIRM_KEY", "PARAMS_KEY", "confirm_point", "trial_params"]

PARAMS_KEY = "params"
CONFIRM_KEY = "confirm"


def confirm_point(params: dict[str, Any], of: str, seed: int) -> dict[str, Any]:
    """The Tune config entry of a confirmation run of trial ``of`` with ``seed``."""
    return {"params": dict(params), "of": of, "seed": int(seed)}


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The sampled params of a trial: flat (Optuna), nested (grid, PBT) or a confirmation's."""
    if isinstance(config.get(CONFIRM_KEY), dict):
        return dict(config[CONFIRM_KEY]["params"])
    if PARAMS_KEY in config and isinstance(config[PARAMS_KEY], dict):
        return dict(config[PARAMS_KEY])
    return dict(config)
