"""A tiny real training setup for the logging/evaluation hook tests.

A linear model on 1-D data, trained by the real runners with the real OptimizerHook
and IterTimerHook, so the hooks under test see what they see in production.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rt3d_tune.runner.epoch_based import EpochBasedRunner
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.optimizer import OptimizerHook
from rt3d_tune.runner.hooks.timer import IterTimerHook
from rt3d_tune.runner.iter_based import IterBasedRunner

TIMESTAMP = "20260101_120000"


class LineDataset(Dataset):
    """y = 2x + 1 with ``n`` points; ``evaluate`` returns scripted metrics when given.

    Args:
        n: number of samples.
        scores: values of ``bev_mAP`` returned by successive ``evaluate`` calls
            (default: 1 / (1 + mse) of the predictions).
    """

    def __init__(self, n: int = 8, scores: Sequence[float] | None = None) -> None:
        self.x = torch.linspace(-1.0, 1.0, n).unsqueeze(-1)
        self.y = 2.0 * self.x + 1.0
        self.scores = list(scores) if scores is not None else None
        self.calls: list[dict[str, Any]] = []
        self.results: list[list[float]] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}

    def evaluate(self, results: list[float], **kwargs: Any) -> dict[str, float]:
        self.calls.append(dict(kwargs))
        self.results.append(list(results))
        mse = float(((torch.tensor(results) - self.y.squeeze(-1)) ** 2).mean())
        score = self.scores[len(self.calls) - 1] if self.scores is not None else 1.0 / (1.0 + mse)
        return {"bev_mAP": score, "mse_loss": mse}


class LineModel(nn.Module):
    """One linear layer; the contract's train_step/val_step/forward_test."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(1, 1)

    def _loss(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        loss = ((self.linear(batch["x"]) - batch["y"]) ** 2).mean()
        return {
            "loss": loss,
            "log_vars": {"loss": float(loss.detach())},
            "num_samples": len(batch["x"]),
        }

    def train_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        return self._loss(batch)

    def val_step(self, batch: dict[str, torch.Tensor], optimizer: Any) -> dict[str, Any]:
        return self._loss(batch)

    def forward_test(self, batch: dict[str, torch.Tensor]) -> list[float]:
        self.seen_grad_enabled = torch.is_grad_enabled()
        self.seen_training = self.training
        return self.linear(batch["x"]).squeeze(-1).tolist()


class Recorder(Hook):
    """Records losses and parameters after every train iteration, and when evaluations happen.

    ``evals`` holds (finished epochs or iterations, eval_round) for each evaluation.
    """

    def __init__(self) -> None:
        self.losses: list[tuple[float, int]] = []
        self.params: list[torch.Tensor] = []
        self.evals: list[tuple[int, int]] = []
        self._round = 0

    def _note_eval(self, runner: Any, progress: int) -> None:
        if getattr(runner, "eval_round", 0) != self._round:
            self._round = runner.eval_round
            self.evals.append((progress, runner.eval_round))

    def before_train_epoch(self, runner: Any) -> None:
        self._note_eval(runner, runner.epoch)

    def before_train_iter(self, runner: Any) -> None:
        self._note_eval(runner, runner.iter)

    def after_train_iter(self, runner: Any) -> None:
        self.losses.append((float(runner.outputs["loss"].detach()), runner.outputs["num_samples"]))
        self.params.append(
            torch.cat([p.detach().clone().flatten() for p in runner.model.parameters()])
        )
        self._note_eval(runner, runner.iter + 1)

    def after_train_epoch(self, runner: Any) -> None:
        self._note_eval(runner, runner.epoch + 1)


class FailAt(Hook):
    """Raises at the end of train iteration ``at`` (1-based), as a diverged loss would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner: Any) -> None:
        if runner.iter + 1 == self.at:
            raise RuntimeError(f"blew up at iteration {self.at}")


def make_logger() -> logging.Logger:
    logger = logging.getLogger(f"rt3d_tune.tests.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def make_runner(
    work_dir: Path,
    hooks: Iterable[tuple[Hook, Any]] = (),
    *,
    by_epoch: bool = True,
    length: int = 2,
    optimizer: str = "SGD",
    grad_clip: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    logger: logging.Logger | None = None,
) -> Any:
    """A real runner (epoch-based: ``length`` epochs; else ``length`` iterations) with hooks."""
    model = LineModel()
    if optimizer == "SGD":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = getattr(torch.optim, optimizer)(model.parameters(), lr=0.05)
    kwargs: dict[str, Any] = {
        "model": model,
        "optimizer": opt,
        "work_dir": work_dir,
        "logger": logger or make_logger(),
        "meta": meta,
        "timestamp": TIMESTAMP,
        "seed": 0,
    }
    runner = (
        EpochBasedRunner(max_epochs=length, **kwargs)  # type: ignore[arg-type]
        if by_epoch
        else IterBasedRunner(max_iters=length, **kwargs)  # type: ignore[arg-type]
    )
    runner.register_hook(OptimizerHook(grad_clip=grad_clip), "ABOVE_NORMAL")
    runner.register_hook(IterTimerHook(), "LOW")
    for hook, priority in hooks:
        runner.register_hook(hook, priority)
    return runner


def loader(dataset: Dataset | None = None, batch_size: int = 2) -> DataLoader:
    return DataLoader(dataset if dataset is not None else LineDataset(), batch_size=batch_size)


def read_json_log(work_dir: Path) -> list[dict[str, Any]]:
    import json

    path = Path(work_dir) / f"{TIMESTAMP}.log.json"
    return [json.loads(line) for line in path.read_text().splitlines()]
