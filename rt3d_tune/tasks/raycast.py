"""Ray casting from a spinning LiDAR against a flat ground, boxes and vertical cylinders.

Rays start at the sensor (the origin) and keep their nearest hit. Each primitive is
tested only against the rays inside its azimuth and elevation span, so the cost grows
with the angular size of the primitives, not with rays times primitives.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["BeamPattern", "beam_pattern", "cast_rays"]


@dataclass(frozen=True)
class BeamPattern:
    """The rays of one sweep.

    Attributes:
        dirs: ``[beams, azimuths, 3]`` unit directions (read-only).
        elev: ``[beams]`` ascending elevations, radians.
        az: ``[azimuths]`` ascending azimuths, radians.
        full: whether the azimuths go all the way round (indices wrap).
    """

    dirs: np.ndarray
    elev: np.ndarray
    az: np.ndarray
    full: bool


@functools.lru_cache(maxsize=8)
def beam_pattern(
    num_beams: int,
    elevation_range: tuple[float, float],
    azimuth_resolution: float,
    point_cloud_range: tuple[float, ...],
) -> BeamPattern:
    """The rays that can reach ``point_cloud_range``: all round, or only ahead when it lies ahead.

    Args:
        num_beams: beams, evenly spread over ``elevation_range`` (degrees).
        elevation_range: ``(lowest, highest)`` elevation, degrees.
        azimuth_resolution: degrees between two firings of a beam.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``, meters.
    """
    pcr = point_cloud_range
    if pcr[0] >= 0:
        ang = np.arctan2([pcr[1], pcr[4], pcr[1], pcr[4]], [pcr[0], pcr[0], pcr[3], pcr[3]])
        az_lo, az_hi, full = float(ang.min()), float(ang.max()), False
    else:
        az_lo, az_hi, full = -np.pi, np.pi, True
    elev = np.deg2rad(np.linspace(elevation_range[0], elevation_range[1], num_beams))
    az = np.arange(az_lo, az_hi + (0 if full else 1e-9), np.deg2rad(azimuth_resolution))
    ce = np.cos(elev)[:, None]
    dirs = np.stack(
        [
            ce * np.cos(az)[None],
            ce * np.sin(az)[None],
            np.broadcast_to(np.sin(elev)[:, None], (num_beams, len(az))),
        ],
        axis=-1,
    )
    dirs.setflags(write=False)
    return BeamPattern(dirs=dirs, elev=elev, az=az, full=full)


def _span(
    corners_xy: np.ndarray,
    d_min: float,
    z_lo: float,
    z_hi: float,
    pattern: BeamPattern,
) -> tuple[np.ndarray, slice]:
    """Azimuth column indices and elevation row slice a primitive can occupy.

    ``corners_xy`` bound the footprint (its corners are its farthest points from the
    sensor); ``d_min`` is a lower bound of its horizontal distance; heights in meters
    relative to the sensor.
    """
    elev, az = pattern.elev, pattern.az
    center_az = np.arctan2(corners_xy[:, 1].mean(), corners_xy[:, 0].mean())
    delta = np.angle(np.exp(1j * (np.arctan2(corners_xy[:, 1], corners_xy[:, 0]) - center_az)))
    step = az[1] - az[0] if len(az) > 1 else 1.0
    i0 = int(np.floor((center_az + delta.min() - az[0]) / step))
    i1 = int(np.ceil((center_az + delta.max() - az[0]) / step)) + 1
    cols = np.arange(i0, i1)
    cols = cols % len(az) if pattern.full else cols[(cols >= 0) & (cols < len(az))]
    d_max = float(np.hypot(corners_xy[:, 0], corners_xy[:, 1]).max())
    lo = min(np.arctan2(z_lo, d_min), np.arctan2(z_lo, d_max))
    hi = max(np.arctan2(z_hi, d_min), np.arctan2(z_hi, d_max))
    pad = elev[1] - elev[0] if len(elev) > 1 else 0.0
    rows = slice(
        int(np.searchsorted(elev, lo - pad)), int(np.searchsorted(elev, hi + pad, side="right"))
    )
    return cols, rows


def _hit_box(dirs: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry distance (inf on a miss) and incidence cosine of rays from the origin."""
    cos, sin = np.cos(box[6]), np.sin(box[6])
    origin = np.array([-(cos * box[0] + sin * box[1]), sin * box[0] - cos * box[1], -box[2]])
    local = np.stack(
        [
            cos * dirs[..., 0] + sin * dirs[..., 1],
            -sin * dirs[..., 0] + cos * dirs[..., 1],
            dirs[..., 2],
        ],
        axis=-1,
    )
    half = box[3:6] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / local
        t1, t2 = (-half - origin) * inv, (half - origin) * inv
    t_in, t_out = np.fmin(t1, t2), np.fmax(t1, t2)
    near, far = t_in.max(axis=-1), t_out.min(axis=-1)
    hit = (near <= far) & (near > 0)
    face = np.argmax(t_in, axis=-1)
    incidence = np.abs(np.take_along_axis(local, face[..., None], axis=-1)[..., 0])
    return np.where(hit, near, np.inf), incidence


