"""Step 1: the grid's space, its settings and the files a search over it reads.

The truth grid is exactly the Cartesian product of a space of categorical choices
(optimizer with its LRs x LR policy), so every grid config is what
``build_trial_configs`` gives for one of its points, and a replayed search over the same
space draws only grid configs. The base config (cyclic AdamW at the task's own LR) is
always one of them: it is the baseline the verdict compares the search's winner with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TASK_CONFIG = "configs/pillar_bev/pillar_bev_synthetic.py"
METRIC = "bev_mAP"
MODE = "max"
GRID_CSV = "grid.csv"
GRID_META = "grid.json"
FIELDS = (
    "config", "label", "params", "seed", "kind", "epoch", "metric", "probe_ratio",
    "probe_metric", "probe_iters", "seconds", "probe_seconds", "diverged",
)
KINDS = ("full", "scaled")
SEEDS = (0, 1)  # the two training seeds: 0 is the search's fixed trial seed, 1 confirms
POLICY_NAMES = ("cyclic", "cosine", "step")



def lr_branches(policies: list[str], warmup_iters: int, base_epochs: int) -> list[dict[str, Any]]:
    """The ``lr_config`` options, one per policy name (see the module docstring)."""
    branch = {
        "cyclic": {"policy": "cyclic", "target_ratio": [10, 1.0e-4], "cyclic_times": 1,
                   "step_ratio_up": 0.4},
        "cosine": {"policy": "CosineAnnealing", "warmup": "linear", "warmup_iters": warmup_iters,
                   "warmup_ratio": 0.1, "min_lr_ratio": 1.0e-5},
        "step": {"policy": "step", "step": [max(1, round(0.75 * base_epochs))], "warmup": "linear",
                 "warmup_iters": warmup_iters, "warmup_ratio": 0.1},
    }
    return [branch[name] for name in policies]


def space_section(adamw_lrs: list[float], sgd_lrs: list[float], policies: list[str],
                  warmup_iters: int, base_epochs: int) -> dict[str, Any]:
    """The ``space:`` of the grid: optimizer (with its LRs) x LR policy, all categorical."""
    optimizers = []
    if adamw_lrs:
        optimizers.append({"type": "AdamW", "lr": {"choice": list(adamw_lrs)},
                           "betas": [0.95, 0.99], "weight_decay": 0.01})
    if sgd_lrs:
        optimizers.append({"type": "SGD", "lr": {"choice": list(sgd_lrs)}, "momentum": 0.9,
                           "weight_decay": 1.0e-4})
    return {
        "optimizer": {"choice": optimizers},
        "lr_config": {"choice": lr_branches(policies, warmup_iters, base_epochs)},
    }


def write_base(folder: Path, scenes: int | None, base_epochs: int) -> Path:
    """The task config with seed 0, the base length, no checkpoints (fewer scenes when asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"_base_ = [{str(REPO / TASK_CONFIG)!r}]",
        "seed = 0",
        f"runner = dict(type='EpochBasedRunner', max_epochs={base_epochs})",
        "checkpoint_config = None",
    ]
    if scenes:
        lines.append(f"data = dict(train=dict(num_scenes={scenes}), "
                     f"val=dict(num_scenes={max(10, scenes // 3)}))")
    path = folder / "fidelity_base.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_space(folder: Path, name: str, base: Path, space: dict[str, Any], *,
                trial_epochs: int | None, schedule: str = "scaled", search_seed: int = 0,
                probe_ratio: float | None = None, top_k: int = 2, num_samples: int = 10,
                grace_period: int = 1) -> Any:
    """A space file over the grid's space, loaded (``load_space``): the SearchSpace."""
    from rt3d_tune.space.space import load_space

    scheduler: dict[str, Any] = {"type": "asha", "grace_period": grace_period,
                                 "reduction_factor": 2}
    if probe_ratio is not None:
        scheduler.update(probe="cooldown", probe_ratio=probe_ratio)
    data: dict[str, Any] = {
        "base": str(base),
        "metric": METRIC,
        "mode": MODE,
        "space": space,
        "search": {"algorithm": "tpe", "num_samples": num_samples, "seed": search_seed,
                   "max_concurrent": 2, "trial_seed": "fixed",
                   "confirm": {"top_k": top_k, "seeds": 1}},
        "scheduler": scheduler,
        "resources": {"cpu": 1},
    }
    if trial_epochs is not None:
        data["stop"] = {"max_epochs": trial_epochs, "schedule": schedule}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_space(path)


def config_key(space: Any, params: dict[str, Any]) -> str:
    """A config's identity: the overrides of the space's own key paths, as JSON."""
    from rt3d_tune.space.sampling import overrides_from_params

    overrides = overrides_from_params(space, params)
    return json.dumps({path: overrides[path] for path, _ in space.params}, sort_keys=True)


