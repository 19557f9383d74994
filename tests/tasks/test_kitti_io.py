"""KITTI files: box conversion, write/read round trips, and the dataset over them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rt3d_tune.errors import ConfigError
from rt3d_tune.tasks import kitti
from rt3d_tune.tasks.lidar_dataset import KittiDataset
from rt3d_tune.tasks.lidar_sim import SceneParams, simulate_scene

CLASSES = ("Car", "Pedestrian")


def write_synthetic(root: Path, count: int) -> list:
    scenes = [simulate_scene(SceneParams(), CLASSES, (11, i)) for i in range(count)]
    for i, scene in enumerate(scenes):
        kitti.write_scene(
            root, f"{i:06d}", scene.points, scene.gt_boxes, [CLASSES[c] for c in scene.gt_labels]
        )
    return scenes


def yaw_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b)))) < 1e-4


def test_a_car_ahead_has_the_kitti_camera_box() -> None:
    # 10 m ahead, 2 m left, heading forward: camera x = -y, y = -z, z = x (plus the
    # calibration's translation), rotation_y = -pi/2, dims h w l.
    lidar = np.array([[10.0, 2.0, -0.95, 4.0, 1.6, 1.5, 0.0]])
    cam = kitti.lidar_to_camera(lidar, kitti.DEFAULT_CALIB)[0]
    t = kitti.DEFAULT_CALIB.Tr_velo_to_cam[:, 3]
    np.testing.assert_allclose(cam[:3], [-2.0 + t[0], 1.7 + t[1], 10.0 + t[2]], atol=1e-9)
    np.testing.assert_allclose(cam[3:6], [4.0, 1.5, 1.6])  # l, h, w
    assert cam[6] == pytest.approx(-math.pi / 2)
    np.testing.assert_allclose(
        kitti.camera_to_lidar(cam[None], kitti.DEFAULT_CALIB), lidar, atol=1e-9
    )


def test_scene_round_trip_gives_the_same_points_and_boxes(tmp_path: Path) -> None:
    scenes = write_synthetic(tmp_path, 3)
    for i, scene in enumerate(scenes):
        paths = kitti.sample_paths(tmp_path, f"{i:06d}")
        np.testing.assert_array_equal(kitti.read_points(paths["velodyne"]), scene.points)
        names, cam = kitti.read_labels(paths["label_2"])
        boxes = kitti.camera_to_lidar(cam, kitti.read_calib(paths["calib"]))
        assert names == [CLASSES[c] for c in scene.gt_labels]
        np.testing.assert_allclose(boxes[:, :6], scene.gt_boxes[:, :6], atol=1e-4)
        assert np.all(yaw_close(boxes[:, 6], scene.gt_boxes[:, 6]))


@pytest.mark.parametrize(
    "yaw", [-math.pi, -math.pi / 2, -0.1, 0.0, 1.0, math.pi / 2, math.pi - 1e-6]
)
def test_every_heading_survives_the_round_trip(tmp_path: Path, yaw: float) -> None:
    box = np.array([[20.0, -3.0, -0.9, 3.9, 1.6, 1.56, yaw]])
    kitti.write_scene(tmp_path, "000000", np.zeros((0, 4), np.float32), box, ["Car"])
    paths = kitti.sample_paths(tmp_path, "000000")
    back = kitti.camera_to_lidar(
        kitti.read_labels(paths["label_2"])[1], kitti.read_calib(paths["calib"])
    )
    np.testing.assert_allclose(back[0, :6], box[0, :6], atol=1e-4)
    assert yaw_close(back[:, 6], box[:, 6]).all()
    assert -math.pi <= back[0, 6] < math.pi


def test_calibration_round_trip_and_missing_matrix(tmp_path: Path) -> None:
    path = tmp_path / "calib.txt"
    kitti.write_calib(path, kitti.DEFAULT_CALIB)
    calib = kitti.read_calib(path)
    for a, b in zip(calib.P, kitti.DEFAULT_CALIB.P):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    np.testing.assert_allclose(calib.Tr_velo_to_cam, kitti.DEFAULT_CALIB.Tr_velo_to_cam, rtol=1e-10)
    text = "".join(
        line + "\n" for line in path.read_text().splitlines() if not line.startswith("Tr_velo")
    )
    path.write_text(text)
    with pytest.raises(ConfigError, match="Tr_velo_to_cam"):
        kitti.read_calib(path)


def test_written_labels_are_standard_kitti_lines(tmp_path: Path) -> None:
    path = tmp_path / "label.txt"
    kitti.write_labels(
        path, ["Car"], np.array([[10.0, 0.0, -0.95, 4.0, 1.6, 1.5, 0.0]]), kitti.DEFAULT_CALIB
    )
    fields = path.read_text().split()
    assert len(fields) == 15 and fields[0] == "Car"
    x1, y1, x2, y2 = map(float, fields[4:8])
    assert 0 <= x1 < x2 <= 1241 and 0 <= y1 < y2 <= 374  # a car ahead is in the image


def test_dataset_reads_the_split_and_filters_classes_and_range(tmp_path: Path) -> None:
    scenes = write_synthetic(tmp_path, 4)
    # an extra object of another type and one outside the range must be dropped
    label = kitti.sample_paths(tmp_path, "000001")["label_2"]
    extra = tmp_path / "extra.txt"
    kitti.write_labels(
        extra,
        ["Van", "Car"],
        np.array([[15.0, 5.0, -0.9, 4.5, 1.8, 2.0, 0.0], [60.0, 0.0, -0.9, 4.0, 1.6, 1.5, 0.0]]),
        kitti.DEFAULT_CALIB,
    )
    label.write_text(label.read_text() + extra.read_text())
    kitti.write_image_set(tmp_path, "train", ["000000", "000001"])
    kitti.write_image_set(tmp_path, "val", ["000002", "000003"])
    pcr = (0.0, -20.0, -3.0, 40.0, 20.0, 1.0)
    train = KittiDataset(str(tmp_path), "train", class_names=CLASSES, point_cloud_range=pcr)
    val = KittiDataset(str(tmp_path), "val", class_names=CLASSES, point_cloud_range=pcr)
    assert len(train) == 2 and len(val) == 2
    sample = train[1]
    np.testing.assert_allclose(sample["gt_boxes"].numpy(), scenes[1].gt_boxes, atol=1e-4)
    np.testing.assert_array_equal(sample["gt_labels"].numpy(), scenes[1].gt_labels)
    np.testing.assert_array_equal(val[0]["points"].numpy(), scenes[2].points)
    perfect = [
        {"boxes": s.gt_boxes, "scores": np.ones(len(s.gt_boxes)), "labels": s.gt_labels}
        for s in scenes[2:]
    ]
    assert val.evaluate(perfect)["bev_mAP"] == pytest.approx(1.0)


def test_dataset_errors_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        KittiDataset(str(tmp_path / "nowhere"))
    assert info.value.key_path == "data_root"
    kitti.write_image_set(tmp_path, "train", ["000000"])
    with pytest.raises(ConfigError) as info:
        KittiDataset(str(tmp_path), split="val")
    assert info.value.key_path == "split" and "train" in info.value.format()
