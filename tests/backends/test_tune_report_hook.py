"""TuneReportHook and the PBT optimizer fix-up, with a stand-in runner (no Ray)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from rt3d_tune.backends.mmcv.report_hook import TuneReportHook
from rt3d_tune.backends.mmcv.trial import apply_optimizer_hyperparams, snapshot_hyperparams
from rt3d_tune.backends.report import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    FatalSearchError,
    Reporter,
    worst_value,
)


class FakeRunner(SimpleNamespace):
    """The attributes the hook reads; save_checkpoint writes a file like the real one."""

    def current_lr(self) -> list[float]:
        return [0.01, 0.02]

    def save_checkpoint(self, out_dir: str, filename_tmpl: str, create_symlink: bool) -> Path:
        path = Path(out_dir, filename_tmpl)
        path.write_text(f"epoch {self.epoch}")
        return path


def make_runner(**kw: Any) -> FakeRunner:
    base = {"epoch": 0, "iter": 9, "max_epochs": 3, "max_iters": 30, "mode": "train",
            "eval_round": 0, "eval_results": {}, "data_loader": range(10)}
    base.update(kw)
    return FakeRunner(**base)


def collect() -> tuple[list[tuple[dict, list[str] | None]], Any]:
    sent: list[tuple[dict, list[str] | None]] = []

    def report(metrics: dict, ckpt_dir: str | None) -> None:
        files = sorted(p.name for p in Path(ckpt_dir).iterdir()) if ckpt_dir else None
        sent.append((metrics, files))

    return sent, report


def evaluate(runner: FakeRunner, **metrics: float) -> None:
    runner.eval_results = dict(metrics)
    runner.eval_round += 1


def test_reports_once_per_evaluation_with_metrics_fidelity_and_checkpoint():
    sent, report = collect()
    hook = TuneReportHook(Reporter("acc", extra={"gpu_ids": "1"}, report=report))
    runner = make_runner()
    hook.before_run(runner)
    hook.after_train_epoch(runner)  # no evaluation this epoch: nothing reported
    assert sent == []
    evaluate(runner, acc=0.5, loss_val=1.25)
    runner.epoch = 1
    hook.after_train_epoch(runner)
    hook.after_train_iter(runner)  # same evaluation round: not reported twice
    assert len(sent) == 1
    metrics, files = sent[0]
    assert metrics["acc"] == 0.5 and metrics["loss_val"] == 1.25
    assert metrics["training_iteration"] == 2 and metrics["epoch"] == 2
    assert metrics["iteration"] == 10 and metrics["lr"] == 0.01
    assert metrics["iters_per_epoch"] == 10  # best_mmengine.py counts iterations with it
    assert metrics["gpu_ids"] == "1" and metrics["diverged"] is False
    assert metrics["final"] is False
    assert files == sorted([CHECKPOINT_FILE, METRICS_FILE])  # a resume re-reports these


def test_last_epoch_is_marked_final():
    sent, report = collect()
    hook = TuneReportHook(Reporter("acc", report=report, checkpoint=False))
    runner = make_runner(epoch=2)
    hook.before_run(runner)
    evaluate(runner, acc=0.7)
    hook.after_train_epoch(runner)
    assert sent[0][0]["final"] is True and sent[0][0]["training_iteration"] == 3


@pytest.mark.parametrize("pbt", [False, True])
def test_deferred_last_report_is_kept_for_the_trainable_unless_it_carries_a_checkpoint(pbt):
    """train_trial sends the last evaluation itself after the run, marked done; under
    PBT the last report carries a donor checkpoint and goes out from the hook."""
    sent, report = collect()
    hook = TuneReportHook(Reporter("acc", report=report, checkpoint_final=pbt, defer_final=True))
    runner = make_runner(epoch=1)
    hook.before_run(runner)
    evaluate(runner, acc=0.6)
    hook.after_train_epoch(runner)  # epoch 2 of 3: sent now, with its checkpoint
    evaluate(runner, acc=0.7)
    runner.epoch = 2
    hook.after_train_epoch(runner)  # the last epoch
    assert [m["acc"] for m, _ in sent] == ([0.6, 0.7] if pbt else [0.6])
    if pbt:
        assert hook.reporter.pending_final is None and sent[-1][1] is not None
    else:
        assert hook.reporter.pending_final == hook.reporter.last_metrics
        assert hook.reporter.pending_final["acc"] == 0.7
        assert hook.reporter.pending_final["final"] is True


def test_iteration_based_evaluation_counts_rounds():
    sent, report = collect()
    hook = TuneReportHook(Reporter("acc", report=report, checkpoint=False))
    runner = make_runner(iter=19, max_epochs=None)
    hook.before_run(runner)
    evaluate(runner, acc=0.1)
    hook.after_train_iter(runner)
    evaluate(runner, acc=0.2)
    runner.iter = 29
    hook.after_train_iter(runner)
    assert [m["training_iteration"] for m, _ in sent] == [1, 2]
    assert [m["final"] for m, _ in sent] == [False, True]


def test_missing_metric_names_the_metrics_produced():
    hook = TuneReportHook(Reporter("bev_mAP", report=lambda m, c: None))
    runner = make_runner()
    hook.before_run(runner)
    evaluate(runner, accuracy=0.5, recall=0.25)
    with pytest.raises(FatalSearchError, match=r"'bev_mAP'.*accuracy, recall"):
        hook.after_train_epoch(runner)


def test_worst_value_is_finite_and_worst():
    assert worst_value("max") < -1e8 and worst_value("min") > 1e8
    assert math.isfinite(worst_value("max"))


@pytest.mark.parametrize("opt_type", ["SGD", "AdamW"])
def test_optimizer_takes_the_new_config_after_loading_a_donor_checkpoint(opt_type: str):
    """PBT: the exploited checkpoint holds the donor's lr; the trial's own config must win."""
    model = torch.nn.Linear(3, 1)
    kwargs = {"momentum": 0.9} if opt_type == "SGD" else {"betas": (0.85, 0.999)}
    cls = getattr(torch.optim, opt_type)
    donor = cls(model.parameters(), lr=0.1, **kwargs)
    for group in donor.param_groups:  # what the LR/momentum hooks leave in a checkpoint
        group["initial_lr"] = 0.1
        group["initial_momentum"] = 0.5
    model(torch.randn(4, 3)).sum().backward()
    donor.step()
    state = donor.state_dict()

    new_kwargs = {"momentum": 0.8} if opt_type == "SGD" else {"betas": (0.7, 0.999)}
    fresh_opt = cls(model.parameters(), lr=0.003, weight_decay=0.01, **new_kwargs)
    fresh = snapshot_hyperparams(fresh_opt)
    fresh_opt.load_state_dict(state)
    assert fresh_opt.param_groups[0]["lr"] == 0.1  # the donor's value came back
    apply_optimizer_hyperparams(fresh_opt, fresh)
    group = fresh_opt.param_groups[0]
    assert group["lr"] == 0.003 and group["initial_lr"] == 0.003
    assert group["weight_decay"] == 0.01
    assert group["initial_momentum"] == (0.8 if opt_type == "SGD" else 0.7)
    assert fresh_opt.state  # the donor's moment estimates are kept


@pytest.mark.parametrize("checkpoint_final", [False, True])
def test_the_final_report_carries_a_checkpoint_only_when_something_can_use_it(checkpoint_final):
    sent, report = collect()
    hook = TuneReportHook(Reporter("acc", report=report, checkpoint_final=checkpoint_final))
    runner = make_runner()
    hook.before_run(runner)
    for epoch in range(3):  # max_epochs = 3: the third report is the final one
        evaluate(runner, acc=0.1 * epoch)
        runner.epoch = epoch
        hook.after_train_epoch(runner)
    assert [m["final"] for m, _ in sent] == [False, False, True]
    assert sent[1][1] == sorted([CHECKPOINT_FILE, METRICS_FILE])
    assert sent[2][1] == (sorted([CHECKPOINT_FILE, METRICS_FILE]) if checkpoint_final else None)
