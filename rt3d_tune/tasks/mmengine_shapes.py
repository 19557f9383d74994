"""The PointNet shapes task as mmengine components, for the mmengine backend's example.

``configs/mmengine/pointnet_shapes.py`` names these through ``custom_imports``, so
``mmengine.runner.Runner.from_cfg`` trains the same network on the same data as the
mmcv-style ``configs/pointnet/pointnet_shapes.py``. The classes register into mmengine's
root registries (``mmengine.registry.MODELS``, ``DATASETS``, ``METRICS``), not into
rt3d_tune's. Only that config imports this module: nothing in rt3d_tune may import it at
import time, since mmengine is an optional dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch import Tensor
from torch.utils.data import Dataset

from rt3d_tune.tasks.pointnet import PointNetClassifier, SyntheticShapesDataset

__all__ = ["MMShapesDataset", "ShapesAccuracy", "ShapesPointNet"]


@DATASETS.register_module()
class MMShapesDataset(Dataset):
    """:class:`SyntheticShapesDataset` with mmengine's sample layout.

    Items are ``dict(points=Tensor [num_points, 3], labels=int)``, so mmengine's
    ``default_collate`` makes ``dict(points=[B, N, 3], labels=[B])`` batches and
    ``pseudo_collate`` lists of them; :class:`ShapesPointNet` takes either. The arguments
    and their checks are :class:`SyntheticShapesDataset`'s.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.shapes = SyntheticShapesDataset(**kwargs)

    @property
    def metainfo(self) -> dict[str, Any]:
        """``dict(classes=...)``: the runner hands it to the metric as ``dataset_meta``."""
        return {"classes": self.shapes.CLASSES}

    @property
    def labels(self) -> Tensor:
        """``[num_samples]`` class indices, in dataset order."""
        return torch.as_tensor(self.shapes.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.shapes[i]
        return {"points": item["points"], "labels": item["label"]}


def _as_points(points: Tensor | Sequence[Tensor]) -> Tensor:
    """``[B, N, 3]`` from a ``default_collate`` tensor or a ``pseudo_collate`` list."""
    return points if isinstance(points, Tensor) else torch.stack(list(points))


def _as_labels(labels: Tensor | Sequence[int], device: torch.device) -> Tensor:
    """``[B]`` long class indices from a collated tensor or a list of ints."""
    return torch.as_tensor(labels, dtype=torch.long, device=device)


@MODELS.register_module()
class ShapesPointNet(BaseModel):
    """:class:`PointNetClassifier` behind mmengine's ``forward(..., mode)`` contract.

    ``train_step`` runs the data preprocessor, then ``forward(**batch, mode='loss')`` and
    ``parse_losses``; ``val_step`` / ``test_step`` call ``mode='predict'``. Nothing guards
    the loss: a diverging run reports a non-finite ``loss`` as it is.

    Args:
        num_classes, channels, head_channels, dropout: those of :class:`PointNetClassifier`.
        data_preprocessor: mmengine's; the default moves the batch to the model's device.
        init_cfg: mmengine's weight-init config; ``None`` keeps torch's defaults.
    """

    def __init__(self, data_preprocessor: dict[str, Any] | None = None,
                 init_cfg: dict[str, Any] | None = None, **net: Any) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = PointNetClassifier(**net)

    def forward(
        self,
        points: Tensor | Sequence[Tensor],
        labels: Tensor | Sequence[int] | None = None,
        mode: str = "tensor",
    ) -> Tensor | dict[str, Tensor] | list[dict[str, Any]]:
        """Logits, losses or per-sample predictions of a batch.

        Args:
            points: ``[B, N, 3]``, or ``B`` tensors of ``[N, 3]``.
            labels: ``B`` class indices; needed for ``mode='loss'``.
            mode: ``'tensor'``: ``[B, num_classes]`` logits. ``'loss'``: ``dict(loss=
                cross-entropy, acc=batch accuracy)``; ``parse_losses`` sums only keys
                holding ``'loss'``, so ``acc`` is logged, not optimised. ``'predict'``: one
                ``dict(pred_label=int, pred_score=Tensor [num_classes], gt_label=int)``
                per sample, ``gt_label`` only when labels are given.

        Raises:
            ValueError: ``mode='loss'`` without labels, or an unknown mode.
        """
        logits = self.net.logits(_as_points(points))
        if mode == "tensor":
            return logits
        if mode == "loss":
            if labels is None:
                raise ValueError("ShapesPointNet needs labels for mode='loss'")
            target = _as_labels(labels, logits.device)
            acc = (logits.detach().argmax(1) == target).float().mean()
            return {"loss": F.cross_entropy(logits, target), "acc": acc}
        if mode == "predict":
            scores = torch.softmax(logits.detach().float(), dim=1).cpu()
            preds: list[dict[str, Any]] = [
                {"pred_label": int(s.argmax()), "pred_score": s} for s in scores
            ]
            if labels is not None:
                for pred, gt in zip(preds, _as_labels(labels, torch.device("cpu")).tolist()):
                    pred["gt_label"] = gt
            return preds
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', not {mode!r}")


@METRICS.register_module()
class ShapesAccuracy(BaseMetric):
    """``{'accuracy': fraction of samples whose predicted label is right}``.

    The definition of :meth:`SyntheticShapesDataset.evaluate`. The ground truth is the
    prediction's ``gt_label``, else the batch's ``labels``.

    Args:
        collect_device, prefix: those of :class:`mmengine.evaluator.BaseMetric`; without a
            prefix the key is plain ``accuracy``, the name the mmcv-style task logs.
    """

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        """Append one ``1.0`` (right) or ``0.0`` (wrong) per sample to ``self.results``."""
        batch_labels = None
        if isinstance(data_batch, dict) and data_batch.get("labels") is not None:
            batch_labels = _as_labels(data_batch["labels"], torch.device("cpu")).tolist()
        for i, sample in enumerate(data_samples):
            gt = sample.get("gt_label")
            if gt is None:
                if batch_labels is None:
                    raise ValueError(
                        "ShapesAccuracy needs gt_label in the predictions or labels in the batch"
                    )
                gt = batch_labels[i]
            self.results.append(float(int(sample["pred_label"]) == int(gt)))

    def compute_metrics(self, results: list[float]) -> dict[str, float]:
        """``{'accuracy': mean of the per-sample results}``.

        Raises:
            ValueError: no sample was processed (an empty accuracy would be NaN).
        """
        if not results:
            raise ValueError("ShapesAccuracy processed no samples")
        return {"accuracy": sum(results) / len(results)}
