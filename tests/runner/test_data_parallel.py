"""Data-parallel training on 2 local gloo ranks, checked against one process."""

from __future__ import annotations

import logging

import dist_fixtures as dfx
import pytest
import runner_fixtures as fx
import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.builder import build_runner, scale_lr
from rt3d_tune.runner.data import DistributedEpochSampler, train_iters_per_epoch
from rt3d_tune.runner.dist import init_from_torchrun_env


def _config(samples_per_gpu: int, **overrides) -> dict:
    """16 training samples, 7 validation samples (not divisible by 2), a warm-up and a
    step at epoch 1, evaluation, a text log and checkpoints every epoch."""
    return fx.toy_config(
        data=dict(
            samples_per_gpu=samples_per_gpu,
            workers_per_gpu=0,
            train=dict(type="ToyRegression", length=16),
            val=dict(type="CountedRegression", length=7, seed=1),
        ),
        evaluation=dict(interval=1),
        lr_config=dict(policy="step", step=[1], warmup="linear", warmup_iters=3),
        log_config=dict(interval=1, hooks=[dict(type="TextLoggerHook")]),
        checkpoint_config=dict(interval=1),
        # mmdet3d's distributed configs name these; under 2 ranks they must change nothing.
        custom_hooks=[dict(type="DistSamplerSeedHook"), dict(type="SyncBuffersHook")],
        **overrides,
    )


