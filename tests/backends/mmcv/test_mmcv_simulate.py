"""``simulate_schedule`` and ``rt3d-tune schedule``: the curve training would follow."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import runner_fixtures  # noqa: F401  (registers ToyRegression)

from rt3d_tune.backends.mmcv.simulate import simulate_schedule
from rt3d_tune.commands import schedule
from rt3d_tune.config import Config
from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.hook import Hook

# mmdetection3d configs/_base_/schedules/cyclic_40e.py (mmcv 1.x era)
CYCLIC_40E = """\
lr = 0.0018
optimizer = dict(type='AdamW', lr=lr, betas=(0.95, 0.99), weight_decay=0.01)
optimizer_config = dict(grad_clip=dict(max_norm=10, norm_type=2))
lr_config = dict(policy='cyclic', target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4)
momentum_config = dict(policy='cyclic', target_ratio=(0.85 / 0.95, 1), cyclic_times=1,
                       step_ratio_up=0.4)
runner = dict(type='EpochBasedRunner', max_epochs=40)
"""


def mmcv_cos(start: float, end: float, factor: float) -> float:
    """mmcv 1.7's annealing_cos, operation for operation."""
    cos_out = math.cos(math.pi * factor) + 1
    return end + 0.5 * 1 * (start - end) * cos_out


@pytest.fixture
def cyclic_40e(tmp_path: Path) -> Path:
    path = tmp_path / "cyclic_40e.py"
    path.write_text(CYCLIC_40E)
    return path


def test_cyclic_40e_matches_mmcv(cyclic_40e: Path) -> None:
    # 40 epochs x 10 iterations: L = 400, up for int(0.4 * 400) = 160 iterations
    rows = simulate_schedule(Config.fromfile(cyclic_40e), iters_per_epoch=10)
    assert len(rows) == 400
    lr, peak_ratio, m_peak = 0.0018, 10, 0.85 / 0.95
    lrs = {r["iter"]: r["lr"] for r in rows}
    moms = {r["iter"]: r["momentum"] for r in rows}
    assert lrs[0] == mmcv_cos(lr * 1, lr * peak_ratio, 0 / 160) == 0.0017999999999999995
    assert lrs[80] == mmcv_cos(lr * 1, lr * (1 - 1 + peak_ratio * 1), 80 / 160)
    assert lrs[80] == pytest.approx(0.0099)
    assert lrs[160] == mmcv_cos(lr * (1 - 1 + peak_ratio * 1), lr * 1e-4, 0 / 240)
    assert lrs[280] == pytest.approx(0.00900009)
    assert lrs[399] == mmcv_cos(lr * peak_ratio, lr * 1e-4, 239 / 240)
    assert moms[0] == pytest.approx(0.95)
    assert moms[80] == pytest.approx(0.9)
    assert moms[160] == mmcv_cos(0.95 * (1 - 1 + m_peak * 1), 0.95 * 1, 0 / 240)
    assert moms[160] == pytest.approx(0.85)
    assert moms[399] == pytest.approx(0.95, abs=1e-5)
    assert [r["epoch"] for r in rows[9:11]] == [0, 1]


def _cfg(**extra: Any) -> dict[str, Any]:
    cfg = {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9,
                         "paramwise_cfg": {"norm_decay_mult": 0.0}},
           "runner": {"type": "IterBasedRunner", "max_iters": 12}}
    cfg.update(extra)
    return cfg


def test_iter_runner_counts_iterations_and_data_passes() -> None:
    rows = simulate_schedule(_cfg(lr_config={"policy": "step", "step": [6]}), iters_per_epoch=5)
    assert [r["iter"] for r in rows] == list(range(12))
    assert [r["epoch"] for r in rows] == [0] * 5 + [1] * 5 + [2] * 2
    # by_epoch defaults to False under IterBasedRunner: the step is at iteration 6
    assert [r["lr"] for r in rows] == pytest.approx([0.1] * 6 + [0.01] * 6)


def test_warmup_by_epoch_under_iter_runner() -> None:
    lr_config = {"policy": "Fixed", "warmup": "constant", "warmup_iters": 1,
                 "warmup_ratio": 0.5, "warmup_by_epoch": True}
    rows = simulate_schedule(_cfg(lr_config=lr_config), iters_per_epoch=4)
    assert [r["lr"] for r in rows] == pytest.approx([0.05] * 4 + [0.1] * 8)


def test_overrides_and_no_schedule() -> None:
    rows = simulate_schedule(_cfg(), iters_per_epoch=4, max_iters=3)
    assert rows == [{"iter": i, "epoch": 0, "lr": 0.1, "momentum": 0.9} for i in range(3)]
    epochs = _cfg(runner={"type": "EpochBasedRunner", "max_epochs": 5})
    assert len(simulate_schedule(epochs, iters_per_epoch=2, max_epochs=2)) == 4


