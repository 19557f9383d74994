"""LoggerHook: when to average the log buffer and hand it to a concrete logger.

Semantics are mmcv 1.7's: ``after_train_iter`` averages the buffer over the last
``interval`` iterations every ``interval`` inner iterations (``by_epoch``) or global
iterations, and at the end of an epoch unless ``ignore_last``; ``after_train_epoch``
logs whatever is ready (that is how the metrics EvalHook puts in the buffer get
logged, with mode 'val'); ``after_val_epoch`` averages and logs the val phase. The
last logger hook clears the buffer's output after logging.

One fix over mmcv: when EvalHook flushes the loggers before an iteration-based
evaluation, the loggers do not average the same iteration a second time (mmcv logs a
duplicate train line that also carries the eval metrics).
"""

from __future__ import annotations

import importlib
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hook import Hook

__all__ = ["LoggerHook", "has_momentum", "import_backend", "to_plain"]

# Keys that are in the log buffer's output but are not metrics to log as such.
_NOT_METRICS = ("time", "data_time", "eval_iter_num")


def import_backend(module: str, hook: str, install: str) -> Any:
    """Import a logger's optional library, or say how to install it.

    Args:
        module: the module to import (``mlflow``, ``wandb``, ``tensorboardX``).
        hook: the hook that needs it, for the message.
        install: the pip requirement that provides it (``rt3d-tune[mlflow]``).

    Raises:
        ConfigError: the library is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(
            f"{hook} needs the {module!r} package, which is not installed ({err})",
            key_path="log_config.hooks",
            hint=f"pip install '{install}', or remove {hook} from log_config.hooks",
        ) from err


def has_momentum(optimizer: Any) -> bool:
    """True when the optimizer (or any optimizer of a dict) has a momentum or betas."""
    optimizers = optimizer.values() if isinstance(optimizer, dict) else [optimizer]
    return any(
        "momentum" in group or "betas" in group
        for opt in optimizers
        for group in getattr(opt, "param_groups", ())
    )


def to_plain(value: Any) -> Any:
    """Turn a value into plain JSON types (numpy and torch scalars, tuples, paths, ...).

    Containers are converted recursively; mapping keys become strings; anything that
    is not a number, string, bool or None becomes its ``str``.
    """
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "to_dict"):
        return to_plain(value.to_dict())
    return str(value)


class LoggerHook(Hook, ABC):
    """Base class of the logger hooks.

    Args:
        interval: log every ``interval`` iterations (inner iterations of the epoch when
            ``by_epoch``, global iterations otherwise); values are averaged over them.
        ignore_last: skip the last iterations of an epoch when fewer than ``interval``.
        reset_flag: clear the buffer's output after logging (set on the last logger
            hook at ``before_run`` in any case).
        by_epoch: the runner is epoch based (iteration counts shown inside the epoch).

    Raises:
        ConfigError: ``interval`` is not a positive int.
    """

    rank_zero_only = True

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise ConfigError(
                f"{type(self).__name__}: the log interval must be a positive int",
                key_path="interval",
                expected="an int >= 1 (iterations)",
                given=interval,
            )
        self.interval = interval
        self.ignore_last = ignore_last
        self.reset_flag = reset_flag
        self.by_epoch = by_epoch
        self._averaged_at: int | None = None

    @abstractmethod
    def log(self, runner: Any) -> Any:
        """Write ``runner.log_buffer.output`` (plus lr, momentum) to the backend."""

    def close_after_error(self, runner: Any) -> None:
        """The run stopped on an exception (a diverged loss, an interrupt): flush and
        close what ``after_run`` would, skip its end-of-run uploads, and mark the
        backend's run as failed where it has that notion. Called by the runner."""

    # what to log -----------------------------------------------------------------
    @staticmethod
    def is_scalar(value: Any) -> bool:
        """A number, a 0-d numpy array or a one-element tensor (bools are not scalars)."""
        if isinstance(value, bool):
            return False
        if isinstance(value, numbers.Number):
            return True
        if isinstance(value, np.ndarray):
            return value.ndim == 0
        return isinstance(value, torch.Tensor) and value.numel() == 1

    @staticmethod
    def get_mode(runner: Any) -> str:
        """'train' for training lines, 'val' for the val phase and for eval metrics.

        Raises:
            ValueError: the runner's mode is neither 'train' nor 'val'.
        """
        if runner.mode == "train":
            return "train" if "time" in runner.log_buffer.output else "val"
        if runner.mode == "val":
            return "val"
        raise ValueError(f"runner mode should be 'train' or 'val', got {runner.mode!r}")

    @staticmethod
    def get_epoch(runner: Any) -> int:
        """The 1-based epoch being trained (train mode) or just trained (val phase).

        Raises:
            ValueError: the runner's mode is neither 'train' nor 'val'.
        """
        if runner.mode == "train":
            return int(runner.epoch) + 1
        if runner.mode == "val":
            return int(runner.epoch)
        raise ValueError(f"runner mode should be 'train' or 'val', got {runner.mode!r}")

    def get_iter(self, runner: Any, inner_iter: bool = False) -> int:
        """The 1-based iteration: inside the epoch when ``inner_iter`` and ``by_epoch``."""
        if self.by_epoch and inner_iter:
            return int(runner.inner_iter) + 1
        return int(runner.iter) + 1

    @staticmethod
    def get_lr_tags(runner: Any) -> dict[str, float]:
        """The first param group's lr: ``{'learning_rate': lr}`` (``learning_rate/<name>``)."""
        lrs = runner.current_lr()
        if isinstance(lrs, dict):
            return {f"learning_rate/{name}": float(value[0]) for name, value in lrs.items()}
        return {"learning_rate": float(lrs[0])}

    @staticmethod
    def get_momentum_tags(runner: Any) -> dict[str, float]:
        """``{'momentum': m}`` like :meth:`get_lr_tags`; empty when the optimizer has none."""
        if not has_momentum(runner.optimizer):
            return {}
        momentums = runner.current_momentum()
        if isinstance(momentums, dict):
            return {f"momentum/{name}": float(value[0]) for name, value in momentums.items()}
        return {"momentum": float(momentums[0])}

    def get_loggable_tags(
        self,
        runner: Any,
        allow_scalar: bool = True,
        allow_text: bool = False,
        add_mode: bool = True,
        tags_to_skip: tuple[str, ...] = _NOT_METRICS,
    ) -> dict[str, Any]:
        """The buffer's output as ``{'<mode>/<name>': value}``, plus the lr and momentum tags."""
        tags: dict[str, Any] = {}
        mode = self.get_mode(runner)
        for name, value in runner.log_buffer.output.items():
            if name in tags_to_skip:
                continue
            if self.is_scalar(value):
                if not allow_scalar:
                    continue
                value = float(to_plain(value))
            elif isinstance(value, str):
                if not allow_text:
                    continue
            else:
                continue
            tags[f"{mode}/{name}" if add_mode else name] = value
        tags.update(self.get_lr_tags(runner))
        tags.update(self.get_momentum_tags(runner))
        return tags

    # stages ------------------------------------------------------------------------
    def before_run(self, runner: Any) -> None:
        for hook in runner.hooks[::-1]:
            if isinstance(hook, LoggerHook):
                hook.reset_flag = True
                break

    def before_epoch(self, runner: Any) -> None:
        runner.log_buffer.clear()

    def _due(self, runner: Any) -> bool:
        if self.by_epoch:
            return self.every_n_inner_iters(runner, self.interval) or (
                self.end_of_epoch(runner) and not self.ignore_last
            )
        return self.every_n_iters(runner, self.interval)

    def _log_and_reset(self, runner: Any) -> None:
        if runner.log_buffer.ready:
            self.log(runner)
            if self.reset_flag:
                runner.log_buffer.clear_output()

    def after_train_iter(self, runner: Any) -> None:
        if self._averaged_at != runner.iter and self._due(runner):
            runner.log_buffer.average(self.interval)
            self._averaged_at = runner.iter
        self._log_and_reset(runner)

    def after_train_epoch(self, runner: Any) -> None:
        self._log_and_reset(runner)

    def after_val_epoch(self, runner: Any) -> None:
        runner.log_buffer.average()
        self.log(runner)
        if self.reset_flag:
            runner.log_buffer.clear_output()
