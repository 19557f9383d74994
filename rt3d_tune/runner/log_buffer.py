"""LogBuffer: the per-interval store of logged values (mmcv semantics)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["LogBuffer"]


class LogBuffer:
    """Collects scalar values per key and averages them, weighted by a count.

    ``update({'loss': 0.3}, count=4)`` records one value with weight 4 (the number of
    samples of the batch); ``average(n)`` writes the weighted mean of the last ``n``
    values of every key (all of them when ``n`` is 0) to ``output`` and sets ``ready``.
    Logger hooks read ``output`` and then call ``clear_output()``.
    """

    def __init__(self) -> None:
        self.val_history: OrderedDict[str, list[float]] = OrderedDict()
        self.n_history: OrderedDict[str, list[int]] = OrderedDict()
        self.output: OrderedDict[str, Any] = OrderedDict()
        self.ready = False

    def clear(self) -> None:
        """Forget every value and the output."""
        self.val_history.clear()
        self.n_history.clear()
        self.clear_output()

    def clear_output(self) -> None:
        """Forget the averaged output (the history stays)."""
        self.output.clear()
        self.ready = False

    def update(self, vars: Mapping[str, Any], count: int = 1) -> None:
        """Record one value per key, with weight ``count``.

        Raises:
            TypeError: ``vars`` is not a mapping.
        """
        if not isinstance(vars, (dict, Mapping)):  # dict first: no ABC check per iteration
            raise TypeError(f"LogBuffer.update needs a dict, got {type(vars).__name__}")
        for key, var in vars.items():
            if key not in self.val_history:
                self.val_history[key] = []
                self.n_history[key] = []
            self.val_history[key].append(var)
            self.n_history[key].append(count)

    def average(self, n: int = 0) -> None:
        """Average the latest ``n`` values of every key (all when ``n`` is 0) into ``output``.

        Raises:
            ValueError: ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"LogBuffer.average needs n >= 0, got {n}")
        for key in self.val_history:
            values = np.array(self.val_history[key][-n:])
            nums = np.array(self.n_history[key][-n:])
            self.output[key] = float(np.sum(values * nums) / np.sum(nums))
        self.ready = True
