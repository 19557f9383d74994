"""The ``<timestamp>.log.json`` format: one JSON object a line, averaged over the interval."""

from __future__ import annotations

import pytest
from hooks_testkit import Recorder, loader, make_runner, read_json_log

from rt3d_tune.runner.hooks.logger import TextLoggerHook


def _weighted_mean(pairs: list[tuple[float, int]]) -> float:
    return sum(v * n for v, n in pairs) / sum(n for _, n in pairs)


def test_interval_one_gives_one_line_per_iteration_with_lr_and_momentum(tmp_path):
    recorder = Recorder()
    meta = {"seed": 0, "config": {"optimizer": {"type": "SGD", "lr": 0.05}}, "exp_name": "demo"}
    runner = make_runner(
        tmp_path,
        [(recorder, "HIGHEST"), (TextLoggerHook(interval=1), "VERY_LOW")],
        meta=meta,
        grad_clip={"max_norm": 10.0},
    )
    runner.run([loader()], [("train", 1)])

    lines = read_json_log(tmp_path)
    assert lines[0]["seed"] == 0 and lines[0]["config"] == meta["config"]
    train = lines[1:]
    assert len(train) == 8  # 2 epochs x 4 iterations
    assert [(line["epoch"], line["iter"]) for line in train] == [
        (e, i) for e in (1, 2) for i in (1, 2, 3, 4)
    ]
    for line, (loss, _) in zip(train, recorder.losses):
        assert list(line)[:8] == [
            "mode",
            "epoch",
            "iter",
            "lr",
            "momentum",
            "time",
            "data_time",
            "loss",
        ]
        assert line["mode"] == "train"
        assert line["lr"] == 0.05 and line["momentum"] == 0.9
        assert line["loss"] == loss  # full precision, not rounded
        assert line["time"] >= line["data_time"] >= 0
        assert "grad_norm" in line


def test_values_are_averaged_over_the_interval_weighted_by_samples(tmp_path):
    recorder = Recorder()
    runner = make_runner(
        tmp_path, [(recorder, "HIGHEST"), (TextLoggerHook(interval=2), "VERY_LOW")], length=1
    )
    runner.run([loader(batch_size=3)], [("train", 1)])  # batches of 3, 3, 2 samples

    train = [line for line in read_json_log(tmp_path)[1:] if line["mode"] == "train"]
    assert [line["iter"] for line in train] == [
        2
    ]  # ignore_last: the last single iteration is dropped
    assert train[0]["loss"] == pytest.approx(_weighted_mean(recorder.losses[:2]), rel=1e-12)


def test_ignore_last_false_logs_the_end_of_the_epoch_like_mmcv(tmp_path):
    recorder = Recorder()
    hook = TextLoggerHook(interval=3, ignore_last=False)
    runner = make_runner(tmp_path, [(recorder, "HIGHEST"), (hook, "VERY_LOW")], length=1)
    runner.run([loader()], [("train", 1)])  # 4 iterations

    train = read_json_log(tmp_path)[1:]
    assert [line["iter"] for line in train] == [3, 4]
    assert train[0]["loss"] == pytest.approx(_weighted_mean(recorder.losses[:3]), rel=1e-12)
    # mmcv averages the last `interval` values at the end of the epoch
    # ("not precise but more stable")
    assert train[1]["loss"] == pytest.approx(_weighted_mean(recorder.losses[1:4]), rel=1e-12)


def test_no_momentum_key_when_the_optimizer_has_none(tmp_path):
    runner = make_runner(
        tmp_path, [(TextLoggerHook(interval=1), "VERY_LOW")], optimizer="Adagrad", length=1
    )
    runner.run([loader()], [("train", 1)])
    train = read_json_log(tmp_path)[1:]
    assert train and all("momentum" not in line and line["lr"] == 0.05 for line in train)


def test_adam_momentum_is_betas0(tmp_path):
    runner = make_runner(
        tmp_path, [(TextLoggerHook(interval=1), "VERY_LOW")], optimizer="Adam", length=1
    )
    runner.run([loader()], [("train", 1)])
    assert all(line["momentum"] == 0.9 for line in read_json_log(tmp_path)[1:])


def test_iteration_runner_counts_global_iterations(tmp_path):
    runner = make_runner(
        tmp_path,
        [(TextLoggerHook(interval=1, by_epoch=False), "VERY_LOW")],
        by_epoch=False,
        length=6,
    )
    runner.run([loader()], [("train", 1)])
    train = read_json_log(tmp_path)[1:]
    assert [line["iter"] for line in train] == [1, 2, 3, 4, 5, 6]
    assert {line["mode"] for line in train} == {"train"}


def test_val_phase_is_averaged_over_the_whole_val_epoch(tmp_path):
    runner = make_runner(tmp_path, [(TextLoggerHook(interval=4), "VERY_LOW")], length=2)
    val_recorder: list[tuple[float, int]] = []

    class ValRecorder(Recorder):
        def after_val_iter(self, runner):
            val_recorder.append(
                (float(runner.outputs["loss"].detach()), runner.outputs["num_samples"])
            )

    runner.register_hook(ValRecorder(), "HIGHEST")
    runner.run([loader(), loader(batch_size=3)], [("train", 1), ("val", 1)])

    val = [line for line in read_json_log(tmp_path)[1:] if line["mode"] == "val"]
    assert [(line["epoch"], line["iter"]) for line in val] == [(1, 3), (2, 3)]
    assert val[0]["loss"] == pytest.approx(_weighted_mean(val_recorder[:3]), rel=1e-12)
    assert val[1]["loss"] == pytest.approx(_weighted_mean(val_recorder[3:]), rel=1e-12)
