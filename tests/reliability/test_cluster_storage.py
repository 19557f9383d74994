"""A search on a Ray cluster whose worker nodes do not share the driver's disk: the run
kept in S3 (a real S3 server), ``ray start`` nodes with token authentication, all in a
network namespace of the test's own where only loopback exists
(``cluster_storage_kit``). The head has no CPUs: every trial runs on a worker node,
whose view of the driver's output folder is an empty tmpfs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster_storage_kit import namespaces_work, run_scenario

pytestmark = [pytest.mark.ray, pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _namespaces() -> None:
    why = namespaces_work()
    if why is not None:
        print(f"skipping the cluster storage tests: {why}")
        pytest.skip(why)


def _events(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _probe_rows(text: str) -> list[tuple[int, str, str]]:
    """(epoch, node id, trial id) of each line TrialProbeHook wrote."""
    rows = []
    for line in text.splitlines():
        epoch, _, node, work_dir = line.split(" ", 3)
        rows.append((int(epoch), node, Path(work_dir).name))
    return rows


def _val_epochs(logs: dict[str, str], trial_id: str) -> list[int]:
    lines = [json.loads(line) for key in sorted(logs) if f"trials/{trial_id}/" in key
             for line in logs[key].splitlines()]
    return [line["epoch"] for line in lines if line.get("mode") == "val"]


def _train_steps(logs: dict[str, str], trial_id: str) -> list[tuple[int, int]]:
    lines = [json.loads(line) for key in sorted(logs) if f"trials/{trial_id}/" in key
             for line in logs[key].splitlines()]
    return [(line["epoch"], line["iter"]) for line in lines if line.get("mode") == "train"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> dict:
    return run_scenario("search", {"root": str(tmp_path_factory.mktemp("cluster_s3"))})


def test_a_local_run_dir_is_refused_before_any_trial(searched):
    local = searched["local"]
    assert local["rc"] == 2, local["err"]
    assert "--storage" in local["err"] and "cannot see it" in local["err"], local["err"]
    assert "--storage s3://bucket/prefix" in local["err"] and "Traceback" not in local["err"]
    assert local["seconds"] < 60
    assert searched["local_left"] == []  # no run directory left behind


def test_a_search_kept_in_s3_runs_every_trial_on_a_worker_with_its_own_disk(searched):
    s3 = searched["s3"]
    assert s3["rc"] == 0, s3["err"]
    rows = _probe_rows(searched["probe"])
    workers = set(searched["nodes"]) - {searched["head"]}
    assert rows and {node for _, node, _ in rows} == workers  # the head has no CPU
    stored = set(searched["stored"])
    for name in ("run.json", "space.yaml", "base_config.py", "results.jsonl", "results.csv",
                 "best/best_config.py", "best/summary.json", "study.db", "report.html",
                 "report_best_so_far.png"):
        assert name in stored, name
    trials = {trial for _, _, trial in rows}
    for trial in trials:  # each trial stored its own folder, from the worker
        assert f"trials/{trial}/config.py" in stored
        assert any(key.startswith(f"trials/{trial}/") and key.endswith(".log.json")
                   for key in stored)
        assert any(key.startswith(f"ray/{trial}/checkpoint_") for key in stored)
    assert any(key.startswith("ray/experiment_state-") for key in stored)
    assert "run.lock" not in stored  # released when the search ended
    # Every trial ran once and ended.
    assert len(trials) == 4  # 3 sampled + the baseline


def test_export_and_report_of_the_stored_run_from_another_machine(searched):
    export = searched["export"]
    assert export["rc"] == 0, export["err"]
    assert searched["exported"] is not None
    assert searched["exported"] == searched["driver_best"]
    report = searched["report"]
    assert report["rc"] == 0, report["err"]
    assert searched["report_local"] and "report:" in report["out"]


def test_a_data_parallel_trial_keeps_its_run_in_the_same_storage(searched):
    dp = searched["dp"]
    assert dp["rc"] == 0, dp["err"]
    events = _events(searched["dp_results"])
    (trial,) = {e["trial_id"] for e in events if e.get("event") == "start"}
    results = [e["result"] for e in events if e.get("event") == "result"]
    assert results and all(r["workers"] == 2 for r in results)
    assert f"trials/{trial}/config.py" in searched["dp_stored"]
    assert _val_epochs(searched["dp_logs"], trial) == [1, 2]  # rank 0's log, stored


def test_resume_of_a_stored_run_after_the_driver_is_killed(tmp_path):
    """The driver dies mid-search (its lock object stays in the bucket); the search is
    continued from another folder with no working copy, from the storage alone."""
    out = run_scenario("resume", {"root": str(tmp_path)})
    assert out["held"], out
    killed = [e for e in _events(out["killed_results"]) if e.get("event") == "result"]
    assert killed, "the driver was killed before any result was stored"
    resume = out["resume"]
    assert resume["rc"] == 0, resume["err"]
    assert "kept in: s3://" in resume["out"]
    events = _events(out["results"])
    ends = {e["trial_id"]: e["status"] for e in events if e.get("event") == "end"}
    assert len(ends) == 4 and set(ends.values()) == {"TERMINATED"}  # 3 + the baseline
    assert len([e for e in events if e.get("event") == "end"]) == 4  # each ends once
    for trial in ends:
        # Each attempt's log is whole (a trial killed before Tune saved its checkpoint
        # starts over), and the last attempt trained to the end.
        files = sorted(key for key in out["logs"] if f"trials/{trial}/" in key)
        for key in files:
            steps = _train_steps({key: out["logs"][key]}, trial)
            assert len(steps) == len(set(steps)), (key, steps)
        assert _val_epochs({files[-1]: out["logs"][files[-1]]}, trial)[-1] == 3
    assert "run.lock" not in out["stored"]


def test_a_killed_worker_node_trial_goes_on_from_its_stored_checkpoint(tmp_path):
    out = run_scenario("node_loss", {"root": str(tmp_path)})
    assert out.get("removed"), out
    assert out["search"]["rc"] == 0, out["search"]["err"]
    held = out["held"][2]
    rows = [(epoch, node) for epoch, node, trial in _probe_rows(out["probe"]) if trial == held]
    assert [epoch for epoch, _ in rows] == [1, 2, 3], rows
    assert rows[0][1] == out["removed"] and rows[1][1] != out["removed"]
    assert _val_epochs(out["logs"], held) == [1, 2, 3]
    steps = _train_steps(out["logs"], held)
    assert len(steps) == len(set(steps)) and {e for e, _ in steps} == {1, 2, 3}
    ends = [e["trial_id"] for e in _events(out["results"]) if e.get("event") == "end"]
    assert len(ends) == len(set(ends)) == 3  # 2 sampled + the baseline, each once


def test_a_cluster_that_refuses_the_drivers_token_is_one_clear_message(tmp_path):
    out = run_scenario("token", {"root": str(tmp_path)})
    for case in ("missing", "wrong", "no_mode"):
        res = out[case]
        assert res["rc"] == 2, (case, res["err"])
        err = res["err"]
        assert "Traceback" not in err and err.count("rt3d-tune search: error:") == 1, err
        assert "--address" in err and "token" in err, err
        assert "RAY_AUTH_TOKEN" in err and "ray get-auth-token" in err, err
    assert out["left"] == []
