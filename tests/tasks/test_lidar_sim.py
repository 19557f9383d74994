"""Synthetic LiDAR scenes: determinism, visibility, occlusion, density and the arguments."""

from __future__ import annotations

import numpy as np
import pytest

from rt3d_tune.errors import ConfigError
from rt3d_tune.tasks.bev_metric import bev_iou
from rt3d_tune.tasks.lidar_sim import Layout, SceneParams, render, simulate_scene

CLASSES = ("Car", "Pedestrian")
GROUND = -1.73
EXACT = SceneParams(range_noise=0.0, drop_rate=0.0)


def standing(x: float, y: float, lwh: tuple[float, float, float], yaw: float = 0.0) -> list[float]:
    return [x, y, GROUND + lwh[2] / 2, *lwh, yaw]


def layout(boxes: list[list[float]], labels: list[int], walls: list[list[float]] = ()) -> Layout:
    return Layout(
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 7),
        labels=np.asarray(labels, dtype=np.int64),
        reflectivity=np.full(len(boxes), 0.5),
        clutter_boxes=np.asarray(walls, dtype=np.float64).reshape(-1, 7),
        clutter_cylinders=np.zeros((0, 5)),
    )


def object_points(lay: Layout, params: SceneParams = EXACT) -> np.ndarray:
    """Points per labeled object of a hand-made layout."""
    return render(lay, params, np.random.default_rng(0)).num_points


CAR = (3.9, 1.6, 1.56)
PED = (0.8, 0.6, 1.73)


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    params = SceneParams()
    a, b = simulate_scene(params, CLASSES, (3, 7)), simulate_scene(params, CLASSES, (3, 7))
    c = simulate_scene(params, CLASSES, (3, 8))
    for field in ("points", "gt_boxes", "gt_labels", "source"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.points.shape != c.points.shape or not np.array_equal(a.points, c.points)


@pytest.mark.parametrize("seed", range(4))
def test_object_points_lie_on_faces_that_face_the_sensor(seed: int) -> None:
    scene = simulate_scene(EXACT, CLASSES, seed)
    assert (scene.source >= 0).sum() > 100
    for idx, box in enumerate(scene.boxes.astype(np.float64)):
        pts = scene.points[scene.source == idx, :3].astype(np.float64)
        if len(pts) == 0:
            continue
        cos, sin = np.cos(box[6]), np.sin(box[6])
        rot_t = np.array([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]])
        local = (pts - box[:3]) @ rot_t.T
        sensor = rot_t @ -box[:3]
        half = box[3:6] / 2
        gap = np.abs(local) - half
        assert np.all(gap <= 1e-3), "a point lies outside its box"
        assert np.all(gap.max(axis=1) >= -1e-3), "a point lies inside its box"
        on_face = np.abs(gap) <= 1e-3
        # outward normal sign(local_k) e_k points to the sensor on at least one face
        faces_sensor = (np.sign(local) * (sensor - local) > 0) & on_face
        assert np.all(faces_sensor.any(axis=1)), "a point lies on a back face"


def test_a_car_behind_a_car_loses_most_points() -> None:
    alone = object_points(layout([standing(16, 0, CAR)], [0]))[0]
    behind = object_points(layout([standing(10, 0, CAR), standing(16, 0, CAR)], [0, 0]))[1]
    assert alone > 100 and behind < 0.25 * alone


def test_a_pedestrian_behind_a_wall_gets_no_points_and_no_label() -> None:
    wall = standing(10, 0, (0.3, 6.0, 2.5))
    lay = layout([standing(14, 0, PED)], [1], walls=[wall])
    scene = render(lay, EXACT, np.random.default_rng(0))
    assert object_points(layout([standing(14, 0, PED)], [1]))[0] > 20
    assert scene.num_points[0] == 0 and len(scene.gt_boxes) == 0
    assert (scene.source == -2).sum() > 100  # the wall itself is seen, as clutter


