"""The tutorial's ``MyOptimizer`` with arguments a, b, c: SGD with momentum and decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from rt3d_tune.registry import OPTIMIZERS


@OPTIMIZERS.register_module()
class MyOptimizer(Optimizer):
    """SGD-like: ``buf = b * buf + (grad + c * p)``, ``p -= lr * buf``.

    Args:
        params: parameters or parameter groups.
        a: learning rate (kept in each group as ``lr``, so LR schedules drive it).
        b: momentum factor (kept as ``momentum``, so momentum schedules drive it).
        c: weight decay (kept as ``weight_decay``).
    """

    def __init__(self, params: Iterable[Any], a: float, b: float, c: float) -> None:
        if a < 0 or not 0 <= b < 1 or c < 0:
            raise ValueError(
                f"MyOptimizer needs a >= 0, 0 <= b < 1, c >= 0 but got a={a}, b={b}, c={c}"
            )
        self.a, self.b, self.c = a, b, c
        super().__init__(params, dict(lr=a, momentum=b, weight_decay=c))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                direction = param.grad.add(param, alpha=group["weight_decay"])
                state = self.state[param]
                if "momentum_buffer" in state:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(direction)
                else:
                    state["momentum_buffer"] = direction.clone()
                param.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
