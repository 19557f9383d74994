"""The training runner: registry-driven runners, hooks, optimizers and checkpoints.

``build_runner(cfg)`` is the entry point; importing this package registers
EpochBasedRunner and IterBasedRunner in RUNNERS.
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
