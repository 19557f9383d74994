"""A search's exit status and output are the search's own, whatever Ray's teardown does.

A driver that joined a cluster was seen to die with SIGSEGV after printing a finished
search (Ray's core worker at interpreter exit). ``rt3d-tune`` (``cli.console_main``)
leaves a joined cluster without Ray's shutdown path and ends a search with
``os._exit`` once its output is flushed: nothing that runs at interpreter exit can turn
a finished search into a crash. Here a crash is planted at interpreter exit (an atexit
handler that reads address 0) and the program is run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from reliability_kit import POINTNET, write_space

CRASH_AT_EXIT = """
import atexit, ctypes, sys
atexit.register(lambda: ctypes.string_at(0))  # SIGSEGV in the interpreter's teardown
from rt3d_tune import cli
if sys.argv[1] == "console":
    cli.console_main(sys.argv[2:])
else:
    sys.exit(cli.main(sys.argv[2:]))
"""


def _run(entry: str, argv: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CRASH_AT_EXIT, entry, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_planted_crash_is_real_without_the_guard(tmp_path):
    """Control: a plain ``sys.exit(main())`` dies of the planted crash (-11)."""
    res = _run("main", ["config", "show", str(POINTNET)], tmp_path)
    assert res.returncode == -11, (res.returncode, res.stderr[-2000:])


@pytest.mark.ray
@pytest.mark.slow
def test_a_finished_search_exits_0_with_its_output_despite_a_crash_at_exit(tmp_path):
    space = write_space(tmp_path, "exit", POINTNET, stop={"max_epochs": 1}, search={
        "algorithm": "random", "num_samples": 1, "seed": 0, "baseline": False,
        "confirm": False})
    res = _run("console", ["search", str(space), "--output", str(tmp_path / "runs"),
                           "--name", "x"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "run directory:" in res.stdout and "exported:" in res.stdout
    assert "best_config: " in res.stdout  # the whole output, to its list of exported files
    assert "Fatal Python error" not in res.stderr
