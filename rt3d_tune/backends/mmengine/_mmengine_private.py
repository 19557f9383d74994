"""The places the mmengine backend reaches into mmengine's internals, each with its public
fallback.

* :func:`val_outputs` takes the loss entry off a ``val_step``'s outputs as the ValLoop
  does: with ``mmengine.runner.loops._update_losses`` (private) on the mmengine releases
  in ``CHECKED_MMENGINE``; elsewhere by the same rule through public classes (a last
  ``BaseDataElement`` holding only ``loss`` is the losses, not a prediction).
* :func:`count_updates` makes an optim wrapper count a run of ``iters`` updates from 0, so
  that with gradient accumulation its last stretch ends with a step: the checked releases
  set the counters ``initialize_count_status`` sets (``_inner_count``, ``_max_counts``,
  ``_remainder_counts``, reading ``_accumulative_counts``; all private) without its
  warnings; elsewhere the public ``initialize_count_status``, which may log mmengine's
  BatchNorm-with-accumulation warning once more per probe.

A release is added to ``CHECKED_MMENGINE`` after tests/test_compat.py passes on it.
"""

from __future__ import annotations

from typing import Any

import mmengine

from rt3d_tune._compat import checked_release

__all__ = ["CHECKED_MMENGINE", "count_updates", "val_outputs"]

# mmengine releases whose ValLoop helper and OptimWrapper counters this module was
# checked against (tests/test_compat.py, tests/search/test_mmengine_probe.py).
CHECKED_MMENGINE = {(0, 10)}


def _checked() -> bool:
    return checked_release(mmengine.__version__, CHECKED_MMENGINE)


def val_outputs(outputs: list[Any]) -> list[Any]:
    """A ``val_step``'s outputs for the evaluator: the predictions, without the loss
    entry mmengine appends when the model returns its validation losses."""
    if _checked():
        from mmengine.runner.loops import _update_losses

        return _update_losses(outputs, {})[0]
    from mmengine.structures import BaseDataElement

    if outputs and isinstance(outputs[-1], BaseDataElement) \
            and list(outputs[-1].keys()) == ["loss"]:
        return outputs[:-1]
    return outputs


def count_updates(wrapper: Any, model: Any, iters: int) -> None:
    """Make ``wrapper`` count a run of ``iters`` updates from its first.

    Args:
        wrapper: an mmengine ``OptimWrapper``.
        model: the model it trains (the public path checks it for BatchNorm layers).
        iters: the run's updates (>= 1).
    """
    if _checked():
        wrapper._inner_count = 0
        wrapper._max_counts = iters
        wrapper._remainder_counts = iters % int(wrapper._accumulative_counts)
        return
    wrapper.initialize_count_status(model, 0, iters)
