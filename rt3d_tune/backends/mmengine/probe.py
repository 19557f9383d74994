"""The cool-down probe of an mmengine trial: the probe core
(:func:`rt3d_tune.backends.probe.run_cooldown`: snapshot, annealing loop, restore) with
mmengine's steps.

At a rung, right after a validation round, the trial trains a short stretch with the LR
falling linearly from where it is to where the schedule ends, validates, and puts every
piece of training state back: the run then goes on bit for bit as if no probe had run.
The metric after the cool-down ranks trials by what they would reach, not by where each
one's LR is in its schedule (the search-quality issue; :mod:`rt3d_tune.backends.probe`).

During the probe only the pieces of a training iteration run: the model's ``train_step``
through the optim wrapper (clipping, accumulation, AMP) and ``EMAHook.after_train_iter``;
no param scheduler (momentum stays where it is), logger, checkpoint or timer hook. The
probe's validation is the ValLoop's work without its hooks (the EMA weights swapped in
when an EMAHook swaps them for validation). In a data-parallel trial every rank runs the
probe on its shard; the evaluator gathers the predictions and every rank gets the metrics.

Call it between two training iterations, after the round's validation (``after_val_epoch``).
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from mmengine.hooks import EMAHook, IterTimerHook
from mmengine.optim import OptimWrapperDict
from mmengine.runner.amp import autocast
from mmengine.runner.loops import IterBasedTrainLoop

from rt3d_tune.backends.mmengine._mmengine_private import count_updates, val_outputs
from rt3d_tune.backends.mmengine.losses import nonfinite_losses
from rt3d_tune.backends.probe import ProbeResult, TrainingSnapshot, run_cooldown
from rt3d_tune.runner._torch_private import own_iterator_copy

__all__ = ["final_lrs", "mmengine_cooldown_probe"]


def _wrappers(runner: Any) -> dict[str, Any]:
    """The runner's optim wrappers by name ('' for a single one)."""
    wrapper = runner.optim_wrapper
    return dict(wrapper.items()) if isinstance(wrapper, OptimWrapperDict) else {"": wrapper}


def _schedulers(runner: Any, name: str) -> list[Any]:
    schedulers = getattr(runner, "param_schedulers", None) or []
    if isinstance(schedulers, Mapping):
        schedulers = schedulers.get(name) or []
    return list(schedulers)


def final_lrs(runner: Any) -> dict[str, list[float]]:
    """Per optim wrapper (by name, '' for one) and param group, the LR of the run's last
    training iteration.

    Copies of the runner's param schedulers step a stand-in optimizer holding the
    param groups' current values, as ``ParamSchedulerHook`` would step them from here
    to the end of training: the by-iteration ones after each iteration, the by-epoch
    ones after each epoch. The runner's own schedulers and optimizers are not touched.
    """
    loop = runner.train_loop
    iter_based = isinstance(loop, IterBasedTrainLoop)
    per_epoch = len(loop.dataloader)
    done, total = int(runner.iter), int(loop.max_iters)
    finals: dict[str, list[float]] = {}
    for name, wrapper in _wrappers(runner).items():
        stand_in = torch.optim.Optimizer(
            [{**{key: copy.deepcopy(value) for key, value in group.items() if key != "params"},
              "params": [torch.zeros(1, requires_grad=True)]}
             for group in wrapper.optimizer.param_groups], {})
        copies = []
        for scheduler in _schedulers(runner, name):
            twin = copy.copy(scheduler)  # its counters are plain ints: stepping the twin
            twin.optimizer = stand_in  # leaves the original where it is
            copies.append(twin)
        by_iter = [s for s in copies if not s.by_epoch]
        by_epoch = [s for s in copies if s.by_epoch]
        with warnings.catch_warnings():  # the stand-in's step is never called
            warnings.simplefilter("ignore", UserWarning)
            for it in range(done, total - 1):  # the steps after iterations done .. last - 1
                for scheduler in by_iter:
                    scheduler.step()
                if not iter_based and (it + 1) % per_epoch == 0:
                    for scheduler in by_epoch:
                        scheduler.step()
        finals[name] = [float(group["lr"]) for group in stand_in.param_groups]
    return finals


