"""``rt3d-tune validate`` for mmcv configs: build each trial as it builds, short of training.

:func:`check_trial_config` builds a trial config's model, optimizer and optimizer hook,
simulates its schedule, and starts the runner as a trial starts it
(``rt3d_tune.runner.builder.dry_start``): what a trial would refuse, validate refuses
with the same message.
"""

from __future__ import annotations

from typing import Any

from rt3d_tune.backends.base import collect_problem
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError

__all__ = ["check_trial_config"]


def check_trial_config(cfg: Any, iters_per_epoch: int,
                       model_cache: dict[str, Any] | None = None,
                       data_here: bool = True) -> list[ConfigError]:
    """Build a trial config's model, optimizer and optimizer hook; simulate its schedule;
    then, when none of that failed, start the trial as it starts (``dry_start``: the
    runner with its data loaders and every hook), short of its first iteration.

    Args:
        cfg: the merged trial Config.
        iters_per_epoch: iterations per epoch for the schedule simulation.
        model_cache: models already built, by ``repr`` of their config (filled in).
        data_here: whether the base config's data can be read on this machine; when
            not, a trial start that fails on ``data`` is not reported (the report's
            note says the data is absent here).

    Returns:
        Every problem found (empty when the config is sound).
    """
    import torch

    from rt3d_tune.backends.mmcv.simulate import simulate_schedule
    from rt3d_tune.registry import HOOKS, MODELS
    from rt3d_tune.runner.builder import dry_start, optimizer_hook_cfg
    from rt3d_tune.runner.optimizer import build_optimizer

    data = plain_dict(cfg)
    problems: list[ConfigError] = []
    cache = {} if model_cache is None else model_cache
    key = repr(data.get("model"))
    if key not in cache:
        cache[key] = collect_problem(
            problems, "model", lambda: MODELS.build(data.get("model"), key_path="model")
        )
    model = cache[key] if cache[key] is not None else torch.nn.Linear(2, 2)
    if data.get("optimizer") is None:
        problems.append(ConfigError("the config has no optimizer", key_path="optimizer"))
    else:
        collect_problem(problems, "optimizer", lambda: build_optimizer(model, data["optimizer"]))
    collect_problem(problems, "optimizer_config",
                    lambda: HOOKS.build(optimizer_hook_cfg(data), key_path="optimizer_config"))
    failed = {(err.key_path or "").split(".")[0] for err in problems}
    before = len(problems)
    collect_problem(problems, "lr_config", lambda: simulate_schedule(data, iters_per_epoch))
    # The simulation builds the optimizer again: drop what the steps above reported.
    problems[before:] = [err for err in problems[before:]
                         if (err.key_path or "").split(".")[0] not in failed]
    if not problems:
        started: list[ConfigError] = []
        collect_problem(started, "runner", lambda: dry_start(cfg))
        problems += [err for err in started
                     if data_here or (err.key_path or "").split(".")[0] != "data"]
    return problems
