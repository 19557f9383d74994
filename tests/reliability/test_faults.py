"""Faults a long search meets: a killed trial worker, a killed driver, a killed checkpoint
write. Nothing reported may be lost, and a retried trial trains no epoch twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from fault_fixtures import read_probe
from reliability_kit import (
    REPO,
    events,
    held_trial,
    json_log_lines,
    reported,
    search_command,
    wait_for,
    write_base,
    write_space,
)

from rt3d_tune.results import recorder
from rt3d_tune.search.tuner import run_search
from rt3d_tune.space.space import load_space

pytestmark = [pytest.mark.slow]


@pytest.mark.ray
def test_trial_worker_killed_mid_training_is_retried_from_its_checkpoint(ray_local, tmp_path):
    probe = tmp_path / "probe.txt"
    base = write_base(tmp_path, max_epochs=3, probe=probe, hold_epoch=2, hold_s=60)
    space = load_space(write_space(tmp_path, "kill", base, search={
        "algorithm": "random", "num_samples": 2, "seed": 0, "max_concurrent": 2,
        "baseline": False}))
    run_dir = tmp_path / "runs" / "kill"
    killed: dict[str, object] = {}

    def killer() -> None:
        try:
            wait_for(lambda: held_trial(probe) is not None, 120, "a trial to finish epoch 2")
            pid, _, trial_id = held_trial(probe)
            wait_for(lambda: reported(run_dir, trial_id, 2), 30, "the epoch-2 report")
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, trial_id=trial_id)
        except AssertionError as err:
            killed["error"] = str(err)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = run_search(space, output=tmp_path / "runs", name="kill", max_failures=2,
                        status=False)
    thread.join(timeout=5)
    assert "error" not in killed, killed
    trial_id = killed["trial_id"]

    # Every trial accounted for, the killed one included, each ran its whole schedule.
    assert len(result.records) == 2
    assert {rec.status for rec in result.records.values()} == {recorder.TERMINATED}
    assert result.records[trial_id].fidelity == 3
    starts = [e for e in events(run_dir) if e["event"] == "start" and e["trial_id"] == trial_id]
    assert len(starts) == 2  # the first attempt and the retry

    # The retry resumed after epoch 2, in another process: no epoch trained twice.
    rows = [r for r in read_probe(probe) if r[3] == trial_id]
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[1][1] == killed["pid"] and rows[2][1] != killed["pid"]
    lines = json_log_lines(run_dir / "trials" / trial_id)
    train = [(line["epoch"], line["iter"]) for line in lines if line["mode"] == "train"]
    assert len(train) == len(set(train)) and {e for e, _ in train} == {1, 2, 3}
    assert [line["epoch"] for line in lines if line["mode"] == "val"] == [1, 2, 3]


@pytest.mark.ray
def test_driver_interrupted_with_sigint_resumes_every_trial_exactly_once(tmp_path):
    """Ctrl-C on the driver, then ``--resume`` (SIGKILL: tests/search/test_resume.py)."""
    import optuna

    samples = 4
    base = write_base(tmp_path, max_epochs=3)
    space = write_space(tmp_path, "space", base, search={
        "algorithm": "tpe", "num_samples": samples, "seed": 3, "max_concurrent": 2,
        "baseline": False})
    run_dir = tmp_path / "runs" / "r"
    argv = search_command(space, tmp_path / "runs", "r")
    first = subprocess.Popen(argv, cwd=tmp_path, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(e["event"] == "end" for e in events(run_dir)), 150,
                 "a first finished trial", first)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=90)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert "Traceback" not in err, err[-3000:]
    before = recorder.load_records(run_dir, finished=True)
    assert len(before) < samples or any(
        rec.status == recorder.INTERRUPTED for rec in before.values()), "nothing was interrupted"

    second = subprocess.run(argv + ["--resume"], check=False, cwd=tmp_path,
                            capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    records = recorder.load_records(run_dir, finished=True)
    assert len(records) == samples
    assert {rec.status for rec in records.values()} == {recorder.TERMINATED}
    assert all(sorted(rec.results) == [1, 2, 3] for rec in records.values())
    for tid, rec in before.items():  # what was recorded before the interrupt is kept
        for fidelity, result in rec.results.items():
            if rec.status == recorder.TERMINATED:
                assert records[tid].results[fidelity]["accuracy"] == result["accuracy"]
    for rec in records.values():  # every trial's log ends with its whole schedule
        lines = json_log_lines(run_dir / "trials" / rec.trial_id)
        assert {line["epoch"] for line in lines if line["mode"] == "val"} == {1, 2, 3}
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + samples
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    states = [t.state for t in study.trials]
    assert len(states) == samples
    assert states.count(optuna.trial.TrialState.COMPLETE) == samples


CKPT_SCRIPT = """
import io, os, sys, time, torch
from rt3d_tune.config import Config
from rt3d_tune.runner.builder import build_runner

real_save = torch.save
def cut_save(obj, f, *args, **kwargs):
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else os.readlink(
        f'/proc/self/fd/{f.fileno()}')
    if 'epoch_2' not in name:
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    with open(name, 'wb') as out:
        out.write(data[: len(data) // 2])
    print('WRITING', flush=True)
    time.sleep(120)  # killed here, half written
torch.save = cut_save
cfg = Config.fromfile(sys.argv[1])
build_runner(cfg, work_dir=sys.argv[2], device='cpu').run()
"""


def test_checkpoint_write_killed_midway_leaves_latest_loadable(tmp_path):
    import torch

    from rt3d_tune.config import Config
    from rt3d_tune.runner.builder import build_runner
    from rt3d_tune.runner.checkpoint_io import find_latest_checkpoint

    base = write_base(tmp_path, max_epochs=2)
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", CKPT_SCRIPT, str(base), str(work)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "WRITING", line if line else proc.stderr.read()[-3000:]
    finally:
        proc.kill()  # SIGKILL in the middle of writing epoch_2.pth
        proc.wait()
    latest = work / "latest.pth"
    ckpt = torch.load(latest, map_location="cpu", weights_only=True)
    assert ckpt["meta"]["epoch"] == 1
    assert not (work / "epoch_2.pth").exists()
    assert find_latest_checkpoint(work).resolve() == (work / "epoch_1.pth").resolve()

    # auto_resume picks the intact checkpoint up and trains the lost epoch once.
    cfg = Config.fromfile(str(base))
    cfg.merge_from_dict({"auto_resume": True})
    runner = build_runner(cfg, work_dir=str(work), device="cpu")
    assert runner.epoch == 1
    runner.run()
    assert torch.load(latest, weights_only=True)["meta"]["epoch"] == 2
