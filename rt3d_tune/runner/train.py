"""Train one config end to end: the job of mmdet3d's ``tools/train.py``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from rt3d_tune.config import Config
from rt3d_tune.runner.base import BaseRunner
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.progress import ProgressBarHook

__all__ = ["default_work_dir", "train"]


def default_work_dir(config_path: str | Path) -> Path:
    """``./work_dirs/<config file name without extension>``."""
    return Path("work_dirs") / Path(config_path).stem


def train(
    cfg: Config,
    *,
    work_dir: str | Path | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    resume_from: str | None = None,
    auto_resume: bool = False,
    seed: int | None = None,
    deterministic: bool = False,
    stream: TextIO | None = None,
    progress: bool | None = None,
) -> BaseRunner:
    """Build the runner of ``cfg`` and train it.

    Args:
        cfg: the loaded config.
        work_dir: overrides ``cfg.work_dir``; default ``./work_dirs/<config name>``.
        cfg_options: dotted overrides applied first.
        resume_from: a checkpoint to resume (overrides the config's).
        auto_resume: resume from the newest checkpoint in the work dir, if any.
        seed: overrides ``cfg.seed``.
        deterministic: deterministic cuDNN kernels.
        stream: where progress goes (default stdout).
        progress: a progress bar (True) or plain log lines (False); default: a bar
            when ``stream`` is a terminal.

    Returns:
        The runner after training.

    Raises:
        ConfigError: a problem in the config; DivergenceError: the loss became non-finite.
    """
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif not cfg.get("work_dir"):
        cfg.work_dir = str(default_work_dir(cfg.filename or "config"))
    if resume_from is not None:
        cfg.resume_from = resume_from
    if auto_resume:
        cfg.auto_resume = True
    if seed is not None:
        cfg.seed = seed
    if deterministic:
        cfg.deterministic = True
    stream = stream or sys.stdout
    if progress is None:
        progress = bool(getattr(stream, "isatty", lambda: False)())
    extra = [(ProgressBarHook(stream), "LOWEST")] if progress else []
    runner = build_runner(cfg, work_dir=cfg.work_dir, extra_hooks=extra)
    handler = logging.StreamHandler(sys.stderr if progress else stream)
    handler.setLevel(logging.WARNING if progress else logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
    runner.logger.addHandler(handler)
    try:
        runner.run()
    finally:
        runner.logger.removeHandler(handler)
    return runner
