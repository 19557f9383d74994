"""Wiring a parsed search space into a Ray Tune run, and resuming one.

``run_search`` is the whole search: run directory, Ray, searcher, scheduler, Tuner,
then export. Everything a user can get wrong is checked before Ray starts (by
``parse_space``), except the cluster's GPU count, checked right after.

Searchers:
    * random, qmc, tpe, cmaes: Ray's OptunaSearch with our define-by-run function and
      the space's Optuna sampler (its study in memory, saved with Tune's state;
      ``<run>/study.db`` is written from the records at export: see ``study``).
    * grid: every grid point exactly once (``tune.grid_search`` over the points).
    * with the pbt scheduler (Tune refuses a searcher with PBT): the initial population
      is sampled up front by the space's sampler, then PBT explores from there.
The trial configs of grid and PBT are nested under ``params``; Optuna's are flat.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from rt3d_tune.errors import ConfigError
from rt3d_tune.results import recorder
from rt3d_tune.results.export import export_run, write_run_info
from rt3d_tune.search.trainable import TrialSetup
from rt3d_tune.space.params import PARAMS_KEY

__all__ = ["RAY_DIR", "SearchResult", "resolve_run_dir", "run_search"]

RAY_DIR = "ray"  # Ray's own experiment state and trial checkpoints, inside the run dir
SPACE_COPY = "space.yaml"
# Tune checkpoints kept per trial: the latest is all a retry or resume needs; PBT also
# restores other trials' checkpoints, which must outlive a few more of their reports.
_CHECKPOINTS_KEPT = 2
_CHECKPOINTS_KEPT_PBT = 6
BASE_COPY = "base_config.py"


@dataclass
class SearchResult:
    """What a finished (or stopped) search leaves behind.

    Attributes:
        run_dir: the run directory.
        records: every trial, by id (``recorder.TrialRecord``).
        best: the best trial's record, or None when no trial reported the metric.
        exported: name -> path of every exported file.
    """

    run_dir: Path
    records: dict[str, recorder.TrialRecord]
    best: recorder.TrialRecord | None
    exported: dict[str, Path] = field(default_factory=dict)


def resolve_run_dir(space: Any, output: str | Path, name: str | None, resume: bool) -> Path:
    """``<output>/<name>``; without a name, ``<space stem>-<timestamp>`` (resume: the latest).

    Raises:
        ConfigError: resuming with no run to resume, or a new run into a used directory.
    """
    output = Path(output)
    stem = Path(space.file).stem
    if name is None and resume:
        runs = sorted(output.glob(f"{stem}-*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise ConfigError(
                "no run to resume",
                key_path="--resume",
                expected=f"a run directory {output}/{stem}-*",
                hint="pass --name of the run to resume, and the same --output",
            )
        return runs[-1].resolve()
    if name is None:
        name = f"{stem}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = (output / name).resolve()
    if resume and not run_dir.is_dir():
        raise ConfigError("no run to resume", key_path="--name", given=str(run_dir))
    if not resume and (run_dir / recorder.RESULTS_JSONL).exists():
        raise ConfigError(
            "the run directory already holds a search",
            key_path="--name",
            given=str(run_dir),
            hint="add --resume to continue it, or choose another --name",
        )
    return run_dir


def _prepare_run_dir(space: Any, run_dir: Path, num_samples: int) -> None:
    """The run directory before any trial: the space, the resolved base, ``run.json``."""
    from rt3d_tune import __version__

    (run_dir / "trials").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space.file, run_dir / SPACE_COPY)
    space.base_config.dump(str(run_dir / BASE_COPY))
    write_run_info(
        run_dir,
        {
            "space_file": str(Path(space.file).resolve()),
            "base_path": str(Path(space.base_path).resolve()),
            "metric": space.metric,
            "mode": space.mode,
            "algorithm": space.search.algorithm,
            "seed": space.search.seed,
            "num_samples": num_samples,
            "scheduler": {"type": space.scheduler.type, **dict(space.scheduler.args)},
            "resources": {"cpu": space.resources.cpu, "gpu": space.resources.gpu},
            "max_fidelity": _max_fidelity(space),
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "rt3d_tune": __version__,
        },
    )


def _max_fidelity(space: Any) -> int:
    """The most epochs (or evaluation rounds, iteration-based runners) a trial can run."""
    if space.max_epochs:
        return int(space.max_epochs)
    cfg = space.base_config
    runner = cfg.get("runner") or {}
    interval = int((cfg.get("evaluation") or {}).get("interval", 1)) or 1
    return max(1, int(runner.get("max_iters", 1)) // interval)


def _sample_points(space: Any, count: int) -> list[dict[str, Any]]:
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


def _search_setup(space: Any, num_samples: int) -> tuple[Any, dict, int, Any]:
    """(search_alg, param_space, num_samples, scheduler) for the space."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from rt3d_tune.space.sampling import grid_params, make_sampler
    from rt3d_tune.search.schedulers import build_scheduler, mutable_params, pbt_mutations

    algorithm = space.search.algorithm
    common = {"metric": space.metric, "mode": space.mode, "max_t": _max_fidelity(space)}
    if space.scheduler.type == "pbt" or algorithm == "grid":
        if algorithm == "grid":
            points = grid_params(space)
        else:
            points = _sample_points(space, num_samples)
        domains = mutable_params(space)
        scheduler = build_scheduler(
            space.scheduler, **common, mutations=pbt_mutations(domains), domains=domains
        )
        # Tune applies max_concurrent_trials to Searchers only; this generator limits itself.
        generator = BasicVariantGenerator(max_concurrent=space.max_concurrent or 0)
        return generator, {PARAMS_KEY: tune.grid_search(points)}, 1, scheduler
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _optuna_search_class()(
        space=partial(_define_by_run_for_ray, space=space),
        metric=space.metric,
        mode=space.mode,
        sampler=make_sampler(algorithm, space.search.seed, space),
    )
    return searcher, {}, num_samples, build_scheduler(space.scheduler, **common)


