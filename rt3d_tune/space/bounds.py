"""How much work a parsed space asks for, bounded before anything runs.

``load_space`` checks each field on its own; :func:`check_search_size` checks the sizes
that only a whole space (and the command line) determine: the number of trials (the
grid's Cartesian product is counted, never listed), the confirmation runs, the length
of a trial (``validate`` simulates every iteration of its schedule), the seeds Optuna
and numpy accept. Each error names the key path and the number it would have taken.
Pure: no torch, no Ray.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.config.limits import MAX_EPOCHS, MAX_ITERS, MAX_SEED, MAX_TRIALS, count_text
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.domains import Choice, Grid, Int, LogInt, LogUniform, Uniform
from rt3d_tune.space.sampling import grid_size
from rt3d_tune.space.space import SearchSpace

__all__ = ["MAX_BRACKETS", "check_search_size", "schedule_iters"]

MAX_BRACKETS = 16  # ASHA brackets: each is a set of rungs kept for every trial


def _at_most(value: int, limit: int, key_path: str, what: str, hint: str | None = None) -> None:
    """Refuse ``value`` above ``limit``; ``what`` says what it is, with ``{n}`` for it."""
    if value > limit:
        raise ConfigError(f"{what.format(n=count_text(value))}, more than the {limit:,} allowed",
                          key_path=key_path, expected=f"at most {limit:,}", given=value,
                          hint=hint)


def check_search_size(space: SearchSpace, num_samples: int | None = None) -> int:
    """Check every size the space (and ``--num-samples``) sets; return the trial count.

    Args:
        space: the parsed space.
        num_samples: ``--num-samples``, which replaces ``search.num_samples``.

    Raises:
        ConfigError: more than ``MAX_TRIALS`` trials (grid points, samples or
            confirmation runs), a seed numpy cannot take, a trial longer than
            ``MAX_EPOCHS`` epochs or ``MAX_ITERS`` iterations, or more than
            ``MAX_BRACKETS`` ASHA brackets.
    """
    file = str(space.file)
    try:
        if space.search.algorithm == "grid":
            trials = grid_size(space)
        elif num_samples is not None:
            trials = num_samples
            _at_most(trials, MAX_TRIALS, "--num-samples", "asks for {n} trials")
        else:
            trials = int(space.search.num_samples or 0)
            _at_most(trials, MAX_TRIALS, "search.num_samples", "asks for {n} trials")
        _at_most(space.search.seed, MAX_SEED, "search.seed", "the seed is {n}",
                 hint="Optuna's and numpy's generators take seeds below 2**32")
        trial_seed = getattr(space.search, "trial_seed", None)
        if isinstance(trial_seed, int) and not isinstance(trial_seed, bool):
            _at_most(trial_seed, MAX_SEED, "search.trial_seed", "the seed is {n}")
        confirm = getattr(space.search, "confirm", None)
        if confirm is not None and confirm.enabled:
            _at_most(min(confirm.top_k, trials) * confirm.seeds, MAX_TRIALS,
                     "search.confirm.seeds", "asks for {n} confirmation runs (top_k x seeds)")
        if space.stop.max_epochs is not None:
            _at_most(space.stop.max_epochs, MAX_EPOCHS, "stop.max_epochs",
                     "asks for {n} epochs per trial")
        brackets = space.scheduler.args.get("brackets")
        if isinstance(brackets, int):
            _at_most(brackets, MAX_BRACKETS, "scheduler.brackets", "asks for {n} brackets")
        _check_tuned_length(space)
    except ConfigError as err:
        raise err.with_context(file=file) from None
    _check_base_length(space)
    return trials


# The keys that set how long a trial trains, in both dialects, and their bounds.
_LENGTH_KEYS = {"runner.max_epochs": MAX_EPOCHS, "total_epochs": MAX_EPOCHS,
                "train_cfg.max_epochs": MAX_EPOCHS, "runner.max_iters": MAX_ITERS,
                "train_cfg.max_iters": MAX_ITERS}


def _values(template: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(config key path, the largest value it can take) for every number a parsed space
    entry can set: each option of a choice, the upper bound of a range."""
    if isinstance(template, (Choice, Grid)):
        for option in template.options:
            yield from _values(option, path)
    elif isinstance(template, (Uniform, LogUniform, Int, LogInt)):
        yield path, template.high
    elif isinstance(template, Mapping):
        for key, item in template.items():
            yield from _values(item, f"{path}.{key}")
    elif isinstance(template, (int, float)) and not isinstance(template, bool):
        yield path, template


def _check_tuned_length(space: SearchSpace) -> None:
    """A space that tunes the run length itself (``runner.max_epochs: {choice: [12,
    24]}``, no ``stop.max_epochs``) is bounded like ``stop.max_epochs``."""
    for param, domain in space.params:
        for path, value in _values(domain, param):
            limit = _LENGTH_KEYS.get(path)
            if limit is not None and value > limit:
                unit = "epochs" if path.endswith("epochs") else "iterations"
                raise ConfigError(
                    f"a trial may train {count_text(value)} {unit} ({path}), more than the "
                    f"{limit:,} allowed", key_path=f"space.{param}",
                    expected=f"values of at most {limit:,}", given=value,
                    hint="lower the domain's upper bound")


def _check_base_length(space: SearchSpace) -> None:
    """The base config's own length (what a trial runs without ``stop.max_epochs``)."""
    runner = plain_dict(space.base_config).get("runner")
    if not isinstance(runner, Mapping):
        return
    for key, limit in (("max_epochs", MAX_EPOCHS), ("max_iters", MAX_ITERS)):
        value = runner.get(key)
        if key == "max_epochs" and space.stop.max_epochs is not None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise ConfigError(f"asks for {count_text(value)} {key[4:]}, more than the "
                              f"{limit:,} a trial may run", key_path=f"runner.{key}",
                              file=str(space.base_path), expected=f"at most {limit:,}",
                              given=value, hint="set a shorter stop.max_epochs in the space")


def schedule_iters(space: SearchSpace, iters_per_epoch: int) -> int:
    """The iterations of one trial's schedule at ``iters_per_epoch`` (what validate simulates)."""
    epochs = space.max_epochs
    if epochs is not None:
        return int(epochs) * iters_per_epoch
    runner: Any = plain_dict(space.base_config).get("runner") or {}
    return int(runner.get("max_iters", 0) or 0)
