"""The synthetic LiDAR dataset: sample format, batching, augmentation, evaluation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import DATASETS
from rt3d_tune.tasks.lidar_dataset import SyntheticLidarDataset


def small(**kw: object) -> SyntheticLidarDataset:
    return DATASETS.build({"type": "SyntheticLidarDataset", "num_scenes": 4, "seed": 3, **kw})


def test_samples_follow_the_data_format() -> None:
    ds = small()
    assert len(ds) == 4 and ds.CLASSES == ("Car", "Pedestrian")
    sample = ds[2]
    assert sample["points"].dtype == torch.float32 and sample["points"].shape[1] == 4
    assert sample["gt_boxes"].dtype == torch.float32 and sample["gt_boxes"].shape[1] == 7
    assert sample["gt_labels"].dtype == torch.int64
    assert len(sample["gt_labels"]) == len(sample["gt_boxes"]) > 0
    assert sample["sample_idx"] == 2
    batch = ds.collate_fn([ds[0], ds[1]])
    assert set(batch) == {"points", "gt_boxes", "gt_labels", "sample_idx"}
    assert batch["sample_idx"] == [0, 1] and len(batch["points"]) == 2


def test_same_seed_same_scenes_other_seed_other_scenes() -> None:
    a, b, c = small(), small(), small(seed=4)
    assert torch.equal(a[1]["points"], b[1]["points"])
    assert not torch.equal(a[1]["gt_boxes"], c[1]["gt_boxes"])


def test_augmentation_is_redrawn_each_epoch_and_keeps_boxes_on_their_points() -> None:
    ds = small(augment=True)
    plain = small()
    first = ds[0]
    assert torch.equal(first["points"], ds[0]["points"])  # deterministic within an epoch
    assert not torch.equal(first["points"], plain[0]["points"])
    ds.set_epoch(1)
    assert not torch.equal(first["points"], ds[0]["points"])
    # every augmented box still holds points of its object (boxes and points moved together)
    sample = ds[0]
    pts = sample["points"].numpy()[:, :3]
    for box in sample["gt_boxes"].numpy():
        cos, sin = np.cos(box[6]), np.sin(box[6])
        d = pts[:, :2] - box[:2]
        local = np.c_[d[:, 0] * cos + d[:, 1] * sin, -d[:, 0] * sin + d[:, 1] * cos]
        inside = np.all(np.abs(local) <= box[3:5] / 2 + 0.05, axis=1) & (
            np.abs(pts[:, 2] - box[2]) <= box[5] / 2 + 0.05
        )
        assert inside.sum() >= 3


def test_evaluate_scores_perfect_predictions_one_and_misses_zero() -> None:
    ds = small()
    perfect = [
        {"boxes": s["gt_boxes"], "scores": torch.ones(len(s["gt_boxes"])), "labels": s["gt_labels"]}
        for s in (ds[i] for i in range(len(ds)))
    ]
    assert ds.evaluate(perfect, metric="bev")["bev_mAP"] == pytest.approx(1.0)
    empty = [{"boxes": np.zeros((0, 7)), "scores": np.zeros(0), "labels": np.zeros(0, int)}] * len(
        ds
    )
    metrics = ds.evaluate(empty)
    assert set(metrics) == {
        "bev_AP_Car",
        "bev_AP_Pedestrian",
        "bev_mAP",
        "bev_AP50_Car",
        "bev_AP50_Pedestrian",
        "bev_mAP50",
    }
    assert metrics["bev_mAP"] == 0.0


def test_evaluate_rejects_unknown_metric_and_wrong_count() -> None:
    ds = small()
    with pytest.raises(ConfigError) as info:
        ds.evaluate([], metric="mAP")
    assert info.value.key_path == "evaluation.metric"
    with pytest.raises(ValueError, match="0 predictions for 4 samples"):
        ds.evaluate([])


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"scene": {"num_beam": 16}}, "scene.num_beam"),
        ({"scene": {"drop_rate": 2.0}}, "scene.drop_rate"),
        ({"class_names": ["Car", "Tram"]}, "class_names"),
        ({"point_cloud_range": [0, 0, 0, 1, 1]}, "point_cloud_range"),
        ({"augment": "yes"}, "augment"),
    ],
)
def test_bad_arguments_name_their_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        small(**kwargs)
    assert info.value.key_path == key
