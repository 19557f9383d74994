"""The ``mmcv`` backend: mmcv 1.x configs (``optimizer``, ``lr_config``, ``runner``) trained
by rt3d-tune's own runner (``rt3d_tune.runner``, the engine). The default backend.

Nothing heavy is imported here: the runner (and torch) load when a method needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.backends.base import Backend, TrialRun
from rt3d_tune.config.keypaths import RUNTIME_KEYS, plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget

__all__ = ["MmcvBackend"]


class MmcvBackend(Backend):
    """mmcv 1.x configs on rt3d-tune's runner: fidelity is the epoch (an iteration
    runner's evaluation round), the seed ``seed``, the schedule ``lr_config`` /
    ``momentum_config`` (:mod:`rt3d_tune.backends.mmcv.schedule`)."""

    name = "mmcv"
    fidelity_unit = "epoch"
    seed_key = "seed"
    runtime_keys = RUNTIME_KEYS
    signature = "optimizer, lr_config, runner"
    length_key = "runner"
    train_data_key = "data.train"
    no_evaluation_hint = ("the base config needs data.val and evaluation = "
                          "dict(interval=..., metric=...)")

    def detects(self, cfg: Mapping[str, Any]) -> bool:
        """Every config that no other backend claims is an mmcv one."""
        return True

    def load_config(self, path: str | Path, options: Mapping[str, Any] | None = None,
                    key_path: str = "base", loaded: Any = None) -> Any:
        from rt3d_tune.config import Config

        cfg = loaded if loaded is not None else Config.fromfile(
            str(path), import_custom_modules=False)
        cfg.import_custom_modules()
        if options:
            cfg.merge_from_dict(dict(options))
        return cfg

    def run_length(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        runner = cfg.get("runner") or {}
        key = "max_iters" if "max_iters" in runner else "max_epochs"
        return {key: runner.get(key, cfg.get("total_epochs"))}

    def base_max_epochs(self, cfg: Mapping[str, Any]) -> int | None:
        """``runner.max_epochs`` or the legacy ``total_epochs``."""
        runner = cfg.get("runner")
        if isinstance(runner, Mapping):
            return runner.get("max_epochs")
        return cfg.get("total_epochs")

    def length_overrides(self, base: Mapping[str, Any], max_epochs: int,
                         tuned: list[str]) -> dict[str, Any]:
        runner = base.get("runner")
        if isinstance(runner, Mapping) and "max_iters" in runner:
            raise ConfigError(
                "stop.max_epochs needs an epoch-based runner, but the base config sets "
                "max_iters", key_path="stop.max_epochs",
                hint="set runner.max_iters in the base config and leave stop.max_epochs out",
            )
        key = "runner.max_epochs" if isinstance(runner, Mapping) or "total_epochs" not in base \
            else "total_epochs"
        for path in tuned:
            if path in ("runner", key) or path.startswith("runner."):
                raise ConfigError(f"stop.max_epochs sets {key} and the space tunes {path!r}",
                                  key_path="stop.max_epochs", hint="keep one of them")
        if not isinstance(runner, Mapping) and key == "runner.max_epochs":
            return {"runner": {"type": "EpochBasedRunner", "max_epochs": max_epochs}}
        return {key: max_epochs}

    def max_fidelity(self, cfg: Mapping[str, Any], max_epochs: int | None) -> int:
        """Epochs; an iteration runner's evaluation rounds."""
        max_epochs = max_epochs or self.base_max_epochs(cfg)
        if max_epochs:
            return int(max_epochs)
        runner = cfg.get("runner") or {}
        interval = int((cfg.get("evaluation") or {}).get("interval", 1)) or 1
        return max(1, int(runner.get("max_iters", 1)) // interval)

    def iters_per_epoch(self, cfg: Mapping[str, Any], world_size: int = 1) -> int:
        from rt3d_tune.runner.data import train_iters_per_epoch

        return train_iters_per_epoch(cfg, world_size=world_size)

    def budget(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> Budget:
        from rt3d_tune.backends.mmcv.schedule import budget_of

        return budget_of(cfg, iters_per_epoch)

    def scale_schedule(self, cfg: Mapping[str, Any], full: Budget, trial: Budget
                       ) -> dict[str, Any]:
        from rt3d_tune.backends.mmcv.schedule import scale_schedule

        return scale_schedule(cfg, full, trial)

    def describe_scaling(self, full_cfg: Mapping[str, Any], trial_cfg: Mapping[str, Any]
                         ) -> list[str]:
        from rt3d_tune.backends.mmcv.schedule import describe_scaling

        return describe_scaling(full_cfg, trial_cfg)

    def scaling_note(self, full_cfg: Mapping[str, Any], trial_cfg: Mapping[str, Any]
                     ) -> list[str]:
        policy = (plain_dict(full_cfg).get("lr_config") or {}).get("policy", "the schedule")
        return self.describe_scaling(full_cfg, trial_cfg) or \
            [f"{policy} follows the run's length by itself"]

    def simulate(self, cfg: Mapping[str, Any], iters_per_epoch: int, *,
                 max_epochs: int | None = None, max_iters: int | None = None,
                 world_size: int = 1) -> list[dict[str, Any]]:
        """Rows from the config's real LR/momentum hooks (``world_size`` changes nothing:
        an mmcv config's LR is not scaled by the batch)."""
        from rt3d_tune.backends.mmcv.simulate import simulate_schedule

        return simulate_schedule(cfg, iters_per_epoch, max_epochs=max_epochs,
                                 max_iters=max_iters)

    def warmup_end(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> int | None:
        lr_cfg = cfg.get("lr_config") or {}
        warmup_iters = lr_cfg.get("warmup_iters") if lr_cfg.get("warmup") else None
        if warmup_iters and lr_cfg.get("warmup_by_epoch"):
            warmup_iters *= iters_per_epoch
        return warmup_iters

    def check_trial_config(self, cfg: Any, iters_per_epoch: int,
                           model_cache: dict[str, Any] | None = None,
                           data_here: bool = True) -> list[ConfigError]:
        from rt3d_tune.backends.mmcv.validate import check_trial_config

        return check_trial_config(cfg, iters_per_epoch, model_cache, data_here)

    def persist(self, cfg: Any, work_dir: Path) -> None:
        """Nothing here: the runner's builder writes ``config.py`` with the seed it used
        (and only warns when it cannot)."""

    def start_trial(self, cfg: Any, run: TrialRun) -> Callable[[], Any]:
        from rt3d_tune.backends.mmcv.trial import start_mmcv_trial

        return start_mmcv_trial(cfg, run)

    def check_launcher(self, launcher: str) -> None:
        """Every launcher: ``none``, ``pytorch`` (torchrun), ``ray``."""

    def train_config(self, path: str, cfg: Any, *, work_dir: str | None, launcher: str,
                     **options: Any) -> dict[str, Any] | None:
        """rt3d-tune's runner in this process (one torchrun rank with ``--launcher
        pytorch``)."""
        from rt3d_tune.runner.train import train

        if launcher == "none":
            runner = train(cfg, work_dir=work_dir, **options)
            return {"epoch": runner.epoch, "iter": runner.iter, "work_dir": runner.work_dir}
        import torch.distributed as dist

        from rt3d_tune.runner.dist import init_from_torchrun_env, process_group

        init_from_torchrun_env()
        with process_group():
            runner = train(cfg, work_dir=work_dir,
                           progress=False if dist.get_rank() else None, **options)
        if runner.rank:
            return None
        return {"epoch": runner.epoch, "iter": runner.iter, "work_dir": runner.work_dir}

    def mmengine_spelling(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> Any:
        """:class:`~rt3d_tune.backends.mmcv.mmengine_export.MmengineRuntime` of ``cfg``."""
        from rt3d_tune.backends.mmcv.mmengine_export import to_mmengine

        return to_mmengine(plain_dict(cfg), iters_per_epoch)
