"""The training runner of the ``mmcv`` backend: registry-driven runners, hooks,
optimizers and checkpoints, the way mmcv 1.x trains.

``build_runner(cfg)`` (``builder``) is the entry point; importing this package registers
EpochBasedRunner and IterBasedRunner in RUNNERS. ``hooks/`` holds one module per hook
family (LR and momentum updaters, optimizer, evaluation, checkpoint, EMA, loggers);
``optimizer`` the optimizer builder and constructors; ``checkpoint_io``, ``data``,
``dist``, ``log_buffer``, ``priority``, ``progress``, ``train`` (``rt3d-tune train``).
The adapter that makes it a backend is :mod:`rt3d_tune.backends.mmcv`.
"""

from rt3d_tune.runner.base import BaseRunner
from rt3d_tune.runner.epoch_based import EpochBasedRunner
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.iter_based import IterBasedRunner, IterLoader
from rt3d_tune.runner.log_buffer import LogBuffer
from rt3d_tune.runner.priority import Priority, get_priority

__all__ = [
    "BaseRunner",
    "EpochBasedRunner",
    "Hook",
    "IterBasedRunner",
    "IterLoader",
    "LogBuffer",
    "Priority",
    "build_runner",
    "get_priority",
]


def __getattr__(name: str):
    # build_runner imports the hook modules, which import this package: load it on use.
    if name == "build_runner":
        from rt3d_tune.runner.builder import build_runner

        return build_runner
    raise AttributeError(f"module 'rt3d_tune.runner' has no attribute {name!r}")
