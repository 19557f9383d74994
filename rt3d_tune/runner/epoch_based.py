"""EpochBasedRunner: the workflow counts epochs."""

from __future__ import annotations

from typing import Any

import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import RUNNERS
from rt3d_tune.runner.base import BaseRunner

__all__ = ["EpochBasedRunner", "set_loader_epoch"]


def set_loader_epoch(data_loader: Any, epoch: int) -> None:
    """Tell the loader's sampler and dataset which pass this is.

    The sampler's shuffle and worker seeds follow it, and so does a dataset's per-epoch
    augmentation (workers are not persistent, so they see the new epoch too).
    """
    for part in (getattr(data_loader, "sampler", None), getattr(data_loader, "dataset", None)):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


@RUNNERS.register_module()
class EpochBasedRunner(BaseRunner):
    """Trains ``max_epochs`` epochs; each workflow phase runs ``n`` epochs in turn.

    ``max_iters`` is ``max_epochs * len(train_loader)``, set when ``run`` starts.
    """

    default_ckpt_tmpl = "epoch_{}.pth"

    def train(self, data_loader: Any) -> None:
        """One training epoch."""
        self.model.train()
        self.mode = "train"
        self.data_loader = data_loader
        self.max_iters = self.max_epochs * len(data_loader)
        set_loader_epoch(data_loader, self.epoch)
        self.call_hook("before_train_epoch")
        for i, data_batch in enumerate(data_loader):
            self.inner_iter = i
            self.data_batch = data_batch
            self.call_hook("before_train_iter")
            self.run_iter(data_batch, train_mode=True)
            self.call_hook("after_train_iter")
            self.data_batch = None
            self.iter += 1
        self.call_hook("after_train_epoch")
        self.epoch += 1

    @torch.no_grad()
    def val(self, data_loader: Any) -> None:
        """One validation epoch: val_step on every batch, no update; only the log buffer is fed."""
        self.model.eval()
        self.mode = "val"
        self.data_loader = data_loader
        set_loader_epoch(data_loader, self.epoch)
        self.call_hook("before_val_epoch")
        for i, data_batch in enumerate(data_loader):
            self.inner_iter = i
            self.data_batch = data_batch
            self.call_hook("before_val_iter")
            self.run_iter(data_batch, train_mode=False)
            self.call_hook("after_val_iter")
            self.data_batch = None
        self.call_hook("after_val_epoch")

    def _run(self, data_loaders: list[Any], flows: list[tuple[str, int]]) -> None:
        """Run the workflow until ``epoch >= max_epochs``.

        Raises:
            ConfigError: no train phase, or no ``max_epochs``.
        """
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ConfigError(
                "the epoch runner needs max_epochs >= 1",
                key_path="runner.max_epochs",
                given=self.max_epochs,
            )
        train = [i for i, (mode, _) in enumerate(flows) if mode == "train"]
        if not train:
            raise ConfigError("the workflow has no train phase", key_path="workflow", given=flows)
        self.max_iters = self.max_epochs * len(data_loaders[train[0]])
        self._log_start(flows, "epochs", self.max_epochs)
        self.call_hook("before_run")
        while self.epoch < self.max_epochs:
            for loader, (mode, epochs) in zip(data_loaders, flows, strict=True):
                for _ in range(epochs):
                    if mode == "train" and self.epoch >= self.max_epochs:
                        break
                    getattr(self, mode)(loader)
        self.call_hook("after_run")