def test_density_falls_with_distance() -> None:
    near = object_points(layout([standing(8, 0, CAR)], [0]))[0]
    far = object_points(layout([standing(30, 0, CAR)], [0]))[0]
    assert near > 4 * far > 0


def test_class_mix_is_respected() -> None:
    params = SceneParams(num_objects={"Car": (0, 0), "Pedestrian": (3, 3)})
    for seed in range(3):
        scene = simulate_scene(params, CLASSES, seed)
        assert list(scene.labels) == [1, 1, 1]


def test_finer_beam_pattern_gives_more_points() -> None:
    def count(**kw: object) -> int:
        return len(simulate_scene(SceneParams(**kw), CLASSES, 5).points)

    assert count(azimuth_resolution=0.1) > 3 * count(azimuth_resolution=0.4)
    assert count(num_beams=64) > 1.7 * count(num_beams=32)


def test_clutter_is_unlabeled_and_can_be_turned_off() -> None:
    none = simulate_scene(SceneParams(num_clutter=(0, 0)), CLASSES, 2)
    lots = simulate_scene(SceneParams(num_clutter=(15, 15)), CLASSES, 2)
    assert (none.source == -2).sum() == 0
    assert (lots.source == -2).sum() > 0
    assert np.all(lots.gt_labels >= 0) and np.all(lots.gt_labels < len(CLASSES))


def test_noise_and_drop_rate() -> None:
    exact = simulate_scene(EXACT, CLASSES, 4)
    ground = exact.points[exact.source == -1]
    np.testing.assert_allclose(ground[:, 2], GROUND, atol=1e-4)
    noisy = simulate_scene(SceneParams(range_noise=0.05, drop_rate=0.0), CLASSES, 4)
    assert noisy.points[noisy.source == -1, 2].std() > 0.005
    dropped = simulate_scene(SceneParams(range_noise=0.0, drop_rate=0.5), CLASSES, 4)
    assert 0.45 < len(dropped.points) / len(exact.points) < 0.55


def test_scene_contents_are_consistent() -> None:
    params = SceneParams(min_points=8)
    scene = simulate_scene(params, CLASSES, 9)
    pcr = np.asarray(params.point_cloud_range)
    assert scene.points.dtype == np.float32 and scene.points.shape[1] == 4
    assert np.all(scene.points[:, :3] >= pcr[:3]) and np.all(scene.points[:, :3] <= pcr[3:])
    assert np.all((scene.points[:, 3] >= 0) & (scene.points[:, 3] <= 1))
    assert len(scene.gt_boxes) == (scene.num_points >= 8).sum()
    assert scene.gt_boxes.dtype == np.float32 and scene.gt_labels.dtype == np.int64
    iou = bev_iou(scene.boxes, scene.boxes)
    np.testing.assert_allclose(iou - np.eye(len(iou)), 0.0, atol=1e-9)  # no overlaps
    # boxes stand on the ground
    np.testing.assert_allclose(scene.boxes[:, 2] - scene.boxes[:, 5] / 2, GROUND, atol=1e-5)


def test_sizes_vary_within_a_class() -> None:
    params = SceneParams(num_objects={"Car": (10, 10), "Pedestrian": (0, 0)})
    lengths = simulate_scene(params, CLASSES, 0).boxes[:, 3]
    assert lengths.std() > 0.05 and 3.0 < lengths.mean() < 4.8


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_beams": 0}, "num_beams"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"num_clutter": (3, 1)}, "num_clutter"),
        ({"num_objects": {"Truck": (1, 2)}}, "num_objects.Truck"),
        ({"point_cloud_range": (0, 0, 0, -1, 1, 1)}, "point_cloud_range"),
        ({"elevation_range": (5, -5)}, "elevation_range"),
    ],
)
def test_bad_arguments_name_their_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SceneParams(**kwargs)
    assert info.value.key_path == key


def test_unknown_class_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        simulate_scene(SceneParams(), ("Car", "Van"), 0)
    assert info.value.key_path == "class_names"
