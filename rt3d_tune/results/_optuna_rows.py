"""Every trial of a study inserted into a new SQLite file in one transaction (private Optuna).

Optuna's public ``add_trials`` commits every trial several times (about 0.1 s a trial
here, minutes for a large search), and even its one-session internal
(``_get_prepared_new_trial``) queries and flushes per trial (5 ms a trial, 5 s for
1,000). The file is new and written once, so every row of every table is built up front
and inserted with one multi-row INSERT per table. That needs RDBStorage's table models
(``optuna.storages._rdb.models``) and its session, both private: used only on the Optuna
releases in ``CHECKED_OPTUNA``, and any error from them rolls the transaction back, so
the caller takes the public path on an empty file.
"""

from __future__ import annotations

import json
from typing import Any

from rt3d_tune._compat import checked_release

__all__ = ["CHECKED_OPTUNA", "insert_trials"]

# Optuna releases whose RDB models and session this module was checked against
# (tests/results/test_export.py reads the file back field for field; 5.1's tables
# compile to the same SQLite DDL as 5.0's, its models only gained type annotations).
CHECKED_OPTUNA = {(5, 0), (5, 1)}


def insert_trials(storage: Any, study_id: int, trials: list[Any]) -> bool:
    """Insert ``trials`` into the new, empty study ``study_id`` of ``storage``.

    Args:
        storage: an ``optuna.storages.RDBStorage`` just created on a new file.
        study_id: the id of its one study.
        trials: the trials to copy, in order (``Study.get_trials``).

    Returns:
        True when written; False when nothing was written (an Optuna release this was not
        checked against, or tables that differ): then use ``Study.add_trials``.
    """
    import optuna

    if not checked_release(optuna.__version__, CHECKED_OPTUNA):
        return False
    from sqlalchemy import insert
    from sqlalchemy.exc import SQLAlchemyError

    try:
        session = storage.scoped_session()
    except AttributeError:
        return False
    try:
        for model, rows in _table_rows(study_id, trials):
            if rows:
                session.execute(insert(model.__table__), rows)
        session.commit()
        return True
    except (AttributeError, KeyError, TypeError, SQLAlchemyError):
        session.rollback()
        return False
    finally:
        session.close()


def _table_rows(study_id: int, trials: list[Any]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """(table model, rows) for the trials and each of their child tables.

    The file holds this one new study, so its trials get ids 1, 2, ... in order.
    Values are stored exactly as RDBStorage stores them (values and intermediate values
    through the models' stored representations, params in internal representation
    with their distribution's JSON, attributes as JSON).
    """
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
