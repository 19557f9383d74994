"""``rt3d-tune train`` refuses what ``validate`` refuses, with the same message: both go
through the trial's start (``build_runner`` / mmengine's ``start_runner``), so a value no
library refuses (a negative clipping norm, an interval or batch size of 0, mmengine's
``val_interval: 0``) or a misspelt mmengine type stops ``train`` before its first
iteration, exit 2, no traceback, in both dialects. No Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rt3d_tune import cli

REPO = Path(__file__).resolve().parents[2]
MMCV = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
MMENGINE = REPO / "configs" / "mmengine" / "pointnet_shapes.py"

# (case, base, the config line that breaks it, the space entry that samples the same
# value, the key path both name)
CASES = [
    ("grad_clip_negative", MMCV,
     "optimizer_config = dict(grad_clip=dict(_delete_=True, max_norm=-1))",
     "optimizer_config.grad_clip: {choice: [{max_norm: -1}]}",
     "optimizer_config.grad_clip.max_norm"),
    ("eval_interval_zero", MMCV, "evaluation = dict(interval=0, metric='accuracy')",
     "evaluation.interval: {choice: [0]}", "evaluation.interval"),
    ("batch_size_zero", MMCV, "data = dict(samples_per_gpu=0)",
     "data.samples_per_gpu: {choice: [0]}", "data.samples_per_gpu"),
    ("log_interval_zero", MMCV, "log_config = dict(interval=0)",
     "log_config.interval: {choice: [0]}", "log_config.interval"),
    ("mm_val_interval_zero", MMENGINE, "train_cfg = dict(val_interval=0)",
     "train_cfg.val_interval: {choice: [0]}", "train_cfg.val_interval"),
    ("mm_clip_grad_negative", MMENGINE,
     "optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=-5.0))",
     "optim_wrapper.clip_grad: {choice: [{max_norm: -5.0}]}",
     "optim_wrapper.clip_grad.max_norm"),
    ("mm_optimizer_typo", MMENGINE,
     "optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamWW', lr=0.001))",
     "optim_wrapper.optimizer: {choice: [{type: AdamWW, lr: 0.001}]}",
     "optim_wrapper.optimizer.type"),
    ("mm_batch_size_zero", MMENGINE, "train_dataloader = dict(batch_size=0)",
     "train_dataloader.batch_size: {choice: [0]}", "train_dataloader.batch_size"),
]


def _error_line(err: str, command: str) -> str:
    """The first ``error:`` line, without the command's name and the file it names."""
    line = next(line for line in err.splitlines() if f"rt3d-tune {command}: error:" in line)
    return line.split("error: ", 1)[1]


@pytest.mark.parametrize("case, base, line, entry, key", CASES, ids=[c[0] for c in CASES])
def test_train_refuses_what_validate_refuses_with_the_same_message(
        case: str, base: Path, line: str, entry: str, key: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]):
    config = tmp_path / f"{case}.py"
    config.write_text(f"_base_ = {str(base)!r}\n{line}\n", encoding="utf-8")
    space = tmp_path / f"{case}.yaml"
    space.write_text(f"base: {base}\nmetric: accuracy\nmode: max\nspace:\n  {entry}\n",
                     encoding="utf-8")
    work_dir = tmp_path / "work"

    assert cli.main(["train", str(config), "--work-dir", str(work_dir)]) == 2
    train_out, train_err = capsys.readouterr()
    assert cli.main(["validate", str(space), "--samples", "0"]) == 2
    _, validate_err = capsys.readouterr()

    assert "Traceback" not in train_out + train_err
    refused = _error_line(train_err, "train")
    assert refused.startswith(f"{key}: ")
    assert refused == _error_line(validate_err, "validate")
    assert not list(work_dir.glob("**/*.pth"))  # not one iteration ran


def test_a_negative_clipping_norm_says_how_to_turn_clipping_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "clip.py"
    config.write_text(f"_base_ = {str(MMCV)!r}\noptimizer_config = dict(grad_clip=dict("
                      "_delete_=True, max_norm=-35, norm_type=2))\n", encoding="utf-8")
    assert cli.main(["train", str(config), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "must be > 0" in err and "grad_clip=None" in err
