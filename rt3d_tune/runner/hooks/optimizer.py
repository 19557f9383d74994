"""Optimizer hooks: backward, gradient clipping, step; accumulation and mixed precision.

``optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))`` builds
OptimizerHook; ``type='GradientCumulativeOptimizerHook', cumulative_iters=k``,
``type='Fp16OptimizerHook', loss_scale=...`` and ``GradientCumulativeFp16OptimizerHook``
the others. All of them accept an optimizer dict (name -> Optimizer).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner._torch_private import norm_classes
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runtime_checks import check_max_norm

__all__ = [
    "Fp16OptimizerHook",
    "GradientCumulativeFp16OptimizerHook",
    "GradientCumulativeOptimizerHook",
    "OptimizerHook",
]


# Bumped whenever any module registers a parameter or a child module (the public ways a
# model's parameter set changes), so a hook can keep its model's parameter list between
# iterations instead of walking every module each time. Counted by torch's global
# module-registration hooks (public API: torch.nn.modules.module, torch >= 2.0), installed
# once per process by the first hook that asks, never at import.
_registrations: int | None = None


def _count_registration(*_args: Any) -> None:
    global _registrations
    _registrations = (_registrations or 0) + 1


def _registration_count() -> int:
    """Parameters and modules registered since the count started (now, if not yet)."""
    global _registrations
    if _registrations is None:
        _registrations = 0
        torch.nn.modules.module.register_module_parameter_registration_hook(_count_registration)
        torch.nn.modules.module.register_module_module_registration_hook(_count_registration)
    return _registrations


def _optimizers(optimizer: Any) -> list[torch.optim.Optimizer]:
    return list(optimizer.values()) if isinstance(optimizer, Mapping) else [optimizer]


def _check_grad_clip(grad_clip: Any) -> dict[str, Any] | None:
    if grad_clip is None:
        return None
    if (
        not isinstance(grad_clip, Mapping)
        or "max_norm" not in grad_clip
        or set(grad_clip) - {"max_norm", "norm_type", "error_if_nonfinite", "foreach"}
    ):
        raise ConfigError(
            "bad grad_clip",
            key_path="optimizer_config.grad_clip",
            expected="None or dict(max_norm=..., norm_type=2)",
            given=grad_clip,
        )
    for key in ("max_norm", "norm_type"):
        value = grad_clip.get(key, 2)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)) and value != "inf":
            raise ConfigError(
                f"grad_clip.{key} must be a number",
                key_path=f"optimizer_config.grad_clip.{key}",
                expected=(
                    "a number ('inf' for the max norm type)" if key == "norm_type" else "a number"
                ),
                given=value,
                hint="write numbers without quotes" if isinstance(value, str) else None,
            )
    check_max_norm(grad_clip["max_norm"], "optimizer_config.grad_clip.max_norm")
    return dict(grad_clip)



@HOOKS.register_module()
class OptimizerHook(Hook):
    """zero_grad, backward, clip (logging ``grad_norm``), step: after each train iteration.

    Args:
        grad_clip: None, or ``dict(max_norm=, norm_type=2)`` for ``clip_grad_norm_``.
        detect_anomalous_params: log the parameters that got no gradient from the loss
            (slow: walks the autograd graph every iteration; for debugging).

    Raises:
        ConfigError: a malformed grad_clip.
    """

    def __init__(
        self, grad_clip: dict[str, Any] | None = None, detect_anomalous_params: bool = False
    ) -> None:
        self.grad_clip = _check_grad_clip(grad_clip)
        self.detect_anomalous_params = detect_anomalous_params

    # pieces the variants override ---------------------------------------------------
    def backward(self, runner: Any, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, runner: Any) -> None:
        """Clip (when configured) and step every optimizer."""
        self.clip_and_log(runner)
        for opt in _optimizers(runner.optimizer):
            opt.step()

    # shared -------------------------------------------------------------------------
    def clip_grads(self, params: Iterable[nn.Parameter]) -> torch.Tensor | None:
        params = [p for p in params if p.requires_grad and p.grad is not None]
        if params and self.grad_clip is not None:
            return clip_grad_norm_(params, **self.grad_clip)
        return None

    def model_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """``list(model.parameters())``, walked again only after a module or parameter
        was registered anywhere (or for another model)."""
        key = (id(model), _registration_count())
        if getattr(self, "_params_key", None) != key:
            self._params = list(model.parameters())
            self._params_key = key
        return self._params

    def clip_and_log(self, runner: Any) -> None:
        if self.grad_clip is None:
            return
        grad_norm = self.clip_grads(self.model_parameters(runner.model))
        if grad_norm is not None:
            runner.log_buffer.update(
                {"grad_norm": float(grad_norm)}, runner.outputs.get("num_samples", 1)
            )

    def zero_grad(self, runner: Any) -> None:
        for opt in _optimizers(runner.optimizer):
            opt.zero_grad()

    def after_train_iter(self, runner: Any) -> None:
        self.zero_grad(runner)
        if self.detect_anomalous_params:
            self.detect_anomalous_parameters(runner.outputs["loss"], runner)
        self.backward(runner, runner.outputs["loss"])
        self.step(runner)

    def detect_anomalous_parameters(self, loss: torch.Tensor, runner: Any) -> None:
        """Log every parameter with requires_grad that the loss does not depend on."""
        reached: set[Any] = set()
        stack = [loss.grad_fn]
        while stack:
            fn = stack.pop()
            if fn is None or fn in reached:
                continue
            reached.add(fn)
            if hasattr(fn, "variable"):
                reached.add(fn.variable)
            stack.extend(next_fn for next_fn, _ in fn.next_functions)
        for name, param in runner.model.named_parameters():
            if param.requires_grad and param not in reached:
                runner.logger.error(
                    "%s with shape %s is not in the computational graph", name, tuple(param.size())
                )


@HOOKS.register_module()
class GradientCumulativeOptimizerHook(OptimizerHook):
    """Accumulate gradients over ``cumulative_iters`` iterations, then step.

    The loss is divided by ``cumulative_iters``; the last stretch of training, when
    ``max_iters`` is not a multiple, is divided by its own length and steps on the
    last iteration. Stretches are aligned to multiples of ``cumulative_iters`` of the
    global iteration (mmcv compares against the residual count after a resume, which
    divides by the wrong factor; here a resume at iteration r continues the same
    stretches a straight run would use). A resume mid-stretch loses that stretch's
    partial gradient, and a warning says so.

    Args:
        cumulative_iters: iterations per optimizer step (>= 1).
        **kwargs: OptimizerHook's arguments.

    Raises:
        ConfigError: cumulative_iters is not a positive int.
    """

    def __init__(self, cumulative_iters: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(cumulative_iters, int)
            or isinstance(cumulative_iters, bool)
            or cumulative_iters < 1
        ):
            raise ConfigError(
                "cumulative_iters must be a positive int",
                key_path="optimizer_config.cumulative_iters",
                given=cumulative_iters,
            )
        self.cumulative_iters = cumulative_iters
        self.divisible_iters = 0
        self.remainder_iters = 0
        self.initialized = False

    def _init(self, runner: Any) -> None:
        if runner.iter % self.cumulative_iters != 0:
            runner.logger.warning(
                "resumed at iteration %d, not a multiple of cumulative_iters=%d: the gradient "
                "of the iterations before it in this stretch is lost",
                runner.iter,
                self.cumulative_iters,
            )
        if self.cumulative_iters > 1 and any(
            isinstance(m, norm_classes("batch")) for m in runner.model.modules()
        ):
            runner.logger.warning(
                "GradientCumulativeOptimizerHook may slightly decrease performance "
                "if the model has BatchNorm layers"
            )
        self.divisible_iters = runner.max_iters // self.cumulative_iters * self.cumulative_iters
        self.remainder_iters = runner.max_iters - self.divisible_iters
        self.initialized = True

    def after_train_iter(self, runner: Any) -> None:
        if not self.initialized:
            self._init(runner)
        factor = (
            self.cumulative_iters if runner.iter < self.divisible_iters else self.remainder_iters
        )
        self.backward(runner, runner.outputs["loss"] / factor)
        if self.every_n_iters(runner, self.cumulative_iters) or self.is_last_iter(runner):
            self.step(runner)
            self.zero_grad(runner)


def _autocast_factory(device_type: str, dtype: torch.dtype) -> Any:
    return functools.partial(torch.autocast, device_type=device_type, dtype=dtype)


@HOOKS.register_module()
class Fp16OptimizerHook(OptimizerHook):
    """Mixed precision: autocast around train_step, and a gradient scaler on CUDA.

    On CUDA the forward runs under float16 autocast and the loss goes through
    ``torch.amp.GradScaler`` (``loss_scale='dynamic'``: the default dynamic scaler; a
    number: a fixed scale; a dict: GradScaler arguments such as ``init_scale``,
    ``growth_interval``). On CPU, bfloat16 autocast runs instead, with no scaler
    (bfloat16 has float32's range); the log says which one runs. The scaler state is
    kept in ``runner.meta['fp16']`` so it survives resume.

    Args:
        loss_scale: 'dynamic', a positive number, or a dict of GradScaler arguments.
        **kwargs: OptimizerHook's arguments.

    Raises:
        ConfigError: any other loss_scale.
    """

    def __init__(self, loss_scale: str | float | dict[str, Any] = "dynamic", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._static_scale: float | None = None
        if loss_scale == "dynamic":
            self._scaler_args: dict[str, Any] = {}
        elif (
            isinstance(loss_scale, (int, float))
            and not isinstance(loss_scale, bool)
            and loss_scale > 0
        ):
            self._static_scale = float(loss_scale)
            self._scaler_args = {"init_scale": float(loss_scale)}
        elif isinstance(loss_scale, Mapping):
            self._scaler_args = dict(loss_scale)
        else:
            raise ConfigError(
                "bad loss_scale",
                key_path="optimizer_config.loss_scale",
                expected="'dynamic', a positive number, or a dict of GradScaler arguments",
                given=loss_scale,
            )
        self.loss_scaler: torch.amp.GradScaler | None = None

    def before_run(self, runner: Any) -> None:
        if runner.device.type == "cuda":
            try:
                self.loss_scaler = torch.amp.GradScaler("cuda", **self._scaler_args)
            except TypeError as err:
                raise ConfigError(
                    f"bad GradScaler arguments: {err}",
                    key_path="optimizer_config.loss_scale",
                    given=self._scaler_args,
                ) from err
            state = runner.meta.get("fp16", {}).get("loss_scaler")
            if state:
                self.loss_scaler.load_state_dict(state)
            runner.autocast = _autocast_factory("cuda", torch.float16)
            runner.logger.info(
                "mixed precision: float16 autocast on CUDA with a %s GradScaler",
                "fixed" if self._static_scale is not None else "dynamic",
            )
        else:
            runner.autocast = _autocast_factory(runner.device.type, torch.bfloat16)
            runner.logger.info(
                "mixed precision: bfloat16 autocast on %s, no loss scaling "
                "(float16 with a GradScaler needs CUDA)",
                runner.device.type,
            )

    def backward(self, runner: Any, loss: torch.Tensor) -> None:
        if self.loss_scaler is None:
            loss.backward()
        else:
            self.loss_scaler.scale(loss).backward()

    def step(self, runner: Any) -> None:
        if self.loss_scaler is None:
            super().step(runner)
            return
        optimizers = _optimizers(runner.optimizer)
        for opt in optimizers:
            self.loss_scaler.unscale_(opt)
        self.clip_and_log(runner)
        for opt in optimizers:
            self.loss_scaler.step(opt)
        self.loss_scaler.update(self._static_scale)
        runner.meta.setdefault("fp16", {})["loss_scaler"] = self.loss_scaler.state_dict()

    def after_run(self, runner: Any) -> None:
        runner.autocast = None


@HOOKS.register_module()
class GradientCumulativeFp16OptimizerHook(GradientCumulativeOptimizerHook, Fp16OptimizerHook):
    """Gradient accumulation and mixed precision together (the arguments of both)."""
