"""The quick task: classify synthetic point-cloud shapes with a small PointNet.

Each sample is ``num_points`` points sampled on the surface of one shape (sphere, cube,
cylinder, cone, torus), randomly scaled per axis, rotated and jittered. An epoch takes a
fraction of a second on a CPU, so tests and demos of the search use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import DATASETS, MODELS
from rt3d_tune.tasks.model_contract import LossModel

__all__ = ["SHAPES", "PointNetClassifier", "SyntheticShapesDataset", "sample_shape"]


def _sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _cube(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.uniform(-1, 1, size=(n, 3))
    axis = rng.integers(0, 3, size=n)
    p[np.arange(n), axis] = rng.choice([-1.0, 1.0], size=n)
    return p


def _cylinder(rng: np.random.Generator, n: int) -> np.ndarray:
    # Side area 2*pi*r*h = 4*pi, two caps 2*pi: two thirds of the points on the side.
    theta = rng.uniform(0, 2 * math.pi, size=n)
    side = rng.uniform(size=n) < 2 / 3
    r = np.where(side, 1.0, np.sqrt(rng.uniform(size=n)))
    z = np.where(side, rng.uniform(-1, 1, size=n), rng.choice([-1.0, 1.0], size=n))
    return np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=1)


def _cone(rng: np.random.Generator, n: int) -> np.ndarray:
    theta = rng.uniform(0, 2 * math.pi, size=n)
    # Lateral area pi*r*sqrt(r^2+h^2) with r=1, h=2: about 0.69 of the total.
    side = rng.uniform(size=n) < math.sqrt(5) / (1 + math.sqrt(5))
    t = np.sqrt(rng.uniform(size=n))
    r = np.where(side, t, np.sqrt(rng.uniform(size=n)))
    z = np.where(side, 1 - 2 * t, -1.0)
    return np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=1)


def _torus(rng: np.random.Generator, n: int) -> np.ndarray:
    big, small = 0.75, 0.25
    u = rng.uniform(0, 2 * math.pi, size=n)
    v = rng.uniform(0, 2 * math.pi, size=n)
    ring = big + small * np.cos(v)
    return np.stack([ring * np.cos(u), ring * np.sin(u), small * np.sin(v)], axis=1)


#: Shape name -> sampler of ``n`` points on its unit-size surface.
SHAPES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "sphere": _sphere,
    "cube": _cube,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def sample_shape(
    rng: np.random.Generator,
    shape: str,
    num_points: int,
    noise: float,
    scale_range: tuple[float, float],
) -> np.ndarray:
    """``[num_points, 3]`` float32 points on one randomly scaled, rotated, jittered shape."""
    p = SHAPES[shape](rng, num_points)
    p = p * rng.uniform(*scale_range, size=3)
    p = p @ _rotation(rng).T
    p = p + rng.normal(scale=noise, size=p.shape)
    return p.astype(np.float32)


@DATASETS.register_module()
class SyntheticShapesDataset(Dataset):
    """Seeded point clouds of simple shapes, one class per shape.

    Args:
        num_samples: dataset length; classes take turns so they are balanced.
        num_points: points per sample.
        classes: shape names, a subset of :data:`SHAPES`.
        noise: standard deviation of the per-point jitter, in shape units (radius 1).
        scale_range: per-axis random scale ``(low, high)``.
        seed: the same seed gives the same samples; use different seeds for train and val.

    Raises:
        ConfigError: an unknown shape, fewer than 2 classes, or non-positive sizes.
    """

    def __init__(
        self,
        num_samples: int = 320,
        num_points: int = 128,
        classes: Sequence[str] = tuple(SHAPES),
        noise: float = 0.03,
        scale_range: Sequence[float] = (0.6, 1.4),
        seed: int = 0,
    ) -> None:
        unknown = [c for c in classes if c not in SHAPES]
        if unknown or len(classes) < 2:
            raise ConfigError(
                "classes must name at least two known shapes",
                key_path="data.classes",
                expected=f"a subset of {list(SHAPES)}",
                given=list(classes),
            )
        for key, value in (("num_samples", num_samples), ("num_points", num_points)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"{key} must be a positive int", key_path=f"data.{key}", given=value
                )
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ConfigError(
                "scale_range must be (low, high) with 0 < low <= high",
                key_path="data.scale_range",
                given=scale_range,
            )
        self.CLASSES = tuple(classes)
        rng = np.random.default_rng(seed)
        self.labels = np.arange(num_samples) % len(classes)
        self.points = np.stack(
            [
                sample_shape(rng, classes[k], num_points, noise, (scale_range[0], scale_range[1]))
                for k in self.labels
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"points": torch.from_numpy(self.points[i]), "label": int(self.labels[i])}

    @staticmethod
    def collate_fn(samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """``points [B, N, 3]``, ``labels [B]``."""
        return {
            "points": torch.stack([s["points"] for s in samples]),
            "labels": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        }

    def evaluate(
        self, results: list[dict[str, Any]], metric: str | Sequence[str] = "accuracy", **kwargs: Any
    ) -> dict[str, float]:
        """``{'accuracy': fraction of samples whose predicted label is right}``.

        Args:
            results: one ``dict(label=int, scores=...)`` per sample, in dataset order.
            metric: 'accuracy' (a list holding it is accepted too).

        Raises:
            ConfigError: another metric name.
            ValueError: a result count different from the dataset length.
        """
        names = [metric] if isinstance(metric, str) else list(metric)
        if any(name != "accuracy" for name in names):
            raise ConfigError(
                "SyntheticShapesDataset only computes accuracy",
                key_path="evaluation.metric",
                expected="'accuracy'",
                given=metric,
            )
        if len(results) != len(self):
            raise ValueError(
                f"expected {len(self)} results (one per sample) but got {len(results)}"
            )
        predicted = np.array([int(r["label"]) for r in results])
        return {"accuracy": float((predicted == self.labels).mean())}


@MODELS.register_module()
class PointNetClassifier(LossModel):
    """PointNet without its transform nets: a shared per-point MLP, a max pool, an MLP head.

    Args:
        num_classes: outputs.
        channels: widths of the shared per-point layers (each Linear + BatchNorm + ReLU).
        head_channels: width of the hidden layer of the head.
        dropout: dropout before the last layer.
    """

    def __init__(
        self,
        num_classes: int = 5,
        channels: Sequence[int] = (32, 64, 128),
        head_channels: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_prev = 3
        for c in channels:
            layers += [
                nn.Conv1d(c_prev, c, 1, bias=False),
                nn.BatchNorm1d(c),
                nn.ReLU(inplace=True),
            ]
            c_prev = c
        self.point_mlp = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c_prev, head_channels, bias=False),
            nn.BatchNorm1d(head_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(head_channels, num_classes),
        )

    def logits(self, points: Tensor) -> Tensor:
        """``[B, num_classes]`` from ``[B, N, 3]`` points."""
        features = self.point_mlp(points.transpose(1, 2))
        return self.head(features.amax(dim=2))

    def loss(self, data_batch: dict[str, Tensor]) -> dict[str, Any]:
        logits = self.logits(data_batch["points"])
        loss = F.cross_entropy(logits, data_batch["labels"])
        acc = (logits.argmax(1) == data_batch["labels"]).float().mean()
        return {
            "loss": loss,
            "log_vars": {"loss": loss.item(), "acc": acc.item()},
            "num_samples": len(data_batch["labels"]),
        }

    @torch.no_grad()
    def forward_test(self, data_batch: dict[str, Tensor]) -> list[dict[str, Any]]:
        """One ``dict(label=int, scores=np.float32 [num_classes])`` per sample."""
        probs = torch.softmax(self.logits(data_batch["points"]).float(), dim=1).cpu().numpy()
        return [{"label": int(p.argmax()), "scores": p} for p in probs]
