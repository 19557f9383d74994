"""report.html, its PNG plots, study.db and best_mmengine.py from a small real search."""

from __future__ import annotations

import builtins
import re
import struct
from pathlib import Path

import pytest
import yaml

from rt3d_tune.results import recorder
from rt3d_tune.results.report import PLOTS, best_so_far

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
PARAMS = ("optimizer.lr", "optimizer.weight_decay")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's signature and IHDR chunk; fails on anything else."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.endswith(b"IEND\xaeB`\x82"), f"{path.name} is truncated"
    return width, height


@pytest.fixture(scope="module")
def run_dir(ray_local, tmp_path_factory) -> Path:
    from rt3d_tune.space.space import load_space
    from rt3d_tune.search.tuner import run_search

    tmp = tmp_path_factory.mktemp("report")
    space_file = tmp / "space.yaml"
    space_file.write_text(
        yaml.safe_dump(
            {
                "base": str(POINTNET),
                "metric": "accuracy",
                "mode": "max",
                "space": {
                    "optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]},
                    "optimizer.weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
                },
                "search": {"algorithm": "random", "num_samples": 6, "seed": 3, "max_concurrent": 2},
                "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
                "resources": {"cpu": 1},
                "stop": {"max_epochs": 2},
            }
        )
    )
    result = run_search(load_space(space_file), output=tmp / "runs", name="rep", status=False)
    return result.run_dir


@pytest.mark.ray
@pytest.mark.slow
def test_report_plots_are_real_pngs_referenced_by_the_html(run_dir):
    html = (run_dir / "report.html").read_text()
    for name in PLOTS.values():
        path = run_dir / name
        width, height = png_size(path)
        assert 400 <= width <= 3000 and 200 <= height <= 3000, (name, width, height)
        assert f"src='{name}'" in html
    # the importance table names every parameter of the space
    table = html[html.index("Parameter importance") :]
    for param in PARAMS:
        assert re.search(rf"<td>{re.escape(param)}</td><td>[01]\.\d{{3}}</td>", table), param
    # the top-trials table lists trials with their diff against the base
    assert "config diff against the base" in html and "&quot;optimizer&quot;" in html


@pytest.mark.ray
@pytest.mark.slow
def test_study_reloads_from_sqlite_with_every_trial(run_dir):
    import optuna

    storage = f"sqlite:///{run_dir / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert len(study.trials) == 6
    assert {t.state for t in study.trials} <= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    assert all(set(PARAMS) <= set(t.params) for t in study.trials)
    records = recorder.load_records(run_dir, finished=True)
    best = recorder.best_record(records, "accuracy", "max")
    assert study.best_value == pytest.approx(best.metric("accuracy"))


@pytest.mark.ray
@pytest.mark.slow
def test_best_mmengine_loads_in_mmengine(run_dir):
    from mmengine.config import Config as MMConfig

    cfg = MMConfig.fromfile(str(run_dir / "best" / "best_mmengine.py"))
    best = MMConfig.fromfile(str(run_dir / "best" / "best_config.py"))
    assert cfg.optim_wrapper.optimizer.lr == best.optimizer.lr
    assert cfg.train_cfg.max_epochs == 2


@pytest.mark.ray
@pytest.mark.slow
def test_report_without_matplotlib_says_how_to_install(run_dir, monkeypatch):
    from rt3d_tune.results.export import load_context
    from rt3d_tune.results.report import write_report

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    paths = write_report(load_context(run_dir))
    html = paths["report"].read_text()
    assert "pip install 'rt3d-tune[plot]'" in html
    assert "<img" not in html and "Top " in html


def _record(trial_id: str, start: float, metrics: list[float], status: str) -> recorder.TrialRecord:
    rec = recorder.TrialRecord(trial_id, start=start, status=status)
    for i, value in enumerate(metrics, start=1):
        rec.results[i] = {"accuracy": value, "training_iteration": i, "timestamp": start + i}
    return rec


def test_best_so_far_counts_trial_epochs_in_time_order():
    records = {
        "a": _record("a", 0.0, [0.2, 0.5, 0.4], recorder.TERMINATED),
        "b": _record("b", 0.5, [0.3], recorder.EARLY_STOPPED),
    }
    rows = best_so_far(records, "accuracy", "max")
    # reports happen at a:1, b:1.5, a:2, a:3
    assert [r["trial_epochs"] for r in rows] == [1, 2, 3, 4]
    assert [r["best"] for r in rows] == [0.2, 0.3, 0.5, 0.5]
    assert [r["wall_s"] for r in rows] == [1.0, 1.5, 2.0, 3.0]
    assert [r["best"] for r in best_so_far(records, "accuracy", "min")] == [0.2, 0.2, 0.2, 0.2]
