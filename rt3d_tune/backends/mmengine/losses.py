"""Non-finite training losses of an mmengine ``train_step``, seen by every rank at once.

Shared by the divergence stop (:mod:`.hooks`) and the cool-down probe (:mod:`.probe`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rt3d_tune.runner.dist import all_reduce_mean, is_distributed

__all__ = ["nonfinite_losses"]


def nonfinite_losses(outputs: Mapping[str, Any] | None) -> dict[str, float]:
    """The logged values of a ``train_step`` that are not finite. mmengine does not
    average the losses over the ranks: in a data-parallel run every rank learns whether
    any rank's were (a collective), so that all stop together, or the others would wait
    on a collective the stopped one never joins."""
    values = {name: float(value.detach() if hasattr(value, "detach") else value)
              for name, value in (outputs or {}).items() if _is_number(value)}
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    if is_distributed() and all_reduce_mean({"diverged": float(bool(bad))})["diverged"]:
        bad = bad or {"loss on another rank": math.nan}
    return bad


def _is_number(value: Any) -> bool:
    if hasattr(value, "numel"):
        return value.numel() == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)
