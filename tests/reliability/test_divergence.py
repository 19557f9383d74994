"""Diverging and failing trials: recorded for what they are, and the search goes on.

One search on the session's Ray over a model whose loss turns NaN or inf, or which
raises, at train iteration 5 (epoch 2 of 3; 4 iterations per epoch).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import json_log_lines, write_base, write_space

from rt3d_tune import cli
from rt3d_tune.backends.report import worst_value
from rt3d_tune.results import recorder
from rt3d_tune.search.tuner import run_search
from rt3d_tune.space.space import load_space

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FAULT_ITER = 5  # 0-based: the second iteration of epoch 2
# Optuna's random sampler with this seed draws all four faults in the first four trials.
SEED = 44


@pytest.fixture(scope="module")
def fault_search(ray_local, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The search, with what Optuna's searcher was told when each trial completed."""
    from ray.tune.search.optuna import OptunaSearch

    folder = tmp_path_factory.mktemp("divergence")
    base = write_base(folder, max_epochs=3, fault_iter=FAULT_ITER)
    space = write_space(
        folder, "faults", base,
        space={"model.fault": {"choice": ["none", "nan", "inf", "raise"]}},
        search={"algorithm": "random", "num_samples": 4, "seed": SEED, "max_concurrent": 2,
                "baseline": False},
    )
    told: dict[str, Any] = {}
    original = OptunaSearch.on_trial_complete

    def spy(self: Any, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        told[trial_id] = None if error or not result else result.get("accuracy")
        original(self, trial_id, result, error)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(OptunaSearch, "on_trial_complete", spy)
        result = run_search(load_space(space), output=folder / "runs", name="faults",
                            status=False)
    by_fault = {rec.params["model.fault"]: rec for rec in result.records.values()}
    return {"result": result, "by_fault": by_fault, "told": told}


def test_every_fault_was_sampled_and_every_trial_recorded(fault_search):
    result = fault_search["result"]
    assert len(result.records) == 4
    assert sorted(fault_search["by_fault"]) == ["inf", "nan", "none", "raise"]
    statuses = {fault: rec.status for fault, rec in fault_search["by_fault"].items()}
    assert statuses == {"none": recorder.TERMINATED, "nan": recorder.DIVERGED,
                        "inf": recorder.DIVERGED, "raise": recorder.ERROR}
    # The healthy trial ran its whole schedule and won.
    assert result.best.trial_id == fault_search["by_fault"]["none"].trial_id
    assert result.best.fidelity == 3


@pytest.mark.parametrize("fault", ["nan", "inf"])
def test_non_finite_loss_stops_the_trial_at_once_with_the_worst_value(fault_search, fault):
    rec = fault_search["by_fault"][fault]
    last = rec.last_result
    assert last["diverged"] is True and fault in last["error"]
    # The scheduler's last result and the sampler's value: the worst finite value.
    assert last["accuracy"] == worst_value("max")
    assert fault_search["told"][rec.trial_id] == worst_value("max")
    assert last["iteration"] == FAULT_ITER + 1 and last["training_iteration"] == 2
    # Nothing ran after the bad iteration: epoch 2 logged its first iteration only.
    lines = json_log_lines(fault_search["result"].run_dir / "trials" / rec.trial_id)
    train = [(line["epoch"], line["iter"]) for line in lines if line["mode"] == "train"]
    assert max(train) == (2, FAULT_ITER - 4)
    assert [line["epoch"] for line in lines if line["mode"] == "val"] == [1]
    assert rec.metric("accuracy") is None  # never the best


def test_a_raising_model_is_recorded_with_its_message(fault_search):
    rec = fault_search["by_fault"]["raise"]
    assert rec.error is not None
    assert f"injected model failure at train iteration {FAULT_ITER}" in rec.error
    assert "RuntimeError" in rec.error


def test_results_csv_and_report_mark_diverged_and_failed_trials(fault_search, capsys):
    result = fault_search["result"]
    with open(result.exported["results_csv"], encoding="utf-8") as fh:
        rows = {r["trial_id"]: r for r in csv.DictReader(fh)}
    assert len(rows) == 4
    for fault, rec in fault_search["by_fault"].items():
        row = rows[rec.trial_id]
        assert row["status"] == rec.status
        if fault in ("nan", "inf"):
            assert row["accuracy"] == "" and "diverged" in row["error"]
        if fault == "raise":
            assert "injected model failure" in row["error"]
    assert cli.main(["report", str(result.run_dir)]) == 0
    capsys.readouterr()
    html = (result.run_dir / "report.html").read_text(encoding="utf-8")
    section = html.split("Diverged or failed trials", 1)[1]
    for fault in ("nan", "inf", "raise"):
        assert fault_search["by_fault"][fault].trial_id in section
    assert section.count("<td>diverged</td>") == 2 and section.count("<td>failed</td>") == 1


def test_a_metric_never_produced_is_one_clear_error_naming_the_produced_ones(
    ray_local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    base = write_base(tmp_path, max_epochs=2)
    space = write_space(tmp_path, "nometric", base, metric="mAP_3d",
                        search={"algorithm": "random", "num_samples": 3, "seed": 0,
                                "baseline": False, "max_concurrent": 1})
    rc = cli.main(["search", str(space), "--output", str(tmp_path / "runs"), "--name", "m"])
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    assert "'mAP_3d'" in err and "accuracy" in err
    assert "Traceback" not in out + err
    # It came after the first evaluation, and the search did not run every trial.
    starts = [line for line in (tmp_path / "runs" / "m" / "results.jsonl").read_text()
              .splitlines() if '"event": "start"' in line]
    assert 1 <= len(starts) < 3
