"""A fake runner for the LR/momentum hook tests: the attributes the hooks read, and the
stage order of the epoch-based runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def params(n: int = 1) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(1)) for _ in range(n)]


class FakeRunner:
    """``optimizer`` (one or a dict), ``epoch``, ``iter``, ``max_epochs``, ``max_iters``,
    ``data_loader`` (a range of ``iters_per_epoch``)."""

    def __init__(self, optimizer: Any, max_epochs: int = 3, iters_per_epoch: int = 4) -> None:
        self.optimizer = optimizer
        self.max_epochs = max_epochs
        self.max_iters = max_epochs * iters_per_epoch
        self.data_loader = range(iters_per_epoch)
        self.epoch = 0
        self.iter = 0
        self.inner_iter = 0


def drive(runner: FakeRunner, hooks: list[Any], until_iter: int | None = None,
          record: Callable[[FakeRunner], Any] | None = None) -> list[Any]:
    """Run the epoch runner's stages from ``runner.epoch``/``runner.iter`` on, calling
    ``record(runner)`` after each before_train_iter; stop before ``until_iter``."""
    out: list[Any] = []
    for hook in hooks:
        hook.before_run(runner)
    stop = runner.max_iters if until_iter is None else until_iter
    while runner.epoch < runner.max_epochs and runner.iter < stop:
        for hook in hooks:
            hook.before_train_epoch(runner)
        for inner in range(len(runner.data_loader)):
            if runner.iter >= stop:
                return out
            runner.inner_iter = inner
            for hook in hooks:
                hook.before_train_iter(runner)
            if record is not None:
                out.append(record(runner))
            runner.iter += 1
        runner.epoch += 1
    return out
