"""KITTI object-detection files: read them, and write synthetic scenes in the same format.

Layout (as mmdetection3d expects it)::

    data_root/ImageSets/{train,val,trainval,test}.txt   one 6-digit sample id a line
    data_root/training/velodyne/000000.bin             float32 x, y, z, intensity
    data_root/training/label_2/000000.txt              one object a line
    data_root/training/calib/000000.txt                P0..P3, R0_rect, Tr_velo_to_cam, ...
    data_root/testing/...                              the same, without label_2

A label line is ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y``
with the box's bottom center ``x y z`` in the rectified camera frame. Boxes are
converted to the LiDAR frame the way mmdetection3d 1.0 does: the bottom center goes
through ``inv(R0_rect @ Tr_velo_to_cam)``, the LiDAR box is
``(x, y, z + h / 2, l, w, h, -rotation_y - pi / 2)`` with the yaw wrapped to [-pi, pi).
That yaw rule is exact only when the camera's y axis is the LiDAR's -z axis (KITTI's
calibration is within a fraction of a degree of it); the writer's calibration is
exactly so, which makes a write/read round trip exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt3d_tune.errors import ConfigError

__all__ = [
    "DEFAULT_CALIB",
    "KittiCalib",
    "camera_to_lidar",
    "lidar_to_camera",
    "read_calib",
    "read_image_set",
    "read_labels",
    "read_points",
    "sample_paths",
    "write_calib",
    "write_image_set",
    "write_labels",
    "write_points",
    "write_scene",
]

_IMAGE_SIZE = (1242, 375)  # width, height in pixels, for the 2D boxes the writer fills in


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return angle - np.floor(angle / (2 * np.pi) + 0.5) * (2 * np.pi)


def _homogeneous(mat: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: mat.shape[0], : mat.shape[1]] = mat
    return out


@dataclass(frozen=True)
class KittiCalib:
    """One sample's calibration.

    Attributes:
        P: the four ``[3, 4]`` camera projection matrices P0..P3.
        R0_rect: ``[3, 3]`` rectifying rotation.
        Tr_velo_to_cam: ``[3, 4]`` LiDAR -> (unrectified) camera transform.
        Tr_imu_to_velo: ``[3, 4]`` IMU -> LiDAR transform (kept for writing, unused).
    """

    P: tuple[np.ndarray, ...]
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray = field(default_factory=lambda: np.eye(3, 4))

    def lidar_to_rect(self) -> np.ndarray:
        """``[4, 4]`` LiDAR -> rectified camera frame."""
        return _homogeneous(self.R0_rect) @ _homogeneous(self.Tr_velo_to_cam)


#: A KITTI-like calibration (sequence 2011_09_26 intrinsics) whose LiDAR->camera
#: rotation is the exact axis permutation, so boxes written with it read back exactly.
DEFAULT_CALIB = KittiCalib(
    P=tuple(
        np.array([[721.5377, 0.0, 609.5593, tx], [0.0, 721.5377, 172.854, ty], [0.0, 0.0, 1.0, tz]])
        for tx, ty, tz in [
            (0.0, 0.0, 0.0),
            (-387.5744, 0.0, 0.0),
            (44.85728, 0.2163791, 0.002745884),
            (-337.2877, 2.369057, 0.004915215),
        ]
    ),
    R0_rect=np.eye(3),
    Tr_velo_to_cam=np.array(
        [[0.0, -1.0, 0.0, -0.004069766], [0.0, 0.0, -1.0, -0.07631618], [1.0, 0.0, 0.0, -0.2717806]]
    ),
    Tr_imu_to_velo=np.array(
        [
            [0.9999976, 0.0007553071, -0.002035826, -0.8086759],
            [-0.0007854027, 0.9998898, -0.01482298, 0.3195559],
            [0.002024406, 0.01482454, 0.9998881, -0.7997231],
        ]
    ),
)

_CALIB_KEYS = {
    "R0_rect": ("R0_rect", "R_rect"),
    "Tr_velo_to_cam": ("Tr_velo_to_cam", "Tr_velo_cam"),
    "Tr_imu_to_velo": ("Tr_imu_to_velo", "Tr_imu_velo"),
}


def read_calib(path: str | Path) -> KittiCalib:
    """Parse a KITTI ``calib/*.txt`` file.

    Raises:
        ConfigError: a required matrix (P0..P3, R0_rect, Tr_velo_to_cam) is missing or malformed.
    """
    values: dict[str, np.ndarray] = {}
    for line in Path(path).read_text().splitlines():
        key, sep, rest = line.partition(":")
        if sep and rest.strip():
            values[key.strip()] = np.array([float(v) for v in rest.split()])

    def get(
        names: Sequence[str], shape: tuple[int, int], required: bool = True
    ) -> np.ndarray | None:
        for name in names:
            if name in values and values[name].size == shape[0] * shape[1]:
                return values[name].reshape(shape)
        if required:
            raise ConfigError(
                f"calibration file lacks {names[0]}",
                file=str(path),
                expected=f"a line '{names[0]}: <{shape[0] * shape[1]} numbers>'",
                given=sorted(values),
            )
        return None

    imu = get(_CALIB_KEYS["Tr_imu_to_velo"], (3, 4), required=False)
    return KittiCalib(
        P=tuple(get((f"P{i}",), (3, 4)) for i in range(4)),  # type: ignore[misc]
        R0_rect=get(_CALIB_KEYS["R0_rect"], (3, 3)),  # type: ignore[arg-type]
        Tr_velo_to_cam=get(_CALIB_KEYS["Tr_velo_to_cam"], (3, 4)),  # type: ignore[arg-type]
        Tr_imu_to_velo=np.eye(3, 4) if imu is None else imu,
    )


def write_calib(path: str | Path, calib: KittiCalib) -> None:
    """Write a calibration in the KITTI text format."""
    rows = [(f"P{i}", p) for i, p in enumerate(calib.P)]
    rows += [
        ("R0_rect", calib.R0_rect),
        ("Tr_velo_to_cam", calib.Tr_velo_to_cam),
        ("Tr_imu_to_velo", calib.Tr_imu_to_velo),
    ]
    Path(path).write_text(
        "".join(f"{k}: {' '.join(f'{v:.12e}' for v in m.ravel())}\n" for k, m in rows)
    )


def read_points(path: str | Path) -> np.ndarray:
    """``[N, 4]`` float32 points of a ``velodyne/*.bin`` file.

    Raises:
        ConfigError: the file size is not a whole number of 4-float points.
    """
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise ConfigError(
            "is not a KITTI point file",
            file=str(path),
            expected="float32 x, y, z, intensity records",
            given=f"{raw.size} floats",
        )
    return raw.reshape(-1, 4)


def write_points(path: str | Path, points: np.ndarray) -> None:
    """Write ``[N, 4]`` points as float32 records."""
    np.ascontiguousarray(points, dtype=np.float32).tofile(path)


def read_labels(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Object types and ``[M, 7]`` camera boxes ``(x, y, z, l, h, w, rotation_y)`` of a label file.

    ``x, y, z`` is the bottom center in the rectified camera frame (meters).

    Raises:
        ConfigError: a line with fewer than 15 fields.
    """
    names, boxes = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 15:
            raise ConfigError(
                f"line {number} is not a KITTI label",
                file=str(path),
                expected="type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y",
                given=line,
            )
        h, w, length, x, y, z, ry = (float(v) for v in fields[8:15])
        names.append(fields[0])
        boxes.append([x, y, z, length, h, w, ry])
    return names, np.asarray(boxes, dtype=np.float64).reshape(-1, 7)


def camera_to_lidar(camera_boxes: np.ndarray, calib: KittiCalib) -> np.ndarray:
    """Camera boxes to LiDAR boxes.

    ``(x, y, z_bottom, l, h, w, ry)`` -> ``(x, y, z_center, l, w, h, yaw)``.
    """
    cam = np.asarray(camera_boxes, dtype=np.float64).reshape(-1, 7)
    to_lidar = np.linalg.inv(calib.lidar_to_rect())
    bottom = (np.c_[cam[:, :3], np.ones(len(cam))] @ to_lidar.T)[:, :3]
    length, h, w = cam[:, 3], cam[:, 4], cam[:, 5]
    return np.c_[bottom[:, :2], bottom[:, 2] + h / 2, length, w, h, _wrap(-cam[:, 6] - np.pi / 2)]


def lidar_to_camera(lidar_boxes: np.ndarray, calib: KittiCalib) -> np.ndarray:
    """The inverse of :func:`camera_to_lidar`."""
    box = np.asarray(lidar_boxes, dtype=np.float64).reshape(-1, 7)
    bottom = np.c_[box[:, :2], box[:, 2] - box[:, 5] / 2, np.ones(len(box))]
    cam = (bottom @ calib.lidar_to_rect().T)[:, :3]
    return np.c_[cam, box[:, 3], box[:, 5], box[:, 4], _wrap(-box[:, 6] - np.pi / 2)]


def _image_boxes(lidar_boxes: np.ndarray, calib: KittiCalib) -> np.ndarray:
    """``[M, 4]`` 2D boxes (x1, y1, x2, y2) in the left color image, clipped to it."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) / 2
    out = np.zeros((len(lidar_boxes), 4))
    for i, b in enumerate(lidar_boxes):
        cos, sin = np.cos(b[6]), np.sin(b[6])
        local = signs * b[3:6]
        xyz = np.c_[
            local[:, 0] * cos - local[:, 1] * sin + b[0],
            local[:, 0] * sin + local[:, 1] * cos + b[1],
            local[:, 2] + b[2],
        ]
        cam = np.c_[xyz, np.ones(8)] @ calib.lidar_to_rect().T
        uvw = cam @ calib.P[2].T
        uv = uvw[:, :2] / np.maximum(uvw[:, 2:3], 1e-3)
        out[i] = [*uv.min(axis=0), *uv.max(axis=0)]
    return np.clip(out, 0, [_IMAGE_SIZE[0] - 1, _IMAGE_SIZE[1] - 1] * 2)


def write_labels(
    path: str | Path, names: Sequence[str], lidar_boxes: np.ndarray, calib: KittiCalib
) -> None:
    """Write LiDAR boxes as KITTI label lines (truncated and occluded written as 0).

    Args:
        path: the label file.
        names: one object type per box.
        lidar_boxes: ``[M, 7]`` LiDAR boxes ``(x, y, z_center, l, w, h, yaw)``.
        calib: the sample's calibration.
    """
    boxes = np.asarray(lidar_boxes, dtype=np.float64).reshape(-1, 7)
    cam = lidar_to_camera(boxes, calib)
    alpha = _wrap(cam[:, 6] - np.arctan2(cam[:, 0], cam[:, 2]))
    image = _image_boxes(boxes, calib)
    lines = []
    for name, c, a, bb in zip(names, cam, alpha, image):
        values = [a, *bb, c[4], c[5], c[3], c[0], c[1], c[2], c[6]]
        lines.append(f"{name} 0.00 0 " + " ".join(f"{v:.6f}" for v in values) + "\n")
    Path(path).write_text("".join(lines))


def read_image_set(data_root: str | Path, split: str) -> list[str]:
    """Sample ids of ``ImageSets/<split>.txt``.

    Raises:
        ConfigError: the file does not exist (key path ``split``).
    """
    path = Path(data_root) / "ImageSets" / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise ConfigError(
            f"no image set file {path}",
            key_path="split",
            expected=f"one of {found}" if found else "an ImageSets/<split>.txt file",
            given=split,
            hint="KITTI's ImageSets come with mmdetection3d (data/kitti/ImageSets)",
        )
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_image_set(data_root: str | Path, split: str, ids: Sequence[str]) -> None:
    """Write ``ImageSets/<split>.txt``."""
    path = Path(data_root) / "ImageSets" / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def sample_paths(data_root: str | Path, sample_id: str, testing: bool = False) -> dict[str, Path]:
    """The ``velodyne``, ``label_2`` and ``calib`` paths of one sample."""
    folder = Path(data_root) / ("testing" if testing else "training")
    return {
        "velodyne": folder / "velodyne" / f"{sample_id}.bin",
        "label_2": folder / "label_2" / f"{sample_id}.txt",
        "calib": folder / "calib" / f"{sample_id}.txt",
    }


def write_scene(
    data_root: str | Path,
    sample_id: str,
    points: np.ndarray,
    lidar_boxes: np.ndarray,
    names: Sequence[str],
    calib: KittiCalib = DEFAULT_CALIB,
) -> None:
    """Write one scene (points, LiDAR boxes with their type names) under ``training/``.

    Args:
        data_root: the dataset root (folders are created).
        sample_id: the 6-digit id, e.g. ``"000042"``.
        points: ``[N, 4]`` x, y, z, intensity.
        lidar_boxes: ``[M, 7]`` LiDAR boxes ``(x, y, z_center, l, w, h, yaw)``.
        names: one KITTI type (``Car``, ``Pedestrian``, ...) per box.
        calib: the calibration written with it.
    """
    paths = sample_paths(data_root, sample_id)
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    write_points(paths["velodyne"], points)
    write_calib(paths["calib"], calib)
    write_labels(paths["label_2"], names, lidar_boxes, calib)
