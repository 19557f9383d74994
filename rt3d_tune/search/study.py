"""The run's Optuna study in ``<run>/study.db`` (SQLite), written from the recorded trials.

Ray's OptunaSearch keeps its study in memory and pickles it with Tune's experiment
state, so a resumed search continues exactly the study Tune restored. Pointing it at
an RDB storage instead breaks resume: trials that finished after Tune's last state
save are finished in the database but running in the restored searcher, and the next
report to them fails. So the study file is derived from ``results.jsonl`` at every
export (the end of each search, and ``rt3d-tune export``): always consistent with the
trials, readable by ``optuna.load_study`` and optuna-dashboard.

Each trial: its params with the space's real distributions (replayed through the
define-by-run function), the metric per fidelity as intermediate values, the final
metric as value, and ``status`` / ``ray_trial_id`` user attributes. Finished and
early-stopped trials are COMPLETE (that is what the sampler was told); diverged,
errored and interrupted ones are FAIL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rt3d_tune.search import recorder

__all__ = ["STUDY_DB", "write_study"]

STUDY_DB = "study.db"


def write_study(
    run_dir: Path, space: Any, records: dict[str, recorder.TrialRecord], study_name: str
) -> Path:
    """(Re)write ``run_dir/study.db`` from the records; returns its path.

    Args:
        run_dir: the run directory.
        space: the run's parsed SearchSpace (for the parameter distributions).
        records: every trial, statuses final.
        study_name: the study's name (the run's name).
    """
    import optuna

    from rt3d_tune.search.sampling import define_by_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if space.mode == "max" else "minimize"
    # Built in memory (fast), then written to SQLite in one transaction.
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(0))
    for rec in records.values():
        study.enqueue_trial(rec.params, skip_if_exists=False)
        trial = study.ask()
        define_by_run(trial, space)
        trial.set_user_attr("status", rec.status)
        trial.set_user_attr("ray_trial_id", rec.trial_id)
        if rec.error:
            trial.set_user_attr("error", rec.error[:500])
        for fidelity in sorted(rec.results):
            value = rec.metric(space.metric, fidelity)
            if value is not None:
                trial.report(value, fidelity)
        value = rec.metric(space.metric)
        if rec.status in (recorder.TERMINATED, recorder.EARLY_STOPPED) and value is not None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    path = Path(run_dir, STUDY_DB)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_sqlite(tmp, study_name, study)
    tmp.replace(path)
    return path


def _write_sqlite(path: Path, study_name: str, study: Any) -> None:
    """Copy an in-memory study into a new SQLite file.

    Optuna's public ``add_trials`` commits every trial several times (about 0.1 s a
    trial here, minutes for a large search); inserting them in one session takes a
    few milliseconds each. That uses an internal of RDBStorage, so any change there
    falls back to the public path.
    """
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study_id = storage.create_new_study(list(study.directions), study_name)
    trials = study.get_trials(deepcopy=False)
    prepare = getattr(storage, "_get_prepared_new_trial", None)
    if prepare is not None:
        session = storage.scoped_session()
        try:
            for trial in trials:
                prepare(study_id, trial, session)
            session.commit()
            return
        except TypeError:
            session.rollback()
        finally:
            session.close()
    optuna.load_study(study_name=study_name, storage=storage).add_trials(trials)
