"""A tiny linear model and dataset for the runner tests, registered under test-only names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from rt3d_tune.registry import DATASETS, HOOKS, MODELS
from rt3d_tune.runner.hook import Hook

IN_DIM = 4


@DATASETS.register_module(force=True)
class ToyRegression(Dataset):
    """y = x @ w_true + noise, seeded; ``evaluate`` returns the mean squared error."""

    def __init__(self, length: int = 16, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(length, IN_DIM, generator=gen)
        w_true = torch.arange(1.0, IN_DIM + 1).unsqueeze(1)
        self.y = self.x @ w_true + 0.1 * torch.randn(length, 1, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}

    def evaluate(self, results: list[Any], **kwargs: Any) -> dict[str, float]:
        preds = torch.stack([torch.as_tensor(r) for r in results]).reshape(-1, 1)
        return {"mse": float(((preds - self.y) ** 2).mean())}


@MODELS.register_module(force=True)
class ToyLinear(nn.Module):
    """A linear regressor following the model contract; ``nan_at``: the loss is NaN at that call."""

    def __init__(self, nan_at: int | None = None, norm: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(IN_DIM, 1)
        self.norm = nn.BatchNorm1d(IN_DIM) if norm else None
        self.nan_at = nan_at
        self.calls = 0
        self.autocast_dtypes: list[torch.dtype | None] = []

    def forward(self, batch: dict[str, torch.Tensor], return_loss: bool = True) -> Any:
        x = batch["x"]
        if self.norm is not None:
            x = self.norm(x)
        return self.fc(x)

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        device = batch["x"].device.type
        self.autocast_dtypes.append(
            torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        )
        pred = self(batch)
        loss = ((pred.float() - batch["y"]) ** 2).mean()
        if self.nan_at is not None and self.calls == self.nan_at:
            loss = loss * float("nan")
        self.calls += 1
        return {
            "loss": loss,
            "log_vars": {"loss": float(loss.detach())},
            "num_samples": len(batch["x"]),
        }

    def train_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        return self._step(batch)

    def val_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        return self._step(batch)

    def forward_test(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return list(self(batch).detach().cpu())


@HOOKS.register_module(force=True)
class RecordHook(Hook):
    """Records (iter, loss, lr) after each train iteration, and every stage call with a tag."""

    def __init__(self, tag: str = "", calls: list | None = None) -> None:
        self.tag = tag
        self.calls = calls if calls is not None else []
        self.records: list[tuple[int, float, float]] = []

    def before_run(self, runner: Any) -> None:
        self.calls.append(("before_run", self.tag))

    def after_train_iter(self, runner: Any) -> None:
        self.calls.append(("after_train_iter", self.tag))
        self.records.append(
            (runner.iter, float(runner.outputs["loss"].detach()), runner.current_lr()[0])
        )


def toy_config(**overrides: Any) -> dict[str, Any]:
    """A complete config for the toy task (epoch runner, SGD, no logger)."""
    cfg: dict[str, Any] = dict(
        model=dict(type="ToyLinear"),
        data=dict(
            samples_per_gpu=4,
            workers_per_gpu=0,
            train=dict(type="ToyRegression", length=16),
            val=dict(type="ToyRegression", length=8, seed=1),
        ),
        optimizer=dict(type="SGD", lr=0.01, momentum=0.9),
        optimizer_config=dict(grad_clip=None),
        runner=dict(type="EpochBasedRunner", max_epochs=2),
        workflow=[("train", 1)],
        evaluation=None,
        seed=0,
    )
    cfg.update(overrides)
    return cfg
