"""Data-parallel trials (``resources.workers: 2``) and ``train --launcher ray`` on the
session's local Ray (2 CPUs: one 2-worker trial fills it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import space_files

from rt3d_tune.results import recorder
from rt3d_tune.search.tuner import run_search
from rt3d_tune.space.space import load_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"


def _all_cpus_free(ray, timeout: float = 10.0) -> bool:
    """Whether the 2 CPUs are free again within ``timeout`` (Ray frees a removed
    placement group's resources asynchronously)."""
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU") != 2.0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _log_lines(work_dir: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(work_dir.glob("*.log.json"))
            for line in path.read_text().splitlines() if '"mode"' in line]


@pytest.mark.ray
@pytest.mark.slow
def test_asha_stops_two_worker_trials_and_frees_their_workers(ray_local, tmp_path):
    space = load_space(space_files.write_space(
        tmp_path, "dp", POINTNET,
        space={"optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
        search={"algorithm": "random", "num_samples": 4, "seed": 0, "confirm": False,
                "baseline": False},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        stop={"max_epochs": 3},
        resources={"cpu": 1, "workers": 2},
    ))
    result = run_search(space, output=tmp_path / "runs", name="dp", status=False)

    statuses = [rec.status for rec in result.records.values()]
    # Each trial holds both CPUs: a trial after a stopped one could only start because
    # the stopped trial's workers were gone.
    assert len(statuses) == 4 and recorder.EARLY_STOPPED in statuses
    assert set(statuses) <= {recorder.EARLY_STOPPED, recorder.TERMINATED}
    for rec in result.records.values():
        last = rec.results[max(rec.results)]
        assert last["workers"] == 2 and len(last["worker_nodes"].split(",")) == 2
        # 320 training samples, 2 ranks x 16 per batch: 10 iterations per epoch (not 20).
        assert last["iters_per_epoch"] == 10
        trial_dir = result.run_dir / "trials" / rec.trial_id
        train = [line for line in _log_lines(trial_dir) if line["mode"] == "train"]
        assert max(line["iter"] for line in train) == 10
    # The cool-down probes at ASHA's rungs ran on both ranks (a collective each step).
    assert any("probe_iters" in res and "accuracy_plain" in res
               for rec in result.records.values() for res in rec.results.values())
    assert _all_cpus_free(ray_local)
    assert (result.run_dir / "best" / "best_config.py").is_file()
    run_info = json.loads((result.run_dir / "run.json").read_text())
    assert run_info["resources"]["workers"] == 2


@pytest.mark.ray
@pytest.mark.slow
def test_train_with_the_ray_launcher_runs_two_ranks(ray_local, tmp_path):
    from rt3d_tune.search.ray_launcher import train_on_ray

    work_dir = tmp_path / "work"
    done = train_on_ray(
        str(POINTNET), {"work_dir": str(work_dir), "cfg_options": {"runner.max_epochs": 2}},
        workers=2,
    )
    assert done == {"epoch": 2, "iter": 20, "work_dir": str(work_dir)}  # 10 per epoch
    assert {"epoch_1.pth", "epoch_2.pth", "latest.pth", "config.py"} <= {
        p.name for p in work_dir.iterdir()}
    val = [line for line in _log_lines(work_dir) if line["mode"] == "val"]
    assert [line["epoch"] for line in val] == [1, 2]
    assert _all_cpus_free(ray_local)


@pytest.mark.ray
def test_the_ray_launcher_refuses_more_workers_than_the_cluster_holds(ray_local, tmp_path):
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.search.ray_launcher import train_on_ray

    with pytest.raises(ConfigError) as err:
        train_on_ray(str(POINTNET), {"work_dir": str(tmp_path)}, workers=3)
    assert err.value.key_path == "--workers" and "3 workers x 1 CPUs need 3" in str(err.value)


@pytest.mark.slow
def test_train_under_torchrun_trains_two_ranks(tmp_path):
    work_dir = tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "rt3d_tune",
         "train", str(POINTNET), "--launcher", "pytorch", "--work-dir", str(work_dir),
         "--cfg-options", "runner.max_epochs=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done: 1 epochs, 10 iterations") == 1  # rank 0 alone says it
    assert len(list(work_dir.glob("*.log"))) == 1


@pytest.mark.parametrize(
    ("args", "key_path"),
    [
        (["--launcher", "pytorch"], "--launcher"),
        (["--workers", "2"], "--workers"),
        (["--launcher", "ray", "--workers", "0"], "--workers"),
    ],
)
def test_launcher_mistakes_exit_2_with_their_argument(tmp_path, args, key_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run(
        [sys.executable, "-m", "rt3d_tune", "train", str(POINTNET), "--work-dir",
         str(tmp_path / "w"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert key_path in proc.stderr and "Traceback" not in proc.stderr