def _optuna_search_class() -> type:
    """Ray's OptunaSearch, telling Optuna the truth about trials a scheduler stopped.

    Ray hands Optuna a trial that ASHA/HyperBand/median stopped as COMPLETE with its
    last (low-fidelity) value, so TPE and CMA-ES would learn from 1-epoch scores as if
    they were final. Such a trial is told as PRUNED instead: Optuna then ranks it by the
    intermediate values Ray already reported for it, step by step.
    """
    from ray.tune.search.optuna import OptunaSearch

    class FidelityAwareOptunaSearch(OptunaSearch):
        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            stopped_early = bool(result) and not error and result.get("final") is False \
                and not result.get("diverged")
            super().on_trial_complete(trial_id, None if stopped_early else result, error)

    return FidelityAwareOptunaSearch


def _define_by_run_for_ray(trial: Any, space: Any) -> None:
    """OptunaSearch's define-by-run: Ray takes the params the trial suggested."""
    from rt3d_tune.space.sampling import define_by_run

    define_by_run(trial, space)


def run_search(
    space: Any,
    *,
    address: str | None = None,
    name: str | None = None,
    output: str | Path = "runs",
    num_samples: int | None = None,
    resume: bool = False,
    max_failures: int = 0,
    status: bool = True,
    stream: TextIO | None = None,
    debug: bool = False,
) -> SearchResult:
    """Run (or resume) a search and export its results.

    Args:
        space: the parsed SearchSpace (``rt3d_tune.space.space.parse_space``).
        address: None for an embedded local Ray; ``auto`` / ``ray://host:port`` to join.
        name: the run's directory name under ``output`` (default: space stem + time).
        output: where run directories go.
        num_samples: overrides ``search.num_samples`` (ignored by grid: every point runs).
        resume: continue the interrupted run ``output/name`` (the latest one without a
            name); every trial ends up run exactly once.
        max_failures: retries of a trial that raised (from its last checkpoint).
        status: show the live status line.
        stream: where the status line goes (stderr by default).
        debug: forward Ray workers' logs.

    Raises:
        ConfigError: a user mistake found after Ray started (GPU count, the metric not
            produced by the evaluation, a trial config that does not build).
    """
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from rt3d_tune.search.callbacks import FatalErrorStopper, ResultRecorder
    from rt3d_tune.search.ray_session import ray_session
    from rt3d_tune.space.sampling import num_trials
    from rt3d_tune.space.space import check_resources
    from rt3d_tune.search.status import StatusLine
    from rt3d_tune.search.trainable import train_trial

    run_dir = resolve_run_dir(space, output, name, resume)
    ray_dir = run_dir / RAY_DIR
    samples = num_trials(space) if space.search.algorithm == "grid" else int(
        num_samples or space.search.num_samples
    )
    if not resume:
        _prepare_run_dir(space, run_dir, samples)
    resources = {"cpu": float(space.resources.cpu), "gpu": float(space.resources.gpu)}
    setup = TrialSetup(
        run_dir=str(run_dir),
        base_config=str(Path(space.base_path).resolve()),
        space=space,
        cpus=resources["cpu"],
        cwd=os.getcwd(),
    )
    with ray_session(address, debug=debug):
        check_resources(space, ray.cluster_resources())
        trainable = tune.with_resources(tune.with_parameters(train_trial, setup=setup), resources)
        if resume and tune.Tuner.can_restore(str(ray_dir)):
            tuner = tune.Tuner.restore(
                str(ray_dir), trainable, resume_unfinished=True, resume_errored=True
            )
        else:
            if resume:  # killed before Ray saved any state: start over in the same dir
                _discard_partial(run_dir)
            search_alg, param_space, samples, scheduler = _search_setup(space, samples)
            callbacks: list[Any] = [ResultRecorder(run_dir)]
            if status:
                callbacks.append(StatusLine(space.metric, space.mode, run_dir, samples, stream))
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    search_alg=search_alg,
                    scheduler=scheduler,
                    num_samples=samples,
                    max_concurrent_trials=space.max_concurrent
                    if isinstance(search_alg, OptunaSearch)
                    else None,
                    time_budget_s=space.stop.time_budget_s,
                    reuse_actors=True,
                    trial_dirname_creator=_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=RAY_DIR,
                    storage_path=str(run_dir),
                    stop=FatalErrorStopper(),
                    callbacks=callbacks,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=_CHECKPOINTS_KEPT_PBT
                        if space.scheduler.type == "pbt"
                        else _CHECKPOINTS_KEPT
                    ),
                    verbose=0,
                ),
            )
        started = time.monotonic()
        tuner.fit()
    budget = space.stop.time_budget_s
    if budget is not None and time.monotonic() - started >= budget:
        recorder.close_unfinished(run_dir, recorder.EARLY_STOPPED, "stop.time_budget_s reached")
    records = recorder.load_records(run_dir, finished=True)
    _raise_fatal(records)
    exported = export_run(run_dir)
    best = recorder.best_record(records, space.metric, space.mode)
    return SearchResult(run_dir=run_dir, records=records, best=best, exported=exported)


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _discard_partial(run_dir: Path) -> None:
    """Set aside what a driver killed before its first state save left behind."""
    path = run_dir / recorder.RESULTS_JSONL
    if path.exists():
        path.rename(path.with_name(path.name + ".interrupted"))
    shutil.rmtree(run_dir / RAY_DIR, ignore_errors=True)


def _raise_fatal(records: dict[str, recorder.TrialRecord]) -> None:
    """Raise the first error every trial would repeat (see trainable's failure policy)."""
    for rec in records.values():
        for result in rec.results.values():
            if result.get("fatal_error"):
                raise ConfigError(f"the search stopped: {result['fatal_error']}")