def _run(tmp_path, name, world_size, cfg, resume_from=None) -> list[dict]:
    out = tmp_path / f"{name}_out"
    out.mkdir()
    work = tmp_path / name
    if world_size == 1:
        dfx.train_rank(0, 1, 0, cfg, str(work), str(out), resume_from)
    else:
        dfx.spawn_ranks(dfx.train_rank, world_size, cfg, str(work), str(out), resume_from)
    return [torch.load(out / f"rank{r}.pt") for r in range(world_size)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The same data, global batch 4: 2 ranks x 2 samples, and 1 process x 4 samples."""
    tmp = tmp_path_factory.mktemp("dp")
    dist_run = _run(tmp, "dist", 2, _config(2))
    single = _run(tmp, "single", 1, _config(4))[0]
    return tmp, dist_run, single


@pytest.mark.slow
def test_two_ranks_train_the_weights_one_process_trains_on_the_same_global_batches(two_ranks):
    _, (rank0, rank1), single = two_ranks
    for key, value in single["state"].items():
        torch.testing.assert_close(rank0["state"][key], value, rtol=1e-5, atol=1e-6)
        assert torch.equal(rank0["state"][key], rank1["state"][key])  # DDP keeps them equal


@pytest.mark.slow
def test_the_lr_follows_the_schedule_at_the_sharded_iteration_count(two_ranks):
    _, (rank0, rank1), single = two_ranks
    # 16 samples / 2 ranks / 2 per batch: 4 iterations per epoch, as mmdet3d counts.
    assert rank0["iters_per_epoch"] == 4 == single["iters_per_epoch"]
    assert rank0["max_iters"] == 8
    assert train_iters_per_epoch(_config(2), world_size=2) == 4
    # Warm-up over 3 iterations (linear, ratio 0.1), then 0.01 until the step at epoch 1.
    base = 0.01
    warm = [base * (1 - (1 - i / 3) * (1 - 0.1)) for i in range(3)]
    expected = warm + [base] + [base * 0.1] * 4
    assert rank0["lrs"] == pytest.approx(expected, rel=1e-9)
    assert rank1["lrs"] == rank0["lrs"] == pytest.approx(single["lrs"], rel=1e-12)


@pytest.mark.slow
def test_the_evaluation_sees_every_validation_sample_once_and_in_order(two_ranks):
    _, (rank0, rank1), single = two_ranks
    # 7 samples on 2 ranks: the sampler pads to 8; the padding's prediction is dropped.
    assert rank0["eval_results"]["n_results"] == 7.0
    # mse pairs predictions with targets by position: only the dataset order gives
    # the single-process value.
    assert rank0["eval_results"]["mse"] == pytest.approx(single["eval_results"]["mse"], rel=1e-5)
    assert rank1["eval_results"] == rank0["eval_results"]  # every rank decides alike


@pytest.mark.slow
def test_only_rank_0_writes_files(two_ranks):
    tmp, _, _ = two_ranks
    rank0 = {p.name for p in (tmp / "dist" / "rank0").iterdir()}
    assert {"config.py", "epoch_1.pth", "epoch_2.pth", "latest.pth"} <= rank0
    assert any(name.endswith(".log.json") for name in rank0)
    assert not (tmp / "dist" / "rank1").exists()


@pytest.mark.slow
@pytest.mark.parametrize("resume_ranks", [1, 2])
def test_a_checkpoint_of_n_ranks_resumes_on_m_with_identical_weights(two_ranks, tmp_path,
                                                                     resume_ranks):
    tmp, _, _ = two_ranks
    ckpt = tmp / "dist" / "rank0" / "epoch_1.pth"
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    cfg = _config(4 // resume_ranks)
    runs = _run(tmp_path, "resumed", resume_ranks, cfg, resume_from=str(ckpt))
    for run in runs:
        assert set(run["resumed"]) == set(saved)
        assert all(torch.equal(run["resumed"][k], saved[k]) for k in saved)
        assert run["epoch"] == 2


def test_the_distributed_sampler_shards_cover_the_data_once_plus_padding():
    gen = torch.Generator()
    shards = [list(DistributedEpochSampler(7, True, 3, gen, rank, 2)) for rank in range(2)]
    assert [len(s) for s in shards] == [4, 4]
    merged = [i for pair in zip(*shards, strict=True) for i in pair]
    assert sorted(merged[:7]) == list(range(7))  # the first 7 of the order: every sample
    sampler = DistributedEpochSampler(7, True, 3, gen, 0, 2)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first  # reseeded per epoch
    sampler.set_epoch(0)
    sampler.set_start(2)
    assert list(sampler) == first[2:]  # resuming mid-pass


def test_auto_scale_lr_scales_by_global_batch_and_logs_it(caplog):
    cfg = fx.toy_config(auto_scale_lr=dict(enable=True, base_batch_size=16))
    logger = logging.getLogger("test.scale_lr")
    with caplog.at_level(logging.INFO, logger="test.scale_lr"):
        scaled = scale_lr(cfg, world_size=2, logger=logger)
    assert scaled["optimizer"]["lr"] == pytest.approx(0.01 * 2 * 4 / 16)
    assert cfg["optimizer"]["lr"] == 0.01  # the input is not changed
    assert "LR has been automatically scaled from 0.01 to 0.005" in caplog.text
    off = fx.toy_config(auto_scale_lr=dict(enable=False, base_batch_size=16))
    assert scale_lr(off, world_size=8)["optimizer"]["lr"] == 0.01


def test_auto_scale_lr_reaches_the_optimizer(tmp_path):
    cfg = fx.toy_config(auto_scale_lr=dict(enable=True, base_batch_size=2))
    runner = build_runner(cfg, work_dir=tmp_path, device="cpu")
    assert runner.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)  # 0.01 x 4 / 2
    log = next(tmp_path.glob("*.log")).read_text()
    assert "LR has been automatically scaled from 0.01 to 0.02" in log


@pytest.mark.parametrize(
    ("auto", "key_path"),
    [
        ("yes", "auto_scale_lr"),
        (dict(enable="yes", base_batch_size=16), "auto_scale_lr.enable"),
        (dict(enable=True, base_batch_size=0), "auto_scale_lr.base_batch_size"),
        (dict(enable=True), "auto_scale_lr.base_batch_size"),
    ],
)
def test_a_bad_auto_scale_lr_names_its_key(tmp_path, auto, key_path):
    with pytest.raises(ConfigError) as err:
        build_runner(fx.toy_config(auto_scale_lr=auto), work_dir=tmp_path, device="cpu")
    assert err.value.key_path == key_path


def test_the_pytorch_launcher_without_torchrun_says_what_is_missing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as err:
        init_from_torchrun_env()
    assert err.value.key_path == "--launcher"
    assert "torchrun" in err.value.format() and "RANK" in err.value.format()
