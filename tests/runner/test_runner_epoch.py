"""Runners end to end: workflow phases, resume bit-identical to a straight run, load_from."""

from __future__ import annotations

import json
import warnings

import pytest
import runner_fixtures as fx
import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner import EpochBasedRunner, Hook, IterBasedRunner
from rt3d_tune.runner.base import to_device
from rt3d_tune.runner.builder import build_runner


class Interrupt(Exception):
    pass


@HOOKS.register_module(force=True)
class InterruptAfter(Hook):
    """Stops the run (like Ctrl-C) once ``iters`` train iterations are done."""

    def __init__(self, iters: int) -> None:
        self.iters = iters

    def after_train_iter(self, runner) -> None:
        if runner.iter + 1 == self.iters:
            raise Interrupt


SCHEDULE = dict(
    model=dict(type="ToyLinear", norm=True),
    optimizer=dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=1e-3),
    optimizer_config=dict(grad_clip=dict(max_norm=5.0)),
    lr_config=dict(
        policy="CosineAnnealing", by_epoch=False, warmup="linear", warmup_iters=3, min_lr_ratio=0.01
    ),
    momentum_config=dict(policy="CosineAnnealing", min_momentum_ratio=0.9),
    log_config=dict(interval=1, hooks=[dict(type="TextLoggerHook")]),
    checkpoint_config=dict(interval=1),
)


