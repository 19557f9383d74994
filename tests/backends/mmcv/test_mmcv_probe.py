"""Rung probes: a probe leaves the runner as it found it and the main trajectory is
bit-identical with and without probes; the probe's LR cools down linearly to the
schedule's end; it trains from the raw weights, accumulates like training and evaluates
trained weights; a diverging probe leaves the run going."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import runner_fixtures as fx
import torch
from torch import nn

from rt3d_tune.backends.mmcv.probe import cooldown_probe
from rt3d_tune.backends.probe import ProbeResult, probe_iters
from rt3d_tune.registry import DATASETS, MODELS
from rt3d_tune.runner import Hook, IterBasedRunner
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.hooks.ema import EMAHook
from rt3d_tune.runner.hooks.evaluation import EvalHook
from rt3d_tune.runner.hooks.lr_updater import LrUpdaterHook
from rt3d_tune.schedules import policies as schedules


@DATASETS.register_module(force=True)
class NoisyRegression(fx.ToyRegression):
    """ToyRegression with a per-epoch augmentation: each sample shifted by a random
    amount, drawn from numpy's RNG (in a loader worker, seeded from the loader's
    generator), plus an amount set by ``set_epoch``."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(i)
        shift = 0.01 * float(np.random.randn()) + 0.001 * self.epoch
        return {"x": item["x"] + shift, "y": item["y"]}


@MODELS.register_module(force=True)
class ProbeMLP(nn.Module):
    """A small MLP with BatchNorm and dropout that also draws from numpy's and python's RNG
    in train_step, so any RNG a probe leaves moved changes the weights.

    ``seen`` records, for each train_step, the LR and momentum of every param group and
    the first layer's weight; ``nan_in``: the loss of the ``nan_in``-th train_step from
    now on is NaN.
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(fx.IN_DIM, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1)
        )
        self.seen: list[dict[str, Any]] = []
        self.nan_in: int | None = None

    def forward(self, batch: dict[str, torch.Tensor], return_loss: bool = True) -> torch.Tensor:
        return self.net(batch["x"])

    def train_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        groups = optimizer.param_groups
        self.seen.append(
            {
                "lr": [group["lr"] for group in groups],
                "momentum": [
                    group.get("momentum", group.get("betas", (0.0,))[0]) for group in groups
                ],
                "weight": self.net[0].weight.detach().clone(),
            }
        )
        jitter = 1.0 + 0.01 * float(np.random.randn()) + 0.01 * random.random()
        loss = ((self({"x": batch["x"] * jitter}).float() - batch["y"]) ** 2).mean()
        if self.nan_in is not None:
            self.nan_in -= 1
            if self.nan_in == 0:
                loss = loss * float("nan")
        return {
            "loss": loss,
            "log_vars": {"loss": float(loss.detach())},
            "num_samples": len(batch["x"]),
        }

    def val_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        return self.train_step(batch, optimizer)

    def forward_test(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return list(self(batch).detach().cpu())


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _state(runner: Any) -> dict[str, Any]:
    """What a probe must leave as it found it, copied."""
    scaler = next((h.loss_scaler for h in runner.hooks if getattr(h, "loss_scaler", None)), None)
    return {
        "weights": _weights(runner.model),
        "grads": [None if p.grad is None else p.grad.clone() for p in runner.model.parameters()],
        "optimizer": copy.deepcopy(runner.optimizer.state_dict()),
        "scaler": None if scaler is None else scaler.state_dict(),
        "meta": copy.deepcopy(runner.meta),
        "progress": (runner.iter, runner.epoch, runner.inner_iter, runner.max_iters),
        "rng": (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal, tensors and arrays bit for bit, through dicts, lists and tuples."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}.{i}")
    else:
        assert a == b, where


class Recorder(Hook):
    """The main trajectory, iteration by iteration: loss, LR and momentum of every group."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.evals: list[dict[str, float]] = []

    def after_train_iter(self, runner: Any) -> None:
        self.rows.append(
            (
                runner.iter,
                float(runner.outputs["loss"].detach()),
                runner.current_lr(),
                runner.current_momentum(),
            )
        )
        self.evals.append(dict(getattr(runner, "eval_results", {})))

    def after_train_epoch(self, runner: Any) -> None:
        self.evals.append(dict(getattr(runner, "eval_results", {})))


