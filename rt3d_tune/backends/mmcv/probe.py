"""The cool-down probe on rt3d-tune's runner: its steps for the probe core
(:func:`rt3d_tune.backends.probe.run_cooldown`).

:func:`cooldown_probe` copies everything a training iteration changes, trains with the
LR annealed linearly, evaluates, and puts the copy back: the main trajectory then goes
on bit for bit as if no probe had run. During the probe only the training pieces run:
the model's ``train_step``, the optimizer hook (clipping, accumulation, mixed
precision) and EMA hooks; no LR or momentum hook (momentum stays where it is), no
logger, checkpoint, evaluation or timer hook.

Call it between two training iterations, with the index of the iteration training
would run next::

    after_train_epoch of EpochBasedRunner:   start_iter = runner.iter
    after_train_iter (either runner):        start_iter = runner.iter + 1
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rt3d_tune.backends.probe import ProbeResult, TrainingSnapshot, run_cooldown
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.ema import EMAHook
from rt3d_tune.runner.hooks.lr_updater import named_optimizers, per_group_values
from rt3d_tune.runner.hooks.optimizer import GradientCumulativeOptimizerHook, OptimizerHook
from rt3d_tune.runner.hooks.timer import IterTimerHook
from rt3d_tune.runner.iter_based import IterLoader
from rt3d_tune.runner.log_buffer import LogBuffer

__all__ = ["cooldown_probe", "train_loader"]

FinalLr = float | Sequence[float] | Mapping[str, Sequence[float]]
"""One LR for every group, one per param group, or per optimizer name (dict optimizers)."""

# Runner attributes a training iteration sets; put back as they were.
_RUNNER_ATTRS = (
    "iter",
    "epoch",
    "inner_iter",
    "mode",
    "max_iters",
    "data_loader",
    "data_batch",
    "outputs",
    "log_buffer",
)


def train_loader(runner: Any) -> Any:
    """The runner's train data loader: the one of the workflow's 'train' phase.

    Raises:
        ValueError: the runner has no train loader in ``runner.data_loaders``.
    """
    for loader, (mode, _) in zip(runner.data_loaders, runner.workflow):
        if mode == "train":
            return loader
    raise ValueError(
        "the runner has no train loader in runner.data_loaders; pass data_loader= to the probe"
    )


def cooldown_probe(
    runner: Any,
    iters: int,
    final_lr: FinalLr | Callable[[Any], FinalLr],
    evaluate: Callable[[], Mapping[str, Any]],
    *,
    start_iter: int,
    data_loader: Any = None,
) -> ProbeResult:
    """Train ``iters`` iterations with the LR cooling down linearly, evaluate, undo it all.

    At probe iteration ``t`` (0-based) each param group's LR is
    ``lr_now + (lr_final - lr_now) * (t + 1) / iters``: the last iteration runs at
    ``lr_final``. Batches continue the main data stream (the pass and position of
    ``start_iter``, later passes after it). With accumulation, the probe ends its last
    stretch with a step; with an EMA hook, the average is updated and evaluated when
    the model held the average at the call (as the scheduled evaluation then sees it).
    A non-finite loss ends the probe: it returns ``diverged`` and training goes on.

    Args:
        runner: a runner between two training iterations (see the module docstring).
        iters: probe length in iterations (>= 1); see :func:`probe_iters`.
        final_lr: the LR to end at, or ``f(runner)`` returning it, such as
            ``LrUpdaterHook.final_lr``.
        evaluate: returns the metrics of the model as it is, recording nothing (such
            as ``lambda: eval_hook.compute_metrics(runner)``).
        start_iter: the global index of the iteration training would run next.
        data_loader: the train loader; default :func:`train_loader`.

    Raises:
        ValueError: ``iters`` < 1, or a runner without optimizer, optimizer hook or
            train loader.
        ConfigError: ``final_lr`` does not give one value per param group.
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"a probe needs iters >= 1 but got {iters!r}.")
    if runner.optimizer is None:
        raise ValueError("a probe needs a runner with an optimizer")
    started = time.perf_counter()
    loader = train_loader(runner) if data_loader is None else data_loader
    hooks = _training_hooks(runner)
    optimizers = named_optimizers(runner.optimizer)
    target = final_lr(runner) if callable(final_lr) else final_lr
    lr_end = {
        name: per_group_values(name, opt, target, "final_lr", "")
        for name, opt in optimizers.items()
    }
    saved = _Snapshot(runner, hooks, _loaders(runner, loader))
    ema_hooks = [hook for hook in hooks if isinstance(hook, EMAHook) and hook.ema_in_model]
    end = start_iter + iters
    batches: list[IterLoader] = []  # made in prepare, after the snapshot

    def prepare() -> None:
        for hook in ema_hooks:
            hook.before_train_epoch(runner)  # the raw weights train, the average follows
        runner.max_iters = end  # the probe is a run that ends here (accumulation steps)
        for hook in hooks:
            if isinstance(hook, GradientCumulativeOptimizerHook):
                hook.divisible_iters = end // hook.cumulative_iters * hook.cumulative_iters
                hook.remainder_iters = end - hook.divisible_iters
                hook.initialized = True
        runner.log_buffer = LogBuffer()  # the run's own buffer keeps only the run's values
        runner.mode = "train"
        runner.model.train()
        batches.append(IterLoader(loader, *divmod(start_iter, len(loader))))

    def step(t: int) -> None:
        runner.iter = start_iter + t
        data_batch = next(batches[0])
        runner.epoch = batches[0].epoch
        runner.run_iter(data_batch, train_mode=True)  # a non-finite loss raises
        for hook in hooks:
            hook.after_train_iter(runner)

    def evaluate_average() -> Mapping[str, Any]:
        for hook in ema_hooks:
            hook.after_train_epoch(runner)
        return evaluate()

    return run_cooldown(iters, optimizers, lr_end, step=step, evaluate=evaluate_average,
                        restore=saved.restore, prepare=prepare, started=started,
                        timer_hooks=[h for h in runner.hooks if isinstance(h, IterTimerHook)])


def _training_hooks(runner: Any) -> list[Hook]:
    """The optimizer hook and any EMA hooks, in the runner's order."""
    hooks = [hook for hook in runner.hooks if isinstance(hook, (OptimizerHook, EMAHook))]
    if not any(isinstance(hook, OptimizerHook) for hook in hooks):
        raise ValueError("the runner has no optimizer hook: a probe would not update the weights")
    return hooks


def _loaders(runner: Any, train: Any) -> list[Any]:
    """Every data loader whose state a probe can move: the train loader's (it is
    iterated), and the evaluation's (creating an iterator draws from its generator)."""
    found = [train, *runner.data_loaders]
    found += [hook.dataloader for hook in runner.hooks if hasattr(hook, "dataloader")]
    return list({id(loader): loader for loader in found}.values())


class _Snapshot(TrainingSnapshot):
    """A TrainingSnapshot of an rt3d-tune runner: its model, optimizers, the training
    hooks, and the runner's per-iteration attributes and meta."""

    def __init__(self, runner: Any, hooks: Iterable[Hook], loaders: Iterable[Any]) -> None:
        super().__init__([runner.model], named_optimizers(runner.optimizer).values(), hooks,
                         loaders)
        self.attrs = {name: getattr(runner, name) for name in _RUNNER_ATTRS}
        self.meta = copy.deepcopy(runner.meta)
        self.runner = runner

    def restore(self) -> None:
        super().restore()
        for name, value in self.attrs.items():
            setattr(self.runner, name, value)
        self.runner.meta.clear()
        self.runner.meta.update(self.meta)


