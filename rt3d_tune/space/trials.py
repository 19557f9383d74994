"""What a trial trains: the overrides of its sampled params, its seed, its length.

Two budgets per search (docs/ARCHITECTURE.md, "Data flow"): the base config's full length, which
the user really trains and the export writes, and the trial's (``stop.max_epochs``).
The space speaks in the base config's units (an ``lr_config.step`` choice of ``[8, 11]``
means epochs 8 and 11 of the full run); a trial's schedule is rescaled onto its own
length when it runs (:mod:`rt3d_tune.schedules.budget`). Pure: no torch, no Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.space.params import is_baseline
from rt3d_tune.space.sampling import ABSENT, apply_overrides, lookup, overrides_from_params
from rt3d_tune.space.space import SearchSpace

__all__ = [
    "build_trial_configs",
    "config_seed",
    "confirm_seeds",
    "fixed_seed",
    "full_length",
    "trial_overrides",
]



def fixed_seed(space: SearchSpace) -> int | None:
    """The seed every trial trains with, or None when each draws its own.

    ``search.trial_seed``: an int is that seed; ``fixed`` is the base config's ``seed``
    when it sets one, else ``search.seed``; ``random`` (or a space that tunes ``seed``
    itself) is None.
    """
    key = space.backend.seed_key
    if any(path == key for path, _ in space.params):
        return None
    choice = space.search.trial_seed
    if choice == "random":
        return None
    if isinstance(choice, int):
        return choice
    base_seed = config_seed(space, space.base_config)
    return int(base_seed) if isinstance(base_seed, int) else int(space.search.seed)


def confirm_seeds(space: SearchSpace) -> list[int]:
    """The new seeds of the confirmation runs: never the one the search trials used."""
    first = (fixed_seed(space) if fixed_seed(space) is not None else space.search.seed) + 1
    return [first + i for i in range(space.search.confirm.seeds)]


def full_length(space: SearchSpace) -> SearchSpace:
    """The space with its trial budget taken off: its trials train at the base config's
    own length (``search.confirm.length: full``)."""
    return replace(space, stop=replace(space.stop, max_epochs=None), fixed_overrides={})


def trial_overrides(space: SearchSpace, params: Mapping[str, Any], *, seed: int | None = None,
                    full_budget: bool = False) -> dict[str, Any]:
    """The overrides a trial (or the exported winner) applies to the base config.

    Args:
        space: the parsed space.
        params: the trial's sampled params; the baseline's (``params.is_baseline``) set
            nothing but the budget and the seed, whatever params sit beside its marker.
        seed: the training seed; default :func:`fixed_seed` (None: the runner draws one).
        full_budget: leave the base config's length alone (the exported winner) instead
            of ``stop.max_epochs`` (what the trial runs).
    """
    if is_baseline(params):  # the base as written: the budget and the seed only
        overrides = dict(space.fixed_overrides)
    else:
        overrides = overrides_from_params(space, params)  # stop.max_epochs's runner included
    if full_budget:
        for key in space.fixed_overrides:
            overrides.pop(key, None)
    seed = fixed_seed(space) if seed is None else seed
    if seed is not None:
        overrides[space.backend.seed_key] = seed
    return overrides


def config_seed(space: SearchSpace, cfg: Any) -> int | None:
    """The training seed a config sets (``seed``; an mmengine config's
    ``randomness.seed``), None when it sets none."""
    seed = lookup(plain_dict(cfg), space.backend.seed_key)
    return None if seed is ABSENT else seed


def build_trial_configs(space: SearchSpace, base: Any, params: Mapping[str, Any], *,
                        iters_per_epoch: Callable[[Any], int], seed: int | None = None
                        ) -> tuple[Any, Any]:
    """(what the trial trains, the same config at the base's full length).

    The trial's config is ``base`` + :func:`trial_overrides`; with ``stop.schedule:
    scaled`` and a trial shorter (or longer) than the base, its schedule is rescaled onto
    its length by the space's backend (:meth:`~rt3d_tune.backends.base.Backend.
    scale_schedule`; the mmcv backend builds the real hooks: torch is imported then).

    Args:
        space: the parsed space.
        base: the base Config.
        params: the trial's sampled params.
        iters_per_epoch: the train loader's length for a merged config.
        seed: the training seed; default the space's trial seed.

    Raises:
        ConfigError: an override the base cannot take, a schedule that cannot scale.
    """
    trial = apply_overrides(base, trial_overrides(space, params, seed=seed))
    full = apply_overrides(base, trial_overrides(space, params, seed=seed, full_budget=True))
    if space.stop.schedule != "scaled" or space.stop.max_epochs is None:
        return trial, full
    from rt3d_tune.config import Config

    backend = space.backend
    backend.check_before_scaling(trial)
    iters = iters_per_epoch(trial)
    scaled = backend.scale_schedule(trial, backend.budget(full, iters),
                                    backend.budget(trial, iters))
    return Config(scaled, filename=trial.filename), full
