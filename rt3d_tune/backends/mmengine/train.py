"""``rt3d-tune train CONFIG`` for an mmengine config: ``Runner.from_cfg(cfg).train()``, as
OpenMMLab 2.x projects' ``tools/train.py`` does, with the command's options, so that the
exported ``best_config.py`` / ``trial_config.py`` of an mmengine search train the way
the search's trials did."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.backends.mmengine.dialect import require_mmengine

__all__ = ["train_mmengine"]


def train_mmengine(config: str, *, work_dir: str | Path, cfg_options: Mapping[str, Any],
                   resume_from: str | None = None, auto_resume: bool = False,
                   seed: int | None = None, deterministic: bool = False,
                   launcher: str = "none") -> dict[str, Any]:
    """Train ``config`` on mmengine's Runner; the summary (epochs, iterations, work dir).

    ``resume_from``: mmengine's ``resume=True, load_from=...``; ``auto_resume``: resume from
    the work dir's last checkpoint; ``seed``/``deterministic``: ``randomness``;
    ``launcher``: 'none', or 'pytorch' under torchrun (mmengine sets up the group).

    Raises:
        ConfigError: mmengine is missing or cannot load the config; the config's start
            (``start_runner``) refuses it.
        DivergenceError: the loss became non-finite (mmengine itself trains on).
    """
    require_mmengine("CONFIG")
    from rt3d_tune.backends.mmengine.dialect import load_mmengine_config
    from rt3d_tune.backends.mmengine.hooks import StopOnDivergence
    from rt3d_tune.backends.mmengine.start import start_runner
    from rt3d_tune.config.keypaths import plain_dict

    cfg = plain_dict(load_mmengine_config(config, cfg_options, key_path="CONFIG"))
    cfg.update(work_dir=str(work_dir), launcher=launcher,
               experiment_name=f"{Path(config).stem}_{time.strftime('%Y%m%d_%H%M%S')}")
    if resume_from is not None:
        cfg.update(resume=True, load_from=resume_from)
    elif auto_resume:
        cfg.update(resume=True, load_from=None)
    randomness = dict(cfg.get("randomness") or {})
    if seed is not None:
        randomness["seed"] = seed
    if deterministic:
        randomness["deterministic"] = True
    cfg["randomness"] = randomness
    runner = start_runner(cfg, config)  # what a search's trial starts, refused alike
    runner.register_hook(StopOnDivergence(), priority="VERY_LOW")
    runner.train()
    return {"epoch": runner.epoch, "iter": runner.iter, "work_dir": str(work_dir),
            "rank": runner.rank}
