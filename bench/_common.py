"""Shared pieces of the benchmarks: Ray setup, the raw Tune baselines, printing, tiny tasks.

This module is also copied next to the generated configs of the search benchmarks
(as ``rt3d_bench_task.py``) and imported there through ``custom_imports``, so the Ray
trials register the same classes: it imports only the standard library, torch and
rt3d_tune, and nothing from ``bench/``.

Baselines (:class:`RawTune`): ``RAW_FAIR``, the one every target line compares against
(Tune with the environment variables the search sets, ``reuse_actors=True``, a trial
that imports torch and steps an optimizer), ``RAW_DEFAULTS`` and ``RAW_NO_TORCH``.

Tasks:
    * ``BenchNoopDataset`` / ``BenchNoopModel``: one sample, one parameter; a trial on
      it is one iteration and one evaluation, i.e. nothing but one report.
    * ``BenchVectors`` / ``BenchMLP``: seeded Gaussian-cluster classification and an
      MLP, the runner-overhead benchmark's model and data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from rt3d_tune.registry import DATASETS, MODELS
from rt3d_tune.search.ray_session import TUNE_ENV

TASK_MODULE = "rt3d_bench_task"
NOOP_METRIC = "score"
# Ray on loopback only (docs/ARCHITECTURE.md, "Ray"), as the search's embedded instance runs.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


# --- Ray -------------------------------------------------------------------------------
def start_ray(num_cpus: int = 2) -> None:
    """A local Ray with ``num_cpus`` CPUs on loopback, unless one is already running.

    The process gets the environment rt3d-tune's search sets (``TUNE_ENV``, only where
    unset, as the search does), so every measurement after this starts from it.
    """
    for key, value in {**LOOPBACK_ENV, **TUNE_ENV}.items():
        os.environ.setdefault(key, value)
    import ray
    from ray import cloudpickle

    # Ray workers cannot import bench/ modules unless bench/ is the driver's script
    # folder (pytest, another cwd): ship this module's functions by value instead.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


@contextlib.contextmanager
def tune_environment(search_env: bool) -> Iterator[None]:
    """Run the body with Tune's variables as the search sets them, or with Tune's defaults.

    Args:
        search_env: True: ``TUNE_ENV`` where unset (what ``ray_session`` does); False:
            its ``TUNE_*`` variables unset (Tune's own defaults). Restored afterwards.
    """
    saved = {key: os.environ.get(key) for key in TUNE_ENV}
    try:
        for key, value in TUNE_ENV.items():
            if search_env:
                os.environ.setdefault(key, value)
            elif key.startswith("TUNE_"):
                os.environ.pop(key, None)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- printing --------------------------------------------------------------------------
def figure(name: str, value: float, unit: str, note: str = "") -> None:
    """One figure per line: ``FIGURE name = value unit  (note)``."""
    extra = f"  ({note})" if note else ""
    print(f"FIGURE {name} = {value:.4g} {unit}{extra}", flush=True)


def ratio(name: str, value: float, target: float | None = None, op: str = "<=") -> None:
    """The summary line: ``RATIO name = value (target <= t: met|MISSED)``."""
    if target is None:
        print(f"RATIO {name} = {value:.3g}", flush=True)
        return
    met = value <= target if op == "<=" else value >= target
    verdict = "met" if met else "MISSED"
    print(f"RATIO {name} = {value:.3g} (target {op} {target:g}: {verdict})", flush=True)


def median_min(values: Sequence[float]) -> tuple[float, float]:
    """(median, minimum) of repeated measurements."""
    return statistics.median(values), min(values)


# --- the no-op task --------------------------------------------------------------------
@DATASETS.register_module(force=True)
class BenchNoopDataset(Dataset):
    """One sample; ``evaluate`` returns ``score`` (the single prediction)."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": torch.ones(1)}

    def evaluate(self, results: list[Any], **kwargs: Any) -> dict[str, float]:
        return {"score": float(torch.as_tensor(results[0]).sum())}


