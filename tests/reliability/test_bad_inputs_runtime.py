"""Bad input through ``rt3d-tune search`` (not only ``validate``): every broken space file of
tests/bad_inputs/ exits 2 with one message, no traceback, and Ray never started, within the
seconds its ``# seconds:`` line gives. A mistake only the cluster can reveal (more GPUs
than it has) exits 2 the same way, with Ray shut down again.

All cases run in one fresh interpreter (no session Ray there), one ``cli.main`` call
after another, recording after each whether Ray was started (or is still initialized) and
whether any process was left below the interpreter. Starting Ray is made to fail
there for every case but the GPU one, so that a check missing before Ray costs an
error, not a whole search.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_kit import POINTNET, REPO, check_one_clear_message, run_cases, write_space

CORPUS = sorted((REPO / "tests" / "bad_inputs").glob("*.yaml"))


def expected_text(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), path.name
    return first[len("# expect: "):]


def seconds(path: Path) -> float:
    """The file's ``# seconds:`` bound (the cases that would explode), else a minute."""
    second = (path.read_text(encoding="utf-8").splitlines() + [""])[1]
    return float(second[len("# seconds: "):]) if second.startswith("# seconds: ") else 60.0


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """name -> what one ``search`` call did, for the corpus and bad CLI arguments."""
    folder = tmp_path_factory.mktemp("bad_runtime")
    output = folder / "runs"
    output.mkdir()  # --output is output/<case>: its parent must exist
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


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 45


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_search_rejects_bad_space_before_ray(outcomes, path: Path):
    res = outcomes[path.stem]
    err = check_one_clear_message(res, several=True)  # every problem of the trial configs
    assert expected_text(path) in err
    assert res["seconds"] < seconds(path), f"answered in {res['seconds']:.1f} s"
    assert not res["ray_started"] and not res["ray_initialized"] and res["children"] == []
    assert not res["output"].exists()  # nothing was written either


def test_search_prints_every_problem_as_validate_does(outcomes, capsys):
    """One ``error:`` line per problem, key path first, each with the configs behind it."""
    from rt3d_tune import cli

    path = REPO / "tests" / "bad_inputs" / "lr_string_in_branch.yaml"
    search_err = outcomes[path.stem]["err"]
    assert cli.main(["validate", str(path), "--samples", "0"]) == 2
    validate_err = capsys.readouterr().err
    lines = [line for line in search_err.splitlines() if "error:" in line]
    assert [line.split("error: ", 1)[1].split(":")[0] for line in lines] == [
        "optimizer.lr", "lr_config"]
    assert search_err.count("\n  in: coverage") == 2
    assert validate_err.replace("rt3d-tune validate:", "rt3d-tune search:") in search_err


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
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no run directory left either
