"""The Hook base class: no-op stages and the helpers hooks use to decide when to act.

The runner a hook sees has these attributes (see ``rt3d_tune.runner.base``):
``model``, ``optimizer`` (an Optimizer, or a dict of them), ``data_loader`` (the
current phase's), ``epoch`` (0-based, epochs finished), ``iter`` (0-based global train
iteration), ``inner_iter`` (iteration inside the epoch), ``max_epochs``,
``max_iters``, ``mode`` ('train' or 'val'), ``work_dir``, ``logger``,
``log_buffer``, ``outputs`` (what the last train_step/val_step returned), ``meta``
(dict saved in checkpoints; ``meta['hook_msgs']`` is hook state that survives
resume), ``timestamp``, ``seed``, ``device``; and ``current_lr()`` and
``current_momentum()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Hook", "schedule_progress"]


class Hook:
    """Base class of every hook. Override the stages you need; the rest do nothing.

    ``before_train_epoch`` and ``before_val_epoch`` call ``before_epoch`` (and likewise
    for ``after_*`` and the ``*_iter`` stages), so a hook that does not care about the
    phase overrides the generic stage.
    """

    # Hooks that only write (logs, checkpoints, traces) run on rank 0 alone in a
    # data-parallel run (mmcv's ``master_only``).
    rank_zero_only = False

    stages = (
        "before_run",
        "before_train_epoch",
        "before_train_iter",
        "after_train_iter",
        "after_train_epoch",
        "before_val_epoch",
        "before_val_iter",
        "after_val_iter",
        "after_val_epoch",
        "after_run",
    )

    def before_run(self, runner: Any) -> None:
        pass

    def after_run(self, runner: Any) -> None:
        pass

    def before_epoch(self, runner: Any) -> None:
        pass

    def after_epoch(self, runner: Any) -> None:
        pass

    def before_iter(self, runner: Any) -> None:
        pass

    def after_iter(self, runner: Any) -> None:
        pass

    def before_train_epoch(self, runner: Any) -> None:
        self.before_epoch(runner)

    def before_val_epoch(self, runner: Any) -> None:
        self.before_epoch(runner)

    def after_train_epoch(self, runner: Any) -> None:
        self.after_epoch(runner)

    def after_val_epoch(self, runner: Any) -> None:
        self.after_epoch(runner)

    def before_train_iter(self, runner: Any) -> None:
        self.before_iter(runner)

    def before_val_iter(self, runner: Any) -> None:
        self.before_iter(runner)

    def after_train_iter(self, runner: Any) -> None:
        self.after_iter(runner)

    def after_val_iter(self, runner: Any) -> None:
        self.after_iter(runner)

    # when to act --------------------------------------------------------------
    @staticmethod
    def every_n_epochs(runner: Any, n: int) -> bool:
        return (runner.epoch + 1) % n == 0 if n > 0 else False

    @staticmethod
    def every_n_inner_iters(runner: Any, n: int) -> bool:
        return (runner.inner_iter + 1) % n == 0 if n > 0 else False

    @staticmethod
    def every_n_iters(runner: Any, n: int) -> bool:
        return (runner.iter + 1) % n == 0 if n > 0 else False

    @staticmethod
    def end_of_epoch(runner: Any) -> bool:
        return runner.inner_iter + 1 == len(runner.data_loader)

    @staticmethod
    def is_last_epoch(runner: Any) -> bool:
        return runner.epoch + 1 == runner.max_epochs

    @staticmethod
    def is_last_iter(runner: Any) -> bool:
        return runner.iter + 1 == runner.max_iters

    def get_triggered_stages(self) -> list[str]:
        """The stages this hook overrides (what the runner logs in the hook order)."""
        generic = {
            "before_epoch": ("before_train_epoch", "before_val_epoch"),
            "after_epoch": ("after_train_epoch", "after_val_epoch"),
            "before_iter": ("before_train_iter", "before_val_iter"),
            "after_iter": ("after_train_iter", "after_val_iter"),
        }
        triggered: set[str] = set()
        for stage in self.stages:
            if getattr(type(self), stage) is not getattr(Hook, stage):
                triggered.add(stage)
        for name, specific in generic.items():
            if getattr(type(self), name) is not getattr(Hook, name):
                triggered.update(specific)
        return [stage for stage in self.stages if stage in triggered]


def schedule_progress(runner: Any, by_epoch: bool) -> tuple[int, int]:
    """``(p, P)`` of the spec's schedules: (epoch, max_epochs) when ``by_epoch``, else
    (global iteration, max_iters), both 0-based progress."""
    if by_epoch:
        return runner.epoch, runner.max_epochs
    return runner.iter, runner.max_iters
