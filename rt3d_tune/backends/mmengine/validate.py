"""``rt3d-tune validate`` for mmengine configs: start each trial as the trial starts.

For each checked trial config: every mistake :func:`config_problems` finds without
building anything (unknown types with their key paths, arguments a class does not
take, unusable values), then, when there is none, the trial's own start
(:func:`rt3d_tune.backends.mmengine.start.start_runner`, in a throw-away work dir): the
Runner, its train loop and data loader, optim wrapper, param schedulers and
validation loop through mmengine's builders. What a trial would refuse, validate
refuses with the same message.
"""

from __future__ import annotations

from typing import Any

from rt3d_tune.backends.mmengine.start import config_problems, dry_start_mmengine
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError

__all__ = ["check_mmengine_config"]

# The steps of a start that read the data: not reported when the data is not here.
_DATA_KEYS = ("train_cfg", "val_cfg", "train_dataloader", "val_dataloader")


def check_mmengine_config(cfg: Any, iters_per_epoch: int,
                          model_cache: dict[str, Any] | None = None,
                          data_here: bool = True) -> list[ConfigError]:
    """Check an mmengine trial config as its trial's start would.

    Args:
        cfg: the merged trial Config (plain-dict view of an mmengine config).
        iters_per_epoch: unused (the Runner counts its own data loader); kept so that
            both dialects' checkers are called alike.
        model_cache: unused, likewise.
        data_here: whether the base config's data can be read on this machine; when
            not, a start that fails on the data loaders is not reported.

    Returns:
        Every problem found (empty when the config is sound).
    """
    del iters_per_epoch, model_cache
    data = plain_dict(cfg)
    problems = config_problems(data)
    if problems:
        return problems
    try:
        dry_start_mmengine(data, getattr(cfg, "filename", None))
    except ConfigError as err:
        if data_here or (err.key_path or "").split(".")[0] not in _DATA_KEYS:
            problems.append(err)
    return problems
