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
    path = Path(run_dir, STUDY_DB)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp}",
        study_name=study_name,
        direction="maximize" if space.mode == "max" else "minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
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
    del study
    tmp.replace(path)
    return path
