"""A third backend, defined here in a few lines, runs a real search through the interface
alone: registered with ``register_backend``, nothing of the package changed for it.

Its configs say ``plain_loop = dict(...)``; a trial is a plain torch loop fitting a tiny
linear regression, reporting ``neg_mse`` after each epoch through the trial's reporter.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from rt3d_tune.backends import BACKENDS, Backend, TrialRun, register_backend
from rt3d_tune.backends.report import CHECKPOINT_FILE
from rt3d_tune.config import Config


class PlainTorchBackend(Backend):
    """A config with ``plain_loop = dict(epochs=N, steps=S)`` and ``lr``: S SGD steps on
    ``y = 3x + 0.5`` per epoch; the metric is ``neg_mse``."""

    name = "plain-torch"
    signature = "plain_loop"
    runtime_keys = ("plain_loop",)
    no_evaluation_hint = "plain_loop reports after every epoch"

    def detects(self, cfg: Mapping[str, Any]) -> bool:
        return "plain_loop" in cfg

    def load_config(self, path: str | Path, options: Mapping[str, Any] | None = None,
                    key_path: str = "base", loaded: Any = None) -> Any:
        return loaded if loaded is not None else Config.fromfile(str(path))

    def run_length(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {"max_epochs": cfg["plain_loop"]["epochs"]}

    def iters_per_epoch(self, cfg: Mapping[str, Any], world_size: int = 1) -> int:
        return cfg["plain_loop"]["steps"]

    def start_trial(self, cfg: Any, run: TrialRun) -> Callable[[], Any]:
        import torch

        loop = cfg["plain_loop"]
        torch.manual_seed(cfg.get("seed") or 0)
        x = torch.linspace(-1, 1, 32).unsqueeze(1)
        y = 3 * x + 0.5
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"])

        def train() -> None:
            for epoch in range(1, loop["epochs"] + 1):
                for _ in range(loop["steps"]):
                    optimizer.zero_grad()
                    torch.nn.functional.mse_loss(model(x), y).backward()
                    optimizer.step()
                with torch.no_grad():
                    mse = float(torch.nn.functional.mse_loss(model(x), y))
                run.reporter.report_evaluation(
                    {"neg_mse": -mse}, fidelity=epoch, final=epoch == loop["epochs"],
                    epoch=epoch, iteration=epoch * loop["steps"],
                    iters_per_epoch=loop["steps"], lr=cfg["lr"], rank=run.rank,
                    save=lambda folder: torch.save(model.state_dict(),
                                                   Path(folder, CHECKPOINT_FILE)))

        return train


@pytest.fixture
def plain_torch():
    """The backend registered for the test (trial workers get it pickled by value)."""
    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    backend = register_backend(PlainTorchBackend())
    yield backend
    BACKENDS.pop(backend.name)
    cloudpickle.unregister_pickle_by_value(module)


def _write_run(tmp_path: Path) -> Path:
    base = tmp_path / "plain.py"
    base.write_text("plain_loop = dict(epochs=3, steps=20)\nlr = 0.05\nseed = 0\n",
                    encoding="utf-8")
    space = tmp_path / "plain.yaml"
    space.write_text(yaml.safe_dump({
        "base": str(base), "metric": "neg_mse", "mode": "max",
        "space": {"lr": {"loguniform": [0.01, 0.3]}},
        "search": {"algorithm": "random", "num_samples": 3, "seed": 0, "max_concurrent": 2,
                   "confirm": False},
        "scheduler": {"type": "fifo"},
        "resources": {"cpu": 1},
    }), encoding="utf-8")
    return space


def test_a_space_over_its_config_reads_as_that_backend(plain_torch, tmp_path: Path):
    from rt3d_tune.space.space import load_space

    space = load_space(_write_run(tmp_path))
    assert space.backend is plain_torch and space.max_epochs == 3


@pytest.mark.ray
def test_a_third_backend_runs_a_search_through_the_interface(plain_torch, ray_local,
                                                             tmp_path: Path):
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    space = load_space(_write_run(tmp_path))
    result = run_search(space, output=tmp_path / "runs", name="plain", status=False)

    run_dir = tmp_path / "runs" / "plain"
    events = [json.loads(line) for line in
              (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    reports = [event for event in events if event["event"] == "result"]
    assert len({event["trial_id"] for event in reports}) >= 3  # the baseline's too
    assert {event["result"]["training_iteration"] for event in reports} == {1, 2, 3}
    assert all(event["result"]["neg_mse"] <= 0 for event in reports)
    ended = [event for event in events if event["event"] == "end"]
    assert len(ended) >= 3 and all(event["error"] is None for event in ended)
    assert len(result.records) >= 3
    best = Config.fromfile(str(run_dir / "best" / "best_config.py"))
    assert best["plain_loop"] == {"epochs": 3, "steps": 20}
    assert 0.01 <= best["lr"] <= 0.3
    assert not (run_dir / "best" / "best_mmengine.py").exists()
