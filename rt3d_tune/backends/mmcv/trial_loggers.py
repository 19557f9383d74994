"""Each search trial logs to MLflow / W&B under its own run, with its parameters.

The trial's config stays as the user wrote it (so ``best_config.py`` carries no trial
names); the logger hooks the runner built are tagged after the build instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["tag_trial_loggers"]


def tag_trial_loggers(hooks: Iterable[Any], *, trial_id: str, search_name: str,
                      params: dict[str, Any], confirm_of: str | None = None) -> int:
    """Name each MLflow/W&B logger hook's run after the trial and attach its params.

    What the user set explicitly wins (``setdefault``). MLflow runs land in the
    experiment named after the search unless ``exp_name`` was given; W&B runs are
    grouped by the search. A confirmation run (``confirm_of``: the search trial it trains
    again) is tagged ``rt3d_tune.confirm_of`` (W&B: in its config). Returns how many
    hooks were tagged.
    """
    extra = {} if confirm_of is None else {"rt3d_tune.confirm_of": confirm_of}
    from rt3d_tune.runner.hooks.logger.mlflow import MlflowLoggerHook
    from rt3d_tune.runner.hooks.logger.wandb import WandbLoggerHook

    tagged = 0
    for hook in hooks:
        if isinstance(hook, MlflowLoggerHook):
            hook.run_name = hook.run_name or trial_id
            hook.exp_name = hook.exp_name or search_name
            for key, value in params.items():
                hook.params.setdefault(key, value)
            hook.tags.setdefault("rt3d_tune.search", search_name)
            hook.tags.setdefault("rt3d_tune.trial_id", trial_id)
            for key, value in extra.items():
                hook.tags.setdefault(key, value)
            tagged += 1
        elif isinstance(hook, WandbLoggerHook):
            hook.init_kwargs.setdefault("name", trial_id)
            hook.init_kwargs.setdefault("group", search_name)
            hook.init_kwargs.setdefault("config", {}).update(
                {k: v for k, v in {**params, **extra}.items()
                 if k not in hook.init_kwargs["config"]}
            )
            tagged += 1
    return tagged
