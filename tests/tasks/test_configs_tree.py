"""The configs/ tree: every file loads, the schedules are mmdet3d's, task configs build."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt3d_tune import Config
from rt3d_tune.registry import DATASETS, MODELS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_FILES = sorted(CONFIGS.rglob("*.py"))
# mmengine configs are checked by test_mmengine_shapes.py (mmengine builds them).
TASK_CONFIGS = sorted(p for p in ALL_FILES
                      if "_base_" not in p.parts and "mmengine" not in p.parts)


def test_the_tree_has_the_mmdet3d_layout() -> None:
    names = {p.relative_to(CONFIGS).as_posix() for p in ALL_FILES}
    expected = {
        "_base_/default_runtime.py",
        "_base_/models/pillar_bev.py",
        "_base_/models/pointnet_cls.py",
        "_base_/datasets/synthetic_lidar.py",
        "_base_/datasets/synthetic_shapes.py",
        "_base_/datasets/kitti_bev.py",
        "pillar_bev/pillar_bev_synthetic.py",
        "pillar_bev/pillar_bev_kitti.py",
        "pointnet/pointnet_shapes.py",
    } | {f"_base_/schedules/{name}.py" for name in SCHEDULES}
    assert expected <= names


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_config_file_loads(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    assert cfg.to_dict()


# mmdetection3d v1.0.0rc6, configs/_base_/schedules/: the values users know.
# mmdet3d's one-cycle LR and momentum, shared by cyclic_20e and cyclic_40e
CYCLIC = {
    "lr_config": {"policy": "cyclic", "target_ratio": (10, 1e-4), "cyclic_times": 1,
                  "step_ratio_up": 0.4},
    "momentum_config": {"policy": "cyclic", "target_ratio": (0.85 / 0.95, 1), "cyclic_times": 1,
                        "step_ratio_up": 0.4},
}

SCHEDULES = {
    "cyclic_40e": {
        "optimizer": {"type": "AdamW", "lr": 0.0018, "betas": (0.95, 0.99), "weight_decay": 0.01},
        "optimizer_config": {"grad_clip": {"max_norm": 10, "norm_type": 2}},
        **CYCLIC,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 40},
    },
    "cyclic_20e": {
        "optimizer": {"type": "AdamW", "lr": 1e-4, "weight_decay": 0.01},
        "optimizer_config": {"grad_clip": {"max_norm": 35, "norm_type": 2}},
        **CYCLIC,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 20},
    },
    "cosine": {
        "optimizer": {"type": "AdamW", "lr": 0.003, "betas": (0.95, 0.99), "weight_decay": 0.001},
        "optimizer_config": {"grad_clip": {"max_norm": 10, "norm_type": 2}},
        "lr_config": {
            "policy": "CosineAnnealing",
            "warmup": "linear",
            "warmup_iters": 1000,
            "warmup_ratio": 0.1,
            "min_lr_ratio": 1e-5,
        },
        "momentum_config": None,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 40},
    },
    "schedule_2x": {
        "optimizer": {"type": "AdamW", "lr": 0.001, "weight_decay": 0.01},
        "optimizer_config": {"grad_clip": {"max_norm": 35, "norm_type": 2}},
        "lr_config": {
            "policy": "step",
            "warmup": "linear",
            "warmup_iters": 1000,
            "warmup_ratio": 0.001,
            "step": [20, 23],
        },
        "momentum_config": None,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 24},
    },
    "schedule_3x": {
        "optimizer": {"type": "AdamW", "lr": 0.008, "weight_decay": 0.01},
        "optimizer_config": {"grad_clip": {"max_norm": 10, "norm_type": 2}},
        "lr_config": {"policy": "step", "warmup": None, "step": [24, 32]},
        "runner": {"type": "EpochBasedRunner", "max_epochs": 36},
    },
    "mmdet_schedule_1x": {
        "optimizer": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001},
        "optimizer_config": {"grad_clip": None},
        "lr_config": {
            "policy": "step",
            "warmup": "linear",
            "warmup_iters": 500,
            "warmup_ratio": 0.001,
            "step": [8, 11],
        },
        "runner": {"type": "EpochBasedRunner", "max_epochs": 12},
    },
    "seg_cosine_50e": {
        "optimizer": {"type": "Adam", "lr": 0.001, "weight_decay": 0.001},
        "optimizer_config": {"grad_clip": None},
        "lr_config": {"policy": "CosineAnnealing", "warmup": None, "min_lr": 1e-5},
        "momentum_config": None,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 50},
    },
    "seg_cosine_100e": {
        "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.001},
        "optimizer_config": {"grad_clip": None},
        "lr_config": {"policy": "CosineAnnealing", "warmup": None, "min_lr": 1e-5},
        "momentum_config": None,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 100},
    },
    "seg_cosine_150e": {
        "optimizer": {"type": "SGD", "lr": 0.2, "weight_decay": 0.0001, "momentum": 0.9},
        "optimizer_config": {"grad_clip": None},
        "lr_config": {"policy": "CosineAnnealing", "warmup": None, "min_lr": 0.002},
        "momentum_config": None,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 150},
    },
    "seg_cosine_200e": {
        "optimizer": {"type": "Adam", "lr": 0.001, "weight_decay": 0.01},
        "optimizer_config": {"grad_clip": None},
        "lr_config": {"policy": "CosineAnnealing", "warmup": None, "min_lr": 1e-5},
        "momentum_config": None,
        "runner": {"type": "EpochBasedRunner", "max_epochs": 200},
    },
}


def _plain(value: object) -> object:
    """Tuples and lists compare equal once both are lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_holds_the_mmdet3d_values(name: str) -> None:
    cfg = Config.fromfile(str(CONFIGS / "_base_" / "schedules" / f"{name}.py")).to_dict()
    for key, value in SCHEDULES[name].items():
        assert _plain(cfg[key]) == _plain(value), key


def test_default_runtime_has_the_mmdet3d_keys() -> None:
    cfg = Config.fromfile(str(CONFIGS / "_base_" / "default_runtime.py")).to_dict()
    assert cfg["checkpoint_config"] == {"interval": 1}
    assert cfg["log_config"]["interval"] == 50
    assert [h["type"] for h in cfg["log_config"]["hooks"]] == ["TextLoggerHook"]
    assert _plain(cfg["workflow"]) == [["train", 1]]
    assert cfg["load_from"] is None and cfg["resume_from"] is None and cfg["log_level"] == "INFO"


@pytest.mark.parametrize("path", TASK_CONFIGS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_task_configs_name_registered_types_and_build_their_model(path: Path) -> None:
    cfg = Config.fromfile(str(path)).to_dict()
    for split in ("train", "val", "test"):
        assert cfg["data"][split]["type"] in DATASETS
    assert cfg["evaluation"]["metric"] in ("bev", "accuracy")
    model = MODELS.build(cfg["model"], key_path="model")
    assert sum(p.numel() for p in model.parameters()) > 0
