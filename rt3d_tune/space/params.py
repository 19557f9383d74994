"""How a trial's sampled params sit in its Ray Tune config (no Ray, no torch).

Optuna's define-by-run search gives Tune a flat ``{param name: value}`` config; grid
search and PBT nest the params under ``PARAMS_KEY`` so that Tune's own grid expansion
and PBT's mutations see one mapping; a confirmation run (a top trial trained again with
a new seed) carries ``{CONFIRM_KEY: {"params": ..., "of": trial id, "seed": int}}``.

The baseline trial (the base config as the user wrote it) carries ``BASELINE_KEY: True``
among its params: beside the params that reproduce the base when the base lies inside
the space, alone when it does not. Its trial config is the base config with the trial's
budget and seed only, whatever params sit beside the marker (``trials.trial_overrides``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BASELINE_KEY",
    "CONFIRM_KEY",
    "PARAMS_KEY",
    "baseline_marked",
    "confirm_point",
    "is_baseline",
    "trial_params",
    "without_marker",
]

PARAMS_KEY = "params"
CONFIRM_KEY = "confirm"
# '@' never starts a config key or a search parameter's name: no collision possible.
BASELINE_KEY = "@baseline"


def baseline_marked(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The params of the baseline trial: ``params`` (those that reproduce the base config
    inside the space, or none) with the baseline marker."""
    return {**(params or {}), BASELINE_KEY: True}


def is_baseline(params: Any) -> bool:
    """True for the params of the baseline trial (or of a confirmation run of it)."""
    return isinstance(params, dict) and params.get(BASELINE_KEY) is True


def without_marker(params: dict[str, Any]) -> dict[str, Any]:
    """The params without the baseline marker (what the run's records keep)."""
    return {k: v for k, v in params.items() if k != BASELINE_KEY}


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
