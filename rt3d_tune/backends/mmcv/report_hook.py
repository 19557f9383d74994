"""TuneReportHook: the mmcv runner's evaluations, into the trial's :class:`Reporter`.

Runs at VERY_LOW priority, after EvalHook has put its metrics in
``runner.eval_results`` and bumped ``runner.eval_round`` in the same stage: an
epoch-based runner reports after the epoch, an iteration-based one after the iteration
that evaluated; an evaluation round is reported once. At a rung it runs the cool-down
probe (``backends.mmcv.probe.cooldown_probe``) towards the LR hook's final LR.
"""

from __future__ import annotations

from typing import Any

from rt3d_tune.backends.report import CHECKPOINT_FILE, Reporter, first_lr
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook

__all__ = ["TuneReportHook"]


@HOOKS.register_module()
class TuneReportHook(Hook):
    """Feeds every evaluation of an mmcv-style runner to ``reporter``.

    Args:
        reporter: the trial's :class:`~rt3d_tune.backends.report.Reporter`.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.last_round = 0

    def before_run(self, runner: Any) -> None:
        # After a resume the runner restored its eval round; do not report it again.
        self.last_round = int(getattr(runner, "eval_round", 0))

    def after_train_epoch(self, runner: Any) -> None:
        # EvalHook ran in this stage before us; the runner counts this epoch on return.
        final = runner.epoch + 1 >= runner.max_epochs
        self._maybe_report(runner, fidelity=runner.epoch + 1, epoch=runner.epoch + 1, final=final,
                           next_iter=runner.iter)

    def after_train_iter(self, runner: Any) -> None:
        if int(getattr(runner, "eval_round", 0)) != self.last_round:
            final = runner.max_iters is not None and runner.iter + 1 >= runner.max_iters
            self._maybe_report(
                runner, fidelity=int(runner.eval_round), epoch=runner.epoch, final=final,
                next_iter=runner.iter + 1,
            )

    def _probe(self, runner: Any, next_iter: int) -> Any:
        """A cool-down probe from here (a ``ProbeResult``)."""
        from rt3d_tune.backends.mmcv.probe import cooldown_probe
        from rt3d_tune.backends.probe import probe_iters
        from rt3d_tune.runner.hooks.evaluation import EvalHook
        from rt3d_tune.runner.hooks.lr_updater import LrUpdaterHook

        lr_hook = next((h for h in runner.hooks if isinstance(h, LrUpdaterHook)), None)
        eval_hook = next(h for h in runner.hooks if isinstance(h, EvalHook))
        return cooldown_probe(
            runner, probe_iters(next_iter, self.reporter.probe_ratio),
            lr_hook.final_lr if lr_hook is not None else runner.current_lr(),
            lambda: eval_hook.compute_metrics(runner), start_iter=next_iter,
        )

    def _maybe_report(self, runner: Any, fidelity: int, epoch: int, final: bool,
                      next_iter: int) -> None:
        eval_round = int(getattr(runner, "eval_round", 0))
        if eval_round == self.last_round:
            return
        self.last_round = eval_round
        self.reporter.report_evaluation(
            getattr(runner, "eval_results", None) or {}, fidelity=fidelity, final=final,
            epoch=epoch, iteration=int(runner.iter) + 1,
            iters_per_epoch=len(runner.data_loader), lr=first_lr(runner.current_lr()),
            save=lambda folder: runner.save_checkpoint(folder, filename_tmpl=CHECKPOINT_FILE,
                                                       create_symlink=False),
            rank=getattr(runner, "rank", 0), probe=lambda: self._probe(runner, next_iter))
