"""Bird's-eye-view detection metric: rotated-box IoU and KITTI-style AP (40 recall points).

Boxes are LiDAR boxes ``(x, y, z, l, w, h, yaw)`` (meters, radians, yaw counter-clockwise
around z from +x); only ``x, y, l, w, yaw`` matter in BEV, so ``[N, 5]`` arrays
``(x, y, l, w, yaw)`` are accepted too.

The IoU clips one rectangle by the four edges of the other (Sutherland-Hodgman),
vectorized over all candidate pairs at once; pairs whose axis-aligned bounds do not
touch are never clipped.

AP follows the KITTI benchmark's R40 variant: detections of a class are ranked by
score over the whole dataset, matched greedily per sample (highest score first, each
to the unmatched ground truth of the same class with the highest IoU at or above the
threshold; each ground truth is matched at most once), and precision is interpolated
(the best precision at any recall at or above r) at r = 1/40, 2/40, ..., 1. Unlike the
KITTI devkit there are no difficulty levels, DontCare regions or minimum box heights:
every ground truth box counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "KITTI_IOU_THRESHOLDS",
    "average_precision_r40",
    "bev_corners",
    "bev_iou",
    "evaluate_bev",
]

#: The IoU thresholds of the KITTI benchmark; any other class uses 0.5.
KITTI_IOU_THRESHOLDS: dict[str, float] = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}

_NUM_RECALL_POINTS = 40
# A convex polygon clipped by the 4 half-planes of a rectangle has at most 8 vertices;
# the buffer is larger so near-degenerate float cases never lose a vertex.
_MAX_VERTICES = 16


def _bev_params(boxes: Any) -> np.ndarray:
    """``[N, 5]`` float64 ``(x, y, l, w, yaw)`` from ``[N, 7]`` or ``[N, 5]`` boxes."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 7)
    if arr.ndim != 2 or arr.shape[1] not in (5, 7):
        raise ValueError(f"boxes must have shape [N, 7] or [N, 5] but got {arr.shape}")
    return arr[:, [0, 1, 3, 4, 6]] if arr.shape[1] == 7 else arr


