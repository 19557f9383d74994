"""``rt3d-tune validate`` for mmengine configs: build what a trial's Runner would build.

For each checked trial config: the model (mmengine's MODELS registry, in the config's
``default_scope``), the optim wrapper (``build_optim_wrapper`` on that model), and every
``param_scheduler`` entry (PARAM_SCHEDULERS, with the Runner's defaults: ``end`` from
``train_cfg`` and ``epoch_length`` for ``convert_to_iter_based``). Each problem names
its key path (``optim_wrapper.optimizer``, ``param_scheduler.1``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.mmengine_backend.dialect import default_scope, require_mmengine, train_loop
from rt3d_tune.space.keypaths import plain_dict

__all__ = ["check_mmengine_config"]


def _built(problems: list[ConfigError], key_path: str, action: Callable[[], Any]) -> Any:
    """``action()``; an error becomes a problem at ``key_path`` (None returned)."""
    try:
        return action()
    except ConfigError as err:
        problems.append(err if err.key_path else err.with_context(key_path=key_path))
    except Exception as err:  # mmengine's builders raise KeyError, TypeError, AssertionError...
        text = str(err).strip().splitlines()
        problems.append(ConfigError(f"{type(err).__name__}: {text[-1] if text else ''}",
                                    key_path=key_path))
    return None


def check_mmengine_config(cfg: Any, iters_per_epoch: int,
                          model_cache: dict[str, Any] | None = None) -> list[ConfigError]:
    """Build a trial config's model, optim wrapper and param schedulers with mmengine.

    Returns:
        Every problem found (empty when the config is sound).
    """
    require_mmengine()
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, PARAM_SCHEDULERS

    data = plain_dict(cfg)
    problems: list[ConfigError] = []
    cache = {} if model_cache is None else model_cache
    with default_scope(data):
        key = repr(data.get("model"))
        if key not in cache:
            cache[key] = _built(problems, "model", lambda: MODELS.build(data["model"]))
        model = cache[key] if cache[key] is not None else torch.nn.Linear(2, 2)
        wrapper = _built(problems, "optim_wrapper",
                         lambda: build_optim_wrapper(model, data["optim_wrapper"]))
        if wrapper is None:
            return problems
        schedulers = data.get("param_scheduler") or []
        entries = [schedulers] if isinstance(schedulers, Mapping) else list(schedulers)
        iter_based, length = train_loop(data)
        by_epoch = not iter_based
        for i, entry in enumerate(entries):
            where = "param_scheduler" if isinstance(schedulers, Mapping) else f"param_scheduler.{i}"
            if not isinstance(entry, Mapping):
                problems.append(ConfigError("a scheduler must be a dict", key_path=where,
                                            expected="dict(type=..., ...)", given=entry))
                continue
            entry = dict(entry)
            if length is not None:
                entry.setdefault("end", length if entry.get("by_epoch", True) == by_epoch
                                 else length * (iters_per_epoch if by_epoch else 1))
            _built(problems, where, lambda entry=entry: PARAM_SCHEDULERS.build(
                entry, default_args={"optimizer": wrapper, "epoch_length": iters_per_epoch}))
    return problems