def _train_lines(work_dir) -> list[tuple]:
    lines = []
    for path in sorted(work_dir.glob("*.log.json")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("mode") == "train":
                lines.append(
                    (
                        row["epoch"],
                        row["iter"],
                        row["lr"],
                        row["momentum"],
                        row["loss"],
                        row["grad_norm"],
                    )
                )
    return lines


def _state(runner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize(
    ("runner_cfg", "interrupt_at", "resume_file", "resumed_iter"),
    [
        (dict(type="EpochBasedRunner", max_epochs=4), 9, "epoch_2.pth", 8),
        (dict(type="IterBasedRunner", max_iters=16), 7, "iter_6.pth", 6),
    ],
)
def test_resume_is_bit_identical_to_a_straight_run(
    tmp_path, runner_cfg, interrupt_at, resume_file, resumed_iter
) -> None:
    """Training interrupted after a checkpoint, then resumed, equals training straight through."""
    cfg = fx.toy_config(runner=runner_cfg, **SCHEDULE)
    if runner_cfg["type"] == "IterBasedRunner":
        cfg["checkpoint_config"] = dict(interval=2)
        cfg["log_config"]["hooks"][0]["by_epoch"] = True  # epoch/iter columns comparable
    straight = build_runner(cfg, work_dir=tmp_path / "straight")
    straight.run()

    first = build_runner(
        dict(cfg, custom_hooks=[dict(type="InterruptAfter", iters=interrupt_at)]),
        work_dir=tmp_path / "first",
    )
    with pytest.raises(Interrupt):
        first.run()
    assert (tmp_path / "first" / "latest.pth").resolve().name == resume_file
    resumed = build_runner(
        dict(cfg, resume_from=str(tmp_path / "first" / "latest.pth")), work_dir=tmp_path / "second"
    )
    assert resumed.iter == resumed_iter
    resumed.run()

    for key, value in _state(straight).items():
        assert torch.equal(value, _state(resumed)[key]), key
    combined = _train_lines(tmp_path / "first")[:resumed_iter] + _train_lines(tmp_path / "second")
    assert combined == _train_lines(tmp_path / "straight")
    assert len(combined) == 16


def test_auto_resume_picks_latest_in_work_dir(tmp_path) -> None:
    cfg = fx.toy_config(
        checkpoint_config=dict(interval=1), runner=dict(type="EpochBasedRunner", max_epochs=3)
    )
    first = build_runner(
        dict(cfg, custom_hooks=[dict(type="InterruptAfter", iters=9)]), work_dir=tmp_path
    )
    with pytest.raises(Interrupt):
        first.run()
    again = build_runner(dict(cfg, auto_resume=True), work_dir=tmp_path)
    assert (again.epoch, again.iter) == (2, 8)
    again.run()
    assert (again.epoch, again.iter) == (3, 12)


def test_auto_resume_with_an_empty_work_dir_starts_fresh(tmp_path) -> None:
    runner = build_runner(fx.toy_config(auto_resume=True), work_dir=tmp_path)
    assert (runner.epoch, runner.iter) == (0, 0)


def test_load_from_loads_weights_only_and_resume_wins(tmp_path) -> None:
    donor = build_runner(
        fx.toy_config(checkpoint_config=dict(interval=1)), work_dir=tmp_path / "donor"
    )
    donor.run()
    loaded = build_runner(
        fx.toy_config(load_from=str(tmp_path / "donor" / "epoch_2.pth")), work_dir=tmp_path / "b"
    )
    assert torch.equal(loaded.model.fc.weight, donor.model.fc.weight)
    assert (loaded.epoch, loaded.iter) == (0, 0)
    both = build_runner(
        fx.toy_config(
            load_from=str(tmp_path / "donor" / "epoch_1.pth"),
            resume_from=str(tmp_path / "donor" / "epoch_2.pth"),
        ),
        work_dir=tmp_path / "c",
    )
    assert both.epoch == 2


def test_val_workflow_phase_feeds_the_log_buffer_without_updating(tmp_path) -> None:
    cfg = fx.toy_config(
        workflow=[("train", 1), ("val", 1)], runner=dict(type="EpochBasedRunner", max_epochs=2)
    )
    runner = build_runner(cfg, work_dir=tmp_path)
    stages: list[tuple[str, str, bool]] = []

    class Spy(Hook):
        def before_val_epoch(self, r) -> None:
            self.w = r.model.fc.weight.clone()

        def after_val_iter(self, r) -> None:
            stages.append((r.mode, "val_iter", torch.is_grad_enabled()))

        def after_val_epoch(self, r) -> None:
            assert torch.equal(self.w, r.model.fc.weight)
            stages.append((r.mode, "val_epoch", r.model.training))

    runner.register_hook(Spy())
    runner.run()
    assert stages == [("val", "val_iter", False)] * 2 + [("val", "val_epoch", False)] + [
        ("val", "val_iter", False)
    ] * 2 + [("val", "val_epoch", False)]
    assert len(runner.log_buffer.val_history["loss"]) == 2 * 4 + 2 * 2
    assert (runner.epoch, runner.iter) == (2, 8)


def test_train_phase_of_n_epochs_stops_at_max_epochs(tmp_path) -> None:
    cfg = fx.toy_config(
        workflow=[("train", 2), ("val", 1)], runner=dict(type="EpochBasedRunner", max_epochs=3)
    )
    runner = build_runner(cfg, work_dir=tmp_path)
    modes: list[str] = []

    class Spy(Hook):
        def after_epoch(self, r) -> None:
            modes.append(r.mode)

    runner.register_hook(Spy())
    runner.run()
    assert modes == ["train", "train", "val", "train", "val"]


def test_iter_runner_cycles_the_loader_and_sets_epoch(tmp_path) -> None:
    runner = build_runner(
        fx.toy_config(runner=dict(type="IterBasedRunner", max_iters=10)), work_dir=tmp_path
    )
    seen: list[int] = []
    runner.register_hook(
        type("Spy", (Hook,), {"after_train_iter": lambda self, r: seen.append(r.epoch)})()
    )
    runner.run()
    assert isinstance(runner, IterBasedRunner)
    assert seen == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert runner.iter == 10


@pytest.mark.parametrize(
    ("cfg", "key_path"),
    [
        (dict(runner=dict(type="EpochBasedRunner", max_epochs=2, max_iters=8)), "runner"),
        (dict(runner=dict(type="IterBasedRunner", max_epochs=2)), "runner.max_iters"),
        (dict(runner=dict(type="EpochRunner", max_epochs=2)), "runner.type"),
        (dict(workflow=[("train", 1), ("test", 1)]), "workflow.1"),
        (
            dict(data=dict(samples_per_gpu=0, train=dict(type="ToyRegression"))),
            "data.samples_per_gpu",
        ),
        (dict(model=dict(type="ToyLinearr")), "model.type"),
        (dict(data=dict(train=dict(type="ToyRegression", size=3))), "data.train"),
    ],
)
def test_config_mistakes_name_their_key_path(tmp_path, cfg, key_path) -> None:
    with pytest.raises(ConfigError) as err:
        build_runner(fx.toy_config(**cfg), work_dir=tmp_path).run()
    assert err.value.key_path == key_path


def test_legacy_total_epochs_works_with_a_warning(tmp_path) -> None:
    cfg = fx.toy_config(total_epochs=3)
    del cfg["runner"]
    with pytest.warns(UserWarning, match="total_epochs"):
        runner = build_runner(cfg, work_dir=tmp_path)
    assert isinstance(runner, EpochBasedRunner) and runner.max_epochs == 3


def test_same_seed_same_run_and_config_written(tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        with warnings.catch_warnings():
            runner = build_runner(fx.toy_config(seed=7), work_dir=tmp_path / name)
        runner.run()
        runs.append(_state(runner))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert "seed = 7" in (tmp_path / "a" / "config.py").read_text()


def test_to_device_moves_nested_tensors() -> None:
    batch = {"x": torch.ones(2), "list": [torch.zeros(1), ("s", torch.ones(1))], "n": 3}
    moved = to_device(batch, "meta")
    assert moved["x"].device.type == "meta"
    assert moved["list"][1][1].device.type == "meta"
    assert moved["list"][1][0] == "s" and moved["n"] == 3


def test_current_momentum_reads_betas_for_adam(tmp_path) -> None:
    runner = build_runner(
        fx.toy_config(optimizer=dict(type="Adam", lr=1e-3, betas=(0.8, 0.99))), work_dir=tmp_path
    )
    assert runner.current_momentum() == [0.8]
    assert runner.current_lr() == [1e-3]
