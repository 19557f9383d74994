"""IterTimerHook: iteration time and data-loading time into the log buffer."""

from __future__ import annotations

import time
from typing import Any

from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook

__all__ = ["IterTimerHook"]


@HOOKS.register_module()
class IterTimerHook(Hook):
    """Logs ``data_time`` (waiting for the batch) and ``time`` (the whole iteration), in seconds.

    On a GPU, ``time`` measures the host side: kernels still queued are counted in a
    later iteration.
    """

    def __init__(self) -> None:
        self.t = time.time()

    def before_epoch(self, runner: Any) -> None:
        self.t = time.time()

    def before_iter(self, runner: Any) -> None:
        runner.log_buffer.update({"data_time": time.time() - self.t})

    def after_iter(self, runner: Any) -> None:
        runner.log_buffer.update({"time": time.time() - self.t})
        self.t = time.time()
