"""The pieces of a run kept in a URI, on a real S3 server: a trial's folder (scratch on
its node, stored before each report, taken back by a retry elsewhere), the stored run
lock, and the working copy that ``export`` and ``report`` use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rt3d_tune.errors import ConfigError
from rt3d_tune.results.run_lock import LOCK_FILE, StoredRunLock
from rt3d_tune.results.stored_run import fetch_run, run_location, upload_run, working_copy
from rt3d_tune.storage import Storage
from rt3d_tune.trial import folder as trial_folder
from rt3d_tune.trial.folder import TrialFolder

pytestmark = pytest.mark.slow


def test_a_trial_writes_on_its_node_and_stores_its_folder_before_each_report(
        s3_env, tmp_path, monkeypatch):
    monkeypatch.setattr(trial_folder, "scratch_root", lambda: tmp_path / "node_a")
    run = Storage(s3_env.uri("stored/run1"))
    folder = TrialFolder.open(str(tmp_path / "driver_run"), run.uri, "t1")
    assert folder.path == tmp_path / "node_a" / "run1" / "t1"
    assert not (tmp_path / "driver_run").exists()  # nothing on the driver's paths
    (folder.path / "config.py").write_text("lr = 0.1\n")
    (folder.path / "log.json").write_text('{"epoch": 1}\n')
    reports = []
    report = folder.reporting(lambda metrics: reports.append(
        (metrics, sorted(run.child("trials", "t1").files()))))
    report({"acc": 0.5})
    # When Tune hears of the report, the files that led to it are stored.
    assert reports == [({"acc": 0.5}, ["config.py", "log.json"])]

    # The node is lost; the retry on another node takes the files back and goes on.
    monkeypatch.setattr(trial_folder, "scratch_root", lambda: tmp_path / "node_b")
    retry = TrialFolder.open(str(tmp_path / "driver_run"), run.uri, "t1")
    assert (retry.path / "log.json").read_text() == '{"epoch": 1}\n'
    with open(retry.path / "log.json", "a") as fh:
        fh.write('{"epoch": 2}\n')
    (retry.path / "epoch_1.pth").write_bytes(b"\0")
    retry.persist()
    (retry.path / "epoch_1.pth").unlink()  # max_keep_ckpts rotated it out
    retry.persist()
    assert not run.child("trials", "t1").exists("epoch_1.pth")
    retry.write_text("rank1_error.txt", "ActorDiedError: gone\n")
    assert retry.where("rank1_error.txt") == run.uri + "/trials/t1/rank1_error.txt"
    retry.close()
    assert not retry.path.exists()  # the node's scratch copy is gone once stored
    assert run.child("trials", "t1").read_bytes("log.json") == b'{"epoch": 1}\n{"epoch": 2}\n'
    assert run.child("trials", "t1").exists("rank1_error.txt")


def test_other_ranks_write_nothing(s3_env, tmp_path, monkeypatch):
    monkeypatch.setattr(trial_folder, "scratch_root", lambda: tmp_path / "node")
    folder = TrialFolder.open(str(tmp_path), s3_env.uri("stored/ranks"), "t1", rank=1)
    assert not folder.path.exists()
    folder.close()
    assert Storage(s3_env.uri("stored/ranks")).files() == {}


def test_a_shared_run_dir_is_written_directly(tmp_path):
    folder = TrialFolder.open(str(tmp_path), None, "t1")
    assert folder.path == tmp_path / "trials" / "t1" and folder.path.is_dir()
    report = lambda metrics: metrics  # noqa: E731
    assert folder.reporting(report) is report


HOLD = """
import os, sys, time
os.environ.update(dict(a.split("=", 1) for a in sys.argv[2:]))
from rt3d_tune.results.run_lock import StoredRunLock
from rt3d_tune.storage import Storage
StoredRunLock(Storage(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(300)
"""


def test_the_stored_lock_refuses_a_second_driver_and_frees_a_dead_ones(s3_env, tmp_path):
    run = Storage(s3_env.uri("stored/locked"))
    env = [f"{k}={v}" for k, v in s3_env.env().items()]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, run.uri, *env],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid} on") as err:
            StoredRunLock(run).acquire()
        assert err.value.key_path == "--name" and "stored run" in err.value.format()
    finally:
        holder.kill()
        holder.wait()
    # SIGKILLed: its object stays, but its holder is a dead process of this machine.
    assert run.exists(LOCK_FILE)
    lock = StoredRunLock(run)
    with lock:
        assert json.loads(run.read_bytes(LOCK_FILE))["pid"] == os.getpid()
    assert not run.exists(LOCK_FILE)


def test_a_stored_lock_from_another_machine_goes_stale(s3_env):
    run = Storage(s3_env.uri("stored/elsewhere"))
    run.write_bytes(LOCK_FILE, json.dumps({"host": "another-machine", "pid": 1,
                                           "token": "x", "time": time.time()}).encode())
    with pytest.raises(ConfigError, match="on another-machine"):
        StoredRunLock(run).acquire()
    run.write_bytes(LOCK_FILE, json.dumps({"host": "another-machine", "pid": 1, "token": "x",
                                           "time": time.time() - 100}).encode())
    with StoredRunLock(run, stale_s=90):
        pass


def test_run_location_and_working_copy(s3_env, tmp_path):
    assert run_location(None, tmp_path) == (tmp_path, None)
    assert run_location(str(tmp_path / "nfs"), "runs") == (tmp_path / "nfs", None)
    output, store = run_location(s3_env.uri("stored"), tmp_path / "runs")
    assert output == tmp_path / "runs" and store.uri == s3_env.uri("stored")

    run = store.child("exported")
    with pytest.raises(ConfigError, match=r"holds no results\.jsonl"):
        working_copy(run.uri, tmp_path / "copies")
    local = tmp_path / "driver"
    (local / "best").mkdir(parents=True)
    (local / "results.jsonl").write_text("{}\n")
    (local / "best" / "summary.json").write_text("{}")
    (local / LOCK_FILE).write_text("")
    (local / "trials" / "t1").mkdir(parents=True)
    (local / "ray").mkdir()
    (local / "ray" / "tuner.pkl").write_bytes(b"tune")
    assert upload_run(local, run) == ["best/summary.json", "results.jsonl"]
    run.child("trials", "t1").write_bytes("config.py", b"x = 1\n")
    run.child("trials", "t1").write_bytes("epoch_1.pth", b"\0")
    copy, stored = working_copy(run.uri, tmp_path / "copies")
    assert copy == tmp_path / "copies" / "exported" and stored == run
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        "best/summary.json", "results.jsonl", "trials/t1/config.py"]
    assert fetch_run(run, tmp_path / "again") == ["best/summary.json", "results.jsonl"]
