"""Checkpoint files: atomic writes, latest.pth, weights-only loading, auto-resume lookup."""

from __future__ import annotations

import os

import pytest
import runner_fixtures as fx
import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner import checkpoint_io
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.checkpoint_io import (
    atomic_save,
    find_latest_checkpoint,
    load_checkpoint_file,
    update_latest,
    wait_for_saves,
)


def _write_partial(f, data: bytes) -> None:
    """What a torch.save cut short leaves in ``f`` (a path or an open file)."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "ab") as handle:
            handle.write(data)
    else:
        f.write(data)


def test_atomic_save_interrupted_mid_write_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "epoch_1.pth"
    atomic_save({"state_dict": {"w": torch.ones(3)}}, path)
    real_save = torch.save

    def half_then_crash(obj, f, *args, **kwargs):
        _write_partial(f, b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth"]  # no temp file left


def test_checkpoint_interrupted_during_training_leaves_latest_loadable(
    tmp_path, monkeypatch
) -> None:
    cfg = fx.toy_config(
        checkpoint_config=dict(interval=1), runner=dict(type="EpochBasedRunner", max_epochs=3)
    )
    runner = build_runner(cfg, work_dir=tmp_path)
    real_save = torch.save
    calls = {"n": 0}

    def crash_on_second(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            _write_partial(f, b"garbage")
            raise KeyboardInterrupt
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    monkeypatch.setattr(torch, "save", real_save)
    latest = tmp_path / "latest.pth"
    assert os.readlink(latest) == "epoch_1.pth"
    ckpt = load_checkpoint_file(latest)
    assert ckpt["meta"]["epoch"] == 1
    assert not (tmp_path / "epoch_2.pth").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_update_latest_replaces_the_link(tmp_path) -> None:
    for n in (1, 2):
        atomic_save({"state_dict": {"n": torch.tensor(n)}}, tmp_path / f"iter_{n}.pth")
        update_latest(tmp_path / f"iter_{n}.pth")
    assert int(load_checkpoint_file(tmp_path / "latest.pth")["state_dict"]["n"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1.pth", "iter_2.pth", "latest.pth"]


def test_checkpoint_content_and_weights_only_load(tmp_path) -> None:
    runner = build_runner(fx.toy_config(checkpoint_config=dict(interval=1)), work_dir=tmp_path)
    runner.run()
    ckpt = torch.load(tmp_path / "epoch_2.pth", weights_only=True)
    assert set(ckpt) == {"meta", "state_dict", "optimizer"}
    meta = ckpt["meta"]
    assert (meta["epoch"], meta["iter"], meta["seed"]) == (2, 8, 0)
    assert "ToyLinear" in meta["config"]
    assert meta["hook_msgs"]["last_ckpt"].endswith("epoch_1.pth")
    assert torch.equal(ckpt["state_dict"]["fc.weight"], runner.model.fc.weight.detach())


def test_pickled_objects_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"obj": object()}}, path)
    with pytest.raises(ConfigError, match="weights_only"):
        load_checkpoint_file(path)


def test_missing_checkpoint_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        build_runner(fx.toy_config(resume_from=str(tmp_path / "nope.pth")), work_dir=tmp_path)
    assert err.value.key_path == "resume_from"


def test_find_latest_checkpoint(tmp_path) -> None:
    assert find_latest_checkpoint(tmp_path) is None
    for name in ("epoch_2.pth", "epoch_10.pth", "epoch_9.pth", "best_mse_epoch_11.pth"):
        (tmp_path / name).write_bytes(b"x")
    assert find_latest_checkpoint(tmp_path).name == "epoch_10.pth"
    atomic_save({"state_dict": {}}, tmp_path / "iter_3.pth")
    update_latest(tmp_path / "iter_3.pth")
    assert find_latest_checkpoint(tmp_path).name == "latest.pth"


@pytest.mark.parametrize(("max_keep", "expected"), [(-1, [1, 2, 3, 4]), (2, [3, 4])])
def test_max_keep_ckpts(tmp_path, max_keep, expected) -> None:
    cfg = fx.toy_config(
        checkpoint_config=dict(interval=1, max_keep_ckpts=max_keep),
        runner=dict(type="EpochBasedRunner", max_epochs=4),
    )
    build_runner(cfg, work_dir=tmp_path).run()
    assert sorted(int(p.stem.split("_")[1]) for p in tmp_path.glob("epoch_*.pth")) == expected


@pytest.mark.parametrize(
    ("interval", "save_last", "expected"), [(3, True, [3, 4]), (3, False, [3]), (-1, True, [4])]
)
def test_interval_and_save_last(tmp_path, interval, save_last, expected) -> None:
    cfg = fx.toy_config(
        checkpoint_config=dict(interval=interval, save_last=save_last),
        runner=dict(type="EpochBasedRunner", max_epochs=4),
    )
    build_runner(cfg, work_dir=tmp_path).run()
    assert sorted(int(p.stem.split("_")[1]) for p in tmp_path.glob("epoch_*.pth")) == expected


def test_no_optimizer_state_when_save_optimizer_is_false(tmp_path) -> None:
    cfg = fx.toy_config(checkpoint_config=dict(interval=1, save_optimizer=False))
    build_runner(cfg, work_dir=tmp_path).run()
    assert "optimizer" not in load_checkpoint_file(tmp_path / "latest.pth")


def test_out_dir_gets_a_work_dir_named_subfolder(tmp_path) -> None:
    cfg = fx.toy_config(checkpoint_config=dict(interval=2, out_dir=str(tmp_path / "store")))
    build_runner(cfg, work_dir=tmp_path / "run7").run()
    assert (tmp_path / "store" / "run7" / "epoch_2.pth").is_file()


def test_background_save_gets_its_name_and_latest_before_any_later_load(tmp_path) -> None:
    linked = []
    for epoch in (1, 2):
        atomic_save(
            {"state_dict": {"w": torch.full((2,), float(epoch))}},
            tmp_path / f"epoch_{epoch}.pth",
            then=lambda path: linked.append(update_latest(path)),
            background=True,
        )
    # A load in the same process waits for the saves still finishing in the background.
    ckpt = load_checkpoint_file(tmp_path / "latest.pth")
    assert torch.equal(ckpt["state_dict"]["w"], torch.full((2,), 2.0))
    assert os.readlink(tmp_path / "latest.pth") == "epoch_2.pth"
    assert len(linked) == 2
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_1.pth", "epoch_2.pth", "latest.pth"]


def test_background_save_failure_is_raised_and_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "epoch_1.pth"
    atomic_save({"state_dict": {"w": torch.ones(3)}}, path)

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_io.os, "fsync", no_space)
    atomic_save({"state_dict": {"w": torch.zeros(3)}}, path, background=True)
    with pytest.raises(OSError, match="No space left"):
        wait_for_saves()
    monkeypatch.undo()
    wait_for_saves()  # nothing left pending: the failure was raised once
    assert torch.equal(load_checkpoint_file(path)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth"]  # no temp file left
