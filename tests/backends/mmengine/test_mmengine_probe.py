"""The cool-down probe on mmengine's Runner: a short LR cool-down from a rung, validated,
then undone, so the run goes on exactly as without it.

Real runs of the built-in mmengine PointNet task (96 training samples: 6 iterations an
epoch, 3 epochs, warm-up + cosine), one thread, the same seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mmengine")

import torch
from mmengine.hooks import Hook

from rt3d_tune.backends.mmengine.probe import final_lrs, mmengine_cooldown_probe
from rt3d_tune.backends.mmengine.simulate import simulate_mmengine_schedule
from rt3d_tune.backends.probe import ProbeResult

REPO = Path(__file__).resolve().parents[3]
BASE = REPO / "configs" / "mmengine" / "pointnet_shapes.py"
IPE, EPOCHS = 6, 3


def _cfg(tmp_path: Path, name: str, **changes: Any) -> Any:
    from mmengine.config import Config as MMConfig

    cfg = MMConfig.fromfile(str(BASE))
    cfg.train_dataloader.dataset.num_samples = IPE * 16
    cfg.val_dataloader.dataset.num_samples = 48
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.param_scheduler[0].end = 4
    cfg.param_scheduler[1].update(end=EPOCHS, T_max=EPOCHS)
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = f"{name}-{tmp_path.name}"  # mmengine keys its logger and hub by it
    cfg.randomness = {"seed": 0}
    cfg.default_hooks.checkpoint = {"type": "CheckpointHook", "interval": -1}
    for key, value in list(changes.items()):  # {"_delete_": True, ...} replaces the key
        if isinstance(value, dict) and value.get("_delete_"):
            cfg[key] = {k: v for k, v in changes.pop(key).items() if k != "_delete_"}
    cfg.merge_from_dict(changes)
    return cfg


class _ProbeAt(Hook):
    """Runs a probe after the given validation rounds (1-based), recording what it saw."""

    priority = "VERY_LOW"

    def __init__(self, rounds: tuple[int, ...], iters: int, nan_loss: bool = False) -> None:
        self.rounds, self.iters, self.nan_loss = rounds, iters, nan_loss
        self.round = 0
        self.results: list[ProbeResult] = []
        self.lrs: list[list[float]] = []  # per probe: the LR of each of its iterations
        self.final: list[float] = []
        self.lr_before: list[float] = []

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self.round += 1
        if self.round not in self.rounds:
            return
        model = runner.model
        step = model.train_step
        seen: list[float] = []

        def recording(data: Any, optim_wrapper: Any) -> Any:
            seen.append(optim_wrapper.get_lr()["lr"][0])
            out = step(data, optim_wrapper=optim_wrapper)
            return {"loss": torch.tensor(math.nan)} if self.nan_loss else out

        self.final.append(final_lrs(runner)[""][0])
        self.lr_before.append(runner.optim_wrapper.get_lr()["lr"][0])
        model.train_step = recording
        try:
            self.results.append(mmengine_cooldown_probe(runner, self.iters))
        finally:
            del model.train_step
        self.lrs.append(seen)


def _train(cfg: Any, *hooks: Hook) -> Any:
    from mmengine.runner import Runner

    torch.set_num_threads(1)
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook, priority="VERY_LOW")
    runner.train()
    return runner


def _state(runner: Any) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v.clone() for k, v in runner.model.state_dict().items()}
    for hook in runner.hooks:
        if hasattr(hook, "ema_model"):
            state.update({f"ema.{k}": v.clone() for k, v in hook.ema_model.state_dict().items()})
    for key, value in runner.optim_wrapper.optimizer.state_dict()["state"].items():
        state.update({f"optim.{key}.{k}": v.clone() for k, v in value.items()
                      if isinstance(v, torch.Tensor)})
    return state


@pytest.mark.parametrize("changes", [
    {},
    {"custom_hooks": [{"type": "EMAHook", "momentum": 0.01}]},
    {"optim_wrapper": {"accumulative_counts": 4}},  # a stretch spans the epoch's end
    {"train_cfg": {"_delete_": True, "type": "IterBasedTrainLoop", "max_iters": IPE * EPOCHS,
                   "val_interval": IPE},
     "param_scheduler": [{"type": "LinearLR", "start_factor": 0.1, "by_epoch": False,
                          "begin": 0, "end": 4},
                         {"type": "CosineAnnealingLR", "by_epoch": False, "begin": 0,
                          "end": IPE * EPOCHS, "eta_min": 1.0e-4}]},
    # a loader process that lives on between epochs: the probe must not consume its stream
    {"train_dataloader": {"num_workers": 1, "persistent_workers": True}},
], ids=["plain", "ema", "accumulation", "iteration-loop", "persistent-workers"])
def test_the_run_goes_on_bit_for_bit_as_without_the_probes(tmp_path, changes):
    plain = _state(_train(_cfg(tmp_path, "plain", **changes)))
    probe = _ProbeAt(rounds=(1, 2), iters=3)
    probed = _state(_train(_cfg(tmp_path, "probed", **changes), probe))

    assert len(probe.results) == 2
    for result in probe.results:
        assert not result.diverged and result.iters == 3 and result.seconds > 0
        assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert plain.keys() == probed.keys()
    changed = [key for key in plain if not torch.equal(plain[key], probed[key])]
    assert changed == []


def test_the_lr_cools_down_linearly_to_where_the_schedule_ends(tmp_path):
    cfg = _cfg(tmp_path, "lr")
    probe = _ProbeAt(rounds=(1,), iters=4)
    _train(cfg, probe)

    curve = simulate_mmengine_schedule(cfg.to_dict(), IPE)
    assert len(curve) == IPE * EPOCHS
    # After epoch 1 the runner is at iteration 6, at the LR the schedule gives it, and
    # the schedule's last iteration (17, in epoch 2) has the cosine's last value.
    assert probe.lr_before[0] == pytest.approx(curve[IPE]["lr"], rel=1e-12)
    last = 1.0e-4 + (0.01 - 1.0e-4) * (1 + math.cos(math.pi * 2 / EPOCHS)) / 2
    assert probe.final[0] == pytest.approx(curve[-1]["lr"], rel=1e-12)
    assert probe.final[0] == pytest.approx(last, rel=1e-12)
    start, stop = probe.lr_before[0], probe.final[0]
    assert probe.lrs[0] == pytest.approx(
        [start + (stop - start) * (t + 1) / 4 for t in range(4)], rel=1e-12)


def test_final_lrs_follows_each_param_group(tmp_path):
    # paramwise_cfg gives the head a tenth of the LR: its cosine runs from a tenth as high
    # down to the same absolute eta_min.
    cfg = _cfg(tmp_path, "groups", optim_wrapper={
        "paramwise_cfg": {"custom_keys": {"head": {"lr_mult": 0.1}}}})
    seen: list[list[float]] = []

    class _Finals(Hook):
        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            if runner.epoch == 1:
                seen.append(final_lrs(runner)[""])
                seen.append([g["initial_lr"] for g in runner.optim_wrapper.optimizer.param_groups])

    _train(cfg, _Finals())
    finals, initial = seen
    assert sorted({round(lr, 12) for lr in initial}) == [0.001, 0.01]
    cosine = (1 + math.cos(math.pi * 2 / EPOCHS)) / 2  # the last epoch's place
    assert finals == pytest.approx([1.0e-4 + (lr - 1.0e-4) * cosine for lr in initial],
                                   rel=1e-12)


def test_a_probe_whose_loss_is_not_finite_is_diverged_and_the_run_goes_on(tmp_path):
    plain = _state(_train(_cfg(tmp_path, "plain")))
    probe = _ProbeAt(rounds=(1,), iters=3, nan_loss=True)
    probed = _state(_train(_cfg(tmp_path, "nan"), probe))

    (result,) = probe.results
    assert result.diverged and result.iters == 1 and result.metrics == {}
    assert "not finite at its iteration 1" in result.error
    assert all(torch.equal(plain[key], probed[key]) for key in plain)


def test_a_probe_needs_at_least_one_iteration(tmp_path):
    class _Bad(Hook):
        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            with pytest.raises(ValueError, match="iters >= 1"):
                mmengine_cooldown_probe(runner, 0)
            self.ran = True

    bad = _Bad()
    _train(_cfg(tmp_path, "bad", train_cfg={"max_epochs": 1}), bad)
    assert bad.ran
