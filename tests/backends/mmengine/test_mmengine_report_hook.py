"""The hook an mmengine trial reports through: fidelity in validation rounds, a
checkpoint with each report but the last, the last deferred, a NaN loss a divergence."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("mmengine")

import torch

from rt3d_tune.backends.mmengine.hooks import MMTuneReportHook
from rt3d_tune.backends.report import CHECKPOINT_FILE, Reporter
from rt3d_tune.errors import DivergenceError


class _Runner(SimpleNamespace):
    """What the hook reads of mmengine's Runner: an epoch loop of 4 epochs x 5 iterations,
    validating every ``val_interval`` epochs."""

    def __init__(self, val_interval: int) -> None:
        super().__init__(
            epoch=0, iter=0, train_dataloader=range(5),
            train_loop=SimpleNamespace(max_epochs=4, max_iters=20, val_interval=val_interval),
            optim_wrapper=SimpleNamespace(get_lr=lambda: {"lr": [0.01]}),
            saved=[],
        )

    def save_checkpoint(self, folder: str, filename: str, meta: dict[str, Any]) -> None:
        self.saved.append((filename, dict(meta)))
        Path(folder, filename).write_bytes(b"checkpoint")


def _hook() -> tuple[MMTuneReportHook, list[tuple[dict[str, Any], str | None]]]:
    sent: list[tuple[dict[str, Any], str | None]] = []

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        files = sorted(p.name for p in Path(checkpoint_dir).iterdir()) if checkpoint_dir else None
        sent.append((metrics, files))

    reporter = Reporter("accuracy", extra={"device": "cpu"}, report=report,
                              defer_final=True)
    return MMTuneReportHook(reporter), sent


def test_each_validation_round_is_reported_with_a_checkpoint_and_the_last_is_deferred():
    hook, sent = _hook()
    runner = _Runner(val_interval=2)
    for epoch, accuracy in ((2, 0.4), (4, 0.6)):  # mmengine validates after epochs 2 and 4
        runner.epoch, runner.iter = epoch, epoch * 5
        hook.after_val_epoch(runner, {"accuracy": torch.tensor(accuracy)})
    (first, files), = sent  # the last report waits for the end of training
    assert first["training_iteration"] == 1 and first["epoch"] == 2 and not first["final"]
    assert first["accuracy"] == pytest.approx(0.4) and first["device"] == "cpu"
    assert files == sorted([CHECKPOINT_FILE, "metrics.json"])
    # The checkpoint records the progress done, not one epoch more (mmengine's default).
    assert runner.saved == [(CHECKPOINT_FILE, {"epoch": 2, "iter": 10})]
    last = hook.reporter.pending_final
    assert last["training_iteration"] == 2 and last["final"] and last["iteration"] == 20


def test_a_metric_the_evaluator_does_not_produce_stops_the_search():
    hook, _ = _hook()
    runner = _Runner(val_interval=1)
    runner.epoch = 1
    with pytest.raises(Exception, match=r"did not produce the metric 'accuracy'.*top1"):
        hook.after_val_epoch(runner, {"top1": 0.5})


def test_a_non_finite_loss_is_a_divergence():
    hook, _ = _hook()
    runner = _Runner(val_interval=1)
    runner.epoch, runner.iter = 1, 7
    hook.after_train_iter(runner, 2, outputs={"loss": torch.tensor(1.5), "acc": 0.5})
    with pytest.raises(DivergenceError) as err:
        hook.after_train_iter(runner, 2, outputs={"loss": torch.tensor(math.nan), "acc": 0.5})
    assert err.value.iteration == 7 and err.value.epoch == 1
    assert math.isnan(err.value.values["loss"]) and "acc" not in err.value.values


def test_a_nan_on_one_rank_stops_every_rank(tmp_path):
    import dist_fixtures

    dist_fixtures.spawn_ranks(dist_fixtures.mmengine_divergence_rank, 2, str(tmp_path))
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["True", "True"]
