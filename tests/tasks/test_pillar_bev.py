"""The pillar BEV detector: targets, focal loss, yaw coding, decoding, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import MODELS
from rt3d_tune.tasks.centerhead import (
    BEVGrid,
    build_targets,
    decode,
    decode_yaw,
    encode_yaw,
    gaussian_focal_loss,
)
from rt3d_tune.tasks.pillar_bev import PillarBEVDetector

RANGE = (0.0, -8.0, -3.0, 16.0, 8.0, 1.0)
SMALL = {
    "num_classes": 2,
    "point_cloud_range": RANGE,
    "voxel_size": (0.25, 0.25),
    "pillar_channels": 16,
    "backbone": {
        "channels": (16, 32),
        "layer_nums": (1, 1),
        "strides": (2, 2),
        "upsample_channels": 16,
    },
    "head_channels": 16,
}


def box_surface_points(box: np.ndarray, rng: np.random.Generator, n: int = 150) -> np.ndarray:
    """Points on the four vertical faces of a box, with intensity."""
    x, y, z, length, w, h, yaw = box
    face = rng.integers(0, 4, n)
    t = rng.uniform(-0.5, 0.5, n)
    u = np.where(face < 2, np.where(face == 0, 0.5, -0.5) * length, t * length)
    v = np.where(face < 2, t * w, np.where(face == 2, 0.5, -0.5) * w)
    zz = z + rng.uniform(-0.5, 0.5, n) * h
    c, s = math.cos(yaw), math.sin(yaw)
    return np.stack([x + c * u - s * v, y + s * u + c * v, zz, rng.uniform(0, 1, n)], axis=1)


def tiny_scene(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ground plane and a few cars and pedestrians with points on their sides."""
    rng = np.random.default_rng(seed)
    boxes, labels = [], []
    for k in range(4):
        label = k % 2
        size = (3.9, 1.6, 1.5) if label == 0 else (0.8, 0.6, 1.7)
        center = (2.0 + 3.5 * k + rng.uniform(0, 0.5), rng.uniform(-5, 5))
        boxes.append(
            [center[0], center[1], -1.7 + size[2] / 2, *size, rng.uniform(-math.pi, math.pi)]
        )
        labels.append(label)
    ground = np.stack(
        [
            rng.uniform(0, 16, 800),
            rng.uniform(-8, 8, 800),
            np.full(800, -1.7),
            rng.uniform(0, 0.3, 800),
        ],
        axis=1,
    )
    pts = np.concatenate([ground] + [box_surface_points(np.array(b), rng) for b in boxes])
    return (
        torch.tensor(pts, dtype=torch.float32),
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.long),
    )


def tiny_batch(seeds: tuple[int, ...] = (0, 1)) -> dict:
    scenes = [tiny_scene(s) for s in seeds]
    return {
        "points": [s[0] for s in scenes],
        "gt_boxes": [s[1] for s in scenes],
        "gt_labels": [s[2] for s in scenes],
        "sample_idx": list(seeds),
    }


GRID = BEVGrid(x_min=0.0, y_min=-8.0, cell_x=0.5, cell_y=0.5, width=32, height=32)


def test_targets_peak_at_each_center_with_offsets_and_yaw_codes() -> None:
    boxes = torch.tensor(
        [[5.3, 1.2, -1.0, 4.0, 1.8, 1.5, 0.4], [10.1, -3.7, -1.0, 0.8, 0.6, 1.7, -1.0]]
    )
    labels = torch.tensor([0, 1])
    t = build_targets([boxes], [labels], GRID, num_classes=2, max_objs=8)
    assert t.heatmap.shape == (1, 2, 32, 32)
    assert t.index.shape == (1, 8) and t.reg.shape == (1, 8, 8) and t.mask.shape == (1, 8)
    assert t.mask.sum() == 2
    # (5.3 - 0) / 0.5 = 10.6 -> column 10; (1.2 + 8) / 0.5 = 18.4 -> row 18.
    assert t.heatmap[0, 0, 18, 10] == 1 and t.heatmap[0, 1, 18, 10] < 1
    assert t.index[0, 0] == 18 * 32 + 10
    assert torch.allclose(t.reg[0, 0, :2], torch.tensor([0.6, 0.4]), atol=1e-4)
    assert torch.allclose(t.reg[0, 0, 3:6], torch.log(torch.tensor([4.0, 1.8, 1.5])))
    assert torch.allclose(t.reg[0, 0, 6:8], torch.tensor([math.sin(0.8), math.cos(0.8)]))
    # Exactly one cell per object reaches 1; the Gaussian decays around it.
    assert (t.heatmap == 1).sum() == 2
    assert 0 < t.heatmap[0, 0, 18, 11] < 1


def test_targets_drop_boxes_outside_the_grid_and_cap_at_max_objs() -> None:
    boxes = torch.tensor(
        [[20.0, 0.0, -1, 4, 2, 1.5, 0]] + [[1.0 + i, 0.0, -1, 0.8, 0.6, 1.7, 0] for i in range(5)]
    )
    t = build_targets([boxes], [torch.zeros(6, dtype=torch.long)], GRID, num_classes=2, max_objs=3)
    assert t.mask.tolist() == [[1, 1, 1]]
    assert t.heatmap[0, 0].max() == 1 and t.heatmap[0, 1].max() == 0


