"""The disk fills up during a checkpoint: the write fails with a message that says so,
``latest.pth`` still names the last complete checkpoint, no temporary file is left, and
in a search that trial is recorded ERROR with the reason while the search goes on.

The first test fills a real (small, private) tmpfs, mounted in a user and mount
namespace of its own (``unshare``), and is skipped where that is not allowed. The search
test injects the fault at the write in the trial's worker (a module the base config
imports through ``custom_imports``, as a user's module), since a Ray search inside such
a namespace is not something a test should start.

When the driver's own ``results.jsonl`` cannot take a line, the search stops with a
message and the command that resumes it (exit 1, no traceback), the file keeps every
whole line, and ``--resume`` finishes the search with every trial once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_kit import POINTNET, REPO, events, no_confirmation, write_base, write_space

from rt3d_tune.results import recorder

RUNNER_SCRIPT = r"""
import json, os, sys, torch
from rt3d_tune.config import Config
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.checkpoint_io import wait_for_saves
from rt3d_tune.runner.hook import Hook

work = sys.argv[2]

class FillTheDisk(Hook):
    def after_train_epoch(self, runner):
        if runner.epoch == 0:  # epoch 1's checkpoint is saved: now nothing else fits
            wait_for_saves()
            with open(os.path.join(work, "filler"), "wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:
                    pass

cfg = Config.fromfile(sys.argv[1])
cfg.merge_from_dict({"runner.max_epochs": 3, "data.train.num_samples": 32,
                     "data.val.num_samples": 16, "log_config.interval": 1})
runner = build_runner(cfg, work_dir=work, device="cpu", extra_hooks=[(FillTheDisk(), "LOWEST")])
try:
    runner.run()
    error = None
except Exception as err:
    error = f"{type(err).__name__}: {err}"
latest = os.path.join(work, "latest.pth")
ckpt = torch.load(latest, map_location="cpu", weights_only=True)
print("RESULT " + json.dumps({
    "error": error, "latest": os.readlink(latest), "epoch": ckpt["meta"]["epoch"],
    "files": sorted(os.listdir(work)),
}))
"""


def namespace_with_tmpfs() -> bool:
    """Whether this machine lets an unprivileged user mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not namespace_with_tmpfs(), reason="no user+mount namespace with tmpfs here")
def test_a_real_full_disk_fails_the_save_and_keeps_latest(tmp_path):
    mount = tmp_path / "small_disk"
    mount.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(RUNNER_SCRIPT)
    command = (f"mount -t tmpfs -o size=8m tmpfs {mount} && "
               f"{sys.executable} {script} {POINTNET} {mount / 'work'}")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["error"] is not None and result["error"].startswith("CheckpointWriteError")
    assert "cannot write the checkpoint" in result["error"]
    assert "epoch_2.pth: No space left on device" in result["error"]
    assert result["latest"] == "epoch_1.pth" and result["epoch"] == 1
    assert not [name for name in result["files"] if name.endswith(".tmp")]
    assert "epoch_2.pth" not in result["files"]


# Copied beside the base config; Ray workers import it through custom_imports. The first
# save of an epoch_2.pth in the search (one trial, once) writes half of its bytes and
# fails as a full disk does.
FAULT_MODULE = '''
import errno, io, os
from pathlib import Path

import torch

_real_save = torch.save
_FIRED = Path(__file__).with_name("disk_full.fired")


def _save(obj, f, *args, **kwargs):
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else ""
    if ".epoch_2.pth." in os.path.basename(name):
        try:
            fd = os.open(_FIRED, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, os.path.dirname(name).encode())
            os.close(fd)
            buffer = io.BytesIO()
            _real_save(obj, buffer, *args, **kwargs)
            with open(name, "wb") as out:
                out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", name)
    return _real_save(obj, f, *args, **kwargs)


torch.save = _save
'''