def _hit_cylinder(dirs: np.ndarray, cyl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit on a vertical cylinder's side or top; distance (inf on a miss), incidence."""
    cx, cy, cz, r, h = cyl
    dx, dy, dz = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    a = dx * dx + dy * dy
    b = -2 * (dx * cx + dy * cy)
    disc = b * b - 4 * a * (cx * cx + cy * cy - r * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(disc)) / (2 * a)
        z_side = t_side * dz
        side = (disc >= 0) & (t_side > 0) & (z_side >= cz - h / 2) & (z_side <= cz + h / 2)
        t_top = (cz + h / 2) / dz
    top = (dz < 0) & (t_top > 0) & ((t_top * dx - cx) ** 2 + (t_top * dy - cy) ** 2 <= r * r)
    t = np.fmin(np.where(side, t_side, np.inf), np.where(top, t_top, np.inf))
    nx, ny = (t * dx - cx) / r, (t * dy - cy) / r
    incidence = np.where(top & (t == t_top), np.abs(dz), np.abs(dx * nx + dy * ny))
    return t, np.nan_to_num(incidence)


def _footprint(kind: str, prim: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Bounding corners of the footprint, a lower bound of its distance, and its z span."""
    if kind == "box":
        cos, sin = np.cos(prim[6]), np.sin(prim[6])
        half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * prim[3:5] / 2
        xy = half @ np.array([[cos, sin], [-sin, cos]]) + prim[:2]
        reach, height = float(np.hypot(prim[3], prim[4])) / 2, prim[5]
    else:
        xy = prim[:2] + prim[3] * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
        reach, height = float(prim[3]), prim[4]
    d_min = max(float(np.hypot(prim[0], prim[1])) - reach, 0.1)
    return xy, d_min, prim[2] - height / 2, prim[2] + height / 2


def cast_rays(
    pattern: BeamPattern, sensor_height: float, boxes: np.ndarray, cylinders: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of every ray.

    Args:
        pattern: the rays.
        sensor_height: the ground is the plane ``z = -sensor_height`` (meters).
        boxes: ``[B, 7]`` boxes ``(x, y, z_center, l, w, h, yaw)``.
        cylinders: ``[C, 5]`` vertical cylinders ``(x, y, z_center, radius, height)``.

    Returns:
        ``depth`` (distance along the ray, inf for no hit), ``incidence`` (cosine
        between the ray and the surface normal) and ``owner`` (0 ground, ``1..B`` the
        boxes, ``B+1..B+C`` the cylinders, -1 nothing), each ``[beams, azimuths]``.
    """
    dirs = pattern.dirs
    with np.errstate(divide="ignore"):
        depth = np.where(dirs[..., 2] < 0, -sensor_height / dirs[..., 2], np.inf)
    incidence = np.abs(dirs[..., 2]).copy()
    owner = np.where(np.isfinite(depth), 0, -1)
    prims = [("box", b) for b in boxes] + [("cyl", c) for c in cylinders]
    for pid, (kind, prim) in enumerate(prims, start=1):
        xy, d_min, z_lo, z_hi = _footprint(kind, prim)
        cols, rows = _span(xy, d_min, z_lo, z_hi, pattern)
        if len(cols) == 0 or rows.start >= rows.stop:
            continue
        t, inc = (_hit_box if kind == "box" else _hit_cylinder)(dirs[rows][:, cols], prim)
        closer = t < depth[rows][:, cols]
        r_idx, c_idx = np.nonzero(closer)
        r_idx, c_idx = r_idx + rows.start, cols[c_idx]
        depth[r_idx, c_idx] = t[closer]
        incidence[r_idx, c_idx] = inc[closer]
        owner[r_idx, c_idx] = pid
    return depth, incidence, owner
