"""Wiring a parsed search space into a Ray Tune run, and resuming one.

``run_search`` is the whole search: run directory, Ray, searcher, scheduler, Tuner,
then export. Everything a user can get wrong is checked before Ray starts (by
``parse_space``), except the cluster's GPU count, checked right after.

Searchers and schedulers: :mod:`rt3d_tune.search.searchers`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rt3d_tune.errors import ConfigError, RecordingError
from rt3d_tune.results import recorder
from rt3d_tune.results.confirmation import ConfirmedConfig
from rt3d_tune.results.export import export_run, load_context, write_run_info
from rt3d_tune.results.stored_run import fetch_run, fetch_trials, run_location, upload_run
from rt3d_tune.search.searchers import search_setup
from rt3d_tune.space.params import CONFIRM_KEY, confirm_point
from rt3d_tune.space.space import SearchSpace
from rt3d_tune.space.trials import fixed_seed, full_length
from rt3d_tune.storage import Storage
from rt3d_tune.trial.setup import TrialSetup

__all__ = ["RAY_DIR", "SearchResult", "locate_run", "resolve_run_dir", "run_search"]

RAY_DIR = "ray"  # Ray's own experiment state and trial checkpoints, inside the run dir
CONFIRM_RAY_DIR = "ray_confirm"  # the same for the confirmation runs
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
        best: the winning trial's record (the best confirmed mean, else the best metric),
            or None when no trial reported the metric.
        exported: name -> path of every exported file.
        confirmed: the winner's confirmation runs (None when not confirmed).
        budget_cut: when ``stop.time_budget_s`` ended the search: (trials planned,
            trials it cut short); None when it did not.
    """

    run_dir: Path
    records: dict[str, recorder.TrialRecord]
    best: recorder.TrialRecord | None
    exported: dict[str, Path] = field(default_factory=dict)
    confirmed: ConfirmedConfig | None = None
    budget_cut: tuple[int, int] | None = None


def resolve_run_dir(space: SearchSpace, output: str | Path, name: str | None, resume: bool) -> Path:
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


def locate_run(space: SearchSpace, output: str | Path, name: str | None, resume: bool,
               storage: str | None = None) -> tuple[Path, Storage | None]:
    """(the run directory on this machine, the run's folder in its URI storage or None).

    A run kept in a URI is continued from its stored copy when this machine has no
    working copy of it (a laptop after the cluster is gone).

    Raises:
        ConfigError: as :func:`resolve_run_dir`; a new run whose name the storage
            already holds.
    """
    output, store = run_location(storage, output)
    if store is not None and resume and name is not None and not (output / name).is_dir():
        if not store.child(name).exists(recorder.RESULTS_JSONL):
            raise ConfigError("no run to resume", key_path="--name",
                              given=store.child(name).uri,
                              hint="pass the --name of a run kept in this --storage")
        fetch_run(store.child(name), output / name)
    run_dir = resolve_run_dir(space, output, name, resume)
    run_store = store.child(run_dir.name) if store is not None else None
    if run_store is not None and not resume and run_store.exists(recorder.RESULTS_JSONL):
        raise ConfigError("the storage already holds a search of this name", key_path="--name",
                          given=run_store.uri,
                          hint="add --resume to continue it, or choose another --name")
    return run_dir, run_store


def _prepare_run_dir(space: SearchSpace, run_dir: Path, num_samples: int,
                     run_store: Storage | None = None) -> None:
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
            "backend": space.backend.name,
            "resources": {"cpu": space.resources.cpu, "gpu": space.resources.gpu,
                          "workers": space.resources.workers,
                          "placement": space.resources.placement},
            "schedule": space.stop.schedule,
            "trial_seed": space.search.trial_seed,
            "common_seed": fixed_seed(space),
            "baseline": space.search.baseline,
            "confirm": {"top_k": space.search.confirm.top_k,
                        "seeds": space.search.confirm.seeds,
                        "length": space.search.confirm.length},
            "max_fidelity": space.max_fidelity,
            "storage": run_store.uri if run_store is not None else None,
            "run_dir": str(run_dir),
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "rt3d_tune": __version__,
        },
    )


