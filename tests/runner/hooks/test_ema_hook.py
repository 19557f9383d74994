"""EMAHook: mmcv's update rule, number for number, and the swap around evaluation."""

from __future__ import annotations

import pytest
import torch
from hooks_testkit import LineDataset, Recorder, loader, make_runner

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.ema import EMAHook


def _expected_ema(initial, params_after_iter, momentum, interval, warm_up):
    ema = initial.clone()
    for t, params in enumerate(params_after_iter):
        if t % interval == 0:
            m = min(momentum**interval, (1 + t) / (warm_up + t))
            ema = ema * (1 - m) + params * m
    return ema


@pytest.mark.parametrize(
    ("momentum", "interval", "warm_up"), [(0.5, 1, 10), (0.3, 2, 4), (0.0002, 1, 100)]
)
def test_model_holds_the_average_after_each_epoch_and_raw_weights_during_it(
    tmp_path, momentum, interval, warm_up
):
    recorder = Recorder()
    at_epoch_end: list[torch.Tensor] = []
    at_epoch_start: list[torch.Tensor] = []

    class Snapshot(Hook):
        def before_train_epoch(self, runner):
            at_epoch_start.append(
                torch.cat([p.detach().flatten() for p in runner.model.parameters()])
            )

        def after_train_epoch(self, runner):
            at_epoch_end.append(
                torch.cat([p.detach().flatten() for p in runner.model.parameters()])
            )

    runner = make_runner(
        tmp_path,
        [
            (recorder, "NORMAL"),
            (EMAHook(momentum, interval, warm_up), "NORMAL"),
            (Snapshot(), "LOW"),
        ],
    )
    initial = torch.cat([p.detach().clone().flatten() for p in runner.model.parameters()])
    runner.run([loader(LineDataset(n=8))], [("train", 1)])  # 2 epochs x 4 iterations

    # the recorder runs after the optimizer step (ABOVE_NORMAL), before the EMA update
    # (same priority, registered later)
    for epoch in (0, 1):
        expected = _expected_ema(
            initial, recorder.params[: 4 * (epoch + 1)], momentum, interval, warm_up
        )
        torch.testing.assert_close(at_epoch_end[epoch], expected, rtol=1e-6, atol=1e-7)
    # swapped back: the second epoch starts from the raw weights of the end of the first
    torch.testing.assert_close(at_epoch_start[1], recorder.params[3])


def test_ema_buffers_are_in_the_checkpoint(tmp_path):
    runner = make_runner(tmp_path, [(EMAHook(), "NORMAL")], length=1)
    runner.run([loader()], [("train", 1)])
    path = runner.save_checkpoint(tmp_path, "epoch_{}.pth")
    state = torch.load(path, weights_only=True)["state_dict"]
    assert {"ema_linear_weight", "ema_linear_bias"} <= set(state)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"momentum": 1.5}, "momentum"), ({"momentum": 0}, "momentum"), ({"interval": 0}, "interval")],
)
def test_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError) as info:
        EMAHook(**kwargs)
    assert info.value.key_path == key
