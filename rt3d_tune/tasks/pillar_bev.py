"""A small pillar-based BEV detector in plain torch (PointPillars encoder, CenterPoint head).

Points become pillars (one per BEV cell) through scatter operations only: no compiled
voxelization ops, so it runs anywhere torch runs. The pillar features are scattered to a
dense BEV image, a few strided conv blocks and an upsampling neck turn it into a feature
map, and :class:`~rt3d_tune.tasks.centerhead.CenterHead` predicts per-class center
heatmaps and box regressions on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import MODELS
from rt3d_tune.tasks.centerhead import (
    BEVGrid,
    CenterHead,
    build_targets,
    decode,
    gather_at,
    gaussian_focal_loss,
)
from rt3d_tune.tasks.model_contract import LossModel

__all__ = ["BEVBackbone", "PillarBEVDetector", "PillarFeatureNet"]

POINT_FEATURES = 9


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(min(8, channels), channels)


def _conv_block(c_in: int, c_out: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        _norm2d(norm, c_out),
        nn.ReLU(inplace=True),
    )


class PillarFeatureNet(nn.Module):
    """Points to a dense BEV feature image.

    Each point gets 9 features: x, y, z, intensity, its offset to the mean of the points
    in its pillar (3), and its offset to the pillar's cell center (2). A linear layer,
    BatchNorm and ReLU lift them to ``channels``; a per-pillar max (``scatter_reduce``
    'amax') pools them; empty pillars stay zero.

    Args:
        channels: output channels.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres;
            points outside are dropped.
        voxel_size: pillar size ``(dx, dy)`` in metres.
    """

    def __init__(
        self, channels: int, point_cloud_range: Sequence[float], voxel_size: Sequence[float]
    ) -> None:
        super().__init__()
        self.range = tuple(float(v) for v in point_cloud_range)
        self.voxel = (float(voxel_size[0]), float(voxel_size[1]))
        self.width = round((self.range[3] - self.range[0]) / self.voxel[0])
        self.height = round((self.range[4] - self.range[1]) / self.voxel[1])
        self.channels = channels
        self.linear = nn.Linear(POINT_FEATURES, channels, bias=False)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, points: list[Tensor]) -> Tensor:
        """``[B, channels, H, W]`` from per-sample ``[N_i, 4]`` points (x, y, z, intensity)."""
        x_min, y_min, z_min, x_max, y_max, z_max = self.range
        cells = self.height * self.width
        pts, pillar = [], []
        for b, p in enumerate(points):
            p = p[:, :4].float()
            inside = (
                (p[:, 0] >= x_min)
                & (p[:, 0] < x_max)
                & (p[:, 1] >= y_min)
                & (p[:, 1] < y_max)
                & (p[:, 2] >= z_min)
                & (p[:, 2] < z_max)
            )
            p = p[inside]
            col = ((p[:, 0] - x_min) / self.voxel[0]).long().clamp(max=self.width - 1)
            row = ((p[:, 1] - y_min) / self.voxel[1]).long().clamp(max=self.height - 1)
            pts.append(p)
            pillar.append(b * cells + row * self.width + col)
        p = torch.cat(pts)
        cells_of_point = torch.cat(pillar)
        # Work on the occupied pillars only: most BEV cells are empty, and the amax
        # backward over the whole grid costs more than the backbone's first conv.
        occupied, idx = torch.unique(cells_of_point, return_inverse=True)
        num = occupied.numel()
        count = torch.zeros(num, device=p.device, dtype=p.dtype).index_add_(
            0, idx, torch.ones_like(p[:, 0])
        )
        mean = (
            torch.zeros(num, 3, device=p.device, dtype=p.dtype).index_add_(0, idx, p[:, :3])[idx]
            / count[idx, None]
        )
        cell = cells_of_point % cells
        center_x = (cell % self.width).to(p.dtype).add_(0.5).mul_(self.voxel[0]).add_(x_min)
        center_y = (cell // self.width).to(p.dtype).add_(0.5).mul_(self.voxel[1]).add_(y_min)
        feats = torch.cat(
            [p, p[:, :3] - mean, (p[:, 0] - center_x)[:, None], (p[:, 1] - center_y)[:, None]],
            dim=1,
        )
        feats = torch.relu(self.norm(self.linear(feats)))
        pooled = torch.zeros(num, self.channels, device=p.device, dtype=feats.dtype)
        pooled = pooled.scatter_reduce(
            0, idx[:, None].expand(-1, self.channels), feats, "amax", include_self=False
        )
        bev = torch.zeros(len(points) * cells, self.channels, device=p.device, dtype=feats.dtype)
        bev = bev.index_put((occupied,), pooled)
        # A channels-last view, not a copy: the convs accept that memory format.
        return bev.view(len(points), self.height, self.width, self.channels).permute(0, 3, 1, 2)


class BEVBackbone(nn.Module):
    """SECOND-style strided blocks with an upsample-and-concatenate neck.

    Block ``i`` is a 3x3 conv with stride ``strides[i]`` followed by ``layer_nums[i]``
    3x3 convs, all with ``channels[i]`` outputs. Every block's output is brought to the
    resolution of the first block (stride ``strides[0]``) by a transposed conv with
    ``upsample_channels`` outputs, and the results are concatenated.

    Args:
        in_channels: channels of the BEV image.
        channels: per-block widths.
        layer_nums: per-block extra convs.
        strides: per-block strides.
        upsample_channels: neck width per block.
        norm: 'bn' (BatchNorm) or 'gn' (GroupNorm).
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        layer_nums: Sequence[int],
        strides: Sequence[int],
        upsample_channels: int,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        c_prev = in_channels
        scale = 1
        for i, (c, n, s) in enumerate(zip(channels, layer_nums, strides, strict=True)):
            layers = [_conv_block(c_prev, c, s, norm)] + [
                _conv_block(c, c, 1, norm) for _ in range(n)
            ]
            self.blocks.append(nn.Sequential(*layers))
            if i > 0:
                scale *= s
            up: nn.Module = (
                nn.Conv2d(c, upsample_channels, 1, bias=False)
                if scale == 1
                else nn.ConvTranspose2d(c, upsample_channels, scale, stride=scale, bias=False)
            )
            self.ups.append(
                nn.Sequential(up, _norm2d(norm, upsample_channels), nn.ReLU(inplace=True))
            )
            c_prev = c
        self.out_channels = upsample_channels * len(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, out_channels, H / strides[0], W / strides[0]]``."""
        outs = []
        for block, up in zip(self.blocks, self.ups, strict=True):
            x = block(x)
            outs.append(up(x))
        return torch.cat(outs, dim=1)


def _check_positive(values: Sequence[float], key: str, count: int) -> None:
    if len(values) < count or any(
        not isinstance(v, (int, float)) or v <= 0 for v in values[:count]
    ):
        raise ConfigError(
            f"{key} needs {count} positive numbers",
            key_path=key,
            expected=f"{count} positive numbers",
            given=values,
        )


def _check_grid(
    point_cloud_range: Sequence[float], voxel_size: Sequence[float], stride: int
) -> None:
    for axis, i in (("x", 0), ("y", 1)):
        cells = (point_cloud_range[i + 3] - point_cloud_range[i]) / voxel_size[i]
        if abs(cells - round(cells)) > 1e-4 or round(cells) % stride:
            raise ConfigError(
                f"the {axis} extent of point_cloud_range must be a whole number of pillars "
                f"that divides by the backbone's total stride {stride}",
                key_path="model.point_cloud_range",
                given=list(point_cloud_range),
                hint=f"{cells:g} pillars of {voxel_size[i]} m along {axis}",
            )


@MODELS.register_module()
class PillarBEVDetector(LossModel):
    """Pillar encoder + BEV backbone + center-heatmap head, following the runner's model contract.

    Args:
        num_classes: object classes (heatmap channels).
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres.
        voxel_size: pillar size ``(dx, dy[, dz])`` in metres (dz is ignored).
        pillar_channels: channels of the pillar features.
        backbone: dict of :class:`BEVBackbone` arguments (channels, layer_nums, strides,
            upsample_channels, norm).
        head_channels: width of the head convs.
        max_objs: objects per sample used as regression targets.
        min_radius: smallest heatmap Gaussian radius, in output cells.
        heatmap_weight: weight of the focal loss.
        reg_weight: weight of the L1 regression loss (summed over the 8 codes, averaged
            over objects).
        test_cfg: ``dict(max_num=50, score_thr=0.1)`` for decoding.

    Raises:
        ConfigError: sizes that are not positive or a range that does not split into
            whole pillars and whole output cells.
    """

    def __init__(
        self,
        num_classes: int = 2,
        point_cloud_range: Sequence[float] = (0.0, -20.0, -3.0, 40.0, 20.0, 1.0),
        voxel_size: Sequence[float] = (0.3125, 0.3125),
        pillar_channels: int = 16,
        backbone: dict[str, Any] | None = None,
        head_channels: int = 32,
        max_objs: int = 64,
        min_radius: int = 2,
        heatmap_weight: float = 1.0,
        reg_weight: float = 0.25,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(
                "num_classes must be a positive int",
                key_path="model.num_classes",
                given=num_classes,
            )
        _check_positive(voxel_size, "model.voxel_size", 2)
        if len(point_cloud_range) != 6 or any(
            point_cloud_range[i + 3] <= point_cloud_range[i] for i in range(3)
        ):
            raise ConfigError(
                "point_cloud_range must be (x_min, y_min, z_min, x_max, y_max, z_max), max > min",
                key_path="model.point_cloud_range",
                given=point_cloud_range,
            )
        backbone_cfg = {
            "channels": (32, 64),
            "layer_nums": (1, 2),
            "strides": (2, 2),
            "upsample_channels": 32,
            "norm": "bn",
        }
        backbone_cfg.update(backbone or {})
        if backbone_cfg["norm"] not in ("bn", "gn"):
            raise ConfigError(
                "unknown norm",
                key_path="model.backbone.norm",
                expected="'bn' or 'gn'",
                given=backbone_cfg["norm"],
            )
        lengths = {len(backbone_cfg[k]) for k in ("channels", "layer_nums", "strides")}
        if len(lengths) != 1:
            raise ConfigError(
                "backbone channels, layer_nums and strides must have one entry per block",
                key_path="model.backbone",
                given={k: backbone_cfg[k] for k in ("channels", "layer_nums", "strides")},
            )
        self.num_classes = num_classes
        self.pfn = PillarFeatureNet(pillar_channels, point_cloud_range, voxel_size)
        _check_grid(point_cloud_range, voxel_size, int(np.prod(backbone_cfg["strides"])))
        self.backbone = BEVBackbone(pillar_channels, **backbone_cfg)
        self.head = CenterHead(self.backbone.out_channels, num_classes, head_channels)
        out_stride = backbone_cfg["strides"][0]
        self.grid = BEVGrid(
            x_min=float(point_cloud_range[0]),
            y_min=float(point_cloud_range[1]),
            cell_x=self.pfn.voxel[0] * out_stride,
            cell_y=self.pfn.voxel[1] * out_stride,
            width=self.pfn.width // out_stride,
            height=self.pfn.height // out_stride,
        )
        self.max_objs = max_objs
        self.min_radius = min_radius
        self.heatmap_weight = heatmap_weight
        self.reg_weight = reg_weight
        self.test_cfg = {"max_num": 50, "score_thr": 0.1}
        self.test_cfg.update(test_cfg or {})

    def predict_maps(self, points: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Heatmap logits ``[B, C, H, W]`` and regression ``[B, 8, H, W]`` of the output grid."""
        return self.head(self.backbone(self.pfn(points)))

    def loss(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Focal heatmap loss + L1 regression loss at object centers, in the runner's format."""
        logits, reg = self.predict_maps(batch["points"])
        targets = build_targets(
            batch["gt_boxes"],
            batch["gt_labels"],
            self.grid,
            self.num_classes,
            self.max_objs,
            self.min_radius,
        )
        prob = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
        loss_heatmap = self.heatmap_weight * gaussian_focal_loss(prob, targets.heatmap)
        pred = gather_at(reg.float(), targets.index)
        mask = targets.mask[..., None]
        num = targets.mask.sum().clamp(min=1.0)
        loss_reg = self.reg_weight * ((pred - targets.reg).abs() * mask).sum() / num
        loss = loss_heatmap + loss_reg
        return {
            "loss": loss,
            "log_vars": {
                "loss_heatmap": loss_heatmap.item(),
                "loss_reg": loss_reg.item(),
                "loss": loss.item(),
            },
            "num_samples": len(batch["points"]),
        }

    @torch.no_grad()
    def forward_test(self, data_batch: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        """Per-sample ``dict(boxes=[K, 7], scores=[K], labels=[K])`` (numpy, LiDAR frame)."""
        logits, reg = self.predict_maps(data_batch["points"])
        return decode(torch.sigmoid(logits.float()), reg, self.grid, **self.test_cfg)
