"""Bad input through ``rt3d-tune search`` (not only ``validate``): every broken space file of
tests/bad_inputs/ exits 2 with one message, no traceback, and Ray never started. A mistake only the cluster can reveal (more GPUs than it has) exits 2
the same way, with Ray shut down again.

All cases run in one fresh interpreter (no session Ray there), one ``cli.main`` call
after another, recording after each whether Ray was started (or is still initialized) and
whether any process was left below the interpreter. Starting Ray is made to fail
there for every case but the GPU one, so that a check missing before Ray costs an
error, not a whole search.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import HERE, POINTNET, REPO, write_space

CORPUS = sorted((REPO / "tests" / "bad_inputs").glob("*.yaml"))

SCRIPT = r"""
import contextlib, io, json, os, sys, time, traceback
sys.path.insert(0, sys.argv[2])
from reliability_kit import descendants
from rt3d_tune import cli
import rt3d_tune.search.ray_session as ray_session_module

real_ray_session = ray_session_module.ray_session

entered = []

@contextlib.contextmanager
def forbidden_ray_session(*args, **kwargs):
    entered.append(True)
    raise RuntimeError("Ray was started for a mistake known before starting it")
    yield

@contextlib.contextmanager
def counted_ray_session(*args, **kwargs):
    entered.append(True)
    with real_ray_session(*args, **kwargs) as remote:
        yield remote

def alive_children():
    found = []
    for pid in descendants(os.getpid())[1:]:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(pid)
    return found

results = []
for allow_ray, argv in json.loads(open(sys.argv[1]).read()):
    ray_session_module.ray_session = counted_ray_session if allow_ray else forbidden_ray_session
    entered.clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except BaseException:  # recorded: the test fails on it
            rc = None
            traceback.print_exc()
    ray = sys.modules.get("ray")
    deadline = time.monotonic() + 20
    while alive_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    results.append({
        "argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue(),
        "ray_started": bool(entered),
        "ray_initialized": bool(ray is not None and ray.is_initialized()),
        "children": alive_children(),
    })
print("RESULT " + json.dumps(results))
"""


def expected_text(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), path.name
    return first[len("# expect: "):]


def run_cases(folder: Path, cases: dict[str, list[str]], allow_ray: bool) -> dict[str, Any]:
    """Run ``cli.main(argv)`` for each case in one fresh interpreter; name -> outcome."""
    argv_file = folder / "argv.json"
    argv_file.write_text(json.dumps([[allow_ray, argv] for argv in cases.values()]))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(argv_file), str(HERE)],
                          check=False, cwd=folder, capture_output=True, text=True, timeout=240)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-5000:]
    return dict(zip(cases, json.loads(lines[-1][len("RESULT "):])))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """name -> what one ``search`` call did, for the corpus and bad CLI arguments."""
    folder = tmp_path_factory.mktemp("bad_runtime")
    output = folder / "runs"
    good = write_space(folder, "good", POINTNET, stop={"max_epochs": 1})

    def argv(name: str, space: Path, *extra: str) -> list[str]:
        return ["search", str(space), "--output", str(output / name), *extra]

    cases = {path.stem: argv(path.stem, path) for path in CORPUS}
    cases["cli_num_samples_zero"] = argv("cli_num_samples_zero", good, "--num-samples", "0")
    cases["cli_max_failures_negative"] = argv("cli_max_failures_negative", good,
                                              "--max-failures", "-1")
    cases["cli_resume_nothing"] = argv("cli_resume_nothing", good, "--resume")
    results = run_cases(folder, cases, allow_ray=False)
    return {name: {**res, "output": output / name} for name, res in results.items()}


def check_one_clear_message(res: dict[str, Any]) -> str:
    """rc 2, exactly one error message that says what was expected, no traceback."""
    err = res["err"]
    assert res["rc"] == 2, res["out"] + err
    assert "Traceback" not in res["out"] + err
    assert err.count("error:") == 1, err
    # What to write instead: expected/hint/close match, or where (YAML line and column).
    assert any(word in err for word in ("expected", "hint:", "did you mean", "line ",
                                        "is a mapping of")), err
    return err


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 45


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_search_rejects_bad_space_before_ray(outcomes, path: Path):
    res = outcomes[path.stem]
    err = check_one_clear_message(res)
    assert expected_text(path) in err
    assert not res["ray_started"] and not res["ray_initialized"] and res["children"] == []
    assert not res["output"].exists()  # nothing was written either


@pytest.mark.parametrize("case, key", [
    ("cli_num_samples_zero", "--num-samples"),
    ("cli_max_failures_negative", "--max-failures"),
    ("cli_resume_nothing", "--resume"),
])
def test_search_rejects_bad_arguments_before_ray(outcomes, case: str, key: str):
    res = outcomes[case]
    assert key in check_one_clear_message(res)
    assert not res["ray_started"] and res["children"] == []


@pytest.mark.ray
def test_more_gpus_than_the_cluster_has_exits_2_and_ray_is_shut_down(tmp_path: Path):
    gpus = write_space(tmp_path, "gpus", POINTNET, resources={"cpu": 1, "gpu": 1})
    cases = {"gpus": ["search", str(gpus), "--output", str(tmp_path / "runs")]}
    res = run_cases(tmp_path, cases, allow_ray=True)["gpus"]
    err = check_one_clear_message(res)
    assert "resources.gpu" in err and "hint:" in err
    assert res["ray_started"] and not res["ray_initialized"]
    assert res["children"] == []  # no Ray process left behind
