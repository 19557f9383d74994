"""Rotated BEV IoU against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rt3d_tune.tasks.bev_metric import bev_corners, bev_iou


def box(x: float, y: float, length: float, width: float, yaw: float = 0.0) -> list[float]:
    """A LiDAR box ``(x, y, z, l, w, h, yaw)`` with unit height."""
    return [x, y, 0.0, length, width, 1.0, yaw]


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (box(0, 0, 1, 1), box(0, 0, 1, 1), 1.0),  # identical
        (box(0, 0, 1, 1), box(3, 0, 1, 1), 0.0),  # disjoint
        (box(0, 0, 1, 1), box(1, 0, 1, 1), 0.0),  # touching edges
        (box(0, 0, 1, 1), box(0.5, 0, 1, 1), 1 / 3),  # half overlap: 0.5 / 1.5
        (box(0, 0, 1, 1), box(0.5, 0.5, 1, 1), 1 / 7),  # quarter overlap: 0.25 / 1.75
        # a unit square turned 45 degrees over another: a regular octagon of inradius
        # 1/2, area 2 (sqrt 2 - 1); IoU = that / (2 - that) = 1 / sqrt 2
        (box(0, 0, 1, 1), box(0, 0, 1, 1, math.pi / 4), 1 / math.sqrt(2)),
        (box(0, 0, 2, 1), box(0, 0, 2, 1, math.pi / 2), 1 / 3),  # a cross: 1 / (2 + 2 - 1)
        (box(0, 0, 4, 2), box(1, 0, 4, 2), 0.6),  # shifted along the heading: 6 / 10
        (box(0, 0, 2, 2), box(0, 0, 1, 1, 0.3), 0.25),  # one inside the other: 1 / 4
    ],
)
def test_iou_matches_hand_values(a: list[float], b: list[float], expected: float) -> None:
    assert bev_iou([a], [b])[0, 0] == pytest.approx(expected, abs=1e-9)
    assert bev_iou([b], [a])[0, 0] == pytest.approx(expected, abs=1e-9)


def test_iou_ignores_height_and_z_and_accepts_five_column_boxes() -> None:
    a = np.array([[0.0, 0.0, 5.0, 1.0, 1.0, 9.0, 0.0]])
    b = np.array([[0.5, 0.0, -3.0, 1.0, 1.0, 0.1, 0.0]])
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / 3)
    assert bev_iou(a[:, [0, 1, 3, 4, 6]], b[:, [0, 1, 3, 4, 6]])[0, 0] == pytest.approx(1 / 3)


def test_a_box_turned_half_a_turn_is_the_same_box() -> None:
    rng = np.random.default_rng(0)
    boxes = np.c_[rng.uniform(0, 5, (20, 3)), rng.uniform(0.5, 4, (20, 3)), rng.uniform(-3, 3, 20)]
    turned = boxes.copy()
    turned[:, 6] += math.pi
    np.testing.assert_allclose(np.diag(bev_iou(boxes, turned)), 1.0, atol=1e-9)


def test_pairwise_matrix_shape_and_empty_inputs() -> None:
    assert bev_iou(np.zeros((0, 7)), [box(0, 0, 1, 1)]).shape == (0, 1)
    assert bev_iou([box(0, 0, 1, 1)] * 3, np.zeros((0, 7))).shape == (3, 0)
    iou = bev_iou(
        [box(0, 0, 1, 1), box(5, 5, 1, 1)], [box(5, 5, 1, 1), box(0, 0, 1, 1), box(9, 9, 1, 1)]
    )
    np.testing.assert_allclose(iou, [[0, 1, 0], [1, 0, 0]], atol=1e-12)


def test_wrong_box_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[N, 7\]"):
        bev_iou(np.zeros((2, 6)), np.zeros((1, 7)))


def test_random_rotated_pairs_match_a_dense_sampling_estimate() -> None:
    path = pytest.importorskip("matplotlib.path")
    rng = np.random.default_rng(1)
    a = np.c_[
        rng.uniform(-1, 1, (12, 2)),
        np.zeros(12),
        rng.uniform(1, 4, (12, 2)),
        np.ones(12),
        rng.uniform(-math.pi, math.pi, 12),
    ]
    b = a.copy()
    b[:, :2] += rng.uniform(-1.5, 1.5, (12, 2))
    b[:, 3:5] = rng.uniform(0.5, 4, (12, 2))
    b[:, 6] = rng.uniform(-math.pi, math.pi, 12)
    grid = np.stack(np.meshgrid(np.linspace(-6, 6, 1200), np.linspace(-6, 6, 1200)), -1).reshape(
        -1, 2
    )
    ca, cb = bev_corners(a), bev_corners(b)
    iou = bev_iou(a, b)
    for i in range(12):
        in_a = path.Path(ca[i]).contains_points(grid)
        in_b = path.Path(cb[i]).contains_points(grid)
        estimate = (in_a & in_b).sum() / max((in_a | in_b).sum(), 1)
        assert iou[i, i] == pytest.approx(estimate, abs=0.01)


def test_corners_are_counter_clockwise_from_front_left() -> None:
    corners = bev_corners([box(1, 2, 4, 2, math.pi / 2)])[0]
    np.testing.assert_allclose(corners, [[0, 4], [0, 0], [2, 0], [2, 4]], atol=1e-12)
