"""``<run>/study.db`` kept current while the search runs, for optuna-dashboard.

A Tune callback adds each trial to the SQLite study as it ends (``results.study``:
:func:`~rt3d_tune.results.study.open_study` and
:func:`~rt3d_tune.results.study.add_record`, Optuna's public ask and tell on its RDB
storage): one trial's rows per end, the earlier trials untouched, so a search of n
trials writes n trials, not n^2/2. SQLite's transactions mean a reader never sees half
a trial. The export at the end rewrites the file once with every trial, in start order.
Follow a running search with ``optuna-dashboard sqlite:///RUN/study.db``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ray.tune import Callback

from rt3d_tune.results import recorder
from rt3d_tune.results.study import add_record, open_study
from rt3d_tune.space.space import SearchSpace

__all__ = ["LiveStudy"]


class LiveStudy(Callback):
    """Adds each ended trial to ``run_dir/study.db`` when it ends.

    Runs after the ResultRecorder (list it later), which has recorded the end by then.
    Trials already in the file (a resumed search: by their ``ray_trial_id``) are not
    added again. The file is a view: a write that fails warns and the search goes on.
    """

    def __init__(self, space: SearchSpace, run_dir: str | Path) -> None:
        self.space = space
        self.run_dir = Path(run_dir)
        self._study: Any = None
        self._added: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None}  # a database connection does not pickle

    def _write(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            if self._study is None:
                self._study = open_study(self.run_dir, self.space, self.run_dir.name)
                self._added = {t.user_attrs.get("ray_trial_id")
                               for t in self._study.get_trials(deepcopy=False)}
            for tid, rec in recorder.load_records(self.run_dir).items():
                if rec.status != recorder.RUNNING and tid not in self._added:
                    add_record(self._study, self.space, rec)
                    self._added.add(tid)
        except (OSError, SQLAlchemyError) as err:
            warnings.warn(f"{self.run_dir}: study.db not updated ({err})", stacklevel=2)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write()
