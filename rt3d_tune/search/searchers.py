"""The searcher and scheduler of a search: what draws each trial's params, and what
stops trials early (see ``tuner`` for the Tuner around them).

Searchers:
    * random, qmc, tpe, cmaes: Ray's OptunaSearch with our define-by-run function and
      the space's Optuna sampler (its study in memory, saved with Tune's state;
      ``<run>/study.db`` is written from the records as trials end: see ``live_study``).
    * grid: every grid point exactly once (``tune.grid_search`` over the points).
    * with the pbt scheduler (Tune refuses a searcher with PBT): the initial population
      is sampled up front by the space's sampler, then PBT explores from there.
The trial configs of grid and PBT are nested under ``params``; Optuna's are flat.

The baseline trial (``rt3d_tune.space.baseline``) comes first: Optuna's searchers get
it as Tune's ``points_to_evaluate`` (enqueued in their study, so the sampler learns from
it) when the base lies inside the space, and run it untold when it does not; the grid
runs it as an extra first point. Under PBT there is none (``search.baseline``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from rt3d_tune.space.params import PARAMS_KEY, without_marker
from rt3d_tune.space.space import SearchSpace
from rt3d_tune.space.trials import fixed_seed

__all__ = ["optuna_search_class", "sample_points", "search_setup"]

# Draws of the sampler per trial when a draw repeats an earlier trial's config.
_REDRAWS = 32


def sample_points(space: SearchSpace, count: int) -> list[dict[str, Any]]:
    """``count`` params sampled up front with the space's sampler (PBT's population)."""
    import optuna

    from rt3d_tune.space.sampling import define_by_run, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(space.search.algorithm, space.search.seed, space)
    study = optuna.create_study(sampler=sampler)
    points = []
    for _ in range(count):
        trial = study.ask()
        define_by_run(trial, space)
        points.append(dict(trial.params))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return points


def search_setup(space: SearchSpace, num_samples: int) -> tuple[Any, dict, int, Any]:
    """(search_alg, param_space, num_samples, scheduler) for the space; ``num_samples``
    (the trials the user asked for) comes back with the baseline trial added."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from rt3d_tune.search.schedulers import build_scheduler, mutable_params, pbt_mutations
    from rt3d_tune.space.baseline import baseline_point
    from rt3d_tune.space.sampling import grid_params, make_sampler

    algorithm = space.search.algorithm
    common = {"metric": space.metric, "mode": space.mode, "max_t": space.max_fidelity}
    baseline, fits = baseline_point(space) if space.search.baseline else (None, False)
    if space.scheduler.type == "pbt" or algorithm == "grid":
        if algorithm == "grid":
            points = grid_params(space)
        else:
            points = sample_points(space, num_samples)
        points = [baseline, *points] if baseline is not None else points
        domains = mutable_params(space)
        scheduler = build_scheduler(
            space.scheduler, **common, mutations=pbt_mutations(domains), domains=domains
        )
        # Tune applies max_concurrent_trials to Searchers only; this generator limits itself.
        generator = BasicVariantGenerator(max_concurrent=space.max_concurrent or 0)
        return generator, {PARAMS_KEY: tune.grid_search(points)}, 1, scheduler
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = optuna_search_class()(
        space=partial(_define_by_run_for_ray, space=space),
        metric=space.metric,
        mode=space.mode,
        sampler=make_sampler(algorithm, space.search.seed, space),
        distinct=fixed_seed(space) is not None,
        points_to_evaluate=[without_marker(baseline)] if fits and baseline else None,
        baseline="told" if fits else "untold" if baseline is not None else None,
    )
    total = num_samples + (baseline is not None)
    return searcher, {}, total, build_scheduler(space.scheduler, **common)


def optuna_search_class() -> type:
    """Ray's OptunaSearch, telling Optuna the truth about trials a scheduler stopped, and
    never paying twice for one config when every trial trains with the same seed.

    Ray hands Optuna a trial that ASHA/HyperBand/median stopped as COMPLETE with its
    last (low-fidelity) value, so TPE and CMA-ES would learn from 1-epoch scores as if
    they were final. Such a trial is told as PRUNED instead: Optuna then ranks it by the
    intermediate values Ray already reported for it, step by step.

    With ``distinct`` (a fixed trial seed), a draw that repeats an earlier trial's params
    would train to exactly that trial's result: it is told to Optuna as FAILED (which
    the samplers ignore) and drawn again, up to ``_REDRAWS`` times (TPE on a small
    categorical space repeats its favourites often).

    ``baseline``: the first trial is the baseline. ``"told"``: it is the first point to
    evaluate (``points_to_evaluate``, enqueued in the study) and carries the baseline
    marker; ``"untold"`` (the base lies outside the space): its config is the marker
    alone and Optuna never sees it; None: no baseline.
    """
    import json

    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    from rt3d_tune.space.params import baseline_marked

    class FidelityAwareOptunaSearch(OptunaSearch):
        def __init__(self, *args: Any, distinct: bool = False, baseline: str | None = None,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._distinct = distinct
            self._drawn: set[str] = set()
            self._baseline = baseline  # None once the baseline trial was suggested
            self._untold: set[str] = set()

        def suggest(self, trial_id: str) -> dict | None:
            baseline, self._baseline = self._baseline, None
            if baseline == "untold":
                self._untold.add(trial_id)
                return baseline_marked()
            config = super().suggest(trial_id)
            if baseline == "told" and config is not None:
                self._drawn.add(json.dumps(config, sort_keys=True, default=str))
                return baseline_marked(config)
            if not self._distinct or config is None:
                return config
            key = json.dumps(config, sort_keys=True, default=str)
            for _ in range(_REDRAWS):
                if key not in self._drawn:
                    break
                self._ot_study.tell(self._ot_trials.pop(trial_id), state=TrialState.FAIL)
                config = super().suggest(trial_id)
                key = json.dumps(config, sort_keys=True, default=str)
            self._drawn.add(key)
            return config

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if trial_id not in self._untold:
                super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            if trial_id in self._untold:
                return
            stopped_early = bool(result) and not error and result.get("final") is False \
                and not result.get("diverged")
            super().on_trial_complete(trial_id, None if stopped_early else result, error)

    return FidelityAwareOptunaSearch


def _define_by_run_for_ray(trial: Any, space: SearchSpace) -> None:
    """OptunaSearch's define-by-run: Ray takes the params the trial suggested."""
    from rt3d_tune.space.sampling import define_by_run

    define_by_run(trial, space)
