"""Seeded synthetic LiDAR scenes, ray-cast from a spinning sensor.

A scene is a flat ground, labeled box-shaped objects (cars, pedestrians, cyclists) and
unlabeled clutter (poles, walls, bushes, pedestrian-sized posts), all standing on the
ground without overlapping. The sensor sits ``sensor_height`` above the ground at the
origin of the LiDAR frame (x forward, y left, z up, meters) and casts one ray per beam
(elevation) and azimuth step; each ray keeps its nearest hit. So points lie only on
the faces that see the sensor, what stands behind another object loses the hidden
points, and density falls with distance, as with a real spinning LiDAR. Range noise,
intensity (reflectivity times incidence) and random drop-outs follow.

The ray casting itself is :mod:`rt3d_tune.tasks.raycast`; a scene of ~20k points takes
a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rt3d_tune.errors import ConfigError
from rt3d_tune.tasks.raycast import beam_pattern, cast_rays

__all__ = [
    "CLASS_SIZES",
    "Layout",
    "Scene",
    "SceneParams",
    "render",
    "sample_layout",
    "simulate_scene",
]

#: Per class: mean (l, w, h) and per-dimension standard deviation, meters (KITTI-like).
CLASS_SIZES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "Car": ((3.9, 1.6, 1.56), (0.3, 0.1, 0.1)),
    "Pedestrian": ((0.8, 0.6, 1.73), (0.15, 0.08, 0.1)),
    "Cyclist": ((1.76, 0.6, 1.73), (0.15, 0.05, 0.08)),
}
_REFLECTIVITY = {"Car": (0.3, 0.9), "Pedestrian": (0.15, 0.5), "Cyclist": (0.2, 0.6)}
_DEFAULT_COUNTS = {"Car": (4, 10), "Pedestrian": (4, 10), "Cyclist": (2, 5)}
_MIN_SENSOR_DISTANCE = 3.0  # m; nothing stands right next to the sensor
_GAP = 0.2  # m; minimum free space between the footprints of two things


def _int_range(value: object, key: str) -> tuple[int, int]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] <= value[1]
    ):
        raise ConfigError(
            "must be an inclusive (min, max) count range",
            key_path=key,
            expected="two integers 0 <= min <= max",
            given=value,
        )
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class SceneParams:
    """What a scene looks like; every field is a config argument.

    Args:
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` meters; objects
            are placed with their centers inside, points outside are dropped.
        num_objects: class name -> inclusive ``(min, max)`` number of objects per scene;
            classes left out use a built-in default (Car 4-10, Pedestrian 4-10,
            Cyclist 2-5).
        num_beams: number of laser beams (rows), evenly spread over ``elevation_range``.
        elevation_range: ``(lowest, highest)`` beam elevation, degrees.
        azimuth_resolution: degrees between two firings of a beam; with ``num_beams``
            it sets the point density.
        range_noise: standard deviation of the range error, meters.
        num_clutter: inclusive ``(min, max)`` number of unlabeled clutter items.
        drop_rate: probability that a return is lost, in [0, 1).
        min_points: objects with fewer points are left out of the ground truth (they
            still stand in the scene and occlude).
        sensor_height: sensor height above the ground, meters.

    Raises:
        ConfigError: a value out of range, with the field name as key path.
    """

    point_cloud_range: tuple[float, ...] = (0.0, -20.0, -3.0, 40.0, 20.0, 1.0)
    num_objects: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    num_beams: int = 32
    elevation_range: tuple[float, float] = (-25.0, 3.0)
    azimuth_resolution: float = 0.2
    range_noise: float = 0.02
    num_clutter: tuple[int, int] = (6, 14)
    drop_rate: float = 0.05
    min_points: int = 5
    sensor_height: float = 1.73

    def __post_init__(self) -> None:
        pcr = self.point_cloud_range
        if len(pcr) != 6 or not (pcr[0] < pcr[3] and pcr[1] < pcr[4] and pcr[2] < pcr[5]):
            raise ConfigError(
                "is not a valid box",
                key_path="point_cloud_range",
                expected="(x_min, y_min, z_min, x_max, y_max, z_max) with each min < max",
                given=pcr,
            )
        for name, value in self.num_objects.items():
            if name not in CLASS_SIZES:
                raise ConfigError(
                    "names an unknown class",
                    key_path=f"num_objects.{name}",
                    expected=f"one of {sorted(CLASS_SIZES)}",
                    given=name,
                )
            _int_range(value, f"num_objects.{name}")
        _int_range(self.num_clutter, "num_clutter")
        checks = [
            ("num_beams", self.num_beams >= 1, "an integer >= 1"),
            ("azimuth_resolution", 0 < self.azimuth_resolution <= 10, "degrees in (0, 10]"),
            ("range_noise", self.range_noise >= 0, "meters >= 0"),
            ("drop_rate", 0 <= self.drop_rate < 1, "a probability in [0, 1)"),
            ("min_points", self.min_points >= 0, "an integer >= 0"),
            ("sensor_height", self.sensor_height > 0, "meters > 0"),
            (
                "elevation_range",
                len(self.elevation_range) == 2
                and -90 < self.elevation_range[0] < self.elevation_range[1] < 90,
                "(low, high) degrees with -90 < low < high < 90",
            ),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    "is out of range", key_path=key, expected=expected, given=getattr(self, key)
                )

    def count_range(self, name: str) -> tuple[int, int]:
        """Inclusive ``(min, max)`` number of objects of class ``name`` per scene."""
        lo, hi = self.num_objects.get(name, _DEFAULT_COUNTS[name])
        return int(lo), int(hi)


@dataclass
class Layout:
    """What stands in a scene, before ray casting.

    Attributes:
        boxes: ``[M, 7]`` labeled objects ``(x, y, z_center, l, w, h, yaw)``.
        labels: ``[M]`` class indices.
        reflectivity: ``[M]`` object reflectivity in [0, 1].
        clutter_boxes: ``[B, 7]`` unlabeled boxes (walls, bins).
        clutter_cylinders: ``[C, 5]`` unlabeled vertical cylinders
            ``(x, y, z_center, radius, height)`` (poles, bushes, posts).
    """

    boxes: np.ndarray
    labels: np.ndarray
    reflectivity: np.ndarray
    clutter_boxes: np.ndarray
    clutter_cylinders: np.ndarray


@dataclass
class Scene:
    """A ray-cast scene.

    Attributes:
        points: ``[N, 4]`` float32 ``(x, y, z, intensity)``, inside the point cloud range.
        gt_boxes: ``[G, 7]`` float32 objects with at least ``min_points`` points.
        gt_labels: ``[G]`` int64 class indices.
        boxes: ``[M, 7]`` float32 every labeled object of the layout.
        labels: ``[M]`` int64 their class indices.
        num_points: ``[M]`` points that landed on each object.
        source: ``[N]`` int64 per point: the object index, -1 ground, -2 clutter.
    """

    points: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    num_points: np.ndarray
    source: np.ndarray


def _place(
    rng: np.random.Generator,
    pcr: Sequence[float],
    radius: float,
    placed: list[tuple[float, float, float]],
    tries: int = 30,
) -> tuple[float, float] | None:
    """A random footprint center that keeps clear of ``placed`` (x, y, radius) and the sensor."""
    margin = min(radius, 0.25 * (pcr[3] - pcr[0]), 0.25 * (pcr[4] - pcr[1]))
    for _ in range(tries):
        x = rng.uniform(pcr[0] + margin, pcr[3] - margin)
        y = rng.uniform(pcr[1] + margin, pcr[4] - margin)
        if np.hypot(x, y) < _MIN_SENSOR_DISTANCE + radius:
            continue
        if all(np.hypot(x - px, y - py) >= radius + pr + _GAP for px, py, pr in placed):
            placed.append((x, y, radius))
            return x, y
    return None


def sample_layout(
    params: SceneParams, class_names: Sequence[str], rng: np.random.Generator
) -> Layout:
    """Draw labeled objects and clutter at random, without overlaps.

    Args:
        params: the scene parameters.
        class_names: classes to place, in label order (each a key of :data:`CLASS_SIZES`).
        rng: the random generator (consumed).

    Returns:
        The layout; an object that finds no free spot in 30 tries is left out.
    """
    ground = -params.sensor_height
    todo = [
        c
        for c, name in enumerate(class_names)
        for _ in range(rng.integers(params.count_range(name)[0], params.count_range(name)[1] + 1))
    ]
    rng.shuffle(todo)
    placed: list[tuple[float, float, float]] = []
    boxes, labels, refl = [], [], []
    for cls in todo:
        name = class_names[cls]
        mean, std = CLASS_SIZES[name]
        lwh = np.asarray(mean) + np.asarray(std) * np.clip(rng.standard_normal(3), -2, 2)
        spot = _place(rng, params.point_cloud_range, 0.5 * float(np.hypot(lwh[0], lwh[1])), placed)
        if spot is None:
            continue
        boxes.append([spot[0], spot[1], ground + lwh[2] / 2, *lwh, rng.uniform(-np.pi, np.pi)])
        labels.append(cls)
        refl.append(rng.uniform(*_REFLECTIVITY[name]))
    clutter_boxes, cylinders = [], []
    for _ in range(rng.integers(params.num_clutter[0], params.num_clutter[1] + 1)):
        kind = rng.integers(4)
        if kind == 0:  # wall or fence
            lwh = (rng.uniform(3.0, 10.0), rng.uniform(0.2, 0.4), rng.uniform(1.0, 2.5))
        elif kind == 1:  # pedestrian-sized bin, post or sign
            lwh = (rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.7), rng.uniform(1.1, 1.9))
        else:  # pole (kind 2) or bush / trunk (kind 3): cylinders
            radius = rng.uniform(0.08, 0.2) if kind == 2 else rng.uniform(0.3, 0.9)
            height = rng.uniform(2.5, 6.0) if kind == 2 else rng.uniform(0.5, 2.0)
            spot = _place(rng, params.point_cloud_range, radius, placed)
            if spot is not None:
                cylinders.append([spot[0], spot[1], ground + height / 2, radius, height])
            continue
        spot = _place(rng, params.point_cloud_range, 0.5 * float(np.hypot(lwh[0], lwh[1])), placed)
        if spot is not None:
            clutter_boxes.append(
                [spot[0], spot[1], ground + lwh[2] / 2, *lwh, rng.uniform(-np.pi, np.pi)]
            )
    return Layout(
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 7),
        labels=np.asarray(labels, dtype=np.int64),
        reflectivity=np.asarray(refl, dtype=np.float64),
        clutter_boxes=np.asarray(clutter_boxes, dtype=np.float64).reshape(-1, 7),
        clutter_cylinders=np.asarray(cylinders, dtype=np.float64).reshape(-1, 5),
    )


def render(layout: Layout, params: SceneParams, rng: np.random.Generator) -> Scene:
    """Ray-cast a layout into a point cloud.

    Args:
        layout: what stands in the scene (its boxes stand on the ground at
            ``z = -sensor_height``).
        params: beam pattern, noise, drop rate, point cloud range, ``min_points``.
        rng: the random generator (consumed).

    Returns:
        The scene, with per-object point counts and per-point sources.
    """
    pcr = params.point_cloud_range
    pattern = beam_pattern(
        params.num_beams, tuple(params.elevation_range), params.azimuth_resolution, tuple(pcr)
    )
    depth, incidence, owner = cast_rays(
        pattern,
        params.sensor_height,
        np.concatenate([layout.boxes, layout.clutter_boxes]),
        layout.clutter_cylinders,
    )
    num_obj = len(layout.boxes)
    num_prims = num_obj + len(layout.clutter_boxes) + len(layout.clutter_cylinders)
    ray = np.flatnonzero(np.isfinite(depth) & (rng.random(depth.shape) >= params.drop_rate))
    distance = depth.ravel()[ray] + params.range_noise * rng.standard_normal(len(ray))
    xyz = pattern.dirs.reshape(-1, 3)[ray] * distance[:, None]
    inside = np.ones(len(ray), dtype=bool)
    for axis in range(3):
        inside &= (xyz[:, axis] >= pcr[axis]) & (xyz[:, axis] <= pcr[axis + 3])
    ray, distance, xyz = ray[inside], distance[inside], xyz[inside]
    pid = owner.ravel()[ray]
    refl = np.concatenate(
        [[rng.uniform(0.1, 0.3)], layout.reflectivity, rng.uniform(0.05, 0.8, num_prims - num_obj)]
    )
    intensity = refl[pid] * (0.3 + 0.7 * incidence.ravel()[ray]) * np.exp(-distance / 150.0)
    intensity = np.clip(intensity + 0.03 * rng.standard_normal(len(pid)), 0.0, 1.0)
    source = np.where(pid == 0, -1, np.where(pid <= num_obj, pid - 1, -2))
    num_points = np.bincount(source[source >= 0], minlength=num_obj)
    is_gt = num_points >= params.min_points
    return Scene(
        points=np.concatenate([xyz, intensity[:, None]], axis=1).astype(np.float32),
        gt_boxes=layout.boxes[is_gt].astype(np.float32),
        gt_labels=layout.labels[is_gt].astype(np.int64),
        boxes=layout.boxes.astype(np.float32),
        labels=layout.labels.astype(np.int64),
        num_points=num_points.astype(np.int64),
        source=source.astype(np.int64),
    )


def simulate_scene(
    params: SceneParams,
    class_names: Sequence[str],
    seed: int | Sequence[int] | np.random.SeedSequence,
) -> Scene:
    """Sample a layout and ray-cast it; the same seed gives the same scene.

    Args:
        params: the scene parameters.
        class_names: classes to place, in label order.
        seed: anything :func:`numpy.random.default_rng` accepts (an int, a sequence of
            ints such as ``(dataset_seed, scene_index)``, a ``SeedSequence``).

    Raises:
        ConfigError: a class name without a built-in size (key ``class_names``).
    """
    unknown = [c for c in class_names if c not in CLASS_SIZES]
    if unknown:
        raise ConfigError(
            "names classes the simulator cannot draw",
            key_path="class_names",
            expected=f"names from {sorted(CLASS_SIZES)}",
            given=list(class_names),
        )
    rng = np.random.default_rng(seed)
    layout = sample_layout(params, class_names, rng)
    return render(layout, params, rng)
