"""The ``mmengine`` backend: OpenMMLab 2.x configs (``optim_wrapper``, ``param_scheduler``,
``train_cfg``) read by mmengine's ``Config`` and trained by mmengine's Runner.

Nothing heavy is imported here: mmengine (optional, ``pip install 'rt3d-tune[mmengine]'``)
and torch load when a method needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.backends.base import Backend, TrialRun
from rt3d_tune.backends.mmengine.dialect import (
    MMENGINE_KEYS,
    RUNTIME_KEYS,
    is_mmengine_config,
    load_mmengine_config,
    mmengine_only_syntax,
    run_length,
    train_loop,
    val_interval,
)
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget

__all__ = ["MmengineBackend"]


class MmengineBackend(Backend):
    """mmengine configs on mmengine's Runner: fidelity is the validation round
    (``train_cfg.val_interval`` epochs or iterations), the seed ``randomness.seed``, the
    schedule ``param_scheduler`` (:mod:`rt3d_tune.backends.mmengine.schedule`)."""

    name = "mmengine"
    fidelity_unit = "validation round"
    seed_key = "randomness.seed"
    runtime_keys = RUNTIME_KEYS
    signature = ", ".join(MMENGINE_KEYS)
    length_key = "train_cfg"
    loop_name = "train loop"
    train_data_key = "train_dataloader"
    no_evaluation_hint = "the base config needs val_dataloader, val_evaluator and val_cfg"

    def detects(self, cfg: Mapping[str, Any]) -> bool:
        return is_mmengine_config(cfg)

    def reads_alone(self, path: str | Path) -> bool:
        """A ``.py`` file with ``read_base()`` lazy imports or ``pkg::`` bases."""
        return mmengine_only_syntax(path)

    def load_config(self, path: str | Path, options: Mapping[str, Any] | None = None,
                    key_path: str = "base", loaded: Any = None) -> Any:
        return load_mmengine_config(path, options, key_path=key_path)

    def run_length(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return run_length(plain_dict(cfg))

    def base_max_epochs(self, cfg: Mapping[str, Any]) -> int | None:
        iter_based, length = train_loop(cfg)
        return None if iter_based else length

    def length_overrides(self, base: Mapping[str, Any], max_epochs: int,
                         tuned: list[str]) -> dict[str, Any]:
        iter_based, _ = train_loop(base)
        if iter_based:
            raise ConfigError(
                "stop.max_epochs needs an epoch-based train loop, but the base config's "
                "train_cfg counts iterations", key_path="stop.max_epochs",
                hint="set train_cfg.max_iters in the base config and leave stop.max_epochs out",
            )
        key = "train_cfg.max_epochs"
        for path in tuned:
            if path in ("train_cfg", key):
                raise ConfigError(f"stop.max_epochs sets {key} and the space tunes {path!r}",
                                  key_path="stop.max_epochs", hint="keep one of them")
        return {key: max_epochs}

    def max_fidelity(self, cfg: Mapping[str, Any], max_epochs: int | None) -> int:
        """Validation rounds (``train_cfg.val_interval`` epochs or iterations each)."""
        plain = plain_dict(cfg)
        length = max_epochs or train_loop(plain)[1]
        return max(1, -(-int(length) // val_interval(plain)))

    def iters_per_epoch(self, cfg: Mapping[str, Any], world_size: int = 1) -> int:
        from rt3d_tune.backends.mmengine.simulate import iters_from_dataloader

        return iters_from_dataloader(plain_dict(cfg), world_size)

    def budget(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> Budget:
        from rt3d_tune.backends.mmengine.schedule import mmengine_budget

        return mmengine_budget(cfg, iters_per_epoch)

    def check_before_scaling(self, cfg: Mapping[str, Any]) -> None:
        """A misspelt dataset or scheduler is said as a spelling mistake (not as
        mmengine's KeyError, nor as one for ``stop.schedule: truncated``), as the trial's
        start says it."""
        from rt3d_tune.backends.mmengine.start import config_problems

        problems = config_problems(plain_dict(cfg))
        if problems:
            raise problems[0]

    def scale_schedule(self, cfg: Mapping[str, Any], full: Budget, trial: Budget
                       ) -> dict[str, Any]:
        from rt3d_tune.backends.mmengine.schedule import scale_param_schedulers

        return scale_param_schedulers(plain_dict(cfg), full, trial)

    def describe_scaling(self, full_cfg: Mapping[str, Any], trial_cfg: Mapping[str, Any]
                         ) -> list[str]:
        from rt3d_tune.backends.mmengine.schedule import describe_param_scaling

        return describe_param_scaling(plain_dict(full_cfg), plain_dict(trial_cfg))

    def scaling_note(self, full_cfg: Mapping[str, Any], trial_cfg: Mapping[str, Any]
                     ) -> list[str]:
        return ["param_scheduler begin/end/T_max/milestones rescaled"]

    def simulate(self, cfg: Mapping[str, Any], iters_per_epoch: int, *,
                 max_epochs: int | None = None, max_iters: int | None = None,
                 world_size: int = 1) -> list[dict[str, Any]]:
        """Rows from mmengine's own schedulers, stepped as ParamSchedulerHook steps them."""
        from rt3d_tune.backends.mmengine.simulate import simulate_mmengine_schedule

        return simulate_mmengine_schedule(plain_dict(cfg), iters_per_epoch,
                                          max_epochs=max_epochs, max_iters=max_iters,
                                          world_size=world_size)

    def warmup_end(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> int | None:
        from rt3d_tune.backends.mmengine.schedule import warmup_end

        return warmup_end(plain_dict(cfg), iters_per_epoch)

    def check_trial_config(self, cfg: Any, iters_per_epoch: int,
                           model_cache: dict[str, Any] | None = None,
                           data_here: bool = True) -> list[ConfigError]:
        from rt3d_tune.backends.mmengine.validate import check_mmengine_config

        return check_mmengine_config(cfg, iters_per_epoch, model_cache, data_here)

    def start_trial(self, cfg: Any, run: TrialRun) -> Callable[[], Any]:
        from rt3d_tune.backends.mmengine.trial import start_mmengine_trial

        return start_mmengine_trial(cfg, run)

    def check_launcher(self, launcher: str) -> None:
        """``none`` and ``pytorch`` (torchrun); not ``ray``."""
        if launcher == "ray":
            raise ConfigError("--launcher ray runs rt3d-tune's own runner; an mmengine config "
                              "trains data-parallel under torchrun", key_path="--launcher",
                              given="ray", hint="torchrun --nproc_per_node=N -m rt3d_tune "
                              "train CONFIG --launcher pytorch, or resources.workers in a search")

    def train_config(self, path: str, cfg: Any, *, work_dir: str | None, launcher: str,
                     **options: Any) -> dict[str, Any] | None:
        """mmengine's Runner, as ``tools/train.py`` of OpenMMLab 2.x trains."""
        from rt3d_tune.backends.mmengine.train import train_mmengine
        from rt3d_tune.runner.train import default_work_dir

        folder = work_dir or cfg.get("work_dir") or default_work_dir(path)
        return train_mmengine(path, work_dir=folder, launcher=launcher, **options)
