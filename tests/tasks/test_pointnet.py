"""The quick task: synthetic shapes and the PointNet classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import DATASETS, MODELS
from rt3d_tune.tasks.pointnet import SHAPES, PointNetClassifier, SyntheticShapesDataset


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    a = SyntheticShapesDataset(num_samples=20, num_points=32, seed=3)
    b = SyntheticShapesDataset(num_samples=20, num_points=32, seed=3)
    c = SyntheticShapesDataset(num_samples=20, num_points=32, seed=4)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.allclose(a.points, c.points)


def test_classes_are_balanced_and_samples_have_the_requested_shape() -> None:
    ds = DATASETS.build({"type": "SyntheticShapesDataset", "num_samples": 25, "num_points": 40})
    assert len(ds) == 25
    assert np.bincount(ds.labels).tolist() == [5] * len(SHAPES)
    item = ds[7]
    assert item["points"].shape == (40, 3) and item["points"].dtype == torch.float32
    batch = ds.collate_fn([ds[i] for i in range(4)])
    assert batch["points"].shape == (4, 40, 3) and batch["labels"].tolist() == [0, 1, 2, 3]


def test_evaluate_counts_right_labels() -> None:
    ds = SyntheticShapesDataset(num_samples=10, num_points=8)
    results = [{"label": int(k)} for k in ds.labels]
    results[0] = {"label": (int(ds.labels[0]) + 1) % 5}
    assert ds.evaluate(results, metric="accuracy") == {"accuracy": pytest.approx(0.9)}
    with pytest.raises(ConfigError, match="accuracy"):
        ds.evaluate(results, metric="bev")
    with pytest.raises(ValueError, match="10 results"):
        ds.evaluate(results[:3])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"classes": ["sphere", "pyramid"]}, "data.classes"),
        ({"classes": ["sphere"]}, "data.classes"),
        ({"num_points": 0}, "data.num_points"),
        ({"scale_range": (1.0, 0.5)}, "data.scale_range"),
    ],
)
def test_bad_dataset_arguments_are_config_errors(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        SyntheticShapesDataset(**kwargs)
    assert err.value.key_path == key


def test_model_follows_the_runner_contract() -> None:
    ds = SyntheticShapesDataset(num_samples=6, num_points=32)
    model = MODELS.build({"type": "PointNetClassifier", "num_classes": 5})
    batch = ds.collate_fn([ds[i] for i in range(6)])
    out = model.train_step(batch, None)
    assert set(out) == {"loss", "log_vars", "num_samples"} and out["num_samples"] == 6
    assert out["loss"].requires_grad and isinstance(out["log_vars"]["loss"], float)
    model.eval()
    preds = model(batch, return_loss=False)
    assert len(preds) == 6
    assert all(0 <= p["label"] < 5 and p["scores"].shape == (5,) for p in preds)
    assert ds.evaluate(preds)["accuracy"] >= 0.0


def test_short_training_beats_chance_by_far() -> None:
    torch.manual_seed(0)
    train = SyntheticShapesDataset(num_samples=320, num_points=64, seed=0)
    val = SyntheticShapesDataset(num_samples=100, num_points=64, seed=1)
    model = PointNetClassifier(num_classes=5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(train, batch_size=16, shuffle=True, collate_fn=train.collate_fn)
    for _ in range(4):
        model.train()
        for batch in loader:
            out = model.train_step(batch, opt)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
    model.eval()
    results = [
        r
        for b in DataLoader(val, batch_size=50, collate_fn=val.collate_fn)
        for r in model.forward_test(b)
    ]
    assert val.evaluate(results)["accuracy"] > 0.5  # chance is 0.2
