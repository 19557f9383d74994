"""Dry-run a search space without Ray: build what each trial would build, report all problems.

``validate_space`` takes a sample of trial configs (random draws, or the first grid
points) plus a few *coverage* configs that choose every option of every choice at least
once, with numeric domains at their bounds (where schedules most often break). For each
it merges the overrides into the base config, builds the model, the optimizer and the
optimizer hook, simulates the LR and momentum schedule over the whole run, then starts
the trial as a trial starts, short of its first iteration (``dry_start``: rt3d-tune's
runner with its data loaders and every hook; an mmengine config's Runner with its loops,
optim wrapper and param schedulers): what a trial would refuse, validate refuses first,
with the same message. Every problem is collected with its key path and the space entry
it came from.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rt3d_tune.backends.base import VALUE_ERRORS, collect_problem
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.domains import Choice, Domain, Grid, walk_domains
from rt3d_tune.space.sampling import (
    config_diff,
    define_by_run,
    grid_params,
    make_sampler,
    resolve_overrides,
    uses_index,
)
from rt3d_tune.space.space import SearchSpace
from rt3d_tune.space.trials import build_trial_configs, trial_overrides

__all__ = [
    "TrialCheck",
    "ValidationReport",
    "sample_params",
    "validate_space",
]

# Used when the base config's train dataset cannot be built here (e.g. KITTI files absent).
FALLBACK_ITERS_PER_EPOCH = 20


@dataclass
class TrialCheck:
    """One checked trial config: its label, parameters, overrides, diff and problems."""

    label: str
    params: dict[str, Any]
    overrides: dict[str, Any]
    diff: list[tuple[str, Any, Any]] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)


@dataclass
class ValidationReport:
    """All checked trial configs of a space; ``problems`` lists each distinct one once."""

    space: SearchSpace
    iters_per_epoch: int
    checks: list[TrialCheck]
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[tuple[ConfigError, list[str]]]:
        """Distinct problems, each with the labels of the trial configs that hit it."""
        seen: dict[str, tuple[ConfigError, list[str]]] = {}
        for check in self.checks:
            for err in check.problems:
                seen.setdefault(err.format(), (err, []))[1].append(check.label)
        return list(seen.values())

    @property
    def ok(self) -> bool:
        return not any(check.problems for check in self.checks)


def _coverage_params(space: SearchSpace) -> list[dict[str, Any]]:
    """Configs that together choose every option of every choice (nested ones too).

    Config k picks option ``k mod n`` of each choice and puts numeric domains at their
    low bound for even k, their high bound for odd k. There are as many configs as the
    largest choice has options (at least two, so both bounds are tried).
    """
    widest = max([2] + [len(d.options) for _, top in space.params for d in _choices(top)])
    found = []
    for k in range(widest):
        params: dict[str, Any] = {}

        def pick(name: str, domain: Domain, k: int = k, params: dict[str, Any] = params) -> Any:
            if isinstance(domain, (Choice, Grid)):
                index = k % len(domain.options)
                params[name] = index if uses_index(domain) else domain.options[index]
                return params[name]
            # q divides high - low (checked when parsing), so both bounds are valid values
            params[name] = domain.low if k % 2 == 0 else domain.high
            return params[name]

        resolve_overrides(space, pick)
        found.append(params)
    return found


def _choices(domain: Any) -> list[Choice | Grid]:
    return [d for _, d in walk_domains(domain, "") if isinstance(d, (Choice, Grid))]


def sample_params(space: SearchSpace, samples: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Labelled parameter sets to check: ``samples`` draws (or grid points), then coverage.

    Random draws use Optuna's seeded RandomSampler through ``define_by_run``, so they are
    real trial configs of the space; under the grid algorithm the first grid points.
    """
    drawn: list[dict[str, Any]]
    if space.search.algorithm == "grid":
        points = grid_params(space)
        drawn = points[:samples]
        kind = f"grid point {{}} of {len(points)}"
    else:
        import optuna

        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line
        try:
            study = optuna.create_study(sampler=make_sampler("random", seed, space))
        finally:
            optuna.logging.set_verbosity(verbosity)
        drawn = []
        for _ in range(samples):
            trial = study.ask()
            define_by_run(trial, space)
            drawn.append(dict(trial.params))
        kind = f"sample {{}} (random, seed {seed})"
    labelled = [(kind.format(i + 1), params) for i, params in enumerate(drawn)]
    labelled += [((f"coverage {k + 1} (option {k + 1} of each choice, "
                   f"{'low' if k % 2 == 0 else 'high'} bounds)"), params)
                 for k, params in enumerate(_coverage_params(space))]
    return labelled


