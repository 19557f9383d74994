"""mmengine configs: which dialect a config speaks, and loading one as mmengine does.

mmcv 1.x configs (what the tutorial and rt3d-tune's runner speak) name ``optimizer``,
``lr_config``, ``runner``; OpenMMLab 2.x configs (mmdet3d >= 1.1, mmdet 3.x, mmseg 1.x,
mmpretrain) name ``optim_wrapper``, ``param_scheduler``, ``train_cfg``. A base config
with any of those is an mmengine config (or the space says ``backend: mmengine``): it
is read by mmengine's own ``Config`` so that ``_base_``, ``custom_imports``,
``default_scope`` and lazy imports behave as mmengine's users know, and the search
works on its plain-dict view.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = [
    "BACKENDS",
    "INSTALL_LINE",
    "MMENGINE_KEYS",
    "RUNTIME_KEYS",
    "default_scope",
    "is_mmengine_config",
    "load_mmengine_config",
    "mmengine_only_syntax",
    "require_mmengine",
    "run_length",
    "seed_key",
    "train_loop",
    "type_name",
    "val_interval",
]

BACKENDS = ("mmcv", "mmengine")
MMENGINE_KEYS = ("optim_wrapper", "param_scheduler", "train_cfg")
# Top-level keys a space may create in an mmengine config that lacks them.
RUNTIME_KEYS = ("optim_wrapper", "param_scheduler", "train_cfg", "val_cfg", "default_hooks",
                "custom_hooks", "auto_scale_lr", "randomness", "env_cfg", "log_processor")
INSTALL_LINE = "pip install 'rt3d-tune[mmengine]'"


def is_mmengine_config(cfg: Mapping[str, Any]) -> bool:
    """Whether ``cfg`` speaks mmengine (``optim_wrapper``/``param_scheduler``/``train_cfg``)."""
    return any(key in cfg for key in MMENGINE_KEYS)


def require_mmengine(key_path: str = "base") -> Any:
    """The ``mmengine`` module.

    Raises:
        ConfigError: mmengine is not installed (with the install line).
    """
    try:
        return importlib.import_module("mmengine")
    except ImportError as err:
        raise ConfigError(
            f"this is an mmengine (OpenMMLab 2.x) config, and mmengine is not installed ({err})",
            key_path=key_path,
            hint=INSTALL_LINE,
        ) from None


def load_mmengine_config(path: str | Path, options: Mapping[str, Any] | None = None,
                         key_path: str = "base") -> Any:
    """Load ``path`` with mmengine's ``Config.fromfile`` (its ``_base_``, ``{{_base_.x}}``,
    ``custom_imports``, ``pkg::`` bases), dotted ``options`` merged; rt3d-tune's ``Config``
    of its plain-dict view (what the space, the overrides and the export work on).

    Raises:
        ConfigError: mmengine is missing, or cannot load the file (at ``key_path``).
    """
    require_mmengine(key_path)
    from mmengine.config import Config as MMConfig

    from rt3d_tune.config import Config
    from rt3d_tune.config.keypaths import plain_dict

    try:
        loaded = MMConfig.fromfile(str(path))
        if options:
            loaded.merge_from_dict(dict(options))
    except Exception as err:  # mmengine raises anything from a user's file
        raise ConfigError(f"mmengine could not load the config: {type(err).__name__}: {err}",
                          file=str(path), key_path=key_path) from None
    return Config(plain_dict(loaded.to_dict()), filename=str(path))


def mmengine_only_syntax(path: str | Path) -> bool:
    """Whether a config rt3d-tune's loader refused may be one only mmengine reads: a
    ``.py`` file with ``read_base()`` lazy imports or ``pkg::`` bases. Never a YAML or
    JSON file: what our loader refuses there (alias bombs, cycles, duplicate keys) stays
    refused rather than handed to a loader without those limits."""
    file = Path(path)
    if file.suffix != ".py":
        return False
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "read_base(" in text or re.search(r"""['"][\w.-]+::""", text) is not None


@contextlib.contextmanager
def default_scope(cfg: Mapping[str, Any]) -> Iterator[None]:
    """mmengine's registries resolved in the config's ``default_scope``, as the Runner
    resolves them (``'mmengine'`` when unset)."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope(cfg.get("default_scope") or "mmengine"):
        yield


def type_name(value: Any) -> str | None:
    """``'LinearLR'`` for ``'LinearLR'``, ``'mmengine.LinearLR'`` or mmengine's class."""
    if isinstance(value, str):
        return value.rsplit(".", 1)[-1]
    if isinstance(value, type) and value.__module__.split(".")[0] == "mmengine":
        return value.__name__
    return None


def seed_key(backend: str) -> str:
    """Where a config keeps its training seed."""
    return "randomness.seed" if backend == "mmengine" else "seed"


def train_loop(cfg: Mapping[str, Any]) -> tuple[bool, int]:
    """``(iter_based, max_iters or max_epochs)`` of ``train_cfg``, read as mmengine's
    ``Runner.build_train_loop`` reads it.

    Raises:
        ConfigError: no ``train_cfg``; neither ``type`` nor ``by_epoch``; a missing or
            non-positive length.
    """
    train_cfg = cfg.get("train_cfg")
    if not isinstance(train_cfg, Mapping):
        raise ConfigError("an mmengine config trains through train_cfg", key_path="train_cfg",
                          expected="dict(by_epoch=True, max_epochs=N) or "
                          "dict(type='IterBasedTrainLoop', max_iters=N)", given=train_cfg)
    if train_cfg.get("type") is not None:
        name = type_name(train_cfg["type"]) or getattr(train_cfg["type"], "__name__", "")
        if name == "IterBasedTrainLoop":
            iter_based = True
        elif name == "EpochBasedTrainLoop":
            iter_based = False
        else:  # a custom loop: its length key says which
            iter_based = "max_iters" in train_cfg and "max_epochs" not in train_cfg
    elif "by_epoch" in train_cfg:
        iter_based = not train_cfg["by_epoch"]
    else:
        raise ConfigError("train_cfg names no loop", key_path="train_cfg",
                          expected="type='EpochBasedTrainLoop'/'IterBasedTrainLoop' or by_epoch",
                          given=dict(train_cfg))
    key = "max_iters" if iter_based else "max_epochs"
    length = train_cfg.get(key)
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ConfigError("a training length must be a positive integer",
                          key_path=f"train_cfg.{key}", expected="an int >= 1", given=length)
    return iter_based, length


def run_length(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``{'max_epochs': n}`` or ``{'max_iters': n}``: how long ``cfg`` trains, either dialect."""
    if is_mmengine_config(cfg):
        iter_based, length = train_loop(cfg)
        return {"max_iters" if iter_based else "max_epochs": length}
    runner = cfg.get("runner") or {}
    key = "max_iters" if "max_iters" in runner else "max_epochs"
    return {key: runner.get(key, cfg.get("total_epochs"))}


def val_interval(cfg: Mapping[str, Any]) -> int:
    """Epochs (iterations, iteration loops) between two validations of an mmengine config."""
    value = (cfg.get("train_cfg") or {}).get("val_interval", 1)
    return int(value) if isinstance(value, int) and value > 0 else 1