def test_focal_loss_matches_hand_computation() -> None:
    pred = torch.tensor([0.5, 0.5, 0.2])
    target = torch.tensor([1.0, 0.0, 0.5])
    # positive: -log(0.5) * 0.5**2; negative far from a peak: -log(0.5) * 0.5**2 * 1;
    # negative near a peak: -log(0.8) * 0.2**2 * 0.5**4; one positive.
    expected = math.log(2) * 0.25 * 2 + -math.log(0.8) * 0.04 * 0.0625
    assert gaussian_focal_loss(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_focal_loss_is_smaller_for_a_better_prediction() -> None:
    target = torch.tensor([1.0, 0.3, 0.0])
    good = gaussian_focal_loss(torch.tensor([0.9, 0.2, 0.01]), target)
    bad = gaussian_focal_loss(torch.tensor([0.1, 0.8, 0.5]), target)
    assert good < bad


@pytest.mark.parametrize("yaw", [-3.0, -1.2, 0.0, 0.7, 1.5, 3.1])
def test_yaw_code_round_trip_is_exact_modulo_pi(yaw: float) -> None:
    code = encode_yaw(torch.tensor(yaw))
    back = decode_yaw(code[0], code[1]).item()
    assert math.isclose(math.remainder(back - yaw, math.pi), 0.0, abs_tol=1e-5)
    # Front and back give the same target: no averaging to zero.
    assert torch.allclose(encode_yaw(torch.tensor(yaw + math.pi)), code, atol=1e-5)


def test_decode_recovers_planted_boxes() -> None:
    boxes = torch.tensor(
        [[5.3, 1.2, -1.0, 4.0, 1.8, 1.5, 0.4], [10.1, -3.7, -0.9, 0.8, 0.6, 1.7, -1.0]]
    )
    labels = torch.tensor([0, 1])
    t = build_targets([boxes], [labels], GRID, num_classes=2, max_objs=8)
    reg = torch.zeros(1, 8, 32, 32).view(1, 8, -1)
    for k in range(2):
        reg[0, :, t.index[0, k]] = t.reg[0, k]
    out = decode(t.heatmap, reg.view(1, 8, 32, 32), GRID, max_num=10, score_thr=0.5)
    assert len(out) == 1 and set(out[0]) == {"boxes", "scores", "labels"}
    got = out[0]
    assert got["boxes"].dtype == np.float32 and got["boxes"].shape == (2, 7)
    order = np.argsort(got["labels"])
    np.testing.assert_array_equal(got["labels"][order], [0, 1])
    np.testing.assert_allclose(got["scores"], 1.0)
    np.testing.assert_allclose(got["boxes"][order][:, :6], boxes[:, :6].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["boxes"][order][:, 6], boxes[:, 6].numpy(), atol=1e-4)


def test_decode_keeps_one_detection_per_local_maximum() -> None:
    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 2, 2], heat[0, 0, 2, 3] = 0.9, 0.6  # a shoulder next to a peak
    heat[0, 0, 6, 6] = 0.3
    grid = BEVGrid(0.0, 0.0, 1.0, 1.0, 8, 8)
    out = decode(heat, torch.zeros(1, 8, 8, 8), grid, max_num=5, score_thr=0.1)[0]
    np.testing.assert_allclose(np.sort(out["scores"]), [0.3, 0.9], rtol=1e-6)


def test_model_is_registered_and_follows_the_runner_contract() -> None:
    model = MODELS.build(dict(type="PillarBEVDetector", **SMALL))
    batch = tiny_batch()
    out = model.train_step(batch, None)
    assert set(out) == {"loss", "log_vars", "num_samples"}
    assert out["loss"].ndim == 0 and out["loss"].requires_grad
    assert set(out["log_vars"]) == {"loss_heatmap", "loss_reg", "loss"}
    assert all(isinstance(v, float) for v in out["log_vars"].values())
    assert out["num_samples"] == 2
    model.eval()
    preds = model(batch, return_loss=False)
    assert len(preds) == 2
    for p in preds:
        assert p["boxes"].shape[1] == 7 and len(p["scores"]) == len(p["labels"]) == len(p["boxes"])


def test_pillar_features_ignore_points_outside_the_range() -> None:
    model = PillarBEVDetector(**SMALL).eval()
    pts = tiny_scene(0)[0]
    far = torch.tensor([[40.0, 0.0, -1.0, 0.5], [5.0, 30.0, -1.0, 0.5], [5.0, 0.0, 9.0, 0.5]])
    with torch.no_grad():
        a = model.pfn([pts])
        b = model.pfn([torch.cat([pts, far])])
    assert a.shape == (1, 16, 64, 64)
    assert torch.equal(a, b)
    # Only occupied pillars carry features.
    occupied = (a.abs().sum(1) > 0).sum().item()
    assert 0 < occupied < 64 * 64


def test_training_steps_on_a_fixed_batch_reduce_the_loss() -> None:
    torch.manual_seed(0)
    model = PillarBEVDetector(**SMALL)
    batch = tiny_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model.train_step(batch, opt)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["log_vars"])
    assert losses[-1]["loss"] < 0.5 * losses[0]["loss"]
    assert losses[-1]["loss_reg"] < losses[0]["loss_reg"]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"voxel_size": (0.3, 0.25)}, "model.point_cloud_range"),
        ({"voxel_size": (0.25, -1)}, "model.voxel_size"),
        ({"point_cloud_range": (0, 0, 0, -1, 1, 1)}, "model.point_cloud_range"),
        ({"num_classes": 0}, "model.num_classes"),
        ({"backbone": {"norm": "ln"}}, "model.backbone.norm"),
        ({"backbone": {"channels": (16, 32, 64)}}, "model.backbone"),
    ],
)
def test_bad_geometry_is_a_config_error_with_its_key(kwargs: dict, key: str) -> None:
    cfg = {**SMALL, **kwargs}
    with pytest.raises(ConfigError) as err:
        PillarBEVDetector(**cfg)
    assert err.value.key_path == key
