"""``rt3d-tune train``: work dir, overrides, seed, resume, progress bar vs log lines, exit codes."""

from __future__ import annotations

import io
import json

import pytest

from rt3d_tune.cli import main
from rt3d_tune.config import Config
from rt3d_tune.runner.checkpoint_io import load_checkpoint_file
from rt3d_tune.runner.train import train

CONFIG = """
custom_imports = dict(imports=['runner_fixtures'])
model = dict(type='ToyLinear')
data = dict(samples_per_gpu=4, workers_per_gpu=0, train=dict(type='ToyRegression', length=16),
            val=dict(type='ToyRegression', length=8, seed=1))
optimizer = dict(type='SGD', lr=0.01, momentum=0.9)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[2])
runner = dict(type='EpochBasedRunner', max_epochs=3)
checkpoint_config = dict(interval=1)
log_config = dict(interval=1, hooks=[dict(type='TextLoggerHook')])
evaluation = dict(interval=1)
workflow = [('train', 1)]
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "toy_run.py"
    path.write_text(CONFIG)
    return path


def test_train_writes_to_the_default_work_dir_and_logs_lines(
    tmp_path, config_file, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        main(["train", str(config_file), "--cfg-options", "runner.max_epochs=2", "--seed", "3"])
        == 0
    )
    work = tmp_path / "work_dirs" / "toy_run"
    ckpt = load_checkpoint_file(work / "latest.pth")
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["seed"]) == (2, 3)
    dumped = Config.fromfile(work / "config.py")
    assert dumped.runner.max_epochs == 2 and dumped.seed == 3
    out = capsys.readouterr().out
    assert "Epoch [2][4/4]" in out and "mse" in out  # plain log lines when not a terminal
    rows = [json.loads(line) for line in next(work.glob("*.log.json")).read_text().splitlines()[1:]]
    assert [r["iter"] for r in rows if r["mode"] == "train"] == [1, 2, 3, 4] * 2


def test_resume_from_and_auto_resume(tmp_path, config_file) -> None:
    work = tmp_path / "w"
    assert (
        main(
            [
                "train",
                str(config_file),
                "--work-dir",
                str(work),
                "--cfg-options",
                "runner.max_epochs=1",
            ]
        )
        == 0
    )
    assert main(["train", str(config_file), "--work-dir", str(work), "--auto-resume"]) == 0
    assert load_checkpoint_file(work / "latest.pth")["meta"]["iter"] == 12
    other = tmp_path / "other"
    assert (
        main(
            [
                "train",
                str(config_file),
                "--work-dir",
                str(other),
                "--resume-from",
                str(work / "epoch_2.pth"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in other.glob("epoch_*.pth")) == ["epoch_3.pth"]


def test_user_mistake_exits_2_with_one_message(tmp_path, config_file, capsys) -> None:
    code = main(
        [
            "train",
            str(config_file),
            "--work-dir",
            str(tmp_path / "w"),
            "--cfg-options",
            "optimizer.momentun=0.9",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "optimizer.momentun" in err and "Traceback" not in err


def test_divergence_exits_1(tmp_path, config_file, capsys) -> None:
    code = main(
        [
            "train",
            str(config_file),
            "--work-dir",
            str(tmp_path / "w"),
            "--cfg-options",
            "model.nan_at=2",
        ]
    )
    assert code == 1
    assert "diverged at epoch 0, iteration 2" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_shows_eta_and_loss(tmp_path, config_file) -> None:
    stream = io.StringIO()
    train(Config.fromfile(config_file), work_dir=tmp_path / "w", stream=stream, progress=True)
    text = stream.getvalue()
    assert "12/12 ETA" in text and " loss " in text
    assert "evaluation 3: mse" in text
    assert "Epoch [1][1/4]" not in text  # log lines stay in the log file
