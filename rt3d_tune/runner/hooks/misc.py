"""Small utility hooks: EmptyCacheHook, SyncBuffersHook, DistSamplerSeedHook, ProfilerHook."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hook import Hook

__all__ = ["DistSamplerSeedHook", "EmptyCacheHook", "ProfilerHook", "SyncBuffersHook"]


@HOOKS.register_module()
class EmptyCacheHook(Hook):
    """Release the CUDA caching allocator's unused memory (a no-op without CUDA).

    Args:
        before_epoch: empty the cache before every epoch.
        after_epoch: empty it after every epoch.
        after_iter: empty it after every iteration (slow: the allocator re-grows).
    """

    def __init__(
        self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False
    ) -> None:
        self._before_epoch = before_epoch
        self._after_epoch = after_epoch
        self._after_iter = after_iter

    @staticmethod
    def _empty() -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def before_epoch(self, runner: Any) -> None:
        if self._before_epoch:
            self._empty()

    def after_epoch(self, runner: Any) -> None:
        if self._after_epoch:
            self._empty()

    def after_iter(self, runner: Any) -> None:
        if self._after_iter:
            self._empty()


@HOOKS.register_module()
class SyncBuffersHook(Hook):
    """Average the model's buffers (BatchNorm statistics) over processes after every epoch.

    It does nothing unless ``torch.distributed`` is initialized with more than one
    process (a data-parallel run: ``resources.workers``, ``--launcher``).

    Args:
        distributed: sync at all (mmcv's argument).
    """

    def __init__(self, distributed: bool = True) -> None:
        self.distributed = distributed

    def after_epoch(self, runner: Any) -> None:
        if not (self.distributed and dist.is_available() and dist.is_initialized()):
            return
        world_size = dist.get_world_size()
        if world_size == 1:
            return
        for buffer in runner.model.buffers():
            if buffer.dtype.is_floating_point:
                dist.all_reduce(buffer.data)
                buffer.data.div_(world_size)


@HOOKS.register_module()
class DistSamplerSeedHook(Hook):
    """Tell the loader's sampler the epoch before it is iterated (mmcv's hook).

    The runners already do this for every loader (``set_loader_epoch``), so that the
    shuffle of a data-parallel sampler is seeded per epoch with or without this hook;
    it is accepted so that configs naming it run unchanged, and it never resets a
    sampler already at the epoch (which would lose a mid-epoch resume position).
    """

    def before_epoch(self, runner: Any) -> None:
        from rt3d_tune.runner.epoch_based import set_loader_epoch

        sampler = getattr(runner.data_loader, "sampler", None)
        if sampler is not None and getattr(sampler, "epoch", None) != runner.epoch:
            set_loader_epoch(runner.data_loader, runner.epoch)


_ACTIVITIES = ("cpu", "cuda")


@HOOKS.register_module()
class ProfilerHook(Hook):
    """Profile the first iterations (or epochs) with ``torch.profiler``; write a Chrome trace.

    Open the trace in ``chrome://tracing`` or https://ui.perfetto.dev.

    Args:
        by_epoch: ``profile_iters`` counts epochs (else iterations).
        profile_iters: how many epochs/iterations to profile from the start of the run.
        activities: 'cpu' and/or 'cuda' ('cuda' is dropped, with a log line, without CUDA).
        record_shapes: record the input shapes of operators.
        profile_memory: track tensor memory.
        with_stack: record source locations.
        with_flops: estimate FLOPs of matrix multiplications and convolutions.
        json_trace_path: where the trace goes; default
            ``work_dir/profiler_trace_<timestamp>.json``.

    Raises:
        ConfigError: a bad ``profile_iters`` or an unknown activity.
    """

    rank_zero_only = True

    def __init__(
        self,
        by_epoch: bool = True,
        profile_iters: int = 1,
        activities: Sequence[str] = ("cpu", "cuda"),
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        json_trace_path: str | None = None,
    ) -> None:
        if (
            isinstance(profile_iters, bool)
            or not isinstance(profile_iters, int)
            or profile_iters < 1
        ):
            raise ConfigError(
                "ProfilerHook profile_iters must be a positive int",
                key_path="profile_iters",
                expected="an int >= 1 (epochs when by_epoch, else iterations)",
                given=profile_iters,
            )
        unknown = [a for a in activities if a not in _ACTIVITIES]
        if isinstance(activities, str) or unknown or not activities:
            raise ConfigError(
                "unknown profiler activity",
                key_path="activities",
                expected=f"a non-empty list of {', '.join(map(repr, _ACTIVITIES))}",
                given=activities,
            )
        self.by_epoch = by_epoch
        self.profile_iters = profile_iters
        self.activities = list(activities)
        self.options = {
            "record_shapes": record_shapes,
            "profile_memory": profile_memory,
            "with_stack": with_stack,
            "with_flops": with_flops,
        }
        self.json_trace_path = json_trace_path
        self.profiler: Any = None

    def before_run(self, runner: Any) -> None:
        activities = []
        for name in self.activities:
            if name == "cuda" and not torch.cuda.is_available():
                runner.logger.info("ProfilerHook: no CUDA device, profiling the CPU only")
                continue
            activities.append(getattr(torch.profiler.ProfilerActivity, name.upper()))
        if self.json_trace_path is None:
            self.json_trace_path = str(
                Path(runner.work_dir) / f"profiler_trace_{runner.timestamp}.json"
            )
        self.profiler = torch.profiler.profile(activities=activities, **self.options)
        self.profiler.__enter__()

    def _stop(self, runner: Any) -> None:
        if self.profiler is None:
            return
        profiler, self.profiler = self.profiler, None
        profiler.__exit__(None, None, None)
        profiler.export_chrome_trace(self.json_trace_path)
        runner.logger.info("ProfilerHook: trace written to %s", self.json_trace_path)

    def after_train_iter(self, runner: Any) -> None:
        if not self.by_epoch and runner.iter + 1 >= self.profile_iters:
            self._stop(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if self.by_epoch and runner.epoch + 1 >= self.profile_iters:
            self._stop(runner)

    def after_run(self, runner: Any) -> None:
        self._stop(runner)