def test_legacy_total_epochs() -> None:
    cfg = {"optimizer": {"type": "Adagrad", "lr": 0.1}, "total_epochs": 2}
    with pytest.warns(UserWarning, match="total_epochs"):
        rows = simulate_schedule(cfg, iters_per_epoch=3)
    assert len(rows) == 6 and rows[0]["momentum"] is None


@pytest.mark.parametrize("cfg,ipe,key", [
    (_cfg(), 0, "iters_per_epoch"),
    (_cfg(runner={"type": "EpochBasedRunner", "max_epochs": 2, "max_iters": 4}), 2, "runner"),
    (_cfg(optimizer={"type": "SDG", "lr": 0.1}), 2, "optimizer.type"),
    (_cfg(optimizer={"type": "SGD", "lr": 0.1, "betas": (0.9, 0.9)}), 2, "optimizer"),
    (_cfg(lr_config={"policy": "step"}), 2, "lr_config"),
    (_cfg(momentum_config={"policy": "cyclic", "cyclic_times": 20}), 2,
     "momentum_config.cyclic_times"),
])
def test_errors_name_the_key(cfg: dict[str, Any], ipe: int, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        simulate_schedule(cfg, iters_per_epoch=ipe)
    assert info.value.key_path == key


# the command ---------------------------------------------------------------------
def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    schedule.add_parser(parser.add_subparsers(dest="command"))
    return schedule.run(parser.parse_args(["schedule", *argv]))


def test_command_prints_table_and_writes_csv_and_png(cyclic_40e: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out_csv, out_png = tmp_path / "lr.csv", tmp_path / "lr.png"
    assert _run([str(cyclic_40e), "--iters-per-epoch", "10", "--csv", str(out_csv),
                 "--plot", str(out_png), "--cfg-options", "runner.max_epochs=20"]) == 0
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200 and list(rows[0]) == ["iter", "epoch", "lr", "momentum"]
    assert float(rows[0]["lr"]) == 0.0017999999999999995
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out.splitlines()
    iters = [int(line.split()[0]) for line in table[1:] if line.split()[0].isdigit()]
    assert iters == [0, 1, 2] + list(range(10, 200, 10)) + [199]


def test_command_table_shows_the_end_of_warmup(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "warm.yaml"
    path.write_text("optimizer: {type: SGD, lr: 0.1}\nrunner: {type: EpochBasedRunner, "
                    "max_epochs: 2}\nlr_config: {policy: step, step: [1], warmup: linear, "
                    "warmup_iters: 6}\n")
    _run([str(path), "--iters-per-epoch", "10"])
    iters = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert iters == ["0", "1", "2", "5", "6", "10", "19"]


def test_command_iters_per_epoch_from_the_dataset(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text("optimizer: {type: SGD, lr: 0.1}\nrunner: {type: EpochBasedRunner, "
                    "max_epochs: 2}\ndata: {samples_per_gpu: 5, workers_per_gpu: 0, "
                    "train: {type: ToyRegression, length: 16}}\n")
    _run([str(path)])
    out = capsys.readouterr().out
    assert "iterations per epoch: 4" in out
    assert out.splitlines()[-1].split()[:2] == ["7", "1"]


def test_plot_without_matplotlib_says_how_to_install_it(cyclic_40e: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib is a core dependency: a machine without it gets the install line."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"hint: pip install matplotlib"):
        _run([str(cyclic_40e), "--iters-per-epoch", "2", "--plot", str(tmp_path / "x.png")])


class _Recorder(Hook):
    """Records what the optimizer step will use, after the LR and momentum hooks ran."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float]] = []

    def before_train_iter(self, runner: Any) -> None:
        group = runner.optimizer.param_groups[0]
        self.rows.append((group["lr"], group["betas"][0]))


@pytest.mark.parametrize("runner_cfg", [{"type": "EpochBasedRunner", "max_epochs": 3},
                                        {"type": "IterBasedRunner", "max_iters": 10}])
def test_simulation_equals_training(tmp_path: Path, runner_cfg: dict[str, Any]) -> None:
    cfg = {
        "model": {"type": "ToyLinear"},
        "data": {"samples_per_gpu": 4, "workers_per_gpu": 0,
                 "train": {"type": "ToyRegression", "length": 16}},
        "optimizer": {"type": "AdamW", "lr": 0.01, "betas": (0.95, 0.99)},
        "optimizer_config": {},
        "lr_config": {"policy": "CosineAnnealing", "min_lr_ratio": 0.01, "warmup": "exp",
                      "warmup_iters": 3},
        "momentum_config": {"policy": "cyclic"},
        "runner": runner_cfg,
        "workflow": [("train", 1)],
    }
    recorder = _Recorder()
    build_runner(Config(cfg), work_dir=tmp_path, extra_hooks=[recorder]).run()
    rows = simulate_schedule(cfg, iters_per_epoch=4)
    assert recorder.rows == [(r["lr"], r["momentum"]) for r in rows]
