"""study.db while the search runs: each ended trial is added once, as it ends, and the
earlier trials are never rewritten (a search of n trials writes n, not n^2/2)."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import space_files

from rt3d_tune.results import recorder
from rt3d_tune.results.study import STUDY_DB
from rt3d_tune.search.live_study import LiveStudy
from rt3d_tune.space.space import load_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"


def _trial(run_dir: Path, tid: str, lr: float, values: list[float], status: str) -> None:
    """What the ResultRecorder writes for one trial: its start, a result per epoch, its end."""
    path = run_dir / recorder.RESULTS_JSONL
    recorder.append_event(path, {"event": "start", "trial_id": tid,
                                 "params": {"optimizer.lr": lr}, "time": 0.0})
    for epoch, value in enumerate(values, start=1):
        recorder.append_event(path, {"event": "result", "trial_id": tid,
                                     "result": {"accuracy": value, "training_iteration": epoch}})
    recorder.append_event(path, {"event": "end", "trial_id": tid, "status": status,
                                 "time": 1.0})


def _study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / STUDY_DB}")


def test_each_trial_is_added_once_as_it_ends_and_earlier_ones_stay(tmp_path):
    space = load_space(space_files.write_space(tmp_path, "s", POINTNET))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    live = LiveStudy(space, run_dir)
    ended = [("t0", 0.002, [0.3, 0.5], recorder.TERMINATED),
             ("t1", 0.004, [0.2], recorder.EARLY_STOPPED),
             ("t2", 0.008, [0.1], recorder.ERROR),
             ("t3", 0.001, [0.4, 0.6], recorder.TERMINATED)]
    seen: dict[str, tuple] = {}
    inode = None
    for n, (tid, lr, values, status) in enumerate(ended, start=1):
        _trial(run_dir, tid, lr, values, status)
        recorder.append_event(run_dir / recorder.RESULTS_JSONL,  # still running: not added
                              {"event": "start", "trial_id": f"running{n}",
                               "params": {"optimizer.lr": 0.005}, "time": 0.0})
        live.on_trial_complete(0, [], None)
        trials = _study(run_dir).trials
        assert len(trials) == n
        by_id = {t.user_attrs["ray_trial_id"]: t for t in trials}
        assert set(by_id) == {t[0] for t in ended[:n]}
        for earlier, stamp in seen.items():  # the same rows, not a rewrite of them
            t = by_id[earlier]
            assert (t._trial_id, t.number, t.datetime_start, t.datetime_complete) == stamp
        seen = {k: (t._trial_id, t.number, t.datetime_start, t.datetime_complete)
                for k, t in by_id.items()}
        stat = os.stat(run_dir / STUDY_DB).st_ino
        assert inode in (None, stat)  # the file is written in place, never replaced
        inode = stat

    by_id = {t.user_attrs["ray_trial_id"]: t for t in _study(run_dir).trials}
    assert by_id["t0"].value == 0.5 and by_id["t0"].intermediate_values == {1: 0.3, 2: 0.5}
    assert by_id["t0"].params == {"optimizer.lr": 0.002}
    assert by_id["t1"].value == 0.2 and by_id["t1"].user_attrs["status"] == recorder.EARLY_STOPPED
    assert by_id["t2"].state == optuna.trial.TrialState.FAIL
    assert by_id["t3"].value == 0.6

    # a resumed search (a new callback on the same file) adds no trial twice
    LiveStudy(space, run_dir).on_trial_error(0, [], None)
    assert len(_study(run_dir).trials) == len(ended)
