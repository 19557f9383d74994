"""One rank of an mmcv trial: rt3d-tune's runner with the trial's report hook.

``build_runner(cfg, extra_hooks=[TuneReportHook(reporter)])`` writes
``work_dir/config.py`` with the seed it used (``best_config.py`` reruns the trial
exactly); EvalHook's metrics reach the report hook in the same stage. A resumed trial
keeps its own optimizer arguments: after a PBT exploit the checkpoint holds the donor's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rt3d_tune.backends.base import TrialRun

__all__ = ["apply_optimizer_hyperparams", "snapshot_hyperparams", "start_mmcv_trial"]


def _optimizers(optimizer: Any) -> list[Any]:
    if isinstance(optimizer, dict):
        return [optimizer[name] for name in sorted(optimizer)]
    return [optimizer] if optimizer is not None else []


def snapshot_hyperparams(optimizer: Any) -> list[list[dict[str, Any]]]:
    """Every param group's hyperparameters (all keys but ``params``) of a fresh optimizer."""
    return [
        [{k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
         for group in opt.param_groups]
        for opt in _optimizers(optimizer)
    ]


def apply_optimizer_hyperparams(optimizer: Any, fresh: list[list[dict[str, Any]]]) -> None:
    """Put the trial config's optimizer arguments back after loading a checkpoint.

    ``load_state_dict`` restores the checkpoint's param-group values, which after a PBT
    exploit are the donor trial's. The LR and momentum hooks keep their base values in
    ``initial_lr`` / ``initial_momentum`` and only set them when absent, so those are
    overwritten too; the hooks then recompute the scheduled values from the new bases.
    """
    for opt, groups in zip(_optimizers(optimizer), fresh):
        for group, values in zip(opt.param_groups, groups):
            for key, value in values.items():
                if key in ("initial_lr", "initial_momentum"):
                    continue
                group[key] = copy.deepcopy(value)
            group["initial_lr"] = values["lr"]
            if "momentum" in values:
                group["initial_momentum"] = values["momentum"]
            elif "betas" in values:
                group["initial_momentum"] = values["betas"][0]


def start_mmcv_trial(cfg: Any, run: TrialRun) -> Callable[[], Any]:
    """The runner of ``cfg`` with ``run.reporter`` hooked in (``TuneReportHook``, VERY_LOW
    priority), its
    trial loggers tagged, resumed from ``run.resume_path`` when set; its ``run``.

    Raises:
        ConfigError: the runner does not build.
    """
    from rt3d_tune.backends.mmcv.report_hook import TuneReportHook
    from rt3d_tune.backends.mmcv.trial_loggers import tag_trial_loggers
    from rt3d_tune.runner.builder import build_runner
    from rt3d_tune.runner.priority import Priority

    hook = TuneReportHook(run.reporter)
    runner = build_runner(cfg, work_dir=str(run.work_dir),
                          extra_hooks=[(hook, Priority.VERY_LOW)], device=run.device)
    tag_trial_loggers(runner.hooks, trial_id=run.trial_id, search_name=run.search_name,
                      params=run.params, confirm_of=run.confirm_of)
    if run.resume_path is not None:
        fresh = snapshot_hyperparams(runner.optimizer)
        runner.resume(run.resume_path)
        apply_optimizer_hyperparams(runner.optimizer, fresh)
        hook.last_round = int(getattr(runner, "eval_round", 0))
    return runner.run
