"""A data-parallel trial whose second rank is killed mid-trial is retried from its last
checkpoint (``--max-failures``) and trains no epoch twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from fault_fixtures import read_probe
from reliability_kit import (
    cmdline,
    events,
    held_trial,
    json_log_lines,
    no_confirmation,
    reported,
    wait_for,
    write_base,
    write_space,
)

from rt3d_tune.results import recorder
from rt3d_tune.search.tuner import run_search
from rt3d_tune.space.space import load_space

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _second_rank(probe: Path, trial_id: str, epoch: int) -> int:
    """The pid of the trial's rank running in a RankWorker actor (not the trial itself)."""
    pids = {pid for e, pid, _, trial in read_probe(probe) if trial == trial_id and e == epoch}
    workers = [pid for pid in pids if "RankWorker" in cmdline(pid)]
    assert len(pids) == 2 and len(workers) == 1, (pids, [cmdline(p) for p in pids])
    return workers[0]


def test_a_killed_worker_of_a_two_worker_trial_is_retried_from_its_checkpoint(ray_local,
                                                                              tmp_path):
    probe = tmp_path / "probe.txt"
    base = write_base(tmp_path, max_epochs=3, probe=probe, hold_epoch=2, hold_s=60)
    space = load_space(write_space(
        tmp_path, "dpkill", base, resources={"cpu": 1, "workers": 2},
        search={"algorithm": "random", "num_samples": 1, "seed": 0, **no_confirmation()},
    ))
    run_dir = tmp_path / "runs" / "dpkill"
    killed: dict[str, object] = {}

    def killer() -> None:
        try:
            wait_for(lambda: held_trial(probe) is not None, 120, "a rank to finish epoch 2")
            _, _, trial_id = held_trial(probe)
            wait_for(lambda: reported(run_dir, trial_id, 2), 30, "the epoch-2 report")
            wait_for(lambda: len([r for r in read_probe(probe) if r[0] == 2]) == 2, 30,
                     "both ranks past epoch 2")
            pid = _second_rank(probe, trial_id, 2)
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, trial_id=trial_id)
        except AssertionError as err:
            killed["error"] = str(err)
        finally:
            Path(f"{probe}.release").touch()  # a held rank 0 goes on (and fails)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = run_search(space, output=tmp_path / "runs", name="dpkill", max_failures=1,
                        status=False)
    thread.join(timeout=5)
    assert "error" not in killed, killed
    trial_id = str(killed["trial_id"])

    rec = result.records[trial_id]
    assert rec.status == recorder.TERMINATED and rec.fidelity == 3
    starts = [e for e in events(run_dir) if e["event"] == "start" and e["trial_id"] == trial_id]
    assert len(starts) == 2  # the first attempt and the retry

    # Both ranks trained epochs 1 and 2, then epoch 3 in the retry, with a new worker.
    rows = [r for r in read_probe(probe) if r[3] == trial_id]
    assert sorted(r[0] for r in rows) == [1, 1, 2, 2, 3, 3]
    assert killed["pid"] not in {pid for epoch, pid, _, _ in rows if epoch == 3}
    # rank 0's log: no epoch trained twice, every evaluation once.
    lines = json_log_lines(run_dir / "trials" / trial_id)
    train = [(line["epoch"], line["iter"]) for line in lines if line["mode"] == "train"]
    assert len(train) == len(set(train)) and {e for e, _ in train} == {1, 2, 3}
    assert [line["epoch"] for line in lines if line["mode"] == "val"] == [1, 2, 3]
    # The killed rank's error, whole, beside the trial's log (the message names the file).
    error = (run_dir / "trials" / trial_id / "rank1_error.txt").read_text()
    assert "ActorDiedError" in error or "RayActorError" in error, error
