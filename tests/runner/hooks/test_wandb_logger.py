"""WandbLoggerHook offline: the run file under ``<dir>/wandb`` is read back record by record."""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import pytest
from hooks_testkit import TIMESTAMP, FailAt, LineDataset, loader, make_runner

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hooks.evaluation import EvalHook
from rt3d_tune.runner.hooks.logger import TextLoggerHook, WandbLoggerHook

wandb = pytest.importorskip("wandb")
wandb_internal_pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2")

_BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of framed records
_FULL, _LAST = 1, 4


def read_records(path: Path) -> list:
    """Every Record of an offline ``run-*.wandb`` file."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos = [], b"", 7
    while pos < len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding up to the next block
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def history(records: list) -> dict[int, dict[str, float]]:
    """step -> {key: value} of the history rows."""
    rows: dict[int, dict[str, float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {
                item.key or "/".join(item.nested_key): item.value_json
                for item in record.history.item
            }
            row = {key: float(value) for key, value in items.items() if not key.startswith("_")}
            rows.setdefault(record.history.step.num, {}).update(row)
    return rows


def finished_run(wandb_dir: Path, timeout_s: float = 30.0) -> list:
    """The records of the one offline run under ``wandb_dir``, once its exit record is on disk.

    wandb.finish() can return before wandb-core has flushed the file.
    """
    (path,) = (wandb_dir / "wandb").glob("offline-run-*/run-*.wandb")
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_records(path)
        if (
            any(r.WhichOneof("record_type") == "exit" for r in records)
            or time.monotonic() > deadline
        ):
            return records
        time.sleep(0.2)


@pytest.mark.slow
def test_offline_run_holds_metrics_and_the_log_artifact(tmp_path):
    hook = WandbLoggerHook(
        init_kwargs={"mode": "offline", "dir": str(tmp_path), "project": "rt3d", "name": "trial_0"},
        interval=2,
    )
    hooks = [
        (EvalHook(loader(LineDataset(scores=[0.25, 0.75]))), "LOW"),
        (TextLoggerHook(interval=2), "VERY_LOW"),
        (hook, "VERY_LOW"),
    ]
    runner = make_runner(tmp_path / "work", hooks)
    runner.run([loader()], [("train", 1)])
    assert wandb.run is None  # finished

    records = finished_run(tmp_path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.display_name, run.project) == ("trial_0", "rt3d")
    rows = history(records)
    assert sorted(rows) == [2, 4, 5, 6, 8, 9]
    assert [rows[s]["val/bev_mAP"] for s in (5, 9)] == [0.25, 0.75]
    assert all(rows[s]["learning_rate"] == 0.05 and rows[s]["momentum"] == 0.9 for s in rows)
    assert all("train/loss" in rows[s] for s in (2, 4, 6, 8))
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert sorted(e.path for e in artifact.manifest.contents) == [
        f"{TIMESTAMP}.log",
        f"{TIMESTAMP}.log.json",
    ]


@pytest.mark.slow
def test_a_failed_run_finishes_with_exit_code_1_and_no_artifact(tmp_path):
    hook = WandbLoggerHook(
        init_kwargs={"mode": "offline", "dir": str(tmp_path), "project": "rt3d"}, interval=2
    )
    runner = make_runner(tmp_path / "work", [(hook, "VERY_LOW"), (FailAt(5), "LOWEST")])
    with pytest.raises(RuntimeError, match="iteration 5"):
        runner.run([loader()], [("train", 1)])
    assert wandb.run is None  # finished although after_run never came
    records = finished_run(tmp_path)
    (exit_record,) = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 1
    assert sorted(history(records)) == [2, 4]
    assert not [r for r in records if r.WhichOneof("record_type") == "artifact"]


@pytest.mark.slow
def test_iteration_eval_metrics_share_the_training_step(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    hook = WandbLoggerHook(
        init_kwargs={"dir": str(tmp_path)}, interval=2, by_epoch=False, log_artifact=False
    )
    hooks = [
        (EvalHook(loader(LineDataset(scores=[0.25, 0.75])), interval=2, by_epoch=False), "LOW"),
        (hook, "VERY_LOW"),
    ]
    runner = make_runner(tmp_path / "work", hooks, by_epoch=False, length=4)
    runner.run([loader()], [("train", 1)])

    rows = history(finished_run(tmp_path))
    assert sorted(rows) == [2, 4]  # W&B would drop the metrics if the step were committed early
    assert [rows[s]["val/bev_mAP"] for s in (2, 4)] == [0.25, 0.75]
    assert all("train/loss" in rows[s] for s in (2, 4))


def test_missing_wandb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    runner = make_runner(tmp_path, [(WandbLoggerHook(), "VERY_LOW")], length=1)
    with pytest.raises(ConfigError) as info:
        runner.run([loader()], [("train", 1)])
    assert "rt3d-tune[wandb]" in info.value.format()
