"""The PointNet shapes task as mmengine components, and its mmengine config."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("mmengine")

from mmengine.config import Config
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import DATASETS, METRICS, MODELS
from mmengine.runner import Runner

from rt3d_tune.tasks.mmengine_shapes import (
    MMShapesDataset,
    ShapesAccuracy,
    ShapesPointNet,
)
from rt3d_tune.tasks.pointnet import SyntheticShapesDataset

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mmengine" / "pointnet_shapes.py"


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _runner_cfg(tmp_path: Path, **train_cfg: Any) -> Config:
    cfg = Config.fromfile(str(CONFIG))
    cfg.work_dir = str(tmp_path)
    # The default name is file name + second: two runners in one second share a MessageHub.
    cfg.experiment_name = f"shapes_{tmp_path.name}"
    cfg.train_cfg.update(train_cfg)
    return cfg


def _train(cfg: Config) -> dict[str, float]:
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    return {key: hub.get_scalar(key).current() for key in ("val/accuracy", "train/loss")}


def test_config_is_a_plain_mmengine_config() -> None:
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.custom_imports == {
        "imports": ["rt3d_tune.tasks.mmengine_shapes"],
        "allow_failed_imports": False,
    }
    assert cfg.model.type in MODELS and cfg.val_evaluator.type in METRICS
    for split in ("train", "val", "test"):
        loader = cfg[f"{split}_dataloader"]
        assert loader.dataset.type in DATASETS
        assert loader.batch_size == 16 and loader.num_workers == 0
        assert loader.collate_fn == {"type": "default_collate"}
    assert cfg.train_dataloader.sampler == {"type": "DefaultSampler", "shuffle": True}
    assert cfg.train_dataloader.dataset.num_samples == 320
    assert cfg.val_dataloader.dataset.num_samples == 200
    assert cfg.train_cfg == {"by_epoch": True, "max_epochs": 8, "val_interval": 1}
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert [s.type for s in cfg.param_scheduler] == ["LinearLR", "CosineAnnealingLR"]
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 1
    assert "work_dir" not in cfg and cfg.randomness == {"seed": 0}


def test_rt3d_tune_does_not_import_the_task_module() -> None:
    code = (
        "import sys, rt3d_tune, rt3d_tune.tasks, rt3d_tune.cli\n"
        "print('rt3d_tune.tasks.mmengine_shapes' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_dataset_items_are_the_shapes_samples_in_mmengine_layout() -> None:
    ds = DATASETS.build(
        {
            "type": "MMShapesDataset",
            "num_samples": 12,
            "num_points": 16,
            "classes": ["sphere", "cube", "torus"],
            "seed": 3,
        }
    )
    ref = SyntheticShapesDataset(
        num_samples=12, num_points=16, classes=["sphere", "cube", "torus"], seed=3
    )
    assert len(ds) == 12 and ds.metainfo == {"classes": ("sphere", "cube", "torus")}
    item = ds[4]
    assert set(item) == {"points", "labels"} and item["labels"] == 1
    torch.testing.assert_close(item["points"], torch.from_numpy(ref.points[4]))
    batch = default_collate([ds[i] for i in range(5)])
    assert batch["points"].shape == (5, 16, 3)
    assert batch["labels"].tolist() == [0, 1, 2, 0, 1] == ds.labels[:5].tolist()


def test_accuracy_is_the_fraction_of_right_labels() -> None:
    metric = METRICS.build({"type": "ShapesAccuracy"})
    preds = [{"pred_label": p, "gt_label": g} for p, g in [(0, 0), (1, 2), (2, 2), (4, 4)]]
    metric.process({"labels": torch.tensor([0, 2, 2, 4])}, preds)
    # No gt_label in the predictions: the batch's labels are the ground truth.
    metric.process({"labels": [1, 3]}, [{"pred_label": 1}, {"pred_label": 0}])
    assert metric.evaluate(size=6) == {"accuracy": pytest.approx(4 / 6)}
    with pytest.raises(ValueError, match="no samples"):
        ShapesAccuracy().compute_metrics([])


def test_model_modes() -> None:
    torch.manual_seed(0)
    ds = MMShapesDataset(num_samples=6, num_points=32)
    model = MODELS.build({"type": "ShapesPointNet", "num_classes": 5})
    batch = default_collate([ds[i] for i in range(6)])
    assert model(**batch).shape == (6, 5)  # mode='tensor': logits
    losses = model(**batch, mode="loss")
    assert set(losses) == {"loss", "acc"} and losses["loss"].requires_grad
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(batch, optim)
    assert set(log_vars) == {"loss", "acc"} and math.isfinite(log_vars["loss"].item())
    model.eval()
    preds = model.val_step(batch)
    assert len(preds) == 6 and [p["gt_label"] for p in preds] == batch["labels"].tolist()
    assert all(0 <= p["pred_label"] < 5 and p["pred_score"].shape == (5,) for p in preds)
    assert [p["pred_label"] for p in preds] == model(**batch).argmax(1).tolist()
    # pseudo_collate's lists of samples work too.
    assert len(model.val_step(pseudo_collate([ds[i] for i in range(3)]))) == 3
    with pytest.raises(ValueError, match="labels"):
        model(batch["points"], mode="loss")
    with pytest.raises(ValueError, match="mode"):
        model(**batch, mode="logits")


def test_non_finite_loss_is_reported_as_it_is() -> None:
    model = ShapesPointNet(num_classes=5)
    batch = default_collate([MMShapesDataset(num_samples=4, num_points=8)[i] for i in range(4)])
    batch["points"][0, 0, 0] = float("nan")
    log_vars = model.train_step(batch, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert not math.isfinite(log_vars["loss"].item())


def test_runner_trains_two_epochs_and_keeps_one_checkpoint(
    tmp_path: Path, one_thread: None
) -> None:
    metrics = _train(_runner_cfg(tmp_path, max_epochs=2))
    assert 0.0 <= metrics["val/accuracy"] <= 1.0
    assert (tmp_path / "epoch_2.pth").is_file() and not (tmp_path / "epoch_1.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text().strip().endswith("epoch_2.pth")


@pytest.mark.slow
def test_eight_epochs_beat_chance_and_a_huge_lr_does_not(tmp_path: Path, one_thread: None) -> None:
    good = _train(_runner_cfg(tmp_path / "lr0.01"))
    cfg = _runner_cfg(tmp_path / "lr10")
    cfg.optim_wrapper.optimizer.lr = 10.0
    bad = _train(cfg)
    assert good["val/accuracy"] > 0.6  # chance is 0.2; 0.8 when written
    assert bad["val/accuracy"] < 0.45 or not math.isfinite(bad["train/loss"])
