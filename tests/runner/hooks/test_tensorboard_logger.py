"""TensorboardLoggerHook: event files written by tensorboardX, read back record by record."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import pytest
from hooks_testkit import FailAt, LineDataset, Recorder, loader, make_runner

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hooks.evaluation import EvalHook
from rt3d_tune.runner.hooks.logger import TensorboardLoggerHook

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from every TFRecord event file under ``log_dir``."""
    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            record = data[pos + 12 : pos + 12 + length]  # skip the length's CRC
            pos += 12 + length + 4  # and the record's CRC
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                scalars[value.tag].append((event.step, value.simple_value))
    return dict(scalars)


def test_scalars_read_back_with_mmcv_tags(tmp_path):
    recorder = Recorder()
    hooks = [
        (recorder, "HIGHEST"),
        (EvalHook(loader(LineDataset(scores=[0.25, 0.75]))), "LOW"),
        (TensorboardLoggerHook(interval=2), "VERY_LOW"),
    ]
    runner = make_runner(tmp_path, hooks)
    runner.run([loader()], [("train", 1)])

    scalars = read_scalars(tmp_path / "tf_logs")
    assert [step for step, _ in scalars["train/loss"]] == [2, 4, 6, 8]
    first_two = recorder.losses[:2]
    expected = sum(v * n for v, n in first_two) / sum(n for _, n in first_two)
    assert scalars["train/loss"][0][1] == pytest.approx(expected, rel=1e-6)
    # mmcv's step: runner.iter + 1, and the runner has counted the epoch's last iteration
    assert scalars["val/bev_mAP"] == [(5, 0.25), (9, 0.75)]
    assert "val/mse_loss" in scalars
    assert all(value == pytest.approx(0.05) for _, value in scalars["learning_rate"])
    assert all(value == pytest.approx(0.9) for _, value in scalars["momentum"])
    assert not any(tag.endswith(("time", "eval_iter_num")) for tag in scalars)


def test_a_failed_run_still_leaves_its_scalars_on_disk(tmp_path):
    hook = TensorboardLoggerHook(interval=2)
    runner = make_runner(tmp_path, [(hook, "VERY_LOW"), (FailAt(5), "LOWEST")])
    with pytest.raises(RuntimeError, match="iteration 5"):
        runner.run([loader()], [("train", 1)])
    assert hook.writer is None  # closed (flushed) although after_run never came
    assert [step for step, _ in read_scalars(tmp_path / "tf_logs")["train/loss"]] == [2, 4]


def test_custom_log_dir(tmp_path):
    runner = make_runner(
        tmp_path / "work",
        [(TensorboardLoggerHook(log_dir=str(tmp_path / "tb"), interval=1), "VERY_LOW")],
        length=1,
    )
    runner.run([loader()], [("train", 1)])
    assert len(read_scalars(tmp_path / "tb")["train/loss"]) == 4


def test_missing_tensorboardx_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorboardX", None)
    runner = make_runner(tmp_path, [(TensorboardLoggerHook(), "VERY_LOW")], length=1)
    with pytest.raises(ConfigError, match="tensorboardX") as info:
        runner.run([loader()], [("train", 1)])
    assert "pip install" in info.value.format()
