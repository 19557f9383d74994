"""EMAHook: an exponential moving average of the weights, used for evaluation.

mmcv 1.7 semantics, number for number. The average lives in buffers registered on the
model (``ema_<param name with '.' -> '_'>``), so it is saved in checkpoints. After
every ``interval``-th iteration: ``ema = (1 - m) * ema + m * param`` with
``m = min(momentum**interval, (1 + t) / (warm_up + t))`` (``t`` = 0-based global
iteration). Note that this ``min`` makes the warm-up inert unless ``momentum`` is
large: that is what mmcv does. The EMA weights are swapped into the model at
``after_train_epoch`` (so evaluation and the epoch's checkpoint use them, when their
hooks run after this one) and swapped back at ``before_train_epoch``.
"""

from __future__ import annotations

from typing import Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook

__all__ = ["EMAHook"]


@HOOKS.register_module()
class EMAHook(Hook):
    """Keep an exponential moving average of the model's parameters.

    Args:
        momentum: weight of the new parameter value in each update, in (0, 1).
        interval: update every ``interval`` iterations (the momentum is raised to this
            power to make up for the skipped ones).
        warm_up: iterations of momentum warm-up (see the module docstring).
        resume_from: a checkpoint to resume from once the EMA buffers exist, so that
            they are restored too (``resume_from`` of the config restores the weights
            before this hook has registered the buffers).

    Raises:
        ConfigError: a momentum outside (0, 1) or an interval that is not a positive int.
    """

    def __init__(
        self,
        momentum: float = 0.0002,
        interval: int = 1,
        warm_up: int = 100,
        resume_from: str | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise ConfigError(
                "EMAHook interval must be a positive int",
                key_path="interval",
                expected="an int >= 1 (iterations)",
                given=interval,
            )
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not 0 < momentum < 1
        ):
            raise ConfigError(
                "EMAHook momentum must be in (0, 1)",
                key_path="momentum",
                expected="a float in (0, 1), e.g. 0.0002",
                given=momentum,
            )
        self.momentum = float(momentum) ** interval
        self.interval = interval
        self.warm_up = warm_up
        self.checkpoint = resume_from
        self.param_ema_buffer: dict[str, str] = {}
        self.model_parameters: dict[str, Any] = {}
        self.model_buffers: dict[str, Any] = {}
        # Whether the parameters hold the average now (from after_train_epoch to the next
        # before_train_epoch); a rung probe reads it to train the raw weights.
        self.ema_in_model = False

    def before_run(self, runner: Any) -> None:
        model = getattr(runner.model, "module", runner.model)
        self.model_parameters = dict(model.named_parameters(recurse=True))
        for name, value in self.model_parameters.items():
            # '.' is not allowed in a buffer name
            buffer_name = f"ema_{name.replace('.', '_')}"
            self.param_ema_buffer[name] = buffer_name
            model.register_buffer(buffer_name, value.data.clone())
        self.model_buffers = dict(model.named_buffers(recurse=True))
        if self.checkpoint is not None:
            runner.resume(self.checkpoint)

    def after_train_iter(self, runner: Any) -> None:
        step = runner.iter
        momentum = min(self.momentum, (1 + step) / (self.warm_up + step))
        if step % self.interval != 0:
            return
        for name, parameter in self.model_parameters.items():
            ema = self.model_buffers[self.param_ema_buffer[name]]
            ema.mul_(1 - momentum).add_(parameter.data, alpha=momentum)

    def after_train_epoch(self, runner: Any) -> None:
        self._swap_ema_parameters()
        self.ema_in_model = True

    def before_train_epoch(self, runner: Any) -> None:
        self._swap_ema_parameters()
        self.ema_in_model = False

    def _swap_ema_parameters(self) -> None:
        for name, value in self.model_parameters.items():
            ema = self.model_buffers[self.param_ema_buffer[name]]
            temp = value.data.clone()
            value.data.copy_(ema.data)
            ema.data.copy_(temp)
