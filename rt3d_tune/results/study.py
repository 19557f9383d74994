"""The run's Optuna study in ``<run>/study.db`` (SQLite), written from the recorded trials.

Ray's OptunaSearch keeps its study in memory and pickles it with Tune's experiment
state, so a resumed search continues exactly the study Tune restored. Pointing it at
an RDB storage instead breaks resume: trials that finished after Tune's last state
save are finished in the database but running in the restored searcher, and the next
report to them fails. So the study file is derived from ``results.jsonl`` at every
export (the end of each search, and ``rt3d-tune export``): always consistent with the
trials, readable by ``optuna.load_study`` and optuna-dashboard.

While the search runs, each trial is added to the file as it ends (``search.live_study``:
:func:`open_study` and :func:`add_record`, one trial's rows, never the earlier ones), so
that optuna-dashboard follows the search; the export then rewrites the file whole, in
start order (:func:`build_study`, :func:`write_study`).

Each trial: its params with the space's real distributions (replayed through the
define-by-run function), the metric per fidelity as intermediate values, the final
metric as value, and ``status`` / ``ray_trial_id`` user attributes (``baseline`` on the
base config's trial). A baseline outside the space has no params in it: it is left out,
as the searcher was never told of it. Finished and
early-stopped trials are COMPLETE with their last value, so that importance analysis and
the dashboard see every scored trial (the ``status`` attribute tells them apart; during
the search the sampler was told PRUNED for early-stopped ones, see ``tuner.py``);
diverged, errored and interrupted ones are FAIL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rt3d_tune.results import _optuna_rows, recorder

if TYPE_CHECKING:
    import optuna

    from rt3d_tune.space.space import SearchSpace

__all__ = ["STUDY_DB", "add_record", "build_study", "open_study", "write_study"]

STUDY_DB = "study.db"


def build_study(
    space: SearchSpace, records: dict[str, recorder.TrialRecord]
) -> optuna.Study:
    """The run's Optuna study, in memory: one trial per record, in start order.

    Args:
        space: the run's parsed SearchSpace (for the parameter distributions).
        records: every trial, statuses final.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=_direction(space),
                                sampler=optuna.samplers.RandomSampler(0))
    for rec in records.values():
        add_record(study, space, rec)
    return study


def open_study(run_dir: Path, space: SearchSpace, study_name: str) -> optuna.Study:
    """The study in ``run_dir/study.db``, created empty where there is none, for adding
    trials one at a time (:func:`add_record`); each addition is its own transactions,
    so a reader sees the trials added so far."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=f"sqlite:///{Path(run_dir, STUDY_DB)}",
                               study_name=study_name, direction=_direction(space),
                               sampler=optuna.samplers.RandomSampler(0), load_if_exists=True)


def add_record(study: optuna.Study, space: SearchSpace, rec: recorder.TrialRecord) -> bool:
    """Add one ended trial to ``study`` (through Optuna's public ask and tell); False for
    a baseline outside the space, which is left out (the searcher never heard of it)."""
    import optuna

    from rt3d_tune.space.sampling import define_by_run

    if rec.baseline and not rec.params:
        return False
    study.enqueue_trial(rec.params, skip_if_exists=False)
    trial = study.ask()
    define_by_run(trial, space)
    trial.set_user_attr("status", rec.status)
    trial.set_user_attr("ray_trial_id", rec.trial_id)
    if rec.baseline:
        trial.set_user_attr("baseline", True)
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
    return True


def _direction(space: SearchSpace) -> str:
    return "maximize" if space.mode == "max" else "minimize"


def write_study(run_dir: Path, study: optuna.Study, study_name: str) -> Path:
    """(Re)write ``run_dir/study.db`` from a study built by :func:`build_study`.

    Written to a temporary file, then renamed over the old one.
    """
    path = Path(run_dir, STUDY_DB)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_sqlite(tmp, study_name, study)
    tmp.replace(path)
    return path


def _write_sqlite(path: Path, study_name: str, study: optuna.Study) -> None:
    """Copy an in-memory study into a new SQLite file.

    In one bulk transaction where this Optuna release allows it (``_optuna_rows``),
    else through Optuna's public ``add_trials`` (the same rows, slower).
    """
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study_id = storage.create_new_study(list(study.directions), study_name)
    trials = study.get_trials(deepcopy=False)
    if not _optuna_rows.insert_trials(storage, study_id, trials):
        optuna.load_study(study_name=study_name, storage=storage).add_trials(trials)