def run_search(
    space: SearchSpace,
    *,
    address: str | None = None,
    name: str | None = None,
    output: str | Path = "runs",
    storage: str | None = None,
    num_samples: int | None = None,
    resume: bool = False,
    max_failures: int = 0,
    status: bool = True,
    stream: TextIO | None = None,
    debug: bool = False,
    disconnect: bool = True,
) -> SearchResult:
    """Run (or resume) a search, confirm its top configs, and export the results.

    Args:
        space: the parsed space (``rt3d_tune.space.load_space``).
        address: None for an embedded local Ray; ``auto`` / ``ray://host:port`` to join.
        name: the run's directory name under ``output`` (default: space stem + time).
        output: where run directories go (for a run kept in a URI: its working copy).
        storage: where the run is kept: None (``output``), a path every node mounts,
            or a URI (``s3://bucket/prefix``): then everything the run is lives in
            ``<storage>/<name>/`` and trials write nothing to this machine's paths.
        num_samples: overrides ``search.num_samples`` (ignored by grid: every point runs).
        resume: continue the interrupted run ``output/name`` (the latest one without a
            name); every trial, confirmation runs included, ends up run exactly once.
        max_failures: retries of a trial that raised (from its last checkpoint).
        status: show the live status line.
        stream: where the status line goes (stderr by default).
        debug: forward Ray workers' logs.
        disconnect: leave a joined cluster with ``ray.shutdown()`` (the CLI, which
            exits right after, does not: ``ray_session``).

    Raises:
        ConfigError: a user mistake found after Ray started (GPU count, the metric not
            produced by the evaluation, a trial config that does not build).
    """
    import ray
    from ray import tune

    from rt3d_tune.search.cluster_storage import check_nodes_see
    from rt3d_tune.search.ray_session import ray_session
    from rt3d_tune.search.trainable import train_trial
    from rt3d_tune.search.worker_group import trial_resources
    from rt3d_tune.space.sampling import num_trials
    from rt3d_tune.space.space import check_resources

    run_dir, run_store = locate_run(space, output, name, resume, storage)
    samples = num_trials(space) if space.search.algorithm == "grid" else int(
        num_samples or space.search.num_samples
    )
    if not resume:
        _prepare_run_dir(space, run_dir, samples, run_store)
        if run_store is not None:
            upload_run(run_dir, run_store)
    res = space.resources
    resources = trial_resources(float(res.cpu), float(res.gpu), res.workers, res.placement)
    setup = _trial_setup(space, run_dir, float(res.cpu), run_store)
    phase = _Phase(space, run_dir, max_failures, resume, run_store)
    with ray_session(address, debug=debug, disconnect=disconnect):
        check_resources(space, ray.cluster_resources())
        if run_store is None:
            check_nodes_see(run_dir)
        trainable = tune.with_resources(tune.with_parameters(train_trial, setup=setup), resources)
        started = time.monotonic()
        _fit(phase.search_tuner(trainable, samples, status, stream))
        budget = space.stop.time_budget_s
        budget_cut = None
        if budget is not None and time.monotonic() - started >= budget:
            budget_cut = (samples, recorder.close_unfinished(
                run_dir, recorder.EARLY_STOPPED, "stop.time_budget_s reached"))
        records = recorder.load_records(run_dir, finished=True)
        _raise_fatal(records)
        if space.search.confirm.length == "full":
            trainable = tune.with_resources(tune.with_parameters(
                train_trial, setup=_trial_setup(full_length(space), run_dir, float(res.cpu),
                                                run_store)),
                resources)
        confirm = phase.confirm_tuner(trainable, records,
                                      (stream or sys.stderr) if status else None)
        if confirm is not None:
            _fit(confirm)
            _raise_fatal(recorder.load_records(run_dir, filename=recorder.CONFIRM_JSONL))
    if run_store is not None:
        fetch_trials(run_store, run_dir)
    context = load_context(run_dir)
    exported = export_run(run_dir, context)
    if run_store is not None:
        upload_run(run_dir, run_store)
    return SearchResult(run_dir=run_dir, records=records, best=context.best, exported=exported,
                        confirmed=context.winner_confirmation, budget_cut=budget_cut)


