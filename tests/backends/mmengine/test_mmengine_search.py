"""Searches over an OpenMMLab 2.x config: trials on mmengine's own Runner.

The base is the built-in mmengine PointNet task (configs/mmengine/pointnet_shapes.py,
8 epochs of warm-up + cosine); the spaces tune ``optim_wrapper`` keys and choose whole
``param_scheduler`` lists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import space_files
from driver_kit import kill_after_ends, resume, search_args

from rt3d_tune.results import recorder

mmengine = pytest.importorskip("mmengine")

REPO = Path(__file__).resolve().parents[3]
BASE = REPO / "configs" / "mmengine" / "pointnet_shapes.py"
WARMUP = {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0, "end": 20}
COSINE = {"type": "CosineAnnealingLR", "by_epoch": True, "begin": 0, "end": 8, "T_max": 8,
          "eta_min": 1.0e-4}
STEP = {"type": "MultiStepLR", "by_epoch": True, "begin": 0, "end": 8, "milestones": [6],
        "gamma": 0.1}


def write_space(tmp_path: Path, name: str, **sections: Any) -> Path:
    """Four 4-epoch trials over the optimizer's LR and a choice of scheduler lists."""
    defaults: dict[str, Any] = {
        "metric": "accuracy",
        "space": {
            "optim_wrapper.optimizer.lr": {"loguniform": [3.0e-3, 3.0e-2]},
            "param_scheduler": {"choice": [[WARMUP, COSINE], [WARMUP, STEP]]},
        },
        "search": {"algorithm": "random", "num_samples": 4, "seed": 0, "max_concurrent": 2,
                   "confirm": False},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "stop": {"max_epochs": 4},
    }
    return space_files.write_space(tmp_path, name, BASE, **{**defaults, **sections})


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the trials ran (resources.cpu: 1)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.ray
@pytest.mark.slow
def test_asha_search_of_an_mmengine_config_exports_what_mmengine_trains(ray_local, tmp_path):
    import torch
    from mmengine.config import Config as MMConfig
    from mmengine.runner import Runner

    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    # One trial at a time: ASHA's cut at a rung depends on the order the results reach it.
    space = load_space(write_space(tmp_path, "mm", search={
        "algorithm": "random", "num_samples": 4, "seed": 0, "max_concurrent": 1,
        "confirm": False, "baseline": False}))
    assert space.backend.name == "mmengine" and space.scheduler.probe == "cooldown"
    result = run_search(space, output=tmp_path / "runs", name="mm", status=False)

    statuses = [rec.status for rec in result.records.values()]
    assert len(statuses) == 4 and recorder.EARLY_STOPPED in statuses
    assert set(statuses) <= {recorder.EARLY_STOPPED, recorder.TERMINATED}
    # ASHA's rungs (rounds 1 and 2) ranked the trials by a cool-down probe's accuracy;
    # the plain accuracy is kept beside it, the last round is plain.
    for rec in result.records.values():
        for fidelity, res in rec.results.items():
            probed = fidelity in (1, 2)
            assert ("accuracy_plain" in res) is probed and ("probe_iters" in res) is probed
            if probed:
                assert res["accuracy"] == res["probe"] and res["probe_iters"] == round(
                    res["iteration"] * space.scheduler.probe_ratio)
    # Fidelity: validation rounds, one per epoch here.
    finished = [rec for rec in result.records.values() if rec.status == recorder.TERMINATED]
    assert all(sorted(rec.results) == [1, 2, 3, 4] for rec in finished)

    # Each trial's work dir is mmengine's: its log folder, checkpoints, its config dump.
    for rec in result.records.values():
        work = result.run_dir / "trials" / rec.trial_id
        assert (work / "config.py").is_file() and (work / "last_checkpoint").is_file()
        assert any(p.is_dir() and list(p.glob("*.log")) for p in work.iterdir())
        cfg = MMConfig.fromfile(str(work / "config.py"))
        # the chosen scheduler list, scaled from 8 epochs to the trial's 4
        schedulers = cfg.param_scheduler
        assert schedulers[0] == WARMUP  # an iteration warm-up is kept as it is
        assert schedulers[1]["type"] in ("CosineAnnealingLR", "MultiStepLR")
        assert schedulers[1]["end"] == 4
        if schedulers[1]["type"] == "MultiStepLR":
            assert schedulers[1]["milestones"] == [3]
        else:
            assert schedulers[1]["T_max"] == 4
        assert cfg.train_cfg.max_epochs == 4 and cfg.randomness.seed == 0

    # best_config.py is an mmengine config at the base's 8 epochs, with the winner's LR
    # and its scheduler list back at full length; best_runtime.py only what changed.
    best = result.best
    full = MMConfig.fromfile(str(result.exported["best_config"]))
    assert full.train_cfg.max_epochs == 8
    assert full.optim_wrapper.optimizer.lr == best.params["optim_wrapper.optimizer.lr"]
    assert full.param_scheduler[1]["end"] == 8
    runtime = MMConfig.fromfile(str(result.exported["best_runtime"]))
    assert runtime.optim_wrapper.optimizer.lr == full.optim_wrapper.optimizer.lr
    assert runtime.model == full.model  # the rest from _base_
    assert not (result.run_dir / "best" / "best_mmengine.py").exists()

    # The trial's config, loaded by mmengine and trained on one thread (as the trial
    # ran), reaches the trial's metric exactly.
    trial = MMConfig.fromfile(str(result.exported["trial_config"]))
    trial.work_dir = str(tmp_path / "rerun")
    trial.experiment_name = "rerun"
    torch.set_num_threads(1)
    runner = Runner.from_cfg(trial)
    runner.train()
    rerun = runner.message_hub.get_scalar("val/accuracy").current()
    assert rerun == best.metric("accuracy")
    summary = json.loads(result.exported["summary"].read_text())
    assert summary["budget"]["full"] == {"max_epochs": 8}
    # The reproduce command the search prints (rt3d-tune train on an mmengine config runs
    # mmengine's Runner) reaches it too.
    assert summary["reproduce"].startswith("OMP_NUM_THREADS=1 rt3d-tune train ")
    proc = _run([sys.executable, "-m", "rt3d_tune", "train", str(result.exported["trial_config"]),
                 "--work-dir", str(tmp_path / "cli")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: 4 epochs" in proc.stdout
    scalars = [json.loads(line) for path in (tmp_path / "cli").glob("*/vis_data/scalars.json")
               for line in path.read_text().splitlines()]
    assert [s["accuracy"] for s in scalars if "accuracy" in s][-1] == best.metric("accuracy")
    # The report, its LR plot from mmengine's own schedulers stepped over the winner.
    assert (result.run_dir / "report.html").is_file()
    assert (result.run_dir / "report_schedule.png").stat().st_size > 1000


@pytest.mark.ray
@pytest.mark.slow
def test_an_interrupted_mmengine_search_resumes_every_trial_exactly_once(tmp_path):
    space = write_space(tmp_path, "resume", scheduler={"type": "fifo"}, stop={"max_epochs": 3},
                        search={"algorithm": "tpe", "num_samples": 4, "seed": 1,
                                "max_concurrent": 2, "confirm": False, "baseline": False})
    args = search_args(space, tmp_path / "runs")
    run_dir = tmp_path / "runs" / "r"
    kill_after_ends(args, tmp_path, run_dir / recorder.RESULTS_JSONL, 2)
    interrupted = recorder.load_records(run_dir, finished=True)
    assert any(rec.status == recorder.INTERRUPTED for rec in interrupted.values())

    second = resume(args, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    records = recorder.load_records(run_dir, finished=True)
    assert len(records) == 4
    assert all(rec.status == recorder.TERMINATED for rec in records.values())
    assert all(sorted(rec.results) == [1, 2, 3] for rec in records.values())
    assert (run_dir / "best" / "best_config.py").is_file()


def test_an_mmengine_config_under_the_ray_launcher_is_refused(tmp_path):
    proc = _run([sys.executable, "-m", "rt3d_tune", "train", str(BASE), "--launcher", "ray",
                 "--workers", "2", "--work-dir", str(tmp_path / "w")], tmp_path)
    assert proc.returncode == 2 and "--launcher" in proc.stderr and "torchrun" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("space_entry", "key_path"),
    [
        # an unknown scheduler type in one branch of the choice
        ({"param_scheduler": {"choice": [[WARMUP, COSINE],
                                         [WARMUP, {**STEP, "type": "MultiStepLRR"}]]}},
         "param_scheduler.1"),
        # an optim_wrapper key mmengine's OptimWrapper does not take
        ({"optim_wrapper.acumulative_counts": {"choice": [1, 2]}}, "optim_wrapper"),
        # a misspelled optimizer key
        ({"optim_wrapper.optimizer.lrr": {"loguniform": [1.0e-3, 1.0e-2]}},
         "space.optim_wrapper.optimizer.lrr"),
    ],
)
def test_mmengine_space_mistakes_exit_2_with_their_key_path(tmp_path, space_entry, key_path):
    space = write_space(tmp_path, "bad", space=space_entry)
    for command in ("validate", "search"):
        proc = _run([sys.executable, "-m", "rt3d_tune", command, str(space), "--output",
                     str(tmp_path / "runs")] if command == "search"
                    else [sys.executable, "-m", "rt3d_tune", command, str(space)], tmp_path)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert key_path in proc.stderr + proc.stdout, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "runs").exists()  # refused before Ray


def test_an_mmengine_space_without_mmengine_says_how_to_install_it(tmp_path):
    space = write_space(tmp_path, "nomm")
    # mmengine made unimportable in the child process only
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "mmengine.py").write_text("raise ImportError('No module named mmengine')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "rt3d_tune", "validate", str(space)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'rt3d-tune[mmengine]'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_two_worker_mmengine_trials_run_on_mmengines_distributed_wrapper(ray_local, tmp_path):
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    space = load_space(write_space(
        tmp_path, "dp", resources={"cpu": 1, "workers": 2},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        stop={"max_epochs": 2},
        search={"algorithm": "random", "num_samples": 2, "seed": 0, "confirm": False}))
    result = run_search(space, output=tmp_path / "runs", name="dp", status=False)

    assert {rec.status for rec in result.records.values()} <= {recorder.TERMINATED,
                                                               recorder.EARLY_STOPPED}
    for rec in result.records.values():
        first, last = rec.results[1], rec.results[max(rec.results)]
        assert last["workers"] == 2
        # 320 samples over 2 ranks of DefaultSampler, 16 per batch: 10 iterations an epoch
        assert last["iters_per_epoch"] == 10 and last["iteration"] == 10 * max(rec.results)
        # ASHA's rung after round 1: a cool-down probe on both ranks (a rank that
        # skipped it would leave the other waiting in its gradient all-reduce)
        assert first["probe_iters"] == 2 and "accuracy_plain" in first
    assert any(sorted(rec.results) == [1, 2] for rec in result.records.values())
    assert (result.run_dir / "best" / "best_config.py").is_file()
