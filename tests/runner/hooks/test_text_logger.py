"""TextLoggerHook: the readable log, its file, out_dir, and dict optimizers."""

from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace

import torch
from hooks_testkit import TIMESTAMP, LineDataset, loader, make_logger, make_runner, read_json_log

from rt3d_tune.runner.hooks.evaluation import EvalHook
from rt3d_tune.runner.hooks.logger import TextLoggerHook
from rt3d_tune.runner.log_buffer import LogBuffer


def test_readable_log_file_has_mmcv_lines(tmp_path):
    hooks = [(EvalHook(loader(LineDataset())), "LOW"), (TextLoggerHook(interval=2), "VERY_LOW")]
    runner = make_runner(tmp_path, hooks, meta={"exp_name": "pillar_demo"})
    runner.run([loader()], [("train", 1)])

    text = (tmp_path / f"{TIMESTAMP}.log").read_text()
    train_line = re.compile(
        r"Epoch \[1\]\[2/4\]\tlr: 5\.000e-02, momentum: 9\.000e-01, eta: \d+:\d\d:\d\d, "
        r"time: \d+\.\d{3}, data_time: \d+\.\d{3}, loss: \d+\.\d{4}$",
        re.MULTILINE,
    )
    assert train_line.search(text), text
    assert re.search(
        r"Epoch\(val\) \[2\]\[4\]\tbev_mAP: \d\.\d{4}, mse_loss: \d+\.\d{4}$", text, re.MULTILINE
    ), text
    assert "Exp name: pillar_demo" in text
    # the handler the hook added is gone after the run
    assert not any(isinstance(h, logging.FileHandler) for h in runner.logger.handlers)


def test_no_second_file_when_the_logger_already_writes_one(tmp_path):
    logger = make_logger()
    handler = logging.FileHandler(tmp_path / "mine.log")
    logger.addHandler(handler)
    runner = make_runner(
        tmp_path, [(TextLoggerHook(interval=1), "VERY_LOW")], logger=logger, length=1
    )
    runner.run([loader()], [("train", 1)])
    handler.close()
    assert not (tmp_path / f"{TIMESTAMP}.log").exists()
    assert "Epoch [1][4/4]" in (tmp_path / "mine.log").read_text()


def test_iteration_runner_lines(tmp_path):
    runner = make_runner(
        tmp_path,
        [(TextLoggerHook(interval=2, by_epoch=False), "VERY_LOW")],
        by_epoch=False,
        length=4,
    )
    runner.run([loader()], [("train", 1)])
    text = (tmp_path / f"{TIMESTAMP}.log").read_text()
    assert "Iter [2/4]\tlr: 5.000e-02" in text and "Iter [4/4]\t" in text


def test_out_dir_receives_the_logs(tmp_path):
    work_dir = tmp_path / "run1"
    hook = TextLoggerHook(interval=1, out_dir=str(tmp_path / "archive"), keep_local=False)
    runner = make_runner(work_dir, [(hook, "VERY_LOW")], length=1)
    runner.run([loader()], [("train", 1)])
    copied = tmp_path / "archive" / "run1"
    assert sorted(p.name for p in copied.iterdir()) == [f"{TIMESTAMP}.log", f"{TIMESTAMP}.log.json"]
    assert not (work_dir / f"{TIMESTAMP}.log.json").exists()
    lines = [json.loads(s) for s in (copied / f"{TIMESTAMP}.log.json").read_text().splitlines()]
    assert [line["iter"] for line in lines[1:]] == [1, 2, 3, 4]


def test_dict_optimizers_log_lr_per_optimizer(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizers = {
        "backbone": torch.optim.SGD(params, lr=0.1, momentum=0.9),
        "head": torch.optim.Adam(params, lr=0.2),
    }
    buffer = LogBuffer()
    buffer.update({"time": 0.5, "data_time": 0.1, "loss": 1.5})
    buffer.average(1)
    logger = make_logger()
    runner = SimpleNamespace(
        mode="train",
        epoch=0,
        iter=0,
        inner_iter=0,
        max_iters=10,
        max_epochs=1,
        data_loader=[0] * 10,
        work_dir=str(tmp_path),
        timestamp=TIMESTAMP,
        meta={},
        logger=logger,
        log_buffer=buffer,
        optimizer=optimizers,
        hooks=[],
        device=torch.device("cpu"),
        current_lr=lambda: {
            name: [g["lr"] for g in o.param_groups] for name, o in optimizers.items()
        },
        current_momentum=lambda: {"backbone": [0.9], "head": [0.9]},
    )
    hook = TextLoggerHook(interval=1)
    hook.before_run(runner)
    hook.after_train_iter(runner)
    hook.after_run(runner)
    line = read_json_log(tmp_path)[1]
    assert line["lr"] == {"backbone": 0.1, "head": 0.2}
    assert line["momentum"] == {"backbone": 0.9, "head": 0.9}
    assert (
        "lr_backbone: 1.000e-01 lr_head: 2.000e-01" in (tmp_path / f"{TIMESTAMP}.log").read_text()
    )
