"""EvalHook: when it evaluates, where the metrics go, and the best checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hooks_testkit import LineDataset, Recorder, loader, make_runner, read_json_log

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.evaluation import (
    DEFAULT_GREATER_KEYS,
    DEFAULT_LESS_KEYS,
    EvalHook,
    build_eval_hook,
    infer_rule,
)
from rt3d_tune.runner.hooks.logger import TextLoggerHook


def _run(tmp_path, eval_hook, *, by_epoch=True, length=8, train_samples=2, extra=()):
    """Train with one iteration per epoch; return (runner, recorder)."""
    recorder = Recorder()
    hooks = [(eval_hook, "LOW"), (recorder, "LOWEST"), *extra]
    runner = make_runner(tmp_path, hooks, by_epoch=by_epoch, length=length)
    runner.run([loader(LineDataset(n=train_samples))], [("train", 1)])
    return runner, recorder


@pytest.mark.parametrize(
    ("interval", "start", "expected"),
    [
        (1, None, [1, 2, 3, 4, 5, 6, 7, 8]),
        (2, None, [2, 4, 6, 8]),
        (3, None, [3, 6]),
        (1, 3, [3, 4, 5, 6, 7, 8]),
        (2, 3, [3, 5, 7]),
        (2, 1, [1, 3, 5, 7]),
        (2, 0, [0, 2, 4, 6, 8]),  # start=0 also evaluates before training
    ],
)
@pytest.mark.parametrize("by_epoch", [True, False])
def test_start_and_interval(tmp_path, interval, start, expected, by_epoch):
    hook = EvalHook(loader(), interval=interval, start=start, by_epoch=by_epoch)
    runner, recorder = _run(tmp_path, hook, by_epoch=by_epoch)
    assert [progress for progress, _ in recorder.evals] == expected
    assert runner.eval_round == len(expected)


def test_metrics_reach_the_log_the_runner_and_later_hooks(tmp_path):
    dataset = LineDataset(n=6)
    seen_by_later_hook = []

    class Reader(Hook):
        def after_train_epoch(self, runner):
            seen_by_later_hook.append((runner.eval_round, dict(runner.eval_results)))

    hook = EvalHook(loader(dataset, batch_size=4), metric="bbox", iou_thr=0.5)
    runner, _ = _run(
        tmp_path,
        hook,
        length=2,
        extra=[(TextLoggerHook(interval=1), "VERY_LOW"), (Reader(), "VERY_LOW")],
    )

    assert dataset.calls == [{"metric": "bbox", "iou_thr": 0.5}] * 2
    assert [len(r) for r in dataset.results] == [
        6,
        6,
    ]  # one prediction per sample, batch after batch
    final = runner.eval_results
    assert set(final) == {"bev_mAP", "mse_loss"} and runner.eval_round == 2
    assert [r for r, _ in seen_by_later_hook] == [1, 2] and seen_by_later_hook[-1][1] == final

    val = [line for line in read_json_log(tmp_path) if line.get("mode") == "val"]
    assert [(line["epoch"], line["iter"]) for line in val] == [(1, 2), (2, 2)]  # iter: val batches
    assert val[-1]["bev_mAP"] == final["bev_mAP"] and "eval_iter_num" not in val[-1]
    assert runner.model.seen_training is False and runner.model.seen_grad_enabled is False
    assert runner.model.training  # back in train mode


def test_iteration_eval_logs_train_line_once_then_metrics(tmp_path):
    hook = EvalHook(loader(), interval=2, by_epoch=False)
    _run(
        tmp_path,
        hook,
        by_epoch=False,
        length=4,
        train_samples=8,
        extra=[(TextLoggerHook(interval=2, by_epoch=False), "VERY_LOW")],
    )
    lines = read_json_log(tmp_path)[1:]
    assert [line["mode"] for line in lines] == ["train", "val", "train", "val"]
    assert "loss" not in lines[1] and "bev_mAP" not in lines[2]


def test_evaluation_before_training_is_logged(tmp_path):
    _run(
        tmp_path,
        EvalHook(loader(), start=0, interval=4),
        length=2,
        extra=[(TextLoggerHook(interval=1), "VERY_LOW")],
    )
    lines = read_json_log(tmp_path)[1:]
    assert lines[0]["mode"] == "val" and "bev_mAP" in lines[0]


def _files(work_dir: Path) -> list[str]:
    return sorted(p.name for p in work_dir.glob("best_*.pth"))


def test_save_best_keeps_only_the_best_checkpoint(tmp_path):
    best_files = []

    class Watcher(Hook):
        def after_train_epoch(self, runner):
            best_files.append(_files(Path(runner.work_dir)))

    hook = EvalHook(loader(LineDataset(scores=[0.1, 0.3, 0.2, 0.5])), save_best="bev_mAP")
    runner, _ = _run(tmp_path, hook, length=4, extra=[(Watcher(), "VERY_LOW")])

    assert best_files == [
        ["best_bev_mAP_epoch_1.pth"],
        ["best_bev_mAP_epoch_2.pth"],
        ["best_bev_mAP_epoch_2.pth"],
        ["best_bev_mAP_epoch_4.pth"],
    ]
    msgs = runner.meta["hook_msgs"]
    assert msgs["best_score"] == 0.5 and msgs["best_ckpt"] == str(
        tmp_path / "best_bev_mAP_epoch_4.pth"
    )
    ckpt = torch.load(tmp_path / "best_bev_mAP_epoch_4.pth", weights_only=True)
    assert ckpt["meta"]["hook_msgs"]["best_score"] == 0.5
    for name, value in runner.model.state_dict().items():
        assert torch.equal(ckpt["state_dict"][name], value)


@pytest.mark.parametrize(
    ("kwargs", "scores", "expected"),
    [
        ({"save_best": "bev_mAP", "rule": "less"}, [0.5, 0.2, 0.4], "best_bev_mAP_epoch_2.pth"),
        ({"save_best": "auto"}, [0.5, 0.2, 0.4], "best_bev_mAP_epoch_1.pth"),
        ({"save_best": "bev_mAP"}, [0.0, 0.0, 0.0], "best_bev_mAP_epoch_1.pth"),  # a 0 score counts
    ],
)
def test_save_best_rule(tmp_path, kwargs, scores, expected):
    _run(tmp_path, EvalHook(loader(LineDataset(scores=scores)), **kwargs), length=3)
    assert _files(tmp_path) == [expected]


def test_save_best_by_iteration_and_metric_names_with_slashes(tmp_path):
    class KittiLike(LineDataset):
        def evaluate(self, results, **kwargs):
            return {"KITTI/Car_3D_moderate": super().evaluate(results, **kwargs)["bev_mAP"]}

    hook = EvalHook(
        loader(KittiLike(scores=[0.1, 0.4, 0.3])), by_epoch=False, save_best="auto", rule="greater"
    )
    _run(tmp_path, hook, by_epoch=False, length=3)
    assert _files(tmp_path) == ["best_KITTI_Car_3D_moderate_iter_2.pth"]


def test_best_score_survives_resume(tmp_path):
    hook = EvalHook(loader(LineDataset(scores=[0.3, 0.6])), save_best="bev_mAP")
    _run(tmp_path, hook, length=2)
    assert _files(tmp_path) == ["best_bev_mAP_epoch_2.pth"]

    resumed_hook = EvalHook(loader(LineDataset(scores=[0.5, 0.7])), save_best="bev_mAP")
    runner = make_runner(tmp_path, [(resumed_hook, "LOW")], length=4)
    runner.resume(tmp_path / "best_bev_mAP_epoch_2.pth")
    best_files = []

    class Watcher(Hook):
        def after_train_epoch(self, runner):
            best_files.append(_files(tmp_path))

    runner.register_hook(Watcher(), "VERY_LOW")
    runner.run([loader(LineDataset(n=2))], [("train", 1)])
    # 0.5 at epoch 3 is below the 0.6 of before the resume; 0.7 replaces the old file
    assert best_files == [["best_bev_mAP_epoch_2.pth"], ["best_bev_mAP_epoch_4.pth"]]
    assert runner.meta["hook_msgs"]["best_score"] == 0.7


def test_save_best_with_an_unknown_metric_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="save_best") as info:
        _run(tmp_path, EvalHook(loader(), save_best="NDS", rule="greater"), length=1)
    assert "bev_mAP" in info.value.format()


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("bev_mAP", "greater"),
        ("mIoU", "greater"),
        ("AR@100", "greater"),
        ("top1", "greater"),
        ("aAcc", "greater"),
        ("val_loss", "less"),
        ("Loss", "less"),
        ("precision", "greater"),
    ],
)
def test_rule_inferred_from_the_key(key, rule):
    assert infer_rule(key, DEFAULT_GREATER_KEYS, DEFAULT_LESS_KEYS) == rule
    assert EvalHook(loader(), save_best=key).rule == rule


def test_rule_that_cannot_be_inferred_asks_for_one():
    with pytest.raises(ConfigError, match="recall") as info:
        EvalHook(loader(), save_best="recall")
    assert "rule" in info.value.format()
    assert EvalHook(loader(), save_best="recall", greater_keys=["recall"]).rule == "greater"
    assert EvalHook(loader(), save_best="NDS_err", less_keys="err").rule == "less"


@pytest.mark.parametrize(
    ("cfg", "key_path"),
    [
        ({"rule": "bigger", "save_best": "bev_mAP"}, "evaluation.rule"),
        ({"interval": 0}, "evaluation.interval"),
        ({"start": -1}, "evaluation.start"),
        ({"save_best": "recall"}, "evaluation.save_best"),
    ],
)
def test_bad_evaluation_config_names_the_key(cfg, key_path):
    with pytest.raises(ConfigError) as info:
        build_eval_hook(cfg, loader(), by_epoch_default=True)
    assert info.value.key_path == key_path


def test_build_eval_hook_defaults_and_kwargs():
    hook = build_eval_hook({"interval": 2, "metric": "bbox"}, loader(), by_epoch_default=False)
    assert isinstance(hook, EvalHook)
    assert (hook.interval, hook.by_epoch, hook.eval_kwargs) == (2, False, {"metric": "bbox"})


def test_dataset_without_evaluate_is_a_config_error():
    with pytest.raises(ConfigError, match="evaluate"):
        EvalHook(loader(torch.utils.data.TensorDataset(torch.zeros(4, 1))))
