"""``<run>/study.db`` kept current while the search runs, for optuna-dashboard.

A Tune callback rewrites the study file from the recorded trials each time a trial
ends (``results.study``: built from the records, written to a temporary file and
renamed over the old one, so a reader never sees half a file), with the trials that
have ended so far; the export at the end writes it once more with every trial. Follow a
running search with ``optuna-dashboard sqlite:///RUN/study.db``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ray.tune import Callback

from rt3d_tune.results import recorder
from rt3d_tune.results.study import build_study, write_study
from rt3d_tune.space.space import SearchSpace

__all__ = ["LiveStudy"]


class LiveStudy(Callback):
    """Rewrites ``run_dir/study.db`` with the ended trials whenever a trial ends.

    Runs after the ResultRecorder (list it later), which has recorded the end by then.
    The file is a view: a write that fails warns and the search goes on.
    """

    def __init__(self, space: SearchSpace, run_dir: str | Path) -> None:
        self.space = space
        self.run_dir = Path(run_dir)

    def _write(self) -> None:
        ended = {tid: rec for tid, rec in recorder.load_records(self.run_dir).items()
                 if rec.status != recorder.RUNNING}
        try:
            write_study(self.run_dir, build_study(self.space, ended), self.run_dir.name)
        except OSError as err:
            warnings.warn(f"{self.run_dir}: study.db not updated ({err})", stacklevel=2)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write()
