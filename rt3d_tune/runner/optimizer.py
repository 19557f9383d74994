"""Optimizers from config: ``build_optimizer`` and the DefaultOptimizerConstructor.

``optimizer = dict(type=<any OPTIMIZERS name>, lr=..., constructor=..., paramwise_cfg=...)``;
or one optimizer per sub-module: ``optimizer = dict(backbone=dict(type=...), head=dict(...))``.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import OPTIMIZER_BUILDERS, OPTIMIZERS
from rt3d_tune.runner._torch_private import norm_classes

__all__ = ["DefaultOptimizerConstructor", "build_optimizer", "check_optimizer_args"]

_PARAMWISE_KEYS = (
    "custom_keys",
    "bias_lr_mult",
    "bias_decay_mult",
    "norm_decay_mult",
    "dwconv_decay_mult",
    "bypass_duplicate",
)
_NORMS = (*norm_classes("batch"), *norm_classes("instance"), nn.GroupNorm, nn.LayerNorm)


def check_optimizer_args(cfg: Mapping[str, Any], key_path: str = "optimizer") -> type:
    """Resolve ``cfg['type']`` in OPTIMIZERS and check every other key against its signature.

    Returns:
        The optimizer class.

    Raises:
        ConfigError: an unknown optimizer, or an argument it does not accept (naming
            the accepted ones).
    """
    if "type" not in cfg:
        raise ConfigError(
            "the optimizer needs a 'type'",
            key_path=key_path,
            expected="dict(type='SGD', lr=...)",
            given=dict(cfg),
        )
    opt_type = cfg["type"]
    cls = (
        OPTIMIZERS.lookup(opt_type, key_path=f"{key_path}.type")
        if isinstance(opt_type, str)
        else opt_type
    )
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cls
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls
    accepted = [name for name in params if name not in ("self", "params")]
    for key in cfg:
        if key != "type" and key not in accepted:
            raise ConfigError(
                f"{getattr(cls, '__name__', cls)} has no argument {key!r}",
                key_path=f"{key_path}.{key}",
                expected=f"one of {', '.join(accepted)}",
                given=key,
            )
        if key != "type":
            _check_numeric_arg(cls, key, cfg[key], params[key].default, key_path)
    return cls


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, torch.Tensor)) and not isinstance(value, bool)


def _check_numeric_arg(cls: type, key: str, value: Any, default: Any, key_path: str) -> None:
    """An argument whose default is a number (or a tuple of numbers) must be one too.

    Raises:
        ConfigError: e.g. ``lr='0.01'``, which torch would reject with a bare TypeError.
    """
    if _is_number(default):
        ok, expected = _is_number(value), "a number"
    elif isinstance(default, tuple) and default and all(_is_number(d) for d in default):
        ok = (isinstance(value, (list, tuple)) and len(value) == len(default)
              and all(_is_number(v) for v in value))
        expected = f"{len(default)} numbers, like the default {list(default)}"
    else:
        return
    if not ok:
        raise ConfigError(
            f"{getattr(cls, '__name__', cls)} argument {key!r} must be {expected.split(',')[0]}",
            key_path=f"{key_path}.{key}",
            expected=expected,
            given=value,
            hint="write numbers without quotes" if isinstance(value, str) else None,
        )


class DefaultOptimizerConstructor:
    """Builds an optimizer with per-parameter settings (mmcv 1.7 semantics).

    paramwise_cfg keys: ``custom_keys`` ({substring: dict(lr_mult, decay_mult)}; the
    longest matching key wins, ties alphabetical; overrides all other keys),
    ``bias_lr_mult``, ``bias_decay_mult``, ``norm_decay_mult`` (BatchNorm, InstanceNorm,
    GroupNorm, LayerNorm), ``dwconv_decay_mult`` (Conv2d with groups == in_channels),
    ``bypass_duplicate`` (skip a parameter already in a group).
    Precedence: norm > dwconv > bias. Parameters without ``requires_grad`` get their
    own group with the optimizer's defaults. A key name is matched against
    ``'<module path>.<param name>'``.

    Args:
        optimizer_cfg: the optimizer config (``type`` and its arguments).
        paramwise_cfg: the per-parameter rules, or None.

    Raises:
        ConfigError: an unknown paramwise key, a bad custom_keys entry, or a
            ``*decay_mult`` without ``weight_decay`` in the optimizer.
    """

    def __init__(
        self, optimizer_cfg: Mapping[str, Any], paramwise_cfg: Mapping[str, Any] | None = None
    ) -> None:
        self.optimizer_cfg = dict(optimizer_cfg)
        self.paramwise_cfg = dict(paramwise_cfg or {})
        self.base_lr = self.optimizer_cfg.get("lr")
        self.base_wd = self.optimizer_cfg.get("weight_decay")
        self._validate()

    def _validate(self) -> None:
        path = "optimizer.paramwise_cfg"
        for key in self.paramwise_cfg:
            if key not in _PARAMWISE_KEYS:
                raise ConfigError(
                    "unknown paramwise_cfg key",
                    key_path=f"{path}.{key}",
                    expected=f"one of {', '.join(_PARAMWISE_KEYS)}",
                    given=key,
                )
        custom = self.paramwise_cfg.get("custom_keys", {})
        if not isinstance(custom, Mapping):
            raise ConfigError(
                "custom_keys must be a dict",
                key_path=f"{path}.custom_keys",
                expected="{'name substring': dict(lr_mult=..., decay_mult=...)}",
                given=custom,
            )
        decay_keys = [
            f"{path}.{k}"
            for k in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult")
            if k in self.paramwise_cfg
        ]
        for name, rule in custom.items():
            if not isinstance(rule, Mapping) or set(rule) - {"lr_mult", "decay_mult"}:
                raise ConfigError(
                    "a custom_keys entry takes lr_mult and decay_mult",
                    key_path=f"{path}.custom_keys.{name}",
                    expected="dict(lr_mult=, decay_mult=)",
                    given=rule,
                )
            if "decay_mult" in rule:
                decay_keys.append(f"{path}.custom_keys.{name}.decay_mult")
        if decay_keys and self.base_wd is None:
            raise ConfigError(
                "a decay multiplier needs weight_decay in the optimizer",
                key_path=decay_keys[0],
                hint="add weight_decay=... to the optimizer config, or drop the *decay_mult keys",
            )
        if custom and self.base_lr is None:
            raise ConfigError("custom_keys need lr in the optimizer", key_path="optimizer.lr")

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "") -> None:
        """Append one param group per parameter of ``module`` and its children to ``params``."""
        cfg = self.paramwise_cfg
        custom = cfg.get("custom_keys", {})
        sorted_keys = sorted(sorted(custom), key=len, reverse=True)
        bias_lr_mult = cfg.get("bias_lr_mult", 1.0)
        bias_decay_mult = cfg.get("bias_decay_mult", 1.0)
        norm_decay_mult = cfg.get("norm_decay_mult", 1.0)
        dwconv_decay_mult = cfg.get("dwconv_decay_mult", 1.0)
        bypass_duplicate = cfg.get("bypass_duplicate", False)
        is_norm = isinstance(module, _NORMS)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        seen = {id(p) for group in params for p in group["params"]} if bypass_duplicate else set()
        for name, param in module.named_parameters(recurse=False):
            group: dict[str, Any] = {"params": [param]}
            if not param.requires_grad:
                params.append(group)
                continue
            if bypass_duplicate and id(param) in seen:
                warnings.warn(
                    f"{prefix}.{name} is a duplicate; skipped since bypass_duplicate=True",
                    stacklevel=2,
                )
                continue
            full_name = f"{prefix}.{name}"
            key = next((k for k in sorted_keys if k in full_name), None)
            if key is not None:
                group["lr"] = self.base_lr * custom[key].get("lr_mult", 1.0)
                if self.base_wd is not None:
                    group["weight_decay"] = self.base_wd * custom[key].get("decay_mult", 1.0)
            else:
                if (
                    name == "bias"
                    and not is_norm
                    and self.base_lr is not None
                    and "bias_lr_mult" in cfg
                ):
                    group["lr"] = self.base_lr * bias_lr_mult
                if self.base_wd is not None:
                    if is_norm:
                        group["weight_decay"] = self.base_wd * norm_decay_mult
                    elif is_dwconv:
                        group["weight_decay"] = self.base_wd * dwconv_decay_mult
                    elif name == "bias":
                        group["weight_decay"] = self.base_wd * bias_decay_mult
            params.append(group)
        for child_name, child in module.named_children():
            self.add_params(params, child, f"{prefix}.{child_name}" if prefix else child_name)

    def __call__(self, model: nn.Module) -> torch.optim.Optimizer:
        """Build the optimizer over ``model``'s parameters.

        Raises:
            ConfigError: an unknown optimizer or argument, or a value torch refuses.
        """
        model = getattr(model, "module", model)
        cfg = dict(self.optimizer_cfg)
        cls = check_optimizer_args(cfg)
        cfg.pop("type")
        if self.paramwise_cfg:
            params: Any = []
            self.add_params(params, model)
        else:
            params = model.parameters()
        try:
            return cls(params, **cfg)
        except ValueError as err:  # torch's "Invalid learning rate: -0.01"
            raise ConfigError(f"{cls.__name__} refused a value: {err}",
                              key_path="optimizer") from err


OPTIMIZER_BUILDERS.register_module(module=DefaultOptimizerConstructor)


def _is_per_module(cfg: Mapping[str, Any]) -> bool:
    return (
        "type" not in cfg
        and bool(cfg)
        and all(isinstance(v, Mapping) and "type" in v for v in cfg.values())
    )


def build_optimizer(
    model: nn.Module, cfg: Mapping[str, Any], key_path: str = "optimizer"
) -> torch.optim.Optimizer | dict[str, torch.optim.Optimizer]:
    """Build the optimizer(s) of ``model`` from an optimizer config.

    A config whose values are all optimizer configs (no ``type`` of its own) builds one
    optimizer per named sub-module: ``dict(backbone=dict(type='SGD', ...), head=...)``.

    Raises:
        ConfigError: with the key path, for any problem in the config.
    """
    cfg = copy.deepcopy(dict(cfg))
    if _is_per_module(cfg):
        out = {}
        for name, sub_cfg in cfg.items():
            sub = getattr(model, name, None)
            if not isinstance(sub, nn.Module):
                raise ConfigError(
                    "no sub-module of that name for a per-module optimizer",
                    key_path=f"{key_path}.{name}",
                    expected=f"one of {', '.join(n for n, _ in model.named_children())}",
                    given=name,
                )
            out[name] = build_optimizer(sub, sub_cfg, key_path=f"{key_path}.{name}")
        return out
    constructor = cfg.pop("constructor", "DefaultOptimizerConstructor")
    paramwise_cfg = cfg.pop("paramwise_cfg", None)
    try:
        builder = OPTIMIZER_BUILDERS.build(
            dict(type=constructor, optimizer_cfg=cfg, paramwise_cfg=paramwise_cfg),
            key_path=f"{key_path}.constructor",
        )
        return builder(model)
    except ConfigError as err:
        rebased = _rebase(err, key_path)
        if rebased is err:
            raise
        raise rebased from err


def _rebase(err: ConfigError, key_path: str) -> ConfigError:
    """Re-anchor an error raised with an 'optimizer...' key path at ``key_path``."""
    path = err.key_path or ""
    if path == key_path or path.startswith(key_path + "."):
        return err
    if path == "optimizer" or path.startswith("optimizer."):
        path = key_path + path[len("optimizer") :]
    else:
        path = f"{key_path}.{path}" if path else key_path
    return ConfigError(
        err.message,
        key_path=path,
        file=err.file,
        expected=err.expected,
        given=err.given if err.has_given else ConfigError._MISSING,
        hint=err.hint,
    )