def _batches(loader: Any, epoch: int) -> Iterator[Any]:
    """Batches from a copy of ``loader`` (the run's own iterator, persistent workers
    included, is never touched), passes ``epoch``, ``epoch + 1``, ... of its sampler."""
    twin = own_iterator_copy(loader)
    sampler = getattr(loader, "sampler", None)  # the twin's too
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from twin
        epoch += 1


def _validate(runner: Any) -> dict[str, Any]:
    """The ValLoop's work without its hooks: every validation batch through ``val_step``,
    the evaluator's metrics (gathered over the ranks)."""
    val_loop = runner.val_loop
    runner.model.eval()
    with torch.no_grad():
        for data_batch in val_loop.dataloader:
            with autocast(enabled=getattr(val_loop, "fp16", False)):
                outputs = runner.model.val_step(data_batch)
            val_loop.evaluator.process(data_samples=val_outputs(outputs),
                                       data_batch=data_batch)
    return dict(val_loop.evaluator.evaluate(len(val_loop.dataloader.dataset)))


def mmengine_cooldown_probe(runner: Any, iters: int) -> ProbeResult:
    """Train ``iters`` iterations with the LR cooling down linearly, validate, undo it all.

    At probe iteration ``t`` (0-based) each param group's LR is
    ``lr_now + (lr_final - lr_now) * (t + 1) / iters`` (``lr_final`` from
    :func:`final_lrs`). Batches are the next pass of the train data (its sampler's next
    epoch). A non-finite loss ends the probe: it returns ``diverged`` and training goes
    on from the restored state.

    Raises:
        ValueError: ``iters`` < 1.
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"a probe needs iters >= 1 but got {iters!r}.")
    started = time.perf_counter()
    wrappers = _wrappers(runner)
    lr_end = final_lrs(runner)
    ema_hooks = [hook for hook in runner.hooks if isinstance(hook, EMAHook)]
    loop = runner.train_loop
    saved = TrainingSnapshot(
        [runner.model, *(hook.ema_model for hook in ema_hooks)],
        [wrapper.optimizer for wrapper in wrappers.values()],
        [*wrappers.values(), *ema_hooks],
        [loop.dataloader, runner.val_loop.dataloader],
    )
    batches = _batches(loop.dataloader, 0 if isinstance(loop, IterBasedTrainLoop)
                       else int(runner.epoch))

    def prepare() -> None:
        for wrapper in wrappers.values():
            # the probe is a run of iters updates: with gradient accumulation its last
            # stretch ends with a step
            count_updates(wrapper, runner.model, iters)
        runner.model.train()

    def step(t: int) -> str | None:
        data_batch = next(batches)
        outputs = runner.model.train_step(data_batch, optim_wrapper=runner.optim_wrapper)
        bad = nonfinite_losses(outputs)
        if bad:
            return (f"the probe's loss is not finite at its iteration {t + 1}: "
                    + ", ".join(f"{k}={v}" for k, v in bad.items()))
        for hook in ema_hooks:
            hook.after_train_iter(runner, t, data_batch, outputs)
        return None

    def evaluate() -> dict[str, Any]:
        with contextlib.ExitStack() as stack:
            for hook in ema_hooks:  # validate the average, as the round did
                hook.before_val_epoch(runner)
                stack.callback(hook.after_val_epoch, runner)
            return _validate(runner)

    def restore() -> None:
        batches.close()  # a probe's persistent data workers end with its iterator
        saved.restore()

    return run_cooldown(
        iters, {name: wrapper.optimizer for name, wrapper in wrappers.items()}, lr_end,
        step=step, evaluate=evaluate, restore=restore, prepare=prepare, started=started,
        timer_hooks=[h for h in runner.hooks if isinstance(h, IterTimerHook) and hasattr(h, "t")])
