"""BaseRunner: hooks in priority order, one training step, checkpoints and resume.

The two concrete runners (epoch- and iteration-based) only differ in how they walk
the workflow; everything a hook relies on lives here with the mmcv names (see
``rt3d_tune.runner.hook`` for the list of attributes).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rt3d_tune.errors import ConfigError, DivergenceError
from rt3d_tune.runner.checkpoint_io import (
    atomic_save,
    load_checkpoint_file,
    update_latest,
    wait_for_saves,
)
from rt3d_tune.runner.dist import all_reduce_mean, get_dist_info, unwrap_model
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.log_buffer import LogBuffer
from rt3d_tune.runner.priority import Priority, get_priority

__all__ = ["BaseRunner", "check_workflow", "plain_meta", "to_device"]

Optimizers = torch.optim.Optimizer | dict[str, torch.optim.Optimizer]


def to_device(data: Any, device: torch.device | str) -> Any:
    """Move every tensor in a nested structure of dicts, lists and tuples to ``device``."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=True)
    if isinstance(data, Mapping):
        return {k: to_device(v, device) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(to_device(v, device) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(to_device(v, device) for v in data)
    return data


def plain_meta(value: Any) -> Any:
    """Make checkpoint meta loadable with ``weights_only=True``.

    Tensors, numbers, strings, None and containers of them stay; numpy values become
    Python numbers or tensors; paths and anything else become strings.
    """
    if isinstance(value, (torch.Tensor, bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, Mapping):
        return {
            str(k) if not isinstance(k, (int, str)) else k: plain_meta(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return (
            type(value)(plain_meta(v) for v in value)
            if not hasattr(value, "_fields")
            else tuple(plain_meta(v) for v in value)
        )
    return str(value)


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [
            name,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def check_workflow(workflow: Sequence[Any], n_loaders: int) -> list[tuple[str, int]]:
    """Validate ``workflow`` (a list of (phase, count)) against the loaders.

    Raises:
        ConfigError: an entry is not ('train'|'val', positive int), or the number of
            phases differs from the number of loaders.
    """
    flows: list[tuple[str, int]] = []
    for i, flow in enumerate(workflow):
        if (
            not isinstance(flow, (list, tuple))
            or len(flow) != 2
            or flow[0] not in ("train", "val")
            or not isinstance(flow[1], int)
            or isinstance(flow[1], bool)
            or flow[1] < 1
        ):
            raise ConfigError(
                "bad workflow entry",
                key_path=f"workflow.{i}",
                expected="('train', n) or ('val', n) with n >= 1",
                given=flow,
            )
        flows.append((flow[0], flow[1]))
    if len(flows) != n_loaders:
        raise ConfigError(
            "one data loader per workflow phase is needed",
            key_path="workflow",
            expected=f"{n_loaders} phases",
            given=list(workflow),
        )
    return flows


class BaseRunner:
    """What both runners share.

    Args:
        model: an ``nn.Module`` with ``train_step(data_batch, optimizer)`` and
            ``val_step(data_batch, optimizer)`` (see the model contract in the README).
        optimizer: an Optimizer, a dict name -> Optimizer, or None (no training).
        work_dir: folder for checkpoints and logs.
        logger: where the run logs.
        meta: saved in every checkpoint; ``meta['hook_msgs']`` holds hook state.
        max_epochs: training length in epochs (epoch runner).
        max_iters: training length in iterations (iteration runner).
        device: where the model and each batch go.
        seed: the seed of the run (recorded, not applied here).
        timestamp: names the log files of the run.

    Raises:
        ConfigError: the model misses ``train_step``/``val_step``.
    """

    default_ckpt_tmpl = "epoch_{}.pth"

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Optimizers | None = None,
        work_dir: str | Path = ".",
        logger: logging.Logger | None = None,
        meta: dict[str, Any] | None = None,
        max_epochs: int | None = None,
        max_iters: int | None = None,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        timestamp: str | None = None,
    ) -> None:
        for method in ("train_step", "val_step"):
            if not callable(getattr(model, method, None)):
                raise ConfigError(
                    f"the model {type(model).__name__} has no {method}()",
                    key_path="model.type",
                    expected="a model with train_step(data_batch, optimizer) and val_step(...)",
                    hint="see the model contract in the README",
                )
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.work_dir = str(work_dir)
        self.rank, self.world_size = get_dist_info()
        if self.rank == 0:  # rank 0 alone writes files
            Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        self.logger = logger or logging.getLogger("rt3d_tune.runner")
        self.meta: dict[str, Any] = dict(meta or {})
        self.meta.setdefault("hook_msgs", {})
        self.max_epochs = max_epochs
        self.max_iters = max_iters
        self.seed = seed
        self.timestamp = timestamp or ""
        self.epoch = 0
        self.iter = 0
        self.inner_iter = 0
        self.mode = "train"
        self.data_loader: Any = None
        self.data_batch: Any = None
        self.outputs: dict[str, Any] = {}
        self.log_buffer = LogBuffer()
        self.autocast: Callable[[], ContextManager[Any]] | None = None
        self.data_loaders: list[Any] = []
        self.workflow: list[tuple[str, int]] = [("train", 1)]
        self._hooks: list[Hook] = []

    # hooks ------------------------------------------------------------------------
    @property
    def hooks(self) -> list[Hook]:
        """The registered hooks, in the order they run."""
        return self._hooks

    def register_hook(self, hook: Hook, priority: int | str | Priority = "NORMAL") -> None:
        """Insert ``hook`` after every hook of lower or equal priority (ties: registration order).

        Raises:
            ConfigError: the priority is not a Priority name or an int 0..100.
        """
        value = get_priority(priority)
        hook.priority = value  # type: ignore[attr-defined]
        index = len(self._hooks)
        while index > 0 and self._hooks[index - 1].priority > value:  # type: ignore[attr-defined]
            index -= 1
        self._hooks.insert(index, hook)

    def call_hook(self, stage: str) -> None:
        """Run ``stage`` (e.g. 'after_train_iter') of every hook, in priority order
        (on ranks other than 0, the ``rank_zero_only`` hooks are skipped)."""
        for hook in self._hooks:
            if self.rank and hook.rank_zero_only:
                continue
            getattr(hook, stage)(self)

    def get_hook_info(self) -> str:
        """The hook order of every stage, as the runner logs it at start."""
        lines: list[str] = []
        for stage in Hook.stages:
            names = []
            for hook in self._hooks:
                if stage in hook.get_triggered_stages():
                    prio = hook.priority  # type: ignore[attr-defined]
                    label = (
                        Priority(prio).name if prio in Priority._value2member_map_ else str(prio)
                    )
                    names.append(f"({label:<12}) {type(hook).__name__:<35}")
            if names:
                lines.append(f"{stage}:\n" + "\n".join(names) + "\n -------------------- ")
        return "\n".join(lines)

    def _log_start(self, workflow: Sequence[tuple[str, int]], unit: str, total: int) -> None:
        self.logger.info(
            "Start running, host: %s, work_dir: %s", socket.gethostname(), self.work_dir
        )
        self.logger.info("Hooks will be executed in the following order:\n%s", self.get_hook_info())
        self.logger.info("workflow: %s, max: %d %s", list(workflow), total, unit)

    # the step ---------------------------------------------------------------------
    def autocast_context(self) -> ContextManager[Any]:
        """The mixed-precision context set by an fp16 optimizer hook, else a no-op."""
        return self.autocast() if self.autocast is not None else contextlib.nullcontext()

    def run_iter(self, data_batch: Any, train_mode: bool) -> None:
        """One train_step (or val_step) on ``data_batch``; feeds the log buffer.

        Raises:
            DivergenceError: the training loss is not finite.
        """
        batch = to_device(data_batch, self.device)
        self.data_batch = batch
        with self.autocast_context():
            step = self.model.train_step if train_mode else self.model.val_step
            outputs = step(batch, self.optimizer)
        if not isinstance(outputs, (dict, Mapping)):  # dict first: no ABC check
            raise TypeError(
                f"{type(self.model).__name__}.{step.__name__} must return "
                f"dict(loss=..., log_vars=..., num_samples=...), got {type(outputs).__name__}"
            )
        log_vars = outputs.get("log_vars")
        if log_vars is not None:
            # float() on a tensor is a device sync; logging needs these values anyway.
            # Averaged over the ranks: every rank logs, and stops on divergence, alike.
            log_vars = all_reduce_mean({k: float(v) for k, v in log_vars.items()})
            self.log_buffer.update(log_vars, outputs.get("num_samples", 1))
        if train_mode:
            self._check_finite(outputs, log_vars or {})
        self.outputs = dict(outputs)

    def _check_finite(self, outputs: Mapping[str, Any], log_vars: Mapping[str, float]) -> None:
        loss = log_vars.get("loss")
        if loss is None and isinstance(outputs.get("loss"), torch.Tensor):
            loss = float(outputs["loss"].detach())
        if loss is not None and not math.isfinite(loss):
            bad = {k: v for k, v in log_vars.items() if not math.isfinite(v)}
            bad.setdefault("loss", loss)
            raise DivergenceError(self.iter, self.epoch, bad)

    # lr and momentum --------------------------------------------------------------
    def _per_optimizer(self, fn: Callable[[torch.optim.Optimizer], list[float]]) -> Any:
        if isinstance(self.optimizer, torch.optim.Optimizer):
            return fn(self.optimizer)
        if isinstance(self.optimizer, dict):
            return {name: fn(opt) for name, opt in self.optimizer.items()}
        raise RuntimeError("lr is not applicable because the runner has no optimizer")

    def current_lr(self) -> list[float] | dict[str, list[float]]:
        """The lr of every param group (a dict name -> list for dict optimizers)."""
        return self._per_optimizer(lambda opt: [group["lr"] for group in opt.param_groups])

    def current_momentum(self) -> list[float] | dict[str, list[float]]:
        """The momentum (or ``betas[0]``, else 0) of every param group."""

        def momentum(opt: torch.optim.Optimizer) -> list[float]:
            out = []
            for group in opt.param_groups:
                if "momentum" in group:
                    out.append(group["momentum"])
                elif "betas" in group:
                    out.append(group["betas"][0])
                else:
                    out.append(0)
            return out

        return self._per_optimizer(momentum)

    # checkpoints ------------------------------------------------------------------
    def _checkpoint_progress(self) -> tuple[int, dict[str, int]]:
        """(number in the file name, epoch/iter recorded in meta); the epoch runner's."""
        return self.epoch + 1, {"epoch": self.epoch + 1, "iter": self.iter}

    def save_checkpoint(
        self,
        out_dir: str | Path,
        filename_tmpl: str | None = None,
        save_optimizer: bool = True,
        meta: dict[str, Any] | None = None,
        create_symlink: bool = True,
        background: bool = False,
    ) -> Path:
        """Write ``out_dir/<filename_tmpl.format(n)>`` atomically and point latest.pth at it.

        ``n`` is the number of finished epochs (iterations for the iteration runner).
        ``background``: return once serialized; the file gets its name (and latest.pth
        its target) in a background thread, before any later save or load and before
        ``run`` returns (``checkpoint_io.wait_for_saves``). Returns the path written
        (by rank 0 only: the other ranks of a data-parallel run return it unwritten).
        """
        number, progress = self._checkpoint_progress()
        path = Path(out_dir) / (filename_tmpl or self.default_ckpt_tmpl).format(number)
        if self.rank != 0:
            return path
        full_meta = dict(meta or {})
        full_meta.update(self.meta)
        full_meta.update(progress)
        full_meta["rng_state"] = _rng_state()
        ckpt: dict[str, Any] = {
            "meta": plain_meta(full_meta),
            "state_dict": {
                k: v.detach().cpu() for k, v in unwrap_model(self.model).state_dict().items()
            },
        }
        if save_optimizer and self.optimizer is not None:
            if isinstance(self.optimizer, dict):
                ckpt["optimizer"] = {name: opt.state_dict() for name, opt in self.optimizer.items()}
            else:
                ckpt["optimizer"] = self.optimizer.state_dict()
        latest = update_latest if create_symlink else None
        atomic_save(ckpt, path, then=latest, background=background)
        return path

    def load_checkpoint(self, path: str | Path, strict: bool = False) -> dict[str, Any]:
        """Load model weights from ``path`` (``load_from``); mismatched keys are logged.

        Raises:
            ConfigError: the file is missing or not a loadable checkpoint.
        """
        self.logger.info("load checkpoint from %s", path)
        ckpt = load_checkpoint_file(path)
        result = unwrap_model(self.model).load_state_dict(
            _strip_module_prefix(ckpt["state_dict"]), strict=strict
        )
        if result.missing_keys:
            self.logger.warning(
                "missing keys in the checkpoint: %s", ", ".join(result.missing_keys)
            )
        if result.unexpected_keys:
            self.logger.warning(
                "unexpected keys in the checkpoint: %s", ", ".join(result.unexpected_keys)
            )
        return ckpt

    def resume(self, path: str | Path, resume_optimizer: bool = True) -> None:
        """Restore weights, optimizer state, epoch, iter, hook messages, RNG state (resume_from).

        Raises:
            ConfigError: the file is missing or not a loadable checkpoint.
        """
        ckpt = self.load_checkpoint(path)
        meta = ckpt.get("meta", {})
        self.epoch = int(meta.get("epoch", 0))
        self.iter = int(meta.get("iter", 0))
        self.meta["hook_msgs"].update(meta.get("hook_msgs", {}))
        if "fp16" in meta:
            self.meta["fp16"] = meta["fp16"]
        if resume_optimizer and "optimizer" in ckpt and self.optimizer is not None:
            if isinstance(self.optimizer, dict):
                for name, opt in self.optimizer.items():
                    opt.load_state_dict(ckpt["optimizer"][name])
            else:
                self.optimizer.load_state_dict(ckpt["optimizer"])
        if "rng_state" in meta:
            _set_rng_state(meta["rng_state"])
        self.logger.info("resumed epoch %d, iter %d", self.epoch, self.iter)

    def run(
        self,
        data_loaders: Sequence[Any] | None = None,
        workflow: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        """Walk ``workflow`` over ``data_loaders`` (default: the builder's) until training ends.

        The log files are closed when the run ends or fails (a later message reopens them).

        Raises:
            ConfigError: a bad workflow or training length.
            DivergenceError: the training loss became non-finite.
        """
        loaders = list(self.data_loaders if data_loaders is None else data_loaders)
        flows = check_workflow(self.workflow if workflow is None else workflow, len(loaders))
        try:
            self._run(loaders, flows)
        except BaseException:
            self._close_loggers_after_error()
            raise
        finally:
            try:
                wait_for_saves()  # every checkpoint of the run is on disk when it returns
            finally:
                for handler in self.logger.handlers:
                    if isinstance(handler, logging.FileHandler):
                        handler.close()

    def _run(self, data_loaders: list[Any], flows: list[tuple[str, int]]) -> None:
        raise NotImplementedError

    def _close_loggers_after_error(self) -> None:
        """Let every logger hook flush and close (its after_run will not come)."""
        for hook in self._hooks:
            close = getattr(hook, "close_after_error", None)
            if close is None:
                continue
            try:
                close(self)
            except Exception as err:  # the run's own error is the one to raise
                self.logger.warning("%s could not close: %s", type(hook).__name__, err)