@MODELS.register_module(force=True)
class BenchNoopModel(nn.Module):
    """One weight; the loss is the weight times the input; each train step sleeps ``sleep`` s."""

    def __init__(self, sleep: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.sleep = sleep

    def forward(self, batch: dict[str, torch.Tensor], return_loss: bool = True) -> Any:
        return self.forward_test(batch)

    def train_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        if self.sleep:
            time.sleep(self.sleep)
        loss = (self.w * batch["x"]).sum()
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": 1}

    def val_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        loss = (self.w * batch["x"]).sum()
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": 1}

    def forward_test(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [(self.w * batch["x"]).detach()]


NOOP_CONFIG = f"""\
# One sample, one weight, one epoch of one iteration, one evaluation: a no-op trial
# (the iteration sleeps SLEEP seconds).
custom_imports = dict(imports=['{TASK_MODULE}'])
model = dict(type='BenchNoopModel', sleep=SLEEP)
data = dict(
    samples_per_gpu=1,
    workers_per_gpu=0,
    train=dict(type='BenchNoopDataset'),
    val=dict(type='BenchNoopDataset'))
optimizer = dict(type='SGD', lr=0.01)
optimizer_config = dict(grad_clip=None)
runner = dict(type='EpochBasedRunner', max_epochs=1)
evaluation = dict(interval=1)
seed = 0
"""


def write_task_files(folder: Path) -> Path:
    """Copy this module beside a config as ``rt3d_bench_task.py``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__), folder / f"{TASK_MODULE}.py")
    return folder


def write_noop_config(folder: Path, sleep: float = 0.0) -> Path:
    """The no-op trial's base config in ``folder`` (with the task module beside it).

    Args:
        folder: where the config and the task module go.
        sleep: seconds the trial's one training iteration sleeps.
    """
    write_task_files(folder)
    path = folder / "noop.py"
    path.write_text(NOOP_CONFIG.replace("SLEEP", repr(float(sleep))), encoding="utf-8")
    return path


def write_noop_space(folder: Path, n: int, sleep: float = 0.0) -> Path:
    """A random-search space over the no-op config: ``n`` trials, two at a time, 1 CPU each."""
    import yaml

    base = write_noop_config(folder, sleep)
    space = {
        "base": str(base),
        "metric": NOOP_METRIC,
        "mode": "max",
        "space": {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1]}},
        # n trials, like the raw-Tune baselines: no baseline trial, no confirmation runs
        "search": {"algorithm": "random", "num_samples": n, "seed": 0, "max_concurrent": 2,
                   "confirm": 0, "baseline": False},
        "scheduler": {"type": "fifo"},
        "resources": {"cpu": 1},
        "stop": {"max_epochs": 1},
    }
    path = folder / "noop_space.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    return path


def search_phases(run_dir: Path, started: float, wall: float) -> dict[str, float]:
    """Start-up, trials and export of one search, from its recorded trial start/end times.

    Args:
        run_dir: the search's run directory.
        started: ``time.time()`` when the search was called.
        wall: seconds the call took.
    """
    import json

    events = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    starts = [e["time"] for e in events if e["event"] == "start"]
    ends = [e["time"] for e in events if e["event"] == "end"]
    return {
        "start-up to the first trial start": min(starts) - started,
        "first trial start to last trial end": max(ends) - min(starts),
        "last trial end to return (export)": started + wall - max(ends),
    }


def run_rt3d_noop(folder: Path, n: int, name: str, sleep: float = 0.0) -> float:
    """Wall seconds of ``run_search`` (export included) over ``n`` no-op trials.

    Uses the running Ray (``start_ray``); warns when not every trial terminated.
    """
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    space = load_space(write_noop_space(folder, n, sleep))
    start = time.perf_counter()
    result = run_search(space, output=folder / "runs", name=name, status=False)
    wall = time.perf_counter() - start
    done = sum(1 for rec in result.records.values() if rec.status == "TERMINATED")
    if done != n:
        print(f"WARNING {name}: {done} of {n} trials terminated", flush=True)
    return wall


@dataclass(frozen=True)
class RawTune:
    """How a raw Ray Tune baseline runs (:func:`run_raw_tune`): OptunaSearch on one
    loguniform parameter, two trials at a time, each trial one report.

    Attributes:
        name: its FIGURE label.
        reuse_actors: Tune's ``reuse_actors`` (its default is False).
        torch_trial: each trial imports torch and steps a one-weight SGD optimizer first
            (what every torch trial pays, as rt3d-tune's trials do).
        search_env: Tune's variables as rt3d-tune's search sets them (``TUNE_ENV``: no
            auto-callback loggers, ...); False: Tune's own defaults.
    """

    name: str
    reuse_actors: bool
    torch_trial: bool
    search_env: bool


# The fairest baseline, which every benchmark's target line compares against: Tune run
# as rt3d-tune's search runs it, on a trial that does what every torch trial does.
RAW_FAIR = RawTune(
    "raw Ray Tune as the search runs it (its environment, reuse_actors=True, torch trial)",
    reuse_actors=True,
    torch_trial=True,
    search_env=True,
)
# What a user gets from Tune out of the box (fresh actor per trial, default loggers).
RAW_DEFAULTS = RawTune(
    "raw Ray Tune, defaults (no torch in the trial)",
    reuse_actors=False,
    torch_trial=False,
    search_env=False,
)
# Tune's own floor as the search runs it: the fair baseline without torch.
RAW_NO_TORCH = RawTune(
    "raw Ray Tune as the search runs it, no torch in the trial",
    reuse_actors=True,
    torch_trial=False,
    search_env=True,
)


def warm_up(folder: Path) -> None:
    """One unmeasured trial of rt3d-tune and of the fair baseline, so that one-off imports
    in the driver (ray.tune; mlflow and wandb, imported by Ray's callback tagging; the
    report's matplotlib) land on no measurement."""
    run_raw_tune(folder, 1, "warm_raw", RAW_FAIR)
    run_rt3d_noop(folder, 1, "warm_rt3d")


def _raw_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    if config["torch"]:
        # Imported here: a module-level name would make every raw trial's worker import
        # torch to unpickle this function (it is shipped by value).
        import torch

        weight = torch.nn.Parameter(torch.ones(1))
        optimizer = torch.optim.SGD([weight], lr=config["x"])
        optimizer.zero_grad()
        weight.sum().backward()
        optimizer.step()
    if config["sleep"]:
        time.sleep(config["sleep"])
    tune.report({NOOP_METRIC: config["x"]})


def run_raw_tune(
    folder: Path, n: int, name: str, baseline: RawTune, sleep: float = 0.0
) -> float:
    """Wall seconds of raw ``Tuner.fit`` over ``n`` trials, run as ``baseline`` says.

    Args:
        folder: storage root.
        n: trials (two at a time).
        name: experiment name.
        baseline: how Tune runs (:class:`RawTune`).
        sleep: seconds each trial sleeps before its one report.
    """
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tune_environment(baseline.search_env):
        tuner = tune.Tuner(
            _raw_trainable,
            param_space={
                "x": tune.loguniform(1.0e-3, 1.0e-1),
                "sleep": sleep,
                "torch": baseline.torch_trial,
            },
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(metric=NOOP_METRIC, mode="max", seed=0),
                num_samples=n,
                max_concurrent_trials=2,
                reuse_actors=baseline.reuse_actors,
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(folder / "raw"), verbose=0),
        )
        start = time.perf_counter()
        tuner.fit()
        return time.perf_counter() - start


# --- the MLP task ----------------------------------------------------------------------
@DATASETS.register_module(force=True)
class BenchVectors(Dataset):
    """Seeded Gaussian clusters: ``num_samples`` vectors of ``dim``, ``num_classes`` labels.

    ``evaluate`` returns ``accuracy`` of the predicted labels.
    """

    def __init__(
        self, num_samples: int = 4096, dim: int = 64, num_classes: int = 10, seed: int = 0
    ) -> None:
        gen = torch.Generator().manual_seed(seed)
        centers = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(1234))
        self.y = torch.randint(num_classes, (num_samples,), generator=gen)
        self.x = centers[self.y] + 1.5 * torch.randn(num_samples, dim, generator=gen)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}

    def evaluate(self, results: list[Any], **kwargs: Any) -> dict[str, float]:
        pred = torch.stack([torch.as_tensor(r) for r in results])
        return {"accuracy": float((pred == self.y).float().mean())}


@MODELS.register_module(force=True)
class BenchMLP(nn.Module):
    """An MLP classifier following the model contract (cross-entropy loss)."""

    def __init__(
        self, dim: int = 64, hidden: int = 512, depth: int = 2, num_classes: int = 10
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, batch: dict[str, torch.Tensor], return_loss: bool = True) -> Any:
        return self.forward_test(batch)

    def train_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        loss = nn.functional.cross_entropy(self.net(batch["x"]), batch["y"])
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(batch["y"])}

    def val_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        return self.train_step(batch, optimizer)

    def forward_test(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return list(self.net(batch["x"]).argmax(dim=1))
