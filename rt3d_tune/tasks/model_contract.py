"""The runner's model contract, written once for models that define ``loss`` and
``forward_test``.

The runner calls ``train_step`` and ``val_step`` (same losses; the runner does backward
and the optimizer step, and runs ``val_step`` without gradients) and the evaluation calls
``forward_test`` or ``model(batch, return_loss=False)``. A model that subclasses
:class:`LossModel` writes only ``loss(batch) -> dict(loss, log_vars, num_samples)`` and
``forward_test(batch) -> list of per-sample predictions``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["LossModel"]


class LossModel(nn.Module):
    """``train_step``, ``val_step`` and ``forward`` in terms of ``loss`` and ``forward_test``."""

    def loss(self, data_batch: Any) -> dict[str, Any]:
        """``dict(loss=Tensor, log_vars=dict[str, float], num_samples=int)`` of a batch."""
        raise NotImplementedError

    def forward_test(self, data_batch: Any) -> list[Any]:
        """One prediction per sample of the batch."""
        raise NotImplementedError

    def train_step(self, data_batch: Any, optimizer: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Losses of one training batch; the runner does backward and the optimizer step."""
        return self.loss(data_batch)

    def val_step(self, data_batch: Any, optimizer: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Losses of one validation batch (the runner calls it without gradients)."""
        return self.loss(data_batch)

    def forward(self, data_batch: Any, return_loss: bool = True) -> Any:
        """``loss(batch)`` when ``return_loss``, else ``forward_test(batch)``."""
        return self.loss(data_batch) if return_loss else self.forward_test(data_batch)