def config_label(space: Any, params: dict[str, Any]) -> str:
    """``AdamW lr 0.0006 cosine``."""
    from rt3d_tune.space.sampling import overrides_from_params

    over = overrides_from_params(space, params)
    policy = {"cyclic": "cyclic", "CosineAnnealing": "cosine", "step": "step"}.get(
        over["lr_config"]["policy"], over["lr_config"]["policy"])
    return f"{over['optimizer']['type']} lr {over['optimizer']['lr']:g} {policy}"


@dataclass(frozen=True)
class Settings:
    """What the grid was trained with (``grid.json``)."""

    base_epochs: int
    trial_epochs: int
    probe_ratios: tuple[float, ...]
    scenes: int | None
    iters_per_epoch: int
    space: dict[str, Any]
    configs: tuple[dict[str, Any], ...]  # {id, label, params, key}

    @property
    def rungs(self) -> list[int]:
        """The rung epochs at T/4 and T/2 (at least 1, below T)."""
        t = self.trial_epochs
        return sorted({e for e in (max(1, t // 4), max(1, t // 2)) if e < t})

    def probe_epochs(self, kind: str) -> list[int]:
        """Where a run of ``kind`` probes: the rungs; the full run also at B/4 and B/2."""
        epochs = set(self.rungs)
        length = self.base_epochs if kind == "full" else self.trial_epochs
        if kind == "full":
            epochs |= {max(1, self.base_epochs // 4), max(1, self.base_epochs // 2)}
        return sorted(e for e in epochs if e < length)

    def to_json(self) -> dict[str, Any]:
        return {"base_epochs": self.base_epochs, "trial_epochs": self.trial_epochs,
                "probe_ratios": list(self.probe_ratios), "scenes": self.scenes,
                "iters_per_epoch": self.iters_per_epoch, "space": self.space,
                "configs": list(self.configs), "task": TASK_CONFIG, "metric": METRIC}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(int(data["base_epochs"]), int(data["trial_epochs"]),
                   tuple(float(r) for r in data["probe_ratios"]), data.get("scenes"),
                   int(data["iters_per_epoch"]), data["space"],
                   tuple(data["configs"]))



def base_lr() -> float:
    """The task config's own optimizer LR (the baseline's)."""
    from rt3d_tune.config import Config

    return float(Config.fromfile(str(REPO / TASK_CONFIG)).optimizer.lr)


def with_baseline(adamw_lrs: list[float], policies: list[str]
                  ) -> tuple[list[float], list[str], str]:
    """The AdamW LRs and policies with the base config's own (its LR, cyclic) added where
    missing, so that the baseline is a grid point; and a note saying what was added."""
    lr = base_lr()
    added = []
    if not any(abs(x - lr) <= 1e-12 * lr for x in adamw_lrs):
        adamw_lrs = sorted([*adamw_lrs, lr])
        added.append(f"AdamW lr {lr:g} to --adamw-lrs")
    if "cyclic" not in policies:
        policies = ["cyclic", *policies]
        added.append("cyclic to --policies")
    note = ("the base config is a grid point (the verdict's baseline)" if not added else
            "the baseline must be a grid point: added " + " and ".join(added))
    return adamw_lrs, policies, note


def baseline_id(settings: Settings, space: Any) -> str | None:
    """The grid config that is the base config as written (None: the grid lacks it)."""
    from rt3d_tune.space.baseline import baseline_params

    params = baseline_params(space)
    if params is None:
        return None
    key = config_key(space, params)
    return next((c["id"] for c in settings.configs if c["key"] == key), None)


def prepare(folder: Path, args: Any) -> tuple[Settings, Path]:
    """The settings of a new grid (its space enumerated, the baseline among its configs)
    and its base config (``args``: the command line's sizes)."""
    from rt3d_tune.config import Config
    from rt3d_tune.runner.data import train_iters_per_epoch
    from rt3d_tune.space.sampling import grid_params

    base = write_base(folder, args.scenes, args.base_epochs)
    ipe = train_iters_per_epoch(Config.fromfile(str(base)))
    adamw_lrs, policies, note = with_baseline(list(args.adamw_lrs), list(args.policies))
    print(note, flush=True)
    section = space_section(adamw_lrs, args.sgd_lrs, policies, max(1, ipe // 2),
                            args.base_epochs)
    space = write_space(folder / "spaces", "grid", base, section, trial_epochs=None)
    configs = tuple(
        {"id": f"c{i:02d}", "label": config_label(space, params), "params": params,
         "key": config_key(space, params)}
        for i, params in enumerate(grid_params(space))
    )
    settings = Settings(args.base_epochs, args.trial_epochs, tuple(args.probe_ratios),
                        args.scenes, ipe, section, configs)
    return settings, base

