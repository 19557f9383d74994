"""CenterPoint-style head for BEV detection: targets, losses and decoding.

Boxes are ``(x, y, z, l, w, h, yaw)`` in the LiDAR frame (x forward, y left, z up, z at
the box's gravity center, yaw counter-clockwise around z from +x). The BEV grid is laid
out ``[C, H, W]`` with rows along y and columns along x, cell ``(0, 0)`` at
``(x_min, y_min)``.

The regression map has 8 channels per cell: the sub-cell offset of the center (2), the
center height z (1), the log box size (3), and ``sin 2θ, cos 2θ`` (2). A box looks the
same front and back, so yaw and yaw + π must get the same target: with plain sin/cos
they pull the prediction to opposite points and it averages to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "REG_CHANNELS",
    "BEVGrid",
    "CenterHead",
    "HeadTargets",
    "build_targets",
    "decode",
    "decode_yaw",
    "encode_yaw",
    "gaussian_focal_loss",
    "gaussian_radius",
]

REG_CHANNELS = 8


@dataclass(frozen=True)
class BEVGrid:
    """Geometry of the head's output grid.

    Args:
        x_min, y_min: metres, the corner of cell (0, 0).
        cell_x, cell_y: metres per output cell along x and y.
        width, height: number of cells along x and y.
    """

    x_min: float
    y_min: float
    cell_x: float
    cell_y: float
    width: int
    height: int


@dataclass
class HeadTargets:
    """Training targets for one batch.

    heatmap: ``[B, num_classes, H, W]`` Gaussian peaks (1 at each object's center cell).
    index: ``[B, max_objs]`` flat cell index ``row * W + col`` of each object's center.
    reg: ``[B, max_objs, 8]`` regression targets at those cells.
    mask: ``[B, max_objs]`` 1 for a real object, 0 for padding.
    """

    heatmap: Tensor
    index: Tensor
    reg: Tensor
    mask: Tensor


def encode_yaw(yaw: Tensor) -> Tensor:
    """``[..., 2]`` = ``(sin 2θ, cos 2θ)``: equal for yaw and yaw + π."""
    return torch.stack([torch.sin(2 * yaw), torch.cos(2 * yaw)], dim=-1)


def decode_yaw(sin2: Tensor, cos2: Tensor) -> Tensor:
    """Yaw in ``(-π/2, π/2]`` from ``sin 2θ, cos 2θ`` (the box's axis, not its heading)."""
    return 0.5 * torch.atan2(sin2, cos2)


def gaussian_radius(length: Tensor, width: Tensor, min_overlap: float = 0.1) -> Tensor:
    """CornerNet's radius (in cells) for a box of ``length x width`` cells.

    The smallest of three radii such that a box whose corner is shifted by the radius
    still overlaps the true one by ``min_overlap`` (the formula CenterPoint uses).
    """
    a1 = 1.0
    b1 = length + width
    c1 = width * length * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2 = 4.0
    b2 = 2 * (length + width)
    c2 = (1 - min_overlap) * width * length
    r2 = (b2 + torch.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (length + width)
    c3 = (min_overlap - 1) * width * length
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def _sample_targets(
    boxes: Tensor,
    labels: Tensor,
    grid: BEVGrid,
    num_classes: int,
    max_objs: int,
    min_radius: int,
    min_overlap: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    device = boxes.device
    heatmap = torch.zeros(num_classes, grid.height, grid.width, device=device)
    index = torch.zeros(max_objs, dtype=torch.long, device=device)
    reg = torch.zeros(max_objs, REG_CHANNELS, device=device)
    mask = torch.zeros(max_objs, device=device)
    boxes = boxes.float()
    u = (boxes[:, 0] - grid.x_min) / grid.cell_x
    v = (boxes[:, 1] - grid.y_min) / grid.cell_y
    keep = (u >= 0) & (u < grid.width) & (v >= 0) & (v < grid.height)
    keep &= (labels >= 0) & (labels < num_classes)
    boxes, labels, u, v = (
        boxes[keep][:max_objs],
        labels[keep][:max_objs],
        u[keep][:max_objs],
        v[keep][:max_objs],
    )
    n = boxes.shape[0]
    if n == 0:
        return heatmap, index, reg, mask
    col, row = u.floor().long(), v.floor().long()
    radius = gaussian_radius(boxes[:, 3] / grid.cell_x, boxes[:, 4] / grid.cell_y, min_overlap)
    radius = radius.floor().clamp(min=min_radius)
    sigma = (2 * radius + 1) / 6
    xs = torch.arange(grid.width, device=device, dtype=torch.float32)
    ys = torch.arange(grid.height, device=device, dtype=torch.float32)
    dx = xs[None, None, :] - col[:, None, None].float()
    dy = ys[None, :, None] - row[:, None, None].float()
    r = radius[:, None, None]
    window = (dx.abs() <= r) & (dy.abs() <= r)
    gauss = torch.exp(-(dx**2 + dy**2) / (2 * sigma[:, None, None] ** 2)) * window
    for c in labels.unique().tolist():
        heatmap[c] = gauss[labels == c].amax(dim=0)
    index[:n] = row * grid.width + col
    reg[:n, 0] = u - col
    reg[:n, 1] = v - row
    reg[:n, 2] = boxes[:, 2]
    reg[:n, 3:6] = torch.log(boxes[:, 3:6].clamp(min=1e-3))
    reg[:n, 6:8] = encode_yaw(boxes[:, 6])
    mask[:n] = 1
    return heatmap, index, reg, mask


def build_targets(
    gt_boxes: list[Tensor],
    gt_labels: list[Tensor],
    grid: BEVGrid,
    num_classes: int,
    max_objs: int = 64,
    min_radius: int = 2,
    min_overlap: float = 0.1,
) -> HeadTargets:
    """CenterPoint targets for a batch.

    Args:
        gt_boxes: per sample ``[M, 7]`` boxes (metres, radians).
        gt_labels: per sample ``[M]`` class indices; boxes outside the grid or with a
            label outside ``[0, num_classes)`` are ignored.
        grid: the output grid.
        num_classes: heatmap channels.
        max_objs: objects kept per sample (the first ones).
        min_radius: smallest Gaussian radius, in cells.
        min_overlap: overlap that sets the Gaussian radius (see :func:`gaussian_radius`).
    """
    parts = [
        _sample_targets(b, lab, grid, num_classes, max_objs, min_radius, min_overlap)
        for b, lab in zip(gt_boxes, gt_labels, strict=True)
    ]
    heatmap, index, reg, mask = (torch.stack(list(t)) for t in zip(*parts, strict=True))
    return HeadTargets(heatmap=heatmap, index=index, reg=reg, mask=mask)


def gaussian_focal_loss(
    pred: Tensor, target: Tensor, alpha: float = 2.0, gamma: float = 4.0
) -> Tensor:
    """CenterNet focal loss on a sigmoid heatmap, summed and divided by the number of peaks.

    Args:
        pred: probabilities in (0, 1), any shape.
        target: same shape; 1 at object centers, Gaussian values around them.
        alpha: focusing power on the prediction.
        gamma: down-weighting of negatives near a peak, ``(1 - target)**gamma``.
    """
    eps = 1e-12
    pos = target.eq(1).float()
    pos_loss = -torch.log(pred + eps) * (1 - pred).pow(alpha) * pos
    neg_loss = -torch.log(1 - pred + eps) * pred.pow(alpha) * (1 - target).pow(gamma) * (1 - pos)
    num_pos = pos.sum().clamp(min=1.0)
    return (pos_loss.sum() + neg_loss.sum()) / num_pos


def gather_at(feature: Tensor, index: Tensor) -> Tensor:
    """``[B, K, C]`` values of a ``[B, C, H, W]`` map at flat cell indices ``[B, K]``."""
    b, c = feature.shape[:2]
    flat = feature.reshape(b, c, -1)
    return flat.gather(2, index[:, None, :].expand(b, c, index.shape[1])).transpose(1, 2)


def decode(
    heatmap: Tensor,
    reg: Tensor,
    grid: BEVGrid,
    max_num: int = 50,
    score_thr: float = 0.1,
) -> list[dict[str, np.ndarray]]:
    """Boxes from head outputs: 3x3 max-pool peaks, top-K over classes, score threshold.

    Args:
        heatmap: ``[B, num_classes, H, W]`` probabilities.
        reg: ``[B, 8, H, W]`` regression map.
        grid: the output grid.
        max_num: K, detections kept per sample before the threshold.
        score_thr: detections scoring below it are dropped.

    Returns:
        per sample ``dict(boxes=float32 [K, 7], scores=float32 [K], labels=int64 [K])``.
    """
    b, num_classes, h, w = heatmap.shape
    peaks = F.max_pool2d(heatmap, kernel_size=3, stride=1, padding=1)
    heatmap = heatmap * (peaks == heatmap)
    k = min(max_num, num_classes * h * w)
    scores, flat = heatmap.reshape(b, -1).topk(k, dim=1)
    labels = flat // (h * w)
    cell = flat % (h * w)
    values = gather_at(reg, cell).float()
    col, row = (cell % w).float(), (cell // w).float()
    x = (col + values[..., 0]) * grid.cell_x + grid.x_min
    y = (row + values[..., 1]) * grid.cell_y + grid.y_min
    size = torch.exp(values[..., 3:6].clamp(max=5.0))
    yaw = decode_yaw(values[..., 6], values[..., 7])
    boxes = torch.cat([x[..., None], y[..., None], values[..., 2:3], size, yaw[..., None]], dim=-1)
    out = []
    for i in range(b):
        keep = scores[i] >= score_thr
        out.append(
            {
                "boxes": boxes[i][keep].detach().cpu().numpy().astype(np.float32),
                "scores": scores[i][keep].detach().float().cpu().numpy().astype(np.float32),
                "labels": labels[i][keep].detach().cpu().numpy().astype(np.int64),
            }
        )
    return out


class CenterHead(nn.Module):
    """A shared 3x3 conv, then a heatmap branch and a regression branch.

    Args:
        in_channels: channels of the backbone's output map.
        num_classes: heatmap channels.
        head_channels: width of the shared and branch convs.
        prior: initial heatmap probability (sets the heatmap bias, as CenterPoint).
    """

    def __init__(
        self, in_channels: int, num_classes: int, head_channels: int = 32, prior: float = 0.1
    ) -> None:
        super().__init__()
        self.shared = nn.Sequential(
            nn.Conv2d(in_channels, head_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
        )
        self.heatmap = nn.Conv2d(head_channels, num_classes, 3, padding=1)
        self.reg = nn.Conv2d(head_channels, REG_CHANNELS, 3, padding=1)
        nn.init.constant_(self.heatmap.bias, -math.log((1 - prior) / prior))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmap logits ``[B, num_classes, H, W]`` and regression ``[B, 8, H, W]``."""
        x = self.shared(x)
        return self.heatmap(x), self.reg(x)
