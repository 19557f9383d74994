"""TensorboardLoggerHook: scalars (and text) to TensorBoard event files via tensorboardX.

Tags are mmcv's: ``train/<name>`` and ``val/<name>`` for the buffer's values (eval
metrics arrive as ``val/<metric>``), ``learning_rate`` and ``momentum`` (with
``/<optimizer name>`` for dict optimizers); the step is the 1-based global iteration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hooks.logger.base import LoggerHook, import_backend

__all__ = ["TensorboardLoggerHook"]


@HOOKS.register_module()
class TensorboardLoggerHook(LoggerHook):
    """Write TensorBoard event files.

    Args:
        log_dir: where the event files go; default ``work_dir/tf_logs``.
        interval, ignore_last, reset_flag, by_epoch: as for :class:`LoggerHook`.

    Raises:
        ConfigError: (at ``before_run``) tensorboardX is not installed.
    """

    def __init__(
        self,
        log_dir: str | None = None,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
    ) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.log_dir = log_dir
        self.writer: Any = None

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        tensorboardx = import_backend("tensorboardX", type(self).__name__, "tensorboardX")
        if self.log_dir is None:
            self.log_dir = str(Path(runner.work_dir) / "tf_logs")
        self.writer = tensorboardx.SummaryWriter(self.log_dir)

    def log(self, runner: Any) -> None:
        step = self.get_iter(runner)
        for tag, value in self.get_loggable_tags(runner, allow_text=True).items():
            if isinstance(value, str):
                self.writer.add_text(tag, value, step)
            else:
                self.writer.add_scalar(tag, value, step)

    def after_run(self, runner: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close_after_error(self, runner: Any) -> None:
        self.after_run(runner)
