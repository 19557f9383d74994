"""TuneReportHook's rung probes on a real runner (no Ray): at a rung the reported metric
is the cool-down probe's, the plain one is beside it, and training is untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from rt3d_tune.backends.mmcv.report_hook import TuneReportHook
from rt3d_tune.backends.probe import cool_down
from rt3d_tune.backends.report import Reporter
from rt3d_tune.config import Config
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.priority import Priority
from rt3d_tune.space.sections import SchedulerSettings

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"


def run(work_dir: Path, probe_epochs: frozenset[int]) -> tuple[list[dict[str, Any]], Any]:
    cfg = Config.fromfile(str(POINTNET))
    cfg.merge_from_dict({"runner.max_epochs": 3, "seed": 0, "log_config.hooks": []})
    sent: list[dict[str, Any]] = []
    reporter = Reporter("accuracy", report=lambda m, ckpt: sent.append(m), checkpoint=False,
                        probe_epochs=probe_epochs, probe_ratio=0.5)
    hook = TuneReportHook(reporter)
    runner = build_runner(cfg, work_dir=str(work_dir), extra_hooks=[(hook, Priority.VERY_LOW)],
                          device="cpu")
    runner.run()
    return sent, runner


def test_probe_reports_replace_the_rung_metric_and_leave_training_bit_identical(tmp_path):
    plain, plain_runner = run(tmp_path / "plain", frozenset())
    probed, probed_runner = run(tmp_path / "probed", frozenset({1, 2}))
    assert [m["training_iteration"] for m in probed] == [1, 2, 3]
    for before, after in zip(plain, probed, strict=True):
        epoch = after["training_iteration"]
        if epoch in (1, 2):
            assert after["accuracy_plain"] == before["accuracy"]
            assert after["accuracy"] == after["probe"]
            iters = after["iters_per_epoch"] * epoch
            assert after["probe_iters"] == round(0.5 * iters) and after["probe_s"] > 0
        else:  # the last report: the schedule has ended, nothing to cool down
            assert "probe" not in after and after["accuracy"] == before["accuracy"]
    assert any(m["probe"] != m["accuracy_plain"] for m in probed[:2])
    for (name, a), b in zip(plain_runner.model.state_dict().items(),
                            probed_runner.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_the_hook_probes_as_long_as_the_space_by_default() -> None:
    assert Reporter("accuracy").probe_ratio == SchedulerSettings().probe_ratio


def test_cool_down_anneals_each_group_linearly_to_its_final_lr() -> None:
    """The one annealing loop both backends' probes run."""
    params = [torch.zeros(1, requires_grad=True) for _ in range(3)]
    opts = {"": torch.optim.SGD([{"params": [params[0]], "lr": 0.1},
                                 {"params": [params[1]], "lr": 0.3}]),
            "head": torch.optim.SGD([params[2]], lr=1.0)}
    now = {"": [0.1, 0.3], "head": [1.0]}
    end = {"": [0.0, 0.1], "head": [0.5]}
    for t in range(4):
        cool_down(opts, now, end, t, 4)
        k = t + 1
        assert [g["lr"] for opt in opts.values() for g in opt.param_groups] == pytest.approx(
            [0.1 - 0.025 * k, 0.3 - 0.05 * k, 1.0 - 0.125 * k])
