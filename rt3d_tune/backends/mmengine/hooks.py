"""The hooks mmengine runs for rt3d-tune: stop on a diverged loss, report to Tune."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.loops import IterBasedTrainLoop

from rt3d_tune.backends.mmengine.losses import nonfinite_losses
from rt3d_tune.backends.report import CHECKPOINT_FILE, Reporter, first_lr
from rt3d_tune.errors import DivergenceError
from rt3d_tune.runner.hooks.logger.base import to_plain

__all__ = ["MMTuneReportHook", "StopOnDivergence"]


@HOOKS.register_module()
class StopOnDivergence(Hook):
    """Stops training with ``DivergenceError`` at the first non-finite logged loss (mmengine
    trains on through NaN), on every rank of a data-parallel run at once."""

    priority = "VERY_LOW"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Mapping[str, Any] | None = None) -> None:
        bad = nonfinite_losses(outputs)
        if bad:
            raise DivergenceError(runner.iter, runner.epoch, bad)


@HOOKS.register_module(name="RT3DTuneReportHook")
class MMTuneReportHook(StopOnDivergence):
    """Reports each validation's metrics to Tune (through ``reporter``, the search's
    Reporter, which owns the checkpoint and final-report rules); stops the trial
    as DIVERGED on a non-finite loss."""

    def __init__(self, reporter: Reporter, rank: int = 0) -> None:
        self.reporter = reporter
        self.rank = rank

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, Any] | None = None) -> None:
        loop = runner.train_loop
        by_epoch = not isinstance(loop, IterBasedTrainLoop)
        done, total = (runner.epoch, loop.max_epochs) if by_epoch else (runner.iter,
                                                                          loop.max_iters)
        interval = max(1, int(getattr(loop, "val_interval", 1)))

        def probe() -> Any:
            from rt3d_tune.backends.mmengine.probe import mmengine_cooldown_probe
            from rt3d_tune.backends.probe import probe_iters

            return mmengine_cooldown_probe(
                runner, probe_iters(int(runner.iter), self.reporter.probe_ratio))

        # meta: the progress done (mmengine's saver adds one epoch, assuming it is
        # called before the loop counts the epoch; here the loop has counted it).
        self.reporter.report_evaluation(
            {name: to_plain(value) for name, value in (metrics or {}).items()},
            fidelity=-(-done // interval), final=done >= total, epoch=int(runner.epoch),
            iteration=int(runner.iter), iters_per_epoch=len(runner.train_dataloader),
            lr=first_lr(runner.optim_wrapper.get_lr()),
            save=lambda folder: runner.save_checkpoint(
                folder, CHECKPOINT_FILE,
                meta={"epoch": int(runner.epoch), "iter": int(runner.iter)}),
            rank=self.rank, probe=probe)
