"""GPU assignment without a GPU: a Ray with two fake GPUs, trials asking for half of one."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rt3d_tune.results import recorder

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
# A separate Ray (the session's has no GPUs); run_search reuses the initialized one.
CHILD = """
import json, sys, ray
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.space import load_space
from rt3d_tune.search.tuner import run_search
ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
         log_to_driver=False)
space, too_many, out = sys.argv[1:]
result = run_search(load_space(space), output=out, name="gpu", status=False)
try:
    run_search(load_space(too_many), output=out, name="too_many", status=False)
    refused = None
except ConfigError as err:
    refused = err.format()
print(json.dumps({"refused": refused}))
"""
SAMPLES = 4


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts."""
    return list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))


def cuda_sees(gpu_id: str) -> bool:
    """Whether torch finds a CUDA device when Ray hands a trial GPU ``gpu_id`` (Ray sets
    CUDA_VISIBLE_DEVICES to it): never with a CPU build of torch, else asked in a child
    process with that setting, as the trial runs."""
    import torch

    if torch.version.cuda is None:
        return False
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu_id)
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True, env=env, check=True, timeout=120)
    return out.stdout.strip() == "True"


def write(tmp_path: Path, name: str, gpu: float) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(POINTNET), "metric": "accuracy", "mode": "max",
        "space": {"optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
        "search": {"algorithm": "random", "num_samples": SAMPLES, "seed": 0,
                   "max_concurrent": 4, "baseline": False},
        "resources": {"cpu": 0.5, "gpu": gpu}, "stop": {"max_epochs": 1},
    }))
    return path


def test_trials_get_the_fractional_gpus_ray_assigns(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(write(tmp_path, "half", 0.5)),
         str(write(tmp_path, "three", 3)), str(out)],
        cwd=tmp_path, capture_output=True, check=False, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(out / "gpu" / "results.csv")
    assert len(rows) == SAMPLES and all(r["status"] == "TERMINATED" for r in rows)
    ids = [r["gpu_ids"] for r in rows]
    assert set(ids) <= {"0", "1"}  # each trial sees exactly one of the two GPUs
    # Four half-GPU trials at once need both GPUs, and never three on one.
    assert sorted(set(ids)) == ["0", "1"]
    records = recorder.load_records(out / "gpu", finished=True)
    spans = [(rec.start, rec.end, rec.last_result["gpu_ids"]) for rec in records.values()]
    for start, _, gpu in spans:
        sharing = [s for s in spans if s[2] == gpu and s[0] <= start < s[1]]
        assert len(sharing) <= 2

    results = [json.loads(line)["result"] for line in
               (out / "gpu" / "results.jsonl").read_text().splitlines()
               if '"event": "result"' in line]
    # The runner uses CUDA exactly when the GPU Ray gave the trial is a real one.
    assert {(r["gpu_ids"], r["device"]) for r in results} <= {
        (gpu, "cuda" if cuda_sees(gpu) else "cpu") for gpu in ("0", "1")}

    refused = json.loads(proc.stdout.strip().splitlines()[-1])["refused"]
    assert refused and "resources.gpu" in refused and "at most 2" in refused
