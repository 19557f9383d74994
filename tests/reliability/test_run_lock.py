"""One driver per run directory: a second is refused naming the first's pid, and a driver
killed with SIGKILL (its Ray processes still alive) leaves no lock behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rt3d_tune.errors import ConfigError
from rt3d_tune.results.run_lock import LOCK_FILE, RunLock, lock_holder, refuse_if_held

# Holds the lock and starts a child that outlives it (as Ray's processes outlive a driver).
HOLDER = """
import subprocess, sys, time
from rt3d_tune.results.run_lock import RunLock
RunLock(sys.argv[1]).acquire()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    first = RunLock(run_dir)
    first.acquire()
    try:
        assert lock_holder(run_dir) == f"pid {os.getpid()} on {os.uname().nodename}"
        with pytest.raises(ConfigError, match=f"pid {os.getpid()} on") as info:
            RunLock(run_dir).acquire()
        assert info.value.key_path == "--name" and info.value.given == str(run_dir)
        with pytest.raises(ConfigError, match="is running in this run directory"):
            refuse_if_held(run_dir)
    finally:
        first.release()
    assert lock_holder(run_dir) is None
    refuse_if_held(run_dir)
    with RunLock(run_dir):  # free again; the file stays, emptied
        pass
    assert (run_dir / LOCK_FILE).read_text() == ""


def test_a_sigkilled_holder_leaves_no_lock_even_with_its_children_alive(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(holder.stdout.readline())
    try:
        assert lock_holder(run_dir) == f"pid {holder.pid} on {os.uname().nodename}"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            RunLock(run_dir).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        os.kill(child, 0)  # the child lives on: it never had the lock's descriptor
        started = time.monotonic()
        lock = RunLock(run_dir)
        lock.acquire()  # at once: the kernel dropped the dead holder's flock
        assert time.monotonic() - started < 1.0
        assert (run_dir / LOCK_FILE).read_text().split()[0] == str(os.getpid())
        lock.release()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)  # the holder, and the child it left
        holder.wait()


def test_no_lock_file_means_nobody_holds_it(tmp_path):
    assert lock_holder(tmp_path / "never") is None
    assert not Path(tmp_path / "never").exists()
