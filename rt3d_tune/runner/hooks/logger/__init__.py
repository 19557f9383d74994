"""Logger hooks; importing this package registers them in HOOKS.

TextLoggerHook and TensorboardLoggerHook need nothing beyond the base install (and
tensorboardX); MlflowLoggerHook and WandbLoggerHook import their library only when a
run starts, so it is needed only by configs that use them.
"""

from rt3d_tune.runner.hooks.logger.base import LoggerHook
from rt3d_tune.runner.hooks.logger.mlflow import MlflowLoggerHook
from rt3d_tune.runner.hooks.logger.tensorboard import TensorboardLoggerHook
from rt3d_tune.runner.hooks.logger.text import TextLoggerHook
from rt3d_tune.runner.hooks.logger.wandb import WandbLoggerHook

__all__ = [
    "LoggerHook",
    "MlflowLoggerHook",
    "TensorboardLoggerHook",
    "TextLoggerHook",
    "WandbLoggerHook",
]
