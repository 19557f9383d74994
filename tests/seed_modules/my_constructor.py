"""The tutorial's ``MyOptimizerConstructor``: builds the configured optimizer for a model."""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.optim import Optimizer

from rt3d_tune.registry import OPTIMIZER_BUILDERS, OPTIMIZERS, build_from_cfg

from .my_optimizer import MyOptimizer

__all__ = ["MyOptimizer", "MyOptimizerConstructor"]


@OPTIMIZER_BUILDERS.register_module()
class MyOptimizerConstructor:
    """Build ``optimizer_cfg`` (any registered optimizer) over all of a model's parameters.

    Args:
        optimizer_cfg: the ``optimizer`` config without ``constructor``/``paramwise_cfg``.
        paramwise_cfg: kept as given (this constructor applies no per-parameter rules).
    """

    def __init__(self, optimizer_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None
                 ) -> None:
        self.optimizer_cfg = optimizer_cfg
        self.paramwise_cfg = paramwise_cfg
        self.calls = 0

    def __call__(self, model: nn.Module) -> Optimizer:
        self.calls += 1
        return build_from_cfg(self.optimizer_cfg, OPTIMIZERS, dict(params=model.parameters()),
                              key_path="optimizer")
