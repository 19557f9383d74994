"""A one-line progress bar for ``rt3d-tune train`` on a terminal: iterations, ETA, loss."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rt3d_tune.runner.hook import Hook

__all__ = ["ProgressBarHook", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1:02:05'``; ``65`` -> ``'1:05'``."""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBarHook(Hook):
    """Redraws one line after every train iteration; prints each evaluation's metrics above it.

    Args:
        stream: where to draw (a terminal).
        width: bar width in characters.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stdout
        self.width = width
        self.start_time = 0.0
        self.start_iter = 0
        self.eval_round = 0

    def before_run(self, runner: Any) -> None:
        self.start_time = time.time()
        self.start_iter = runner.iter
        self.eval_round = int(getattr(runner, "eval_round", 0))

    def line(self, runner: Any) -> str:
        """The bar for the runner's current state."""
        done = runner.iter + 1
        total = max(int(runner.max_iters or done), 1)
        filled = min(self.width, self.width * done // total)
        elapsed = time.time() - self.start_time
        rate = (done - self.start_iter) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        loss = (runner.outputs.get("log_vars") or {}).get("loss")
        loss_text = f" loss {float(loss):.4g}" if loss is not None else ""
        return (
            f"epoch {runner.epoch + 1} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done}/{total} ETA {format_duration(eta)}{loss_text}"
        )

    def after_train_iter(self, runner: Any) -> None:
        self.stream.write("\r" + self.line(runner) + "\033[K")
        self.stream.flush()
        self._print_eval(runner)

    def after_train_epoch(self, runner: Any) -> None:
        self._print_eval(runner)

    def _print_eval(self, runner: Any) -> None:
        current = int(getattr(runner, "eval_round", 0))
        if current == self.eval_round:
            return
        self.eval_round = current
        metrics = ", ".join(f"{k}: {v:.4g}" for k, v in getattr(runner, "eval_results", {}).items())
        self.stream.write(f"\r\033[Kevaluation {current}: {metrics}\n")
        self.stream.flush()

    def after_run(self, runner: Any) -> None:
        self.stream.write("\n")
        self.stream.flush()
