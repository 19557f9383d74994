"""The places the package reaches into torch's internals, each with its public fallback.

* :func:`norm_classes` gives the normalization base classes ``_BatchNorm`` and
  ``_InstanceNorm`` (``torch.nn.modules.batchnorm``/``instancenorm``, private) on the
  torch releases in ``CHECKED_TORCH``, so that any subclass of them counts (a library's
  own BatchNorm that derives from ``_BatchNorm``); elsewhere the public classes
  (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``, the lazy ones, ``InstanceNorm1d/2d/3d``),
  which miss only a class that derives from the private base directly.
* :func:`own_iterator_copy` gives a DataLoader copy that iterates on its own: the
  checked releases copy the loader and clear its cached persistent-worker iterator
  (``DataLoader._iterator``, private); elsewhere it is a new DataLoader over the same
  dataset, batch sampler and collate function, without persistent workers (its data
  workers start at each pass: slower, the same batches).

A release is added to ``CHECKED_TORCH`` after tests/test_compat.py passes on it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rt3d_tune._compat import checked_release

__all__ = ["CHECKED_TORCH", "norm_classes", "own_iterator_copy"]

# torch releases whose private classes and DataLoader attribute this module was checked
# against (tests/test_compat.py).
CHECKED_TORCH = {(2, 13)}


def _checked() -> bool:
    return checked_release(torch.__version__, CHECKED_TORCH)


def norm_classes(kind: str) -> tuple[type[nn.Module], ...]:
    """The classes whose instances are ``kind`` normalization layers, for ``isinstance``.

    Args:
        kind: ``"batch"`` or ``"instance"``.

    Raises:
        ValueError: another ``kind``.
    """
    if kind not in ("batch", "instance"):
        raise ValueError(f"kind must be 'batch' or 'instance' but got {kind!r}.")
    if _checked():
        from torch.nn.modules.batchnorm import _BatchNorm
        from torch.nn.modules.instancenorm import _InstanceNorm

        return (_BatchNorm,) if kind == "batch" else (_InstanceNorm,)
    if kind == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)
    return (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LazyInstanceNorm1d,
            nn.LazyInstanceNorm2d, nn.LazyInstanceNorm3d)


def own_iterator_copy(loader: Any) -> Any:
    """A loader giving ``loader``'s batches (same dataset, sampler, collate function)
    through an iterator of its own: iterating it never touches ``loader``'s persistent
    data workers. A loader that is not a torch DataLoader is copied as it is."""
    if not isinstance(loader, torch.utils.data.DataLoader):
        return copy.copy(loader)
    if _checked():
        twin = copy.copy(loader)
        twin._iterator = None  # the cached persistent-worker iterator, shared by the copy
        return twin
    workers = loader.num_workers
    return torch.utils.data.DataLoader(
        loader.dataset, batch_sampler=loader.batch_sampler, num_workers=workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers else None,
        generator=loader.generator, prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=False, pin_memory_device=loader.pin_memory_device)
