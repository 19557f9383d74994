"""The search at the user's budget, end to end: trials run a scaled schedule with one
fixed seed, the top configs are confirmed with new seeds, and the export hands back the
winner at the base config's full length (PointNet task, the session's local Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import space_files
from driver_kit import kill_after_ends, resume, search_args

from rt3d_tune.backends.mmcv.schedule import budget_of, scale_schedule
from rt3d_tune.backends.mmcv.simulate import simulate_schedule
from rt3d_tune.config import Config
from rt3d_tune.results import recorder
from rt3d_tune.search.tuner import run_search
from rt3d_tune.space.space import load_space

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"  # 6 epochs
SECTIONS = {
    "space": {
        "optimizer.lr": {"loguniform": [3.0e-3, 3.0e-2]},
        "lr_config": {"choice": [{"policy": "step", "step": [5], "gamma": 0.1},
                                 {"policy": "CosineAnnealing", "min_lr_ratio": 0.01}]},
    },
    "search": {"algorithm": "random", "num_samples": 4, "seed": 3, "max_concurrent": 2,
               "confirm": {"top_k": 2, "seeds": 2}},
    "stop": {"max_epochs": 3},
}
def test_confirmed_winner_and_full_length_export(ray_local, tmp_path):
    space = load_space(space_files.write_space(tmp_path, "budget", POINTNET, **SECTIONS))
    result = run_search(space, output=tmp_path / "runs", name="budget", status=False)
    run_dir = result.run_dir
    search = recorder.load_records(run_dir, finished=True)
    confirm = recorder.load_records(run_dir, finished=True, filename=recorder.CONFIRM_JSONL)

    # Common random numbers: every search trial trained with the same seed.
    seeds = {Config.fromfile(str(run_dir / "trials" / tid / "config.py")).seed for tid in search}
    assert seeds == {3}  # trial_seed fixed and no seed in the base: search.seed
    # The two best finished trials, and the baseline (the base config), each trained
    # again with the same two new seeds.
    finished = sorted((r for r in search.values()
                       if r.status == recorder.TERMINATED and not r.baseline),
                      key=lambda r: -r.metric("accuracy"))
    (base,) = [r for r in search.values() if r.baseline]
    assert {r.confirm_of for r in confirm.values() if not r.baseline} == \
        {r.trial_id for r in finished[:2]}
    assert sorted(r.seed for r in confirm.values() if r.baseline) == [4, 5]
    assert {r.confirm_of for r in confirm.values() if r.baseline} == {base.trial_id}
    assert sorted(r.seed for r in confirm.values()) == [4, 4, 4, 5, 5, 5]
    assert all(r.status == recorder.TERMINATED for r in confirm.values())

    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    groups = {g["trial_id"]: g for g in summary["confirmation"]}
    means = {tid: sum(run["value"] for run in g["runs"]) / 2 for tid, g in groups.items()}
    assert summary["trial_id"] == max(means, key=means.get)
    assert summary["best_value"] == pytest.approx(means[summary["trial_id"]])
    assert summary["confirmed"] is True
    assert summary["search_value"] == search[summary["trial_id"]].metric("accuracy")
    assert summary["budget"] == {"full": {"max_epochs": 6},
                                 "trial": {"max_epochs": 3, "schedule": "scaled"}}
    assert summary["reproduce"].endswith("best/trial_config.py")

    # best_config.py is the winner at the base's 6 epochs; trial_config.py what it ran.
    best = Config.fromfile(str(run_dir / "best" / "best_config.py"))
    trial = Config.fromfile(str(run_dir / "best" / "trial_config.py"))
    assert best.runner.max_epochs == 6 and trial.runner.max_epochs == 3
    assert trial.to_dict() == Config.fromfile(
        str(run_dir / "trials" / summary["trial_id"] / "config.py")).to_dict()
    ipe = next(json.loads(line)["result"]["iters_per_epoch"]
               for line in (run_dir / "results.jsonl").read_text().splitlines()
               if '"event": "result"' in line)
    assert scale_schedule(best, budget_of(best, ipe), budget_of(trial, ipe))["lr_config"] == \
        trial.to_dict()["lr_config"]
    full_curve = simulate_schedule(best.to_dict(), ipe)
    base_curve = simulate_schedule(Config.fromfile(str(POINTNET)).to_dict() | {
        "optimizer": best.to_dict()["optimizer"], "lr_config": best.to_dict()["lr_config"]}, ipe)
    assert [row["lr"] for row in full_curve] == [row["lr"] for row in base_curve]
    assert len(full_curve) == 6 * ipe
    header = (run_dir / "best" / "best_config.py").read_text().splitlines()[:5]
    assert any("6 epochs" in line for line in header) and any("3 epochs" in line for line in header)


def test_confirmation_resumes_after_the_driver_is_killed(tmp_path):
    space = space_files.write_space(tmp_path, "resume", POINTNET, **{
        **SECTIONS, "search": {**SECTIONS["search"], "max_concurrent": 1}})
    args = search_args(space, tmp_path / "runs")
    run_dir = tmp_path / "runs" / "r"
    confirm_file = run_dir / recorder.CONFIRM_JSONL
    done_before = kill_after_ends(args, tmp_path, confirm_file, 1)
    assert 1 <= done_before < 4

    second = resume(args, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    confirm = recorder.load_records(run_dir, finished=True, filename=recorder.CONFIRM_JSONL)
    assert len(confirm) == 6  # the top 2 and the baseline, 2 seeds each
    assert all(r.status == recorder.TERMINATED for r in confirm.values())
    assert sorted((r.confirm_of, r.seed) for r in confirm.values()) == sorted(
        (of, seed) for of in {r.confirm_of for r in confirm.values()} for seed in (4, 5))
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    assert summary["confirmed"] is True and len(summary["confirmation"]) == 3
    assert [g["baseline"] for g in summary["confirmation"]].count(True) == 1
