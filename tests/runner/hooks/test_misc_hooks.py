"""ProfilerHook and EmptyCacheHook."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hooks_testkit import TIMESTAMP, loader, make_runner

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.misc import EmptyCacheHook, ProfilerHook


@pytest.mark.parametrize("by_epoch", [True, False])
def test_profiler_writes_a_chrome_trace_of_the_first_iterations(tmp_path, by_epoch):
    hook = ProfilerHook(by_epoch=by_epoch, profile_iters=1, activities=["cpu", "cuda"])
    runner = make_runner(tmp_path, [(hook, "VERY_LOW")], by_epoch=by_epoch, length=3)
    stopped_at = []

    class Probe(Hook):
        def after_train_iter(self, runner):
            if hook.profiler is None and not stopped_at:
                stopped_at.append(runner.iter + 1)

        def after_train_epoch(self, runner):
            if hook.profiler is None and not stopped_at:
                stopped_at.append(f"epoch {runner.epoch + 1}")

    runner.register_hook(Probe(), "LOWEST")
    runner.run([loader()], [("train", 1)])

    trace = json.loads((tmp_path / f"profiler_trace_{TIMESTAMP}.json").read_text())
    assert any(event.get("name", "").startswith("aten::") for event in trace["traceEvents"])
    assert stopped_at == (["epoch 1"] if by_epoch else [1])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"activities": ["tpu"]}, "activities"),
        ({"activities": "cpu"}, "activities"),
        ({"profile_iters": 0}, "profile_iters"),
    ],
)
def test_profiler_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError) as info:
        ProfilerHook(**kwargs)
    assert info.value.key_path == key


@pytest.mark.parametrize(
    ("kwargs", "calls"),
    [
        ({}, ["after_epoch"]),
        (
            {"before_epoch": True, "after_epoch": False, "after_iter": True},
            ["before_epoch", "after_iter"],
        ),
    ],
)
def test_empty_cache_stages(monkeypatch, kwargs, calls):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(stage))
    hook = EmptyCacheHook(**kwargs)
    runner = SimpleNamespace()
    for stage in ("before_train_epoch", "after_train_iter", "after_train_epoch"):
        getattr(hook, stage)(runner)
    assert [s.replace("train_", "") for s in emptied] == calls


def test_empty_cache_without_cuda_is_harmless(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: pytest.fail("emptied without CUDA"))
    hook = EmptyCacheHook(before_epoch=True, after_epoch=True, after_iter=True)
    make_runner(tmp_path, [(hook, "NORMAL")], length=1).run([loader()], [("train", 1)])
