"""Two drivers on one run, and a torn ``results.jsonl``, end to end with real searches.

A second ``rt3d-tune search --name X`` is refused while the first runs, naming its pid;
the first is then killed with SIGKILL (with the Ray it started) and the last line of
``results.jsonl`` cut in the middle, as a kill during a write would. ``rt3d-tune
export`` reads the run (skipping the torn line, with a warning) and ``--resume`` is not
blocked by the dead driver's lock and finishes every trial, every line whole (only what
the cut line held is lost).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from reliability_kit import (
    events,
    held_trial,
    no_confirmation,
    reported,
    search_command,
    wait_for,
    write_base,
    write_space,
)

from rt3d_tune.results import recorder

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_second_driver_refused_then_killed_driver_resumed_through_a_torn_line(tmp_path):
    probe = tmp_path / "probe.txt"
    base = write_base(tmp_path, max_epochs=3, probe=probe, hold_epoch=2, hold_s=120)
    space = write_space(tmp_path, "space", base, search={
        "algorithm": "random", "num_samples": 2, "seed": 0, "max_concurrent": 1,
        "baseline": False,
        **no_confirmation()})
    output = tmp_path / "runs"
    run_dir = output / "r"
    argv = search_command(space, output, "r")
    first = subprocess.Popen(argv, cwd=tmp_path, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: held_trial(probe) is not None, 180, "a trial to finish epoch 2", first)
        trial_id = held_trial(probe)[2]
        wait_for(lambda: reported(run_dir, trial_id, 2), 60, "the epoch-2 report", first)

        for extra in ([], ["--resume"]):  # a new search or a resume: both refused at once
            started = time.monotonic()
            second = subprocess.run(argv + extra, cwd=tmp_path, capture_output=True,
                                    text=True, check=False, timeout=60)
            assert second.returncode == 2, second.stderr[-3000:]
            assert time.monotonic() - started < 15
            assert f"--name: another rt3d-tune search (pid {first.pid} on" in second.stderr
            assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first driver never noticed
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started
        first.wait()

    path = run_dir / recorder.RESULTS_JSONL
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    last = json.loads(data[start:])  # the held trial's epoch-2 result: nothing ran since
    assert (last["event"], last["trial_id"]) == ("result", trial_id)
    assert last["result"]["training_iteration"] == 2
    path.write_bytes(data[: start + (len(data) - start) // 2])  # the last line, cut in half
    whole = len(events(run_dir))

    export = subprocess.run([sys.executable, "-m", "rt3d_tune", "export", str(run_dir)],
                            cwd=tmp_path, capture_output=True, text=True, check=False,
                            timeout=120)
    assert export.returncode == 0, export.stderr[-3000:]
    assert "skipped a torn last line" in export.stderr and "Traceback" not in export.stderr
    assert (run_dir / "results.csv").exists()

    resumed = subprocess.run(argv + ["--resume"], cwd=tmp_path, capture_output=True, text=True,
                             check=False, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines]  # every line whole: none glued to the cut one
    assert len(lines) > whole
    records = recorder.load_records(run_dir, finished=True)
    assert len(records) == 2
    assert {rec.status for rec in records.values()} == {recorder.TERMINATED}
    assert all(rec.fidelity == 3 for rec in records.values())
    # What the cut line held is gone (Tune resumed the trial from its epoch-2 checkpoint,
    # so epoch 2 is not reported again); every other report is there.
    assert {1, 3} <= set(records[trial_id].results)
    assert all(sorted(rec.results) == [1, 2, 3] for tid, rec in records.items() if tid != trial_id)