def bev_corners(boxes: Any) -> np.ndarray:
    """BEV corners of boxes, counter-clockwise, starting at the front-left corner.

    Args:
        boxes: ``[N, 7]`` or ``[N, 5]`` boxes (see the module docstring).

    Returns:
        ``[N, 4, 2]`` float64 corner coordinates in meters.
    """
    p = _bev_params(boxes)
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * 0.5
    local = half[None] * p[:, None, 2:4]
    cos, sin = np.cos(p[:, 4])[:, None], np.sin(p[:, 4])[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + p[:, 0:1]
    y = local[..., 0] * sin + local[..., 1] * cos + p[:, 1:2]
    return np.stack([x, y], axis=-1)


def _clip_area(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Area of each convex ``subject`` quad clipped by the matching CCW ``clip`` quad.

    Args:
        subject: ``[P, 4, 2]`` corners.
        clip: ``[P, 4, 2]`` corners, counter-clockwise.

    Returns:
        ``[P]`` intersection areas.
    """
    num = subject.shape[0]
    poly = np.zeros((num, _MAX_VERTICES, 2))
    poly[:, :4] = subject
    count = np.full(num, 4)
    slots = np.arange(_MAX_VERTICES)
    rows = np.arange(num)[:, None]
    for edge in range(4):
        a = clip[:, edge][:, None]
        b = clip[:, (edge + 1) % 4][:, None]
        valid = slots[None] < count[:, None]
        nxt_idx = np.where(slots[None] + 1 < count[:, None], slots[None] + 1, 0)
        nxt = poly[rows, nxt_idx]
        ab = b - a
        # Signed distance (times |ab|) to the edge; >= 0 is inside for a CCW clip polygon.
        d_cur = ab[..., 0] * (poly[..., 1] - a[..., 1]) - ab[..., 1] * (poly[..., 0] - a[..., 0])
        d_nxt = np.take_along_axis(d_cur, nxt_idx, axis=1)
        in_cur, in_nxt = d_cur >= 0, d_nxt >= 0
        crosses = valid & (in_cur != in_nxt)
        denom = np.where(crosses, d_cur - d_nxt, 1.0)
        t = (d_cur / denom)[..., None]
        cross_pt = poly + t * (nxt - poly)
        # Emit, per vertex in order: the vertex if inside, then the crossing of its edge.
        candidates = np.stack([poly, cross_pt], axis=2).reshape(num, 2 * _MAX_VERTICES, 2)
        keep = np.stack([valid & in_cur, crosses], axis=2).reshape(num, 2 * _MAX_VERTICES)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :_MAX_VERTICES]
        poly = np.take_along_axis(candidates, order[..., None], axis=1)
        count = np.minimum(keep.sum(axis=1), _MAX_VERTICES)
    # Pad with the first vertex so the closed shoelace sum ignores the padding.
    pad = slots[None] >= count[:, None]
    poly = np.where(pad[..., None], poly[:, :1], poly)
    rolled = np.roll(poly, -1, axis=1)
    cross = poly[..., 0] * rolled[..., 1] - poly[..., 1] * rolled[..., 0]
    return np.where(count >= 3, 0.5 * np.abs(cross.sum(axis=1)), 0.0)


def bev_iou(boxes_a: Any, boxes_b: Any) -> np.ndarray:
    """Rotated-rectangle IoU in bird's-eye view between every pair of boxes.

    Args:
        boxes_a: ``[N, 7]`` or ``[N, 5]`` boxes.
        boxes_b: ``[M, 7]`` or ``[M, 5]`` boxes.

    Returns:
        ``[N, M]`` float64 IoU in [0, 1]; 0 for pairs with a zero-area union.

    Raises:
        ValueError: an input of the wrong shape.
    """
    pa, pb = _bev_params(boxes_a), _bev_params(boxes_b)
    iou = np.zeros((len(pa), len(pb)))
    if len(pa) == 0 or len(pb) == 0:
        return iou
    ca, cb = bev_corners(pa), bev_corners(pb)
    lo_a, hi_a = ca.min(axis=1), ca.max(axis=1)
    lo_b, hi_b = cb.min(axis=1), cb.max(axis=1)
    touch = np.all((lo_a[:, None] <= hi_b[None]) & (lo_b[None] <= hi_a[:, None]), axis=-1)
    ia, ib = np.nonzero(touch)
    if len(ia) == 0:
        return iou
    area_a = pa[:, 2] * pa[:, 3]
    area_b = pb[:, 2] * pb[:, 3]
    inter = _clip_area(ca[ia], cb[ib])
    union = area_a[ia] + area_b[ib] - inter
    iou[ia, ib] = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.clip(iou, 0.0, 1.0)


def average_precision_r40(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """KITTI R40 average precision from ranked detections.

    Args:
        scores: ``[D]`` detection scores (any order; ranked here, ties keep input order).
        is_tp: ``[D]`` booleans, whether each detection matched a ground truth.
        num_gt: number of ground-truth boxes (must be positive).

    Returns:
        The mean over r = 1/40 ... 1 of the best precision reached at recall >= r
        (0 where that recall is never reached); 0.0 with no detections.
    """
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.cumsum(np.asarray(is_tp, dtype=bool)[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_gt
    # Best precision at any rank from here on = at any recall >= this rank's recall.
    best_after = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.arange(1, _NUM_RECALL_POINTS + 1) / _NUM_RECALL_POINTS
    first = np.searchsorted(recall, points - 1e-9, side="left")
    reached = first < len(recall)
    interp = np.where(reached, best_after[np.minimum(first, len(recall) - 1)], 0.0)
    return float(interp.mean())


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _match(scores: np.ndarray, iou: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy matching in one sample: ``[D]`` booleans (true positive or not).

    Args:
        scores: ``[D]`` detection scores.
        iou: ``[D, G]`` IoU between the detections and the ground truths.
        threshold: minimum IoU of a match.
    """
    is_tp = np.zeros(len(scores), dtype=bool)
    if iou.shape[1] == 0:
        return is_tp
    free = np.ones(iou.shape[1], dtype=bool)
    for det in np.argsort(-scores, kind="stable"):
        candidates = np.where(free & (iou[det] >= threshold), iou[det], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= 0:
            free[best] = False
            is_tp[det] = True
    return is_tp


def evaluate_bev(
    results: Sequence[Mapping[str, Any]],
    gt_boxes_list: Sequence[Any],
    gt_labels_list: Sequence[Any],
    class_names: Sequence[str],
    iou_thresholds: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """BEV AP per class and its mean, at per-class thresholds and at 0.5 for all.

    Args:
        results: one prediction per sample, a mapping with ``boxes`` ``[K, 7]``,
            ``scores`` ``[K]`` and ``labels`` ``[K]`` (indices into ``class_names``);
            numpy arrays or torch tensors.
        gt_boxes_list: per sample ``[M, 7]`` ground-truth boxes.
        gt_labels_list: per sample ``[M]`` ground-truth class indices.
        class_names: the class names, in label order.
        iou_thresholds: class name -> IoU threshold of the ``bev_AP_<Class>`` keys;
            defaults to :data:`KITTI_IOU_THRESHOLDS` (0.5 for classes it does not name).

    Returns:
        ``bev_AP_<Class>`` and ``bev_mAP`` at ``iou_thresholds``, ``bev_AP50_<Class>``
        and ``bev_mAP50`` at IoU 0.5. A class without any ground truth in the whole
        set has no AP: its keys are left out and the means skip it; the means are 0.0
        when no class has ground truth. A class with ground truth but no predictions
        has AP 0.

    Raises:
        ValueError: the three per-sample lists differ in length, or a prediction lacks
            a key.
    """
    if not len(results) == len(gt_boxes_list) == len(gt_labels_list):
        raise ValueError(
            f"got {len(results)} predictions for {len(gt_boxes_list)} samples "
            f"({len(gt_labels_list)} label arrays); evaluate needs one prediction per sample"
        )
    thresholds = dict(KITTI_IOU_THRESHOLDS)
    thresholds.update(iou_thresholds or {})
    settings = {
        "bev_AP": [thresholds.get(c, 0.5) for c in class_names],
        "bev_AP50": [0.5] * len(class_names),
    }
    scores: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in class_names] for k in settings}
    is_tp: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in class_names] for k in settings}
    num_gt = np.zeros(len(class_names), dtype=np.int64)
    for result, gt_boxes, gt_labels in zip(results, gt_boxes_list, gt_labels_list):
        missing = {"boxes", "scores", "labels"} - set(result)
        if missing:
            raise ValueError(f"a prediction lacks {sorted(missing)}; it has {sorted(result)}")
        boxes = _as_numpy(result["boxes"]).reshape(-1, 7)
        det_scores = _as_numpy(result["scores"]).reshape(-1)
        det_labels = _as_numpy(result["labels"]).reshape(-1).astype(np.int64)
        gt_boxes_np = _as_numpy(gt_boxes).reshape(-1, 7)
        gt_labels_np = _as_numpy(gt_labels).reshape(-1).astype(np.int64)
        iou = bev_iou(boxes, gt_boxes_np)
        for cls in range(len(class_names)):
            dets = np.nonzero(det_labels == cls)[0]
            gts = np.nonzero(gt_labels_np == cls)[0]
            num_gt[cls] += len(gts)
            for key, thr in settings.items():
                scores[key][cls].append(det_scores[dets])
                is_tp[key][cls].append(_match(det_scores[dets], iou[np.ix_(dets, gts)], thr[cls]))
    metrics: dict[str, float] = {}
    for key in settings:
        per_class = []
        for cls, name in enumerate(class_names):
            if num_gt[cls] == 0:
                continue
            ap = average_precision_r40(
                np.concatenate(scores[key][cls]), np.concatenate(is_tp[key][cls]), int(num_gt[cls])
            )
            metrics[f"{key}_{name}"] = ap
            per_class.append(ap)
        mean_key = "bev_mAP" if key == "bev_AP" else "bev_mAP50"
        metrics[mean_key] = float(np.mean(per_class)) if per_class else 0.0
    return metrics
