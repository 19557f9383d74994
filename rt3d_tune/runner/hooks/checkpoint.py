"""CheckpointHook: save every ``interval`` epochs or iterations, atomically, with latest.pth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rt3d_tune.config.paths import check_file_name
from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook

__all__ = ["CheckpointHook"]


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Saves ``epoch_{n}.pth`` (or ``iter_{n}.pth``) and points ``latest.pth`` at it.

    Args:
        interval: save every ``interval`` epochs (iterations when ``by_epoch=False``);
            -1 saves only the last one (with ``save_last``).
        by_epoch: count epochs (True) or iterations.
        save_optimizer: include the optimizer state (needed to resume).
        out_dir: folder for the files; default the work dir. A different folder gets
            a sub-folder named after the work dir, as in mmcv.
        max_keep_ckpts: keep only the newest this many numbered files (-1: all).
        save_last: also save at the last epoch (iteration) whatever the interval.
        **kwargs: ``filename_tmpl`` (e.g. 'ckpt_{}.pth') and ``create_symlink``.

    Raises:
        ConfigError: an interval that is 0 or below -1, an unknown keyword, or a
            ``filename_tmpl`` that is a path rather than a file name.
    """

    rank_zero_only = True

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        save_optimizer: bool = True,
        out_dir: str | None = None,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(interval, int) or interval == 0 or interval < -1:
            raise ConfigError(
                "bad checkpoint interval",
                key_path="checkpoint_config.interval",
                expected="a positive int, or -1 for the last only",
                given=interval,
            )
        unknown = set(kwargs) - {"filename_tmpl", "create_symlink"}
        if unknown:
            key = min(unknown)
            raise ConfigError(
                "unknown CheckpointHook argument",
                key_path=f"checkpoint_config.{key}",
                expected="interval, by_epoch, save_optimizer, out_dir, max_keep_ckpts, "
                "save_last, filename_tmpl, create_symlink",
                given=key,
            )
        if "filename_tmpl" in kwargs:
            check_file_name(str(kwargs["filename_tmpl"]), "checkpoint_config.filename_tmpl")
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.out_dir = out_dir
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.args = kwargs

    def before_run(self, runner: Any) -> None:
        if not self.out_dir:
            self.out_dir = runner.work_dir
        elif os.path.abspath(self.out_dir) != os.path.abspath(runner.work_dir):
            self.out_dir = os.path.join(self.out_dir, Path(runner.work_dir).name)
        runner.logger.info("Checkpoints will be saved to %s", self.out_dir)

    def after_train_epoch(self, runner: Any) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or (
            self.save_last and self.is_last_epoch(runner)
        ):
            runner.logger.info("Saving checkpoint at %d epochs", runner.epoch + 1)
            self._save(runner, runner.epoch + 1, "epoch_{}.pth")

    def after_train_iter(self, runner: Any) -> None:
        if self.by_epoch:
            return
        if self.every_n_iters(runner, self.interval) or (
            self.save_last and self.is_last_iter(runner)
        ):
            runner.logger.info("Saving checkpoint at %d iterations", runner.iter + 1)
            self._save(runner, runner.iter + 1, "iter_{}.pth")

    def _save(self, runner: Any, number: int, default_tmpl: str) -> None:
        out_dir = self.out_dir or runner.work_dir
        tmpl = self.args.get("filename_tmpl", default_tmpl)
        filename = tmpl.format(number)
        runner.save_checkpoint(
            out_dir,
            filename_tmpl=filename.replace("{", "{{").replace("}", "}}"),
            save_optimizer=self.save_optimizer,
            create_symlink=self.args.get("create_symlink", True),
            background=True,  # training goes on while the file is synced to disk
        )
        runner.meta.setdefault("hook_msgs", {})["last_ckpt"] = os.path.join(out_dir, filename)
        if self.max_keep_ckpts > 0:
            step = self.interval if self.interval > 0 else 1
            for old in range(number - self.max_keep_ckpts * step, 0, -step):
                path = Path(out_dir) / tmpl.format(old)
                if not path.is_file():
                    break
                path.unlink()
