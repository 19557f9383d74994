"""IterBasedRunner: the workflow counts iterations; loaders cycle."""

from __future__ import annotations

from typing import Any

import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import RUNNERS
from rt3d_tune.runner.base import BaseRunner
from rt3d_tune.runner.epoch_based import set_loader_epoch

__all__ = ["IterBasedRunner", "IterLoader"]


class IterLoader:
    """An endless view of a data loader: a new pass (with ``set_epoch``) when one ends.

    Args:
        data_loader: the loader to cycle.
        epoch: the pass to start at.
        skip: batches of that first pass already consumed (a resumed run continues
            mid-pass in the same order; needs a sampler with ``set_start``, such as
            ``EpochSampler``, else the pass starts over).
    """

    def __init__(self, data_loader: Any, epoch: int = 0, skip: int = 0) -> None:
        self._data_loader = data_loader
        self._epoch = epoch
        set_loader_epoch(data_loader, epoch)
        sampler = getattr(data_loader, "sampler", None)
        if skip and hasattr(sampler, "set_start"):
            sampler.set_start(skip * data_loader.batch_size)
        self._iterator = iter(data_loader)

    @property
    def epoch(self) -> int:
        """Completed passes over the data."""
        return self._epoch

    @property
    def sampler(self) -> Any:
        return getattr(self._data_loader, "sampler", None)

    @property
    def dataset(self) -> Any:
        return getattr(self._data_loader, "dataset", None)

    def __next__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            self._epoch += 1
            set_loader_epoch(self._data_loader, self._epoch)
            self._iterator = iter(self._data_loader)
            return next(self._iterator)

    def __len__(self) -> int:
        return len(self._data_loader)


@RUNNERS.register_module()
class IterBasedRunner(BaseRunner):
    """Trains ``max_iters`` iterations; each workflow phase runs ``n`` iterations in turn.

    ``epoch`` is the number of finished passes over the training data.
    """

    default_ckpt_tmpl = "iter_{}.pth"

    def train(self, data_loader: IterLoader) -> None:
        """One training iteration."""
        self.model.train()
        self.mode = "train"
        self.data_loader = data_loader
        data_batch = next(data_loader)
        # the pass this batch belongs to (mmcv reads it before next(): a pass behind at its start)
        self.epoch = data_loader.epoch
        self.data_batch = data_batch
        self.call_hook("before_train_iter")
        self.run_iter(data_batch, train_mode=True)
        self.call_hook("after_train_iter")
        self.data_batch = None
        self.inner_iter += 1
        self.iter += 1

    @torch.no_grad()
    def val(self, data_loader: IterLoader) -> None:
        """One validation iteration: val_step, no update; only the log buffer is fed."""
        self.model.eval()
        self.mode = "val"
        self.data_loader = data_loader
        data_batch = next(data_loader)
        self.data_batch = data_batch
        self.call_hook("before_val_iter")
        self.run_iter(data_batch, train_mode=False)
        self.call_hook("after_val_iter")
        self.data_batch = None
        self.inner_iter += 1

    def _checkpoint_progress(self) -> tuple[int, dict[str, int]]:
        return self.iter + 1, {"epoch": self.epoch + 1, "iter": self.iter + 1}

    def _run(self, data_loaders: list[Any], flows: list[tuple[str, int]]) -> None:
        """Run the workflow until ``iter >= max_iters``.

        Raises:
            ConfigError: no train phase, or no ``max_iters``.
        """
        if not isinstance(self.max_iters, int) or self.max_iters < 1:
            raise ConfigError(
                "the iteration runner needs max_iters >= 1",
                key_path="runner.max_iters",
                given=self.max_iters,
            )
        if not any(mode == "train" for mode, _ in flows):
            raise ConfigError("the workflow has no train phase", key_path="workflow", given=flows)
        self._log_start(flows, "iters", self.max_iters)
        self.call_hook("before_run")
        loaders = []
        for loader, (mode, _) in zip(data_loaders, flows, strict=True):
            # a resumed run continues the pass (and the position in it) of a straight run
            passes, skip = divmod(self.iter, len(loader)) if mode == "train" else (0, 0)
            loaders.append(IterLoader(loader, passes, skip))
        self.call_hook("before_epoch")
        while self.iter < self.max_iters:
            for loader, (mode, iters) in zip(loaders, flows, strict=True):
                self.inner_iter = 0
                for _ in range(iters):
                    if mode == "train" and self.iter >= self.max_iters:
                        break
                    getattr(self, mode)(loader)
        self.call_hook("after_epoch")
        self.call_hook("after_run")