def _trial_setup(space: SearchSpace, run_dir: Path, cpus: float,
                 run_store: Storage | None = None) -> TrialSetup:
    from rt3d_tune.space.rungs import rung_epochs

    probes = space.scheduler.probe != "none"
    return TrialSetup(
        run_dir=str(run_dir),
        base_config=str(Path(space.base_path).resolve()),
        space=space,
        cpus=cpus,
        cwd=os.getcwd(),
        probe_epochs=rung_epochs(space.scheduler, space.max_fidelity) if probes else frozenset(),
        storage=run_store.uri if run_store is not None else None,
    )


@dataclass
class _Phase:
    """Builds (or restores) the Tuner of each phase of one search: the search itself,
    then the confirmation of its top configs. Each phase keeps its own Tune state in
    the run directory, so ``--resume`` continues whichever was interrupted."""

    space: SearchSpace
    run_dir: Path
    max_failures: int
    resume: bool
    run_store: Storage | None = None

    def _tune_storage(self, ray_name: str = "") -> tuple[str, Any]:
        """(path, pyarrow filesystem or None) of Tune's storage (of one phase's state)."""
        if self.run_store is None:
            return str(self.run_dir / ray_name) if ray_name else str(self.run_dir), None
        filesystem, path = self.run_store.filesystem()
        return (f"{path}/{ray_name}" if ray_name else path), filesystem

    def _callbacks(self, *callbacks: Any) -> list[Any]:
        """The phase's callbacks, with the upload of the run's files for a stored run."""
        from rt3d_tune.search.cluster_storage import RunUploader

        if self.run_store is None:
            return list(callbacks)
        return [*callbacks, RunUploader(self.run_dir, self.run_store)]

    @property
    def _reuse_actors(self) -> bool:
        # A data-parallel trial's ranks belong to its actor: a new trial needs a new one.
        return self.space.resources.workers == 1

    def _restored(self, ray_name: str, trainable: Any, callbacks: list[Any]) -> Any:
        """The phase's Tuner restored from its saved state, with this driver's callbacks
        (the saved ones write to the first driver's run directory); None: none saved."""
        from ray import tune

        from rt3d_tune.search._ray_private import replace_callbacks

        path, filesystem = self._tune_storage(ray_name)
        if not (self.resume and tune.Tuner.can_restore(path, storage_filesystem=filesystem)):
            return None
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                   resume_errored=True, storage_filesystem=filesystem)
        if not replace_callbacks(tuner, self._callbacks(*callbacks)):
            _check_same_run_dir(self.run_dir)
        return tuner

    def _run_config(self, ray_name: str, callbacks: list[Any]) -> Any:
        from ray import tune

        from rt3d_tune.search.callbacks import FatalErrorStopper

        path, filesystem = self._tune_storage()
        return tune.RunConfig(
            name=ray_name,
            storage_path=path,
            storage_filesystem=filesystem,
            stop=FatalErrorStopper(),
            callbacks=self._callbacks(*callbacks),
            failure_config=tune.FailureConfig(max_failures=self.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=_CHECKPOINTS_KEPT_PBT
                if self.space.scheduler.type == "pbt"
                else _CHECKPOINTS_KEPT
            ),
            verbose=0,
        )

    def search_tuner(self, trainable: Any, samples: int, status: bool,
                     stream: TextIO | None) -> Any:
        """The search phase: the space's searcher and scheduler over ``samples`` trials."""
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch

        from rt3d_tune.search.callbacks import ResultRecorder
        from rt3d_tune.search.live_study import LiveStudy
        from rt3d_tune.search.status import StatusLine

        space = self.space
        search_alg, param_space, samples, scheduler = search_setup(space, samples)
        callbacks: list[Any] = [ResultRecorder(self.run_dir), LiveStudy(space, self.run_dir)]
        if status:
            callbacks.append(StatusLine(space.metric, space.mode, self.run_dir, samples, stream))
        restored = self._restored(RAY_DIR, trainable, callbacks)
        if restored is not None:
            return restored
        if self.resume:  # killed before Ray saved any state: start over in the same dir
            _discard_partial(self.run_dir)
        return tune.Tuner(
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
                reuse_actors=self._reuse_actors,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=self._run_config(RAY_DIR, callbacks),
        )

    def confirm_tuner(self, trainable: Any, records: dict[str, recorder.TrialRecord],
                      stream: TextIO | None) -> Any:
        """The confirmation phase: each of the top-k trials' configs, and the baseline's,
        again with each new seed (at the base's length under ``confirm.length: full``),
        FIFO; None when confirmation is off or no trial finished its budget."""
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        from rt3d_tune.results.confirmation import baseline_record, run_params, select_top
        from rt3d_tune.search.callbacks import ResultRecorder
        from rt3d_tune.space.trials import confirm_seeds

        space = self.space
        if not space.search.confirm.enabled:
            return None
        restored = self._restored(CONFIRM_RAY_DIR, trainable,
                                  [ResultRecorder(self.run_dir, recorder.CONFIRM_JSONL)])
        if restored is not None:
            return restored
        top = select_top(records, space.metric, space.mode, space.search.confirm.top_k)
        if not top:
            return None
        seeds = confirm_seeds(space)
        base = baseline_record(records)
        runs = top + ([base] if base is not None else [])
        points = [confirm_point(run_params(rec), rec.trial_id, seed) for rec in runs
                  for seed in seeds]
        if stream is not None:
            length = " at the base config's length" if space.search.confirm.length == "full" \
                else ""
            print(f"confirming the top {len(top)} config(s)"
                  f"{' and your base config' if base is not None else ''} with {len(seeds)} "
                  f"new seed(s) each{length}: {len(points)} runs", file=stream, flush=True)
        return tune.Tuner(
            trainable,
            param_space={CONFIRM_KEY: tune.grid_search(points)},
            tune_config=tune.TuneConfig(
                search_alg=BasicVariantGenerator(max_concurrent=space.max_concurrent or 0),
                num_samples=1,
                reuse_actors=self._reuse_actors,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=self._run_config(
                CONFIRM_RAY_DIR, [ResultRecorder(self.run_dir, recorder.CONFIRM_JSONL)]
            ),
        )


def _check_same_run_dir(run_dir: Path) -> None:
    """On a Ray release whose restored callbacks cannot be replaced, a run resumes only in
    the run directory its first driver used (where those callbacks write)."""
    import json

    first = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("run_dir")
    if first and Path(first) != run_dir:
        raise ConfigError(
            f"this Ray release resumes a search only in its first run directory {first}",
            key_path="--output", given=str(run_dir),
            hint=f"resume with --output {Path(first).parent}, or with Ray 2.60")


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _discard_partial(run_dir: Path) -> None:
    """Set aside what a driver killed before its first state save left behind."""
    path = run_dir / recorder.RESULTS_JSONL
    if path.exists():
        path.rename(path.with_name(path.name + ".interrupted"))
    shutil.rmtree(run_dir / RAY_DIR, ignore_errors=True)


class _DropRecordingErrors(logging.Filter):
    """Tune logs a callback's error in ``on_trial_complete`` with its traceback ("Error
    stopping trial") before it goes on; a RecordingError is said once, by the CLI."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, RecordingError)


# The logger of Tune's trial loop (a module name: on a Ray that logs elsewhere, Tune's
# traceback shows, beside the CLI's message).
_TUNE_CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"


def _fit(tuner: Any) -> None:
    """``tuner.fit()``; when it stopped because the run directory took no more writes,
    that RecordingError itself (Tune raises any callback's error as a TuneError holding
    the traceback as text, the original only as its context)."""
    quiet = _DropRecordingErrors()
    logging.getLogger(_TUNE_CONTROLLER_LOGGER).addFilter(quiet)
    try:
        tuner.fit()
    except Exception as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, RecordingError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None
    finally:
        logging.getLogger(_TUNE_CONTROLLER_LOGGER).removeFilter(quiet)


def _raise_fatal(records: dict[str, recorder.TrialRecord]) -> None:
    """Raise the first error every trial would repeat (see trainable's failure policy)."""
    for rec in records.values():
        for result in rec.results.values():
            if result.get("fatal_error"):
                raise ConfigError(f"the search stopped: {result['fatal_error']}")