@pytest.mark.ray
@pytest.mark.slow
def test_a_trial_whose_checkpoint_hits_a_full_disk_is_an_error_and_the_search_goes_on(tmp_path):
    (tmp_path / "disk_full_fault.py").write_text(FAULT_MODULE)
    base = tmp_path / "base.py"
    base.write_text("\n".join([
        f"_base_ = {str(POINTNET)!r}",
        "custom_imports = dict(imports=['disk_full_fault'])",
        "model = dict(channels=[16, 32], head_channels=32)",
        "data = dict(samples_per_gpu=16, train=dict(num_samples=64), val=dict(num_samples=32))",
        "checkpoint_config = dict(interval=1)",
        "runner = dict(type='EpochBasedRunner', max_epochs=3)",
        "",
    ]))
    space = write_space(tmp_path, "space", base, search={
        "algorithm": "random", "num_samples": 2, "seed": 0, "max_concurrent": 1,
        "baseline": False,
        **no_confirmation()})
    proc = subprocess.run(
        [sys.executable, "-m", "rt3d_tune", "search", str(space), "--output",
         str(tmp_path / "runs"), "--name", "full"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=400)
    run_dir = tmp_path / "runs" / "full"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "disk_full.fired").exists()
    failed_dir = Path((tmp_path / "disk_full.fired").read_text())

    records = recorder.load_records(run_dir, finished=True)
    statuses = sorted(rec.status for rec in records.values())
    assert statuses == [recorder.ERROR, recorder.TERMINATED], statuses
    failed = next(rec for rec in records.values() if rec.status == recorder.ERROR)
    assert failed_dir == run_dir / "trials" / failed.trial_id
    assert "cannot write the checkpoint" in failed.error
    assert "epoch_2.pth: No space left on device" in failed.error
    # latest.pth still names the last complete checkpoint, which loads; nothing half-written
    import torch

    assert (failed_dir / "latest.pth").resolve().name == "epoch_1.pth"
    assert torch.load(failed_dir / "latest.pth", weights_only=True)["meta"]["epoch"] == 1
    assert not (failed_dir / "epoch_2.pth").exists()
    assert not list(failed_dir.glob(".*.tmp"))
    # every line of results.jsonl is whole, and the export names the trial that finished
    lines = (run_dir / recorder.RESULTS_JSONL).read_text().splitlines()
    assert len(events(run_dir)) == len(lines)
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    finished = next(rec for rec in records.values() if rec.status == recorder.TERMINATED)
    assert summary["trial_id"] == finished.trial_id


def test_the_write_error_survives_pickling_as_ray_sends_it(tmp_path):
    import errno
    import pickle

    from rt3d_tune.runner.checkpoint_io import CheckpointWriteError, atomic_save

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "epoch_1.pth").mkdir()  # the rename onto it fails
    with pytest.raises(CheckpointWriteError) as info:
        atomic_save({"x": 1}, tmp_path / "ckpt" / "epoch_1.pth")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is CheckpointWriteError and str(again) == str(info.value)
    assert "cannot write the checkpoint" in str(again)
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))
    assert again.errno != errno.ENOSPC  # a folder in the way is not a full disk


# The search command with the driver's recorder on a disk that fills up: its 6th write
# to the run's results file writes half of the line and fails as a full disk does, and
# every later write fails too.
FULL_DRIVER = """
import errno, os, sys
import rt3d_tune.results.recorder as recorder

class FillingDisk:
    writes = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        FillingDisk.writes += 1
        if FillingDisk.writes < 6:
            return os.write(fd, data)
        if FillingDisk.writes == 6:
            os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

recorder.os = FillingDisk()
from rt3d_tune import cli
sys.exit(cli.main(["search"] + sys.argv[1:]))
"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_full_disk_under_the_drivers_results_stops_the_search_and_resume_finishes_it(
    tmp_path
):
    space = write_space(tmp_path, "space", write_base(tmp_path, max_epochs=2), search={
        "algorithm": "random", "num_samples": 4, "seed": 0, "max_concurrent": 2,
        "baseline": False,
        **no_confirmation()})
    args = [str(space), "--output", str(tmp_path / "runs"), "--name", "full"]
    proc = subprocess.run([sys.executable, "-c", FULL_DRIVER, *args], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=300)
    run_dir = tmp_path / "runs" / "full"
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (f"rt3d-tune search: error: cannot record the search's results in "
            f"{run_dir / recorder.RESULTS_JSONL}: No space left on device") in proc.stderr
    resume_command = f"rt3d-tune search {space} --output {tmp_path / 'runs'} --name full --resume"
    assert resume_command in proc.stderr
    # the half-written line was cut back: five whole events, nothing torn
    text = (run_dir / recorder.RESULTS_JSONL).read_text()
    assert text.endswith("\n") and len(events(run_dir)) == len(text.splitlines()) == 5

    done = subprocess.run([sys.executable, "-m", "rt3d_tune", "search", *args, "--resume"],
                          cwd=tmp_path, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = recorder.load_records(run_dir, finished=True)
    assert len(records) == 4
    assert {rec.status for rec in records.values()} == {recorder.TERMINATED}
    # as after a killed driver: every trial once, with every epoch's result
    assert all(sorted(rec.results) == [1, 2] for rec in records.values())
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    assert (run_dir / "best" / "best_config.py").is_file()