class ProbeAt(Hook):
    """Probes at the given rungs (epochs, or iterations for the iteration runner) and
    records what the probe did and saw."""

    def __init__(self, rungs: set[int], ratio: float = 0.5, nan_in: int | None = None) -> None:
        self.rungs = rungs
        self.ratio = ratio
        self.nan_in = nan_in
        self.probes: list[dict[str, Any]] = []

    def after_train_epoch(self, runner: Any) -> None:
        if not isinstance(runner, IterBasedRunner) and runner.epoch + 1 in self.rungs:
            self._probe(runner, start_iter=runner.iter)

    def after_train_iter(self, runner: Any) -> None:
        if isinstance(runner, IterBasedRunner) and runner.iter + 1 in self.rungs:
            self._probe(runner, start_iter=runner.iter + 1)

    def _probe(self, runner: Any, start_iter: int) -> None:
        lr_hook = next(h for h in runner.hooks if isinstance(h, LrUpdaterHook))
        eval_hook = next(h for h in runner.hooks if isinstance(h, EvalHook))
        ema_hook = next(h for h in runner.hooks if isinstance(h, EMAHook))
        record: dict[str, Any] = {
            "state_before": _state(runner),
            "start_iter": start_iter,
            "lr_now": runner.current_lr(),
            "momentum_now": runner.current_momentum(),
            "lr_final": lr_hook.final_lr(runner),
            "ema_in_model": ema_hook.ema_in_model,
            "main_metrics": dict(runner.eval_results),
        }

        def evaluate() -> dict[str, Any]:
            record["evaluated"] = _weights(runner.model)
            record["ema_in_model_at_eval"] = ema_hook.ema_in_model
            return eval_hook.compute_metrics(runner)

        model = runner.model
        record["first"] = len(model.seen)
        model.nan_in = self.nan_in
        model.net[1].eval()  # a frozen BatchNorm (norm_eval) between iterations
        steps: list[int] = []
        handle = runner.optimizer.register_step_post_hook(lambda *_: steps.append(runner.iter))
        result = cooldown_probe(
            runner,
            probe_iters(start_iter, self.ratio),
            lr_hook.final_lr,
            evaluate,
            start_iter=start_iter,
        )
        handle.remove()
        record.update(
            state_after=_state(runner),
            result=result,
            seen=model.seen[record["first"] :],
            steps=steps,
            bn_training_after=model.net[1].training,
        )
        model.nan_in = None
        model.net[1].train()
        self.probes.append(record)


EPOCH_CFG: dict[str, Any] = {
    "model": {"type": "ProbeMLP"},
    "data": {
        "samples_per_gpu": 4,
        "workers_per_gpu": 0,
        "train": {"type": "NoisyRegression", "length": 20},  # 5 iterations per epoch
        "val": {"type": "NoisyRegression", "length": 8, "seed": 1},
    },
    # bias_lr_mult: param groups with different LRs
    "optimizer": {
        "type": "SGD",
        "lr": 0.05,
        "momentum": 0.9,
        "paramwise_cfg": {"bias_lr_mult": 2.0},
    },
    # stretches of 3 straddle the epoch ends: a probe starts mid-stretch
    "optimizer_config": {
        "type": "GradientCumulativeOptimizerHook",
        "cumulative_iters": 3,
        "grad_clip": {"max_norm": 1.0},
    },
    "lr_config": {
        "policy": "CosineAnnealing",
        "by_epoch": False,
        "warmup": "linear",
        "warmup_iters": 3,
        "min_lr_ratio": 0.01,
    },
    "momentum_config": {"policy": "CosineAnnealing", "by_epoch": False, "min_momentum_ratio": 0.8},
    "custom_hooks": [{"type": "EMAHook", "momentum": 0.2, "warm_up": 2}],
    "evaluation": {"interval": 1},
    "runner": {"type": "EpochBasedRunner", "max_epochs": 4},
    "seed": 0,
}

ITER_CFG: dict[str, Any] = {
    **EPOCH_CFG,
    # the train loader in this process (its dataset's epoch matters mid-pass), the val
    # loader with a worker (seeded from the loader's generator)
    "data": {
        **EPOCH_CFG["data"],
        "val": {**EPOCH_CFG["data"]["val"], "workers_per_gpu": 1},
    },
    "optimizer": {
        "type": "AdamW",
        "lr": 0.01,
        "weight_decay": 0.01,
        "paramwise_cfg": {"bias_lr_mult": 2.0},
    },
    "optimizer_config": {
        "type": "Fp16OptimizerHook",
        "loss_scale": "dynamic",
        "grad_clip": {"max_norm": 1.0},
    },
    "lr_config": {"policy": "Step", "step": [8, 14], "gamma": 0.3},
    "momentum_config": None,
    "evaluation": {"interval": 5},
    "runner": {"type": "IterBasedRunner", "max_iters": 18},
}

