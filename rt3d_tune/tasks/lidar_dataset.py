"""3D detection datasets: generated LiDAR scenes and KITTI files on disk.

A sample is ``dict(points=float32 [N, 4], gt_boxes=float32 [M, 7], gt_labels=int64 [M],
sample_idx=int)`` in the LiDAR frame (x forward, y left, z up, meters); boxes are
``(x, y, z_center, l, w, h, yaw)``. ``collate_fn`` keeps the per-sample tensors in
lists. ``evaluate(results, metric='bev')`` scores per-sample predictions
``dict(boxes [K, 7], scores [K], labels [K])`` with :func:`evaluate_bev`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import DATASETS
from rt3d_tune.tasks import kitti
from rt3d_tune.tasks.bev_metric import evaluate_bev
from rt3d_tune.tasks.lidar_sim import CLASS_SIZES, SceneParams, simulate_scene

__all__ = ["KittiDataset", "SyntheticLidarDataset", "augment_scene"]

_ROTATION = np.pi / 8  # radians, the largest global rotation of the augmentation
_SCALE = (0.95, 1.05)


def augment_scene(
    points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip across the x axis (p = 0.5), rotation around z within +-pi/8, scaling in
    [0.95, 1.05].

    Args:
        points: ``[N, 4]`` points (intensity is kept).
        boxes: ``[M, 7]`` boxes.
        rng: the random generator (consumed).

    Returns:
        New ``points`` and ``boxes`` arrays (the inputs are not modified).
    """
    points, boxes = points.copy(), boxes.copy()
    if rng.random() < 0.5:
        points[:, 1] *= -1
        boxes[:, 1] *= -1
        boxes[:, 6] *= -1
    angle = rng.uniform(-_ROTATION, _ROTATION)
    scale = rng.uniform(*_SCALE)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points[:, :2] = points[:, :2] @ rot.T
    boxes[:, :2] = boxes[:, :2] @ rot.T
    boxes[:, 6] = np.angle(np.exp(1j * (boxes[:, 6] + angle)))
    points[:, :3] *= scale
    boxes[:, :6] *= scale
    return points.astype(np.float32), boxes.astype(np.float32)


def _check_range(value: Any, key: str) -> tuple[float, ...]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 6
        and all(isinstance(v, (int, float)) for v in value)
        and all(value[i] < value[i + 3] for i in range(3))
    )
    if not ok:
        raise ConfigError(
            "is not a valid range",
            key_path=key,
            given=value,
            expected="[x_min, y_min, z_min, x_max, y_max, z_max] with each min < max",
        )
    return tuple(float(v) for v in value)


def _check_classes(value: Any, key: str, known: Sequence[str] | None = None) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) for v in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigError(
            "must list distinct class names",
            key_path=key,
            given=value,
            expected="a non-empty list of strings, e.g. ['Car', 'Pedestrian']",
        )
    unknown = [v for v in value if known is not None and v not in known]
    if unknown:
        raise ConfigError(
            f"names classes without a built-in size: {unknown}",
            key_path=key,
            given=value,
            expected=f"names from {sorted(known or ())}",
        )
    return tuple(value)


def _in_range(xyz: np.ndarray, pcr: Sequence[float], dims: int = 3) -> np.ndarray:
    return np.all(
        (xyz[:, :dims] >= np.asarray(pcr[:dims]))
        & (xyz[:, :dims] <= np.asarray(pcr[3 : 3 + dims])),
        axis=1,
    )