def _origin(space: SearchSpace, params: Mapping[str, Any], key_path: str | None) -> str | None:
    """The space entry a config key path comes from (``space.lr_config.choice[2]``)."""
    for path, domain in space.params:
        if key_path and (key_path == path or key_path.startswith(path + ".")
                         or path.startswith(key_path + ".")):
            index = params.get(f"{path}@choice")
            if index is None:
                return f"space.{path}"
            kind = "choice" if isinstance(domain, Choice) else "grid"
            return f"space.{path}.{kind}[{index}]"
    return None


def _iters_per_epoch(space: SearchSpace, given: int | None, notes: list[str]) -> int | None:
    """The train loader's length of the base config (``given`` wins); None, with a note,
    when its train dataset cannot be built on this machine (KITTI files absent)."""
    try:
        here = space.backend.iters_per_epoch(plain_dict(space.base_config),
                                             world_size=space.resources.workers)
        return given or here
    except (ConfigError, OSError, *VALUE_ERRORS) as err:
        simulated = (f"{given} iterations per epoch (--iters-per-epoch)" if given else
                     f"{FALLBACK_ITERS_PER_EPOCH} iterations per epoch")
        notes.append(f"the train dataset could not be built here ({type(err).__name__}: "
                     f"{str(err).splitlines()[0]}); the data loaders are not checked and the "
                     f"schedule is simulated with {simulated}")
        return None


def _budget_notes(space: SearchSpace, full: Any, trial: Any) -> list[str]:
    """How a trial's schedule differs from the full-budget one (``stop``), one line each."""
    if space.stop.max_epochs is None:
        return []
    full_epochs = space.backend.run_length(plain_dict(full)).get("max_epochs")
    if space.stop.schedule == "truncated":
        return [f"truncated schedule: a trial trains epochs 1-{space.stop.max_epochs} of the "
                f"{full_epochs}-epoch curve"]
    head = f"scaled schedule: {full_epochs} epochs -> {space.stop.max_epochs} per trial"
    return [f"{head}: {line}" for line in space.backend.scaling_note(full, trial)]


def validate_space(space: SearchSpace, samples: int = 4, seed: int | None = None,
                   iters_per_epoch: int | None = None) -> ValidationReport:
    """Check ``samples`` trial configs of ``space`` and the coverage configs.

    Args:
        space: a parsed space (``load_space``).
        samples: random draws (or grid points) to check, besides the coverage configs.
        seed: seed of the draws; defaults to the space's ``search.seed``.
        iters_per_epoch: iterations per epoch for the schedule simulation; by default
            the length of the base config's train data loader.

    Returns:
        The report; ``report.ok`` is False when any trial config has a problem.
    """
    notes: list[str] = []
    counted = _iters_per_epoch(space, iters_per_epoch, notes)
    iters = counted or iters_per_epoch or FALLBACK_ITERS_PER_EPOCH
    cache: dict[str, Any] = {}
    checker = functools.partial(space.backend.check_trial_config,
                                data_here=counted is not None)
    checks = []
    for label, params in sample_params(space, samples, space.search.seed if seed is None else seed):
        overrides = trial_overrides(space, params)
        check = TrialCheck(label, params, overrides)
        built = collect_problem(check.problems, "stop.schedule",
                       lambda params=params: build_trial_configs(
                           space, space.base_config, params, iters_per_epoch=lambda _: iters))
        if built is not None:
            cfg, full = built
            check.diff = config_diff(space.base_config, cfg)
            check.problems += checker(cfg, iters, cache)
            notes += [n for n in _budget_notes(space, full, cfg) if n not in notes]
        check.problems = [_with_origin(space, params, err) for err in check.problems]
        checks.append(check)
    return ValidationReport(space, iters, checks, notes + _probe_notes(space))


def _probe_notes(space: SearchSpace) -> list[str]:
    """Where the trials report a cool-down probe's metric instead of the plain one."""
    from rt3d_tune.space.rungs import rung_epochs

    if space.scheduler.probe == "none":
        return []
    rungs = sorted(rung_epochs(space.scheduler, space.max_fidelity))
    if not rungs:
        return []
    unit = space.backend.fidelity_unit + ("s" if len(rungs) > 1 else "")
    return [f"rung probes: after {unit} {', '.join(map(str, rungs))} a trial reports "
            f"{space.metric} after a cool-down of {space.scheduler.probe_ratio:g} of the "
            f"iterations so far ({space.scheduler.type}'s rungs; scheduler.probe: none "
            f"reports the plain metric)"]


def _with_origin(space: SearchSpace, params: Mapping[str, Any], err: ConfigError) -> ConfigError:
    origin = _origin(space, params, err.key_path)
    if origin is None:
        return err
    hint = f"set by {origin}" + (f"; {err.hint}" if err.hint else "")
    return ConfigError(err.message, key_path=err.key_path, file=err.file, expected=err.expected,
                       given=err.given if err.has_given else ConfigError._MISSING, hint=hint)