# rungs: after epochs 1 and 2; after iterations 7 and 12 (mid-pass and mid-stretch)
CASES = {"epoch": (EPOCH_CFG, {1, 2}), "iter": (ITER_CFG, {7, 12})}


@dataclass
class Run:
    runner: Any
    recorder: Recorder
    probe: ProbeAt | None


def _run(work_dir: Path, cfg: dict[str, Any], probe: ProbeAt | None) -> Run:
    recorder = Recorder()
    hooks: list[Any] = [(recorder, "VERY_LOW")]
    if probe is not None:
        hooks.append((probe, "VERY_LOW"))
    runner = build_runner(cfg, work_dir=work_dir, extra_hooks=hooks, device="cpu")
    runner.run()
    return Run(runner, recorder, probe)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Callable[[str, str], Run]:
    """``runs(case, kind)``: the case's run without probes ('plain'), with probes
    ('probed'), or with probes that diverge at their second iteration ('diverging');
    each trained once for the module."""
    done: dict[tuple[str, str], Run] = {}

    def get(case: str, kind: str) -> Run:
        if (case, kind) not in done:
            cfg, rungs = CASES[case]
            probe = {
                "plain": None,
                "probed": ProbeAt(rungs),
                "diverging": ProbeAt(rungs, nan_in=2),
            }[kind]
            done[case, kind] = _run(tmp_path_factory.mktemp(f"{case}_{kind}"), cfg, probe)
        return done[case, kind]

    return get


def _assert_same_run(a: Run, b: Run) -> None:
    assert a.recorder.rows == b.recorder.rows  # losses, LR and momentum curves, float for float
    assert a.recorder.evals == b.recorder.evals
    weights_a, weights_b = _weights(a.runner.model), _weights(b.runner.model)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:  # parameters, BatchNorm statistics, EMA averages
        assert torch.equal(weights_a[name], weights_b[name]), name
    opt_a, opt_b = a.runner.optimizer.state_dict(), b.runner.optimizer.state_dict()
    assert opt_a["param_groups"] == opt_b["param_groups"]
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for index, state in opt_a["state"].items():
        for key, value in state.items():
            assert torch.equal(value, opt_b["state"][index][key]), (index, key)
    history_a, history_b = a.runner.log_buffer.val_history, b.runner.log_buffer.val_history
    assert history_a.keys() == history_b.keys()
    for key in history_a.keys() - {"time", "data_time"}:
        assert history_a[key] == history_b[key], key
    assert a.runner.eval_round == b.runner.eval_round
    assert a.runner.meta.keys() == b.runner.meta.keys()


@pytest.mark.parametrize("case", sorted(CASES))
def test_probes_leave_the_main_trajectory_bit_identical(runs, case) -> None:
    probed = runs(case, "probed")
    assert len(probed.probe.probes) == 2
    assert all(not p["result"].diverged and p["result"].metrics for p in probed.probe.probes)
    _assert_same_run(probed, runs(case, "plain"))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["probed", "diverging"])