class _LidarDetectionDataset(Dataset, ABC):
    """Shared sample assembly, augmentation, collation and evaluation."""

    CLASSES: tuple[str, ...] = ()

    def __init__(
        self,
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        augment: bool,
        seed: int,
        known_classes: Sequence[str] | None = None,
    ) -> None:
        self.CLASSES = _check_classes(class_names, "class_names", known_classes)
        self.point_cloud_range = _check_range(point_cloud_range, "point_cloud_range")
        if not isinstance(augment, bool):
            raise ConfigError(
                "must be a boolean", key_path="augment", expected="True or False", given=augment
            )
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError("must be a non-negative integer", key_path="seed", given=seed)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def _load(self, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points, LiDAR boxes and labels of sample ``idx``, inside the range."""

    @abstractmethod
    def _ground_truth(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The evaluation ground truth of sample ``idx`` (never augmented)."""

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draws of this epoch (0-based); the runner calls it per epoch."""
        self.epoch = int(epoch)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        points, boxes, labels = self._load(idx)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, idx])
            points, boxes = augment_scene(points, boxes, rng)
            points = points[_in_range(points, self.point_cloud_range)]
            keep = _in_range(boxes, self.point_cloud_range, dims=2)
            boxes, labels = boxes[keep], labels[keep]
        return {
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "gt_boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)).reshape(
                -1, 7
            ),
            "gt_labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            "sample_idx": int(idx),
        }

    @staticmethod
    def collate_fn(samples: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Batch samples as lists (point clouds differ in size)."""
        return {
            key: [s[key] for s in samples]
            for key in ("points", "gt_boxes", "gt_labels", "sample_idx")
        }

    def evaluate(
        self,
        results: Sequence[Mapping[str, Any]],
        metric: str | Sequence[str] = "bev",
        logger: logging.Logger | None = None,
        iou_thresholds: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """BEV average precision of per-sample predictions (see :func:`evaluate_bev`).

        Args:
            results: one prediction per sample, in dataset order.
            metric: ``'bev'`` (the only metric).
            logger: when given, the metrics are logged at INFO level.
            iou_thresholds: class name -> IoU threshold of the ``bev_AP_<Class>`` keys
                (default KITTI's: Car 0.7, others 0.5).

        Raises:
            ConfigError: an unknown metric.
            ValueError: a result count other than ``len(self)``.
        """
        metrics = [metric] if isinstance(metric, str) else list(metric)
        if metrics != ["bev"]:
            raise ConfigError(
                "is not a metric of this dataset",
                key_path="evaluation.metric",
                expected="'bev'",
                given=metric,
            )
        gts = [self._ground_truth(i) for i in range(len(self))]
        out = evaluate_bev(
            results, [g[0] for g in gts], [g[1] for g in gts], self.CLASSES, iou_thresholds
        )
        if logger is not None:
            logger.info("BEV AP: " + ", ".join(f"{k}={v:.4f}" for k, v in out.items()))
        return out


@DATASETS.register_module()
class SyntheticLidarDataset(_LidarDetectionDataset):
    """Generated LiDAR scenes (see :mod:`rt3d_tune.tasks.lidar_sim`), made on first use and cached.

    Args:
        num_scenes: number of scenes.
        seed: scene ``i`` is drawn from the seed ``(seed, i)``; give train and val
            different seeds.
        class_names: classes to place, in label order (Car, Pedestrian, Cyclist).
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` meters.
        scene: further :class:`~rt3d_tune.tasks.lidar_sim.SceneParams` fields
            (``num_objects``, ``num_beams``, ``azimuth_resolution``, ``range_noise``,
            ``num_clutter``, ``drop_rate``, ``min_points``, ...).
        augment: random flip, rotation and scaling per sample, redrawn each epoch.

    Raises:
        ConfigError: a bad argument, with its key path.
    """

    CLASSES = ("Car", "Pedestrian")

    def __init__(
        self,
        num_scenes: int = 300,
        seed: int = 0,
        class_names: Sequence[str] = ("Car", "Pedestrian"),
        point_cloud_range: Sequence[float] = (0.0, -20.0, -3.0, 40.0, 20.0, 1.0),
        scene: Mapping[str, Any] | None = None,
        augment: bool = False,
    ) -> None:
        super().__init__(
            class_names, point_cloud_range, augment, seed, known_classes=sorted(CLASS_SIZES)
        )
        if not isinstance(num_scenes, int) or isinstance(num_scenes, bool) or num_scenes < 1:
            raise ConfigError("must be a positive integer", key_path="num_scenes", given=num_scenes)
        scene = dict(scene or {})
        accepted = [f for f in SceneParams.__dataclass_fields__ if f != "point_cloud_range"]
        unknown = sorted(set(scene) - set(accepted))
        if unknown:
            raise ConfigError(
                f"unknown scene argument {unknown[0]!r}",
                key_path=f"scene.{unknown[0]}",
                expected=f"one of {accepted}",
                given=scene[unknown[0]],
                hint="the range is the dataset's point_cloud_range",
            )
        try:
            self.params = SceneParams(point_cloud_range=self.point_cloud_range, **scene)
        except ConfigError as err:
            raise err.with_context(key_path="scene") from None
        self.num_scenes = num_scenes
        self._cache: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * num_scenes

    def __len__(self) -> int:
        return self.num_scenes

    def _load(self, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not 0 <= idx < self.num_scenes:
            raise IndexError(f"scene {idx} of {self.num_scenes}")
        cached = self._cache[idx]
        if cached is None:
            scene = simulate_scene(self.params, self.CLASSES, (self.seed, idx))
            cached = self._cache[idx] = (scene.points, scene.gt_boxes, scene.gt_labels)
        return cached

    def _ground_truth(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        _, boxes, labels = self._load(idx)
        return boxes, labels


@DATASETS.register_module()
class KittiDataset(_LidarDetectionDataset):
    """KITTI-format files on disk (see :mod:`rt3d_tune.tasks.kitti`).

    Labels and calibrations are read at construction; point clouds on each access.
    Objects of other types (Van, DontCare, ...) are dropped, and points and box
    centers outside ``point_cloud_range`` too.

    Args:
        data_root: the folder holding ``ImageSets/`` and ``training/`` (``testing/``).
        split: an ``ImageSets`` file name: ``train``, ``val``, ``trainval`` or ``test``
            (``test`` reads ``testing/``, which has no labels).
        class_names: KITTI types to keep, in label order.
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` meters.
        augment: random flip, rotation and scaling per sample, redrawn each epoch.
        seed: seeds the augmentation.

    Raises:
        ConfigError: a missing folder or image set, or a bad argument.
    """

    CLASSES = ("Car", "Pedestrian", "Cyclist")

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        class_names: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        point_cloud_range: Sequence[float] = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0),
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(class_names, point_cloud_range, augment, seed)
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise ConfigError(
                "is not a folder",
                key_path="data_root",
                given=str(data_root),
                hint="point it at the KITTI root holding ImageSets/ and training/",
            )
        self.split = split
        self.testing = split == "test"
        self.ids = kitti.read_image_set(self.data_root, split)
        self._gt = [self._read_ground_truth(i) for i in self.ids]

    def _read_ground_truth(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        paths = kitti.sample_paths(self.data_root, sample_id, self.testing)
        if self.testing or not paths["label_2"].is_file():
            return np.zeros((0, 7), dtype=np.float32), np.zeros(0, dtype=np.int64)
        names, cam_boxes = kitti.read_labels(paths["label_2"])
        boxes = kitti.camera_to_lidar(cam_boxes, kitti.read_calib(paths["calib"]))
        labels = np.array(
            [self.CLASSES.index(n) if n in self.CLASSES else -1 for n in names], dtype=np.int64
        )
        keep = (labels >= 0) & _in_range(boxes, self.point_cloud_range, dims=2)
        return boxes[keep].astype(np.float32), labels[keep]

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        paths = kitti.sample_paths(self.data_root, self.ids[idx], self.testing)
        points = kitti.read_points(paths["velodyne"])
        return (points[_in_range(points, self.point_cloud_range)], *self._gt[idx])

    def _ground_truth(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self._gt[idx]
