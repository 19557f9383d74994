"""Built-in hooks; importing this package registers them in HOOKS."""

from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks import (  # noqa: F401  (imported for registration)
    checkpoint,
    ema,
    evaluation,
    logger,
    lr_updater,
    misc,
    momentum_updater,
    optimizer,
    timer,
)
from rt3d_tune.runner.priority import Priority, get_priority

__all__ = ["Hook", "Priority", "get_priority"]