def test_probe_leaves_the_runner_as_it_found_it(runs, case, kind) -> None:
    for record in runs(case, kind).probe.probes:
        _assert_same(record["state_before"], record["state_after"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_probe_on_cuda_restores_the_grad_scaler_and_the_cuda_rng(tmp_path) -> None:
    probe = ProbeAt({7, 12})
    runner = build_runner(
        ITER_CFG, work_dir=tmp_path, extra_hooks=[(probe, "VERY_LOW")], device="cuda"
    )
    runner.run()  # Fp16OptimizerHook: float16 autocast with a GradScaler
    assert len(probe.probes) == 2
    for record in probe.probes:
        assert record["state_before"]["scaler"] and record["state_before"]["cuda_rng"]
        assert record["result"].metrics and not record["result"].diverged
        _assert_same(record["state_before"], record["state_after"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_probe_lr_cools_down_linearly_to_the_final_lr(runs, case) -> None:
    run = runs(case, "probed")
    for record in run.probe.probes:
        result: ProbeResult = record["result"]
        seen = record["seen"]
        assert result.iters == len(seen) == probe_iters(record["start_iter"], run.probe.ratio)
        assert len(record["lr_now"]) > 1  # bias_lr_mult: groups with different LRs
        for t, step in enumerate(seen):
            for group, lr in enumerate(step["lr"]):
                start, stop = record["lr_now"][group], record["lr_final"][group]
                assert lr == pytest.approx(start + (stop - start) * (t + 1) / result.iters)
            assert step["momentum"] == record["momentum_now"]  # momentum stays where it was
        assert seen[-1]["lr"] == pytest.approx(record["lr_final"])
        assert result.seconds > 0
    # the schedule's own value at its last iteration
    runner = run.runner
    lr_hook = next(h for h in runner.hooks if isinstance(h, LrUpdaterHook))
    bases = [group["initial_lr"] for group in runner.optimizer.param_groups]
    expected = [lr_hook.schedule(runner.max_iters - 1, runner.max_iters, base) for base in bases]
    assert lr_hook.final_lr(runner) == expected


def test_final_lr_of_a_cosine_schedule_by_epoch(tmp_path) -> None:
    cfg = {
        **EPOCH_CFG,
        "lr_config": {"policy": "CosineAnnealing", "min_lr": 0.001},
        "custom_hooks": [],
        "evaluation": None,
    }
    runner = _run(tmp_path, cfg, None).runner
    lr_hook = next(h for h in runner.hooks if isinstance(h, LrUpdaterHook))
    cosine = schedules.cosine_annealing(min_lr=0.001)
    assert lr_hook.final_lr(runner) == [
        cosine(3, 4, group["initial_lr"]) for group in runner.optimizer.param_groups
    ]
    # the last epoch trained at it
    assert runner.current_lr() == lr_hook.final_lr(runner)


@pytest.mark.parametrize("case", sorted(CASES))
def test_probe_evaluates_trained_weights_as_the_scheduled_evaluation_would(runs, case) -> None:
    for record in runs(case, "probed").probe.probes:
        before, evaluated = record["state_before"]["weights"], record["evaluated"]
        assert any(not torch.equal(before[name], evaluated[name]) for name in before)
        # the average is in the model at evaluation exactly when it was at the call
        assert record["ema_in_model_at_eval"] == record["ema_in_model"] == (case == "epoch")
        assert record["result"].metrics != record["main_metrics"]
        assert set(record["result"].metrics) == set(record["main_metrics"]) == {"mse"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_probe_continues_training_from_the_raw_weights(runs, case) -> None:
    """The probe's first step starts from the weights the main run's next step starts
    from (not the EMA average the model holds after an epoch), and it leaves the
    modules' train/eval flags as it found them."""
    run = runs(case, "probed")
    for record in run.probe.probes:
        main_next = run.runner.model.seen[record["first"] + record["result"].iters]
        assert torch.equal(record["seen"][0]["weight"], main_next["weight"])
        assert record["bn_training_after"] is False


def test_probe_accumulates_like_training_and_steps_at_its_end(runs) -> None:
    """Stretches of cumulative_iters stay aligned to the global iteration (the first one
    finishes the main run's open stretch), and the probe's last iteration steps."""
    probes = runs("epoch", "probed").probe.probes
    k = EPOCH_CFG["optimizer_config"]["cumulative_iters"]
    for record in probes:
        start, end = record["start_iter"], record["start_iter"] + record["result"].iters
        expected = [i for i in range(start, end) if (i + 1) % k == 0 or i == end - 1]
        assert record["steps"] == expected
    assert [p["steps"] for p in probes] == [[5, 6], [11, 14]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_diverging_probe_reports_it_and_training_goes_on(runs, case) -> None:
    run = runs(case, "diverging")  # each probe's second iteration has a NaN loss
    assert [p["result"].diverged for p in run.probe.probes] == [True, True]
    for record in run.probe.probes:
        result = record["result"]
        assert result.iters == 2 and result.metrics == {}
        start = record["start_iter"]
        assert result.error.startswith(
            f"training diverged at epoch {(start + 1) // 5}, iteration {start + 1}"
        )
        assert "evaluated" not in record
    _assert_same_run(run, runs(case, "plain"))


@pytest.mark.parametrize(
    ("progress", "ratio", "expected"),
    [(0, 0.1, 1), (5, 0.1, 1), (40, 0.1, 4), (1000, 0.25, 250), (10, 1.0, 10), (7, 0.5, 4)],
)
def test_probe_iters(progress, ratio, expected) -> None:
    assert probe_iters(progress, ratio) == expected


@pytest.mark.parametrize(
    ("progress", "ratio"), [(10, 0.0), (10, -0.1), (10, 1.5), (-1, 0.1), (2.5, 0.1), (True, 0.1)]
)
def test_probe_iters_rejects_bad_values(progress, ratio) -> None:
    with pytest.raises(ValueError, match="but got"):
        probe_iters(progress, ratio)
