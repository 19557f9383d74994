"""A search driver killed mid-search and resumed with --resume runs every trial exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from driver_kit import kill_after_ends, resume, search_args

from rt3d_tune.results import recorder

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
SAMPLES = 4


def test_driver_killed_then_resumed_runs_every_trial_exactly_once(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "base": str(POINTNET), "metric": "accuracy", "mode": "max",
        "space": {"optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
        "search": {"algorithm": "tpe", "num_samples": SAMPLES, "seed": 1, "max_concurrent": 2,
                   "baseline": False},
        "resources": {"cpu": 1}, "stop": {"max_epochs": 2},
    }))
    args = search_args(space, tmp_path / "runs")
    run_dir = tmp_path / "runs" / "r"
    kill_after_ends(args, tmp_path, run_dir / recorder.RESULTS_JSONL, 2, timeout=120)
    interrupted = recorder.load_records(run_dir, finished=True)
    assert any(rec.status == recorder.INTERRUPTED for rec in interrupted.values())

    second = resume(args, tmp_path, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    records = recorder.load_records(run_dir, finished=True)
    assert len(records) == SAMPLES
    assert all(rec.status == recorder.TERMINATED for rec in records.values()), {
        tid: rec.status for tid, rec in records.items()}
    assert all(sorted(rec.results) == [1, 2] for rec in records.values())
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + SAMPLES
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    assert summary["trials"] == {"TERMINATED": SAMPLES}

    import optuna

    study = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.COMPLETE) == SAMPLES
