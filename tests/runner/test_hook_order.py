"""Hook order: priorities by name and number, ties in registration order, the logged order."""

from __future__ import annotations

import pytest
import runner_fixtures as fx

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner import EpochBasedRunner, Hook, Priority
from rt3d_tune.runner.builder import build_runner


class Named(Hook):
    def __init__(self, name: str, calls: list) -> None:
        self.name = name
        self.calls = calls

    def before_run(self, runner) -> None:
        self.calls.append(self.name)


def _runner(tmp_path) -> EpochBasedRunner:
    return EpochBasedRunner(fx.ToyLinear(), None, work_dir=tmp_path, max_epochs=1)


@pytest.mark.parametrize(
    "priority", list(Priority) + [p.name.lower() for p in Priority] + [0, 1, 55, 99, 100]
)
def test_every_priority_form_is_accepted_and_sorted(tmp_path, priority) -> None:
    runner = _runner(tmp_path)
    calls: list[str] = []
    runner.register_hook(Named("normal", calls), "NORMAL")
    runner.register_hook(Named("x", calls), priority)
    runner.call_hook("before_run")
    value = priority if isinstance(priority, int) else Priority[str(priority).upper()]
    expected = ["x", "normal"] if value < Priority.NORMAL else ["normal", "x"]
    assert calls == expected


def test_ties_keep_registration_order_and_lower_runs_first(tmp_path) -> None:
    runner = _runner(tmp_path)
    calls: list[str] = []
    for name, prio in [
        ("a50", 50),
        ("b90", "VERY_LOW"),
        ("c10", "very_high"),
        ("d50", "NORMAL"),
        ("e0", "HIGHEST"),
        ("f90", 90),
        ("g100", "LOWEST"),
        ("h50", 50),
    ]:
        runner.register_hook(Named(name, calls), prio)
    runner.call_hook("before_run")
    assert calls == ["e0", "c10", "a50", "d50", "h50", "b90", "f90", "g100"]


@pytest.mark.parametrize("bad", [-1, 101, "MEDIUM", 1.5, None])
def test_bad_priority_is_a_config_error(tmp_path, bad) -> None:
    with pytest.raises(ConfigError):
        _runner(tmp_path).register_hook(Named("x", []), bad)


def test_config_hooks_follow_the_spec_table_and_custom_hooks_come_after_defaults(tmp_path) -> None:
    cfg = fx.toy_config(
        checkpoint_config=dict(interval=1),
        custom_hooks=[
            dict(type="RecordHook", tag="custom_normal"),
            dict(type="RecordHook", tag="custom_40", priority=40),
            dict(type="RecordHook", tag="custom_first", priority="highest"),
        ],
    )
    runner = build_runner(cfg, work_dir=tmp_path)
    order = [(type(h).__name__, getattr(h, "tag", None), h.priority) for h in runner.hooks]
    assert order == [
        ("RecordHook", "custom_first", 0),
        ("OptimizerHook", None, 40),
        ("RecordHook", "custom_40", 40),
        ("CheckpointHook", None, 50),
        ("RecordHook", "custom_normal", 50),
        ("IterTimerHook", None, 70),
    ]


def test_bad_custom_hook_priority_names_its_key_path(tmp_path) -> None:
    cfg = fx.toy_config(custom_hooks=[dict(type="RecordHook", priority="URGENT")])
    with pytest.raises(ConfigError) as err:
        build_runner(cfg, work_dir=tmp_path)
    assert err.value.key_path == "custom_hooks.0.priority"


def test_hook_order_is_logged_per_stage_at_start(tmp_path) -> None:
    cfg = fx.toy_config(
        custom_hooks=[dict(type="RecordHook", priority=45)],
        runner=dict(type="EpochBasedRunner", max_epochs=1),
    )
    runner = build_runner(cfg, work_dir=tmp_path)
    runner.run()
    log = next(tmp_path.glob("*.log")).read_text()
    after_iter = log.split("after_train_iter:\n")[1].split("---")[0].split("\n")
    names = [line.split(")")[1].strip() for line in after_iter if line.strip()]
    assert names == ["OptimizerHook", "RecordHook", "IterTimerHook"]
    assert "(45          ) RecordHook" in log
    assert "before_run:\n(45          ) RecordHook" in log
