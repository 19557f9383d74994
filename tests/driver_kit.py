"""Run ``rt3d-tune search`` as a user's shell does, kill it mid-search, resume it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The `search` command in a fresh interpreter (its own embedded Ray, like a user's shell).
DRIVER = """
import sys
from rt3d_tune import cli
cli.console_main(["search"] + sys.argv[1:])
"""


def search_args(space: Path, output: Path, name: str = "r") -> list[str]:
    """argv of ``rt3d-tune search SPACE --name NAME --output OUTPUT``."""
    return [sys.executable, "-c", DRIVER, str(space), "--name", name, "--output", str(output)]


def ends(path: Path) -> int:
    """Trials ended in a results file (``results.jsonl`` or ``confirm.jsonl``)."""
    if not path.exists():
        return 0
    return sum('"event": "end"' in line for line in path.read_text().splitlines())


def _started(path: Path) -> int:
    if not path.exists():
        return 0
    return sum('"event": "start"' in line for line in path.read_text().splitlines())


def kill_after_ends(args: list[str], cwd: Path, results: Path, count: int,
                    timeout: float = 180) -> int:
    """Start the search, SIGKILL it (and the Ray it started) once ``count`` trials ended
    in ``results`` and another one is running; the number ended then. Fails if the search
    finished first."""
    first = subprocess.Popen(args, cwd=cwd, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while (ends(results) < count or _started(results) <= ends(results)) \
                and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the search finished before it could be interrupted"
        assert ends(results) >= count, f"fewer than {count} trials ended in {timeout} s"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    return ends(results)


def resume(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The same search with ``--resume``, run to its end."""
    return subprocess.run(args + ["--resume"], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
