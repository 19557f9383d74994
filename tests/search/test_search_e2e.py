"""End-to-end searches of the quick PointNet task on the session's local Ray (2 CPUs)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import space_files

from rt3d_tune.config import Config
from rt3d_tune.errors import ConfigError
from rt3d_tune.search.tuner import run_search
from rt3d_tune.space.space import load_space

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"



def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts."""
    return list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))

def write_space(tmp_path: Path, name: str, **sections: Any) -> Path:
    """A space file over the PointNet task: six one-epoch trials; ``sections`` replace."""
    defaults: dict[str, Any] = {
        "space": {"optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
        "search": {"algorithm": "random", "num_samples": 6, "seed": 0, "max_concurrent": 2},
        "stop": {"max_epochs": 1},
    }
    return space_files.write_space(tmp_path, name, POINTNET, **{**defaults, **sections})


def search(tmp_path: Path, name: str, **sections: Any) -> Any:
    space = load_space(write_space(tmp_path, name, **sections))
    return run_search(space, output=tmp_path / "runs", name=name, status=False)


def lrs(result: Any) -> list[float]:
    return sorted(rec.params["optimizer.lr"] for rec in result.records.values())


def test_asha_stops_trials_early_and_the_winner_reproduces_exactly(ray_local, tmp_path):
    import torch

    from rt3d_tune.runner.builder import build_runner

    result = search(
        tmp_path, "asha",
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        stop={"max_epochs": 3},
    )
    statuses = [rec.status for rec in result.records.values()]
    assert len(statuses) == 7  # the 6 asked for and the baseline
    assert statuses.count("EARLY_STOPPED") >= 1 and statuses.count("TERMINATED") >= 1
    assert set(statuses) <= {"EARLY_STOPPED", "TERMINATED"}
    rows = read_rows(result.exported["results_csv"])
    assert sorted(r["trial_id"] for r in rows) == sorted(result.records)
    stopped = [r for r in rows if r["status"] == "EARLY_STOPPED"]
    assert all(r["accuracy@3"] == "" for r in stopped)  # cut before the last rung

    # The winning trial's exported config retrains to the same metric on CPU; the
    # winner's config is the same at the base's full 6 epochs.
    best_value = result.best.metric("accuracy")
    cfg = Config.fromfile(str(result.exported["trial_config"]))
    assert cfg.runner.max_epochs == 3 and cfg.optimizer.lr == result.best.params["optimizer.lr"]
    torch.set_num_threads(1)  # as the trial ran (resources.cpu = 1)
    runner = build_runner(cfg, work_dir=str(tmp_path / "rerun"), device="cpu")
    runner.run()
    assert runner.eval_results["accuracy"] == best_value
    full = Config.fromfile(str(result.exported["best_config"]))
    assert full.runner.max_epochs == 6 and full.optimizer == cfg.optimizer
    assert full.seed == cfg.seed
    assert Config.fromfile(str(result.exported["best_runtime"])) == full

    # ...and so does the command summary.json gives, through the CLI in a fresh process.
    summary = json.loads(result.exported["summary"].read_text())
    threads, *command = shlex.split(summary["reproduce"])
    assert threads == "OMP_NUM_THREADS=1" and command[:2] == ["rt3d-tune", "train"]
    work = tmp_path / "cli_rerun"
    subprocess.run([sys.executable, "-m", "rt3d_tune", *command[1:], "--work-dir", str(work)],
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True,
                   capture_output=True, timeout=300)
    (log,) = work.glob("*.log.json")
    val = [json.loads(line) for line in log.read_text().splitlines() if '"val"' in line]
    assert val[-1]["accuracy"] == best_value

    # Same seed, same trial configs (the scheduler does not change what is sampled).
    again = search(tmp_path, "again")
    assert lrs(again) == lrs(result)


def test_diverged_trial_is_recorded_and_the_grid_goes_on(ray_local, tmp_path):
    result = search(
        tmp_path, "grid",
        space={"optimizer.lr": {"grid": [0.003, 1.0e30]}, "optimizer.weight_decay":
               {"grid": [0.0, 1.0e-4]}},
        search={"algorithm": "grid", "seed": 0, "max_concurrent": 2, "baseline": False},
    )
    by_lr: dict[float, list[str]] = {}
    for rec in result.records.values():
        by_lr.setdefault(rec.params["optimizer.lr"], []).append(rec.status)
    assert sorted(by_lr) == [0.003, 1.0e30] and all(len(v) == 2 for v in by_lr.values())
    assert by_lr[1.0e30] == ["DIVERGED", "DIVERGED"]
    assert by_lr[0.003] == ["TERMINATED", "TERMINATED"]
    assert result.best.params["optimizer.lr"] == 0.003
    rows = read_rows(result.exported["results_csv"])
    diverged = [r for r in rows if r["status"] == "DIVERGED"]
    assert all("diverged" in r["error"] and r["accuracy"] == "" for r in diverged)


def test_a_metric_the_evaluation_never_produces_stops_the_search(ray_local, tmp_path):
    with pytest.raises(ConfigError, match=r"'bev_mAP'.*accuracy"):
        search(tmp_path, "nometric", metric="bev_mAP", search={
            "algorithm": "random", "num_samples": 4, "seed": 0, "max_concurrent": 1})
    ended = [line for line in (tmp_path / "runs" / "nometric" / "results.jsonl")
             .read_text().splitlines() if '"event": "start"' in line]
    assert len(ended) < 4  # the search stopped instead of running every trial


def test_more_gpus_than_the_cluster_has_is_refused(ray_local, tmp_path):
    with pytest.raises(ConfigError, match=r"resources.gpu"):
        search(tmp_path, "gpus", resources={"cpu": 1, "gpu": 1})


def test_a_trial_that_raises_is_recorded_with_its_message_and_the_others_go_on(
    ray_local, tmp_path
):
    result = search(
        tmp_path, "raises",
        space={"optimizer": {"grid": [{"type": "Adam", "lr": 0.003},
                                      {"type": "Adam", "lr": 0.003, "momentum": 0.9}]}},
        search={"algorithm": "grid", "seed": 0, "max_concurrent": 2, "baseline": False},
    )
    by_branch = {rec.params["optimizer@choice"]: rec for rec in result.records.values()}
    assert by_branch[0].status == "TERMINATED"
    assert by_branch[1].status == "ERROR" and "momentum" in by_branch[1].error
    assert result.best is by_branch[0] or result.best.trial_id == by_branch[0].trial_id


def test_the_time_budget_ends_the_search_and_the_cli_says_how_far_it_got(
    ray_local, tmp_path, capsys
):
    from rt3d_tune import cli

    space = write_space(tmp_path, "budget",
                        search={"algorithm": "random", "num_samples": 300, "seed": 0,
                                "max_concurrent": 2, "confirm": False},
                        stop={"max_epochs": 2, "time_budget_s": 10})
    assert cli.main(["search", str(space), "--output", str(tmp_path / "runs"),
                     "--name", "budget"]) == 0
    out = capsys.readouterr().out
    rows = read_rows(tmp_path / "runs" / "budget" / "results.csv")
    assert 0 < len(rows) < 300  # a trial takes a fraction of a second here, not 1/30 s
    cut = [r for r in rows if r["error"] == "stop.time_budget_s reached"]
    assert all(r["status"] == "EARLY_STOPPED" for r in cut)
    line = (f"stop.time_budget_s (10 s) ended the search: {len(rows)} of 300 trials ran"
            + (f", {len(cut)} of them cut short" if cut else "")
            + f"; raise it in {space} to run them all")
    assert line in out.splitlines()
    assert (tmp_path / "runs" / "budget" / "best" / "best_config.py").is_file()
