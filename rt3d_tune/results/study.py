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
early-stopped trials are COMPLETE with their last value, so that importance analysis and
the dashboard see every scored trial (the ``status`` attribute tells them apart; during
the search the sampler was told PRUNED for early-stopped ones, see ``tuner.py``);
diverged, errored and interrupted ones are FAIL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rt3d_tune.results import recorder

__all__ = ["STUDY_DB", "build_study", "write_study"]

STUDY_DB = "study.db"


def build_study(space: Any, records: dict[str, recorder.TrialRecord]) -> Any:
    """The run's Optuna study, in memory: one trial per record, in start order.

    Args:
        space: the run's parsed SearchSpace (for the parameter distributions).
        records: every trial, statuses final.
    """
    import optuna

    from rt3d_tune.space.sampling import define_by_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if space.mode == "max" else "minimize"
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
    return study


def write_study(run_dir: Path, study: Any, study_name: str) -> Path:
    """(Re)write ``run_dir/study.db`` from a study built by :func:`build_study`.

    Written to a temporary file in one transaction, then renamed over the old one.
    """
    path = Path(run_dir, STUDY_DB)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_sqlite(tmp, study_name, study)
    tmp.replace(path)
    return path


def _write_sqlite(path: Path, study_name: str, study: Any) -> None:
    """Copy an in-memory study into a new SQLite file.

    Optuna's public ``add_trials`` commits every trial several times (about 0.1 s a
    trial here, minutes for a large search), and even its one-session internal
    (``_get_prepared_new_trial``) queries and flushes per trial (5 ms a trial, 5 s for
    1,000). The file is new and written once, so every row of every table is built up
    front and inserted with one multi-row INSERT per table, in one transaction. That
    uses RDBStorage's table models, so any change there falls back to the public path.
    """
    import optuna
    from sqlalchemy import insert
    from sqlalchemy.exc import SQLAlchemyError

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study_id = storage.create_new_study(list(study.directions), study_name)
    trials = study.get_trials(deepcopy=False)
    session = storage.scoped_session()
    try:
        for model, rows in _table_rows(study_id, trials):
            if rows:
                session.execute(insert(model.__table__), rows)
        session.commit()
        return
    except (AttributeError, KeyError, TypeError, SQLAlchemyError):
        session.rollback()
    finally:
        session.close()
    optuna.load_study(study_name=study_name, storage=storage).add_trials(trials)


def _table_rows(study_id: int, trials: list[Any]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """(table model, rows) for the trials and each of their child tables.

    The file holds this one new study, so its trials get ids 1, 2, ... in order.
    Values are stored exactly as RDBStorage stores them (values and intermediate values
    through the models' stored representations, params in internal representation
    with their distribution's JSON, attributes as JSON).
    """
    import json

    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    tables: dict[Any, list[dict[str, Any]]] = {
        model: []
        for model in (
            models.TrialModel,
            models.TrialValueModel,
            models.TrialParamModel,
            models.TrialUserAttributeModel,
            models.TrialSystemAttributeModel,
            models.TrialIntermediateValueModel,
        )
    }
    for number, trial in enumerate(trials):
        trial_id = number + 1
        tables[models.TrialModel].append(
            {
                "trial_id": trial_id,
                "number": number,
                "study_id": study_id,
                "state": trial.state,
                "datetime_start": trial.datetime_start,
                "datetime_complete": trial.datetime_complete,
            }
        )
        for objective, value in enumerate(trial.values or []):
            stored, kind = models.TrialValueModel.value_to_stored_repr(value)
            tables[models.TrialValueModel].append(
                {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
            )
        for name, value in trial.params.items():
            distribution = trial.distributions[name]
            tables[models.TrialParamModel].append(
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": distribution.to_internal_repr(value),
                    "distribution_json": distribution_to_json(distribution),
                }
            )
        for model, attrs in (
            (models.TrialUserAttributeModel, trial.user_attrs),
            (models.TrialSystemAttributeModel, trial.system_attrs),
        ):
            tables[model].extend(
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                for key, value in attrs.items()
            )
        for step, value in trial.intermediate_values.items():
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                value
            )
            tables[models.TrialIntermediateValueModel].append(
                {
                    "trial_id": trial_id,
                    "step": step,
                    "intermediate_value": stored,
                    "intermediate_value_type": kind,
                }
            )
    return list(tables.items())
