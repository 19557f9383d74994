"""WandbLoggerHook: metrics to Weights & Biases, online or offline.

``wandb`` (``pip install 'rt3d-tune[wandb]'``) is imported at ``before_run``. Offline
runs (``init_kwargs=dict(mode='offline')`` or ``WANDB_MODE=offline``) write under
``<dir>/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hooks.logger.base import LoggerHook, import_backend

__all__ = ["WandbLoggerHook"]


@HOOKS.register_module()
class WandbLoggerHook(LoggerHook):
    """Log to W&B: mmcv's tags (``train/loss``, ``val/<metric>``, ``learning_rate``).

    Args:
        init_kwargs: arguments of ``wandb.init`` (``project``, ``name``, ``config``,
            ``dir``, ``mode``, ...). If a run is already active (the caller started
            one), the hook logs into it and leaves it open.
        interval, ignore_last, reset_flag, by_epoch: as for :class:`LoggerHook`.
        commit: passed to ``wandb.log`` when ``with_step`` is False. With a step, the
            rows of a step are merged (training values and eval metrics logged at the
            same iteration) and committed when a later step arrives or the run ends.
        with_step: log with ``step=<1-based global iteration>``; otherwise the
            iteration goes into the row as ``global_step``.
        log_artifact: at the end of the run, upload the files of ``work_dir`` ending
            with ``out_suffix`` as an artifact.
        out_suffix: which files the artifact holds.

    Raises:
        ConfigError: (at ``before_run``) wandb is not installed.
    """

    def __init__(
        self,
        init_kwargs: Mapping[str, Any] | None = None,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        commit: bool = True,
        by_epoch: bool = True,
        with_step: bool = True,
        log_artifact: bool = True,
        out_suffix: str | tuple[str, ...] = (".log.json", ".log", ".py"),
    ) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.init_kwargs = dict(init_kwargs or {})
        self.commit = commit
        self.with_step = with_step
        self.log_artifact = log_artifact
        self.out_suffix = (out_suffix,) if isinstance(out_suffix, str) else tuple(out_suffix)
        self.wandb: Any = None
        self._owns_run = False

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        self.wandb = import_backend("wandb", type(self).__name__, "rt3d-tune[wandb]")
        if self.wandb.run is None:
            kwargs = dict(self.init_kwargs)
            if "mode" not in kwargs and os.environ.get("WANDB_MODE"):
                # wandb reads the environment once per process; a worker that runs
                # many trials must see the WANDB_MODE of this run
                kwargs["mode"] = os.environ["WANDB_MODE"]
            self.wandb.init(**kwargs)
            self._owns_run = True

    def log(self, runner: Any) -> None:
        tags = self.get_loggable_tags(runner)
        if not tags:
            return
        if self.with_step:
            # Not committed here: an iteration-based evaluation logs its metrics at
            # the step of the training line just logged, and W&B drops data logged
            # to a committed step. W&B commits the row when a later step arrives.
            self.wandb.log(tags, step=self.get_iter(runner), commit=False)
        else:
            tags["global_step"] = self.get_iter(runner)
            self.wandb.log(tags, commit=self.commit)

    def after_run(self, runner: Any) -> None:
        if self.wandb is None:
            return
        if self.log_artifact:
            files = [
                path
                for path in sorted(Path(runner.work_dir).iterdir())
                if path.is_file() and path.name.endswith(self.out_suffix)
            ]
            if files:
                artifact = self.wandb.Artifact(name="artifacts", type="model")
                for path in files:
                    artifact.add_file(str(path))
                self.wandb.run.log_artifact(artifact)
        if self._owns_run:
            self.wandb.finish()
            self._owns_run = False

    def close_after_error(self, runner: Any) -> None:
        if self.wandb is not None and self._owns_run:
            self.wandb.finish(exit_code=1)
            self._owns_run = False
