"""Rung probes: a short LR cool-down from where a trial is, evaluated, then undone.

At a rung, the scheduler compares trials that sit at different points of their LR
schedules, and the plain metric there mostly measures where each LR is (issue 13). A
short linear cool-down from the current LR to the schedule's final value recovers most
of what the full decay would give (warmup-stable-decay schedules, Hagele et al. 2024),
so the metric after it ranks trials by what they would reach.

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
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rt3d_tune.errors import DivergenceError
from rt3d_tune.runner.base import _rng_state, _set_rng_state
from rt3d_tune.runner.hook import Hook
from rt3d_tune.runner.hooks.ema import EMAHook
from rt3d_tune.runner.hooks.lr_updater import named_optimizers, per_group_values
from rt3d_tune.runner.hooks.optimizer import GradientCumulativeOptimizerHook, OptimizerHook
from rt3d_tune.runner.hooks.timer import IterTimerHook
from rt3d_tune.runner.iter_based import IterLoader
from rt3d_tune.runner.log_buffer import LogBuffer
from rt3d_tune.schedules.policies import annealing_linear

__all__ = ["ProbeResult", "TrainingSnapshot", "cool_down", "cooldown_probe", "probe_iters",
           "run_cooldown", "train_loader"]

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


@dataclass(frozen=True)
class ProbeResult:
    """What one probe measured.

    Args:
        metrics: the evaluation after the cool-down (empty when it diverged).
        iters: training iterations run (the one whose loss diverged included).
        seconds: wall time of the whole probe (copy, training, evaluation, restore).
        diverged: a training loss of the probe was not finite; nothing was evaluated.
        error: the DivergenceError's message when it diverged.
    """

    metrics: dict[str, Any] = field(default_factory=dict)
    iters: int = 0
    seconds: float = 0.0
    diverged: bool = False
    error: str | None = None


def probe_iters(progress_iters: int, ratio: float) -> int:
    """Iterations of a probe: ``ratio`` of the iterations trained so far, rounded, at least 1.

    Args:
        progress_iters: training iterations finished at the rung (>= 0).
        ratio: the probe length as a fraction of them, in (0, 1].

    Raises:
        ValueError: a negative or non-int ``progress_iters``, or ``ratio`` outside (0, 1].
    """
    if (
        not isinstance(progress_iters, int)
        or isinstance(progress_iters, bool)
        or progress_iters < 0
    ):
        raise ValueError(f"progress_iters must be an int >= 0 but got {progress_iters!r}.")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"the probe ratio must be in (0, 1] but got {ratio!r}.")
    # round, not ceil: 40 * 0.1 is 4.000000000000001
    return max(1, round(progress_iters * ratio))


def cool_down(optimizers: Mapping[str, Any], lr_now: Mapping[str, Sequence[float]],
              lr_end: Mapping[str, Sequence[float]], t: int, iters: int) -> None:
    """Set every param group's LR for probe iteration ``t`` (0-based) of ``iters``:
    ``lr_now + (lr_end - lr_now) * (t + 1) / iters``, so the last iteration runs at
    ``lr_end``. ``optimizers``, ``lr_now`` and ``lr_end`` are keyed alike (optimizer
    name -> the optimizer, its groups' LRs at the start, their final LRs)."""
    for name, opt in optimizers.items():
        for group, start, stop in zip(opt.param_groups, lr_now[name], lr_end[name]):
            group["lr"] = annealing_linear(start, stop, (t + 1) / iters)


def run_cooldown(
    iters: int,
    optimizers: Mapping[str, Any],
    lr_end: Mapping[str, Sequence[float]],
    *,
    step: Callable[[int], str | None],
    evaluate: Callable[[], Mapping[str, Any]],
    restore: Callable[[], None],
    prepare: Callable[[], None] | None = None,
    timer_hooks: Iterable[Any] = (),
    started: float | None = None,
) -> ProbeResult:
    """The probe core every backend shares: anneal, train, evaluate, put everything back.

    ``prepare()`` runs first; then for each probe iteration ``t`` (0-based) every param
    group's LR is set by :func:`cool_down` (from its value now to ``lr_end``) and
    ``step(t)`` trains one iteration, returning an error message when its loss is not
    finite (which ends the probe, as a ``DivergenceError`` does); then, when nothing
    diverged, ``evaluate()`` measures. ``restore()`` runs whatever happened (the backend's
    :class:`TrainingSnapshot`), and each timer hook's ``t`` moves past the probe's time
    so that the next iteration's data time is not the probe's.

    Args:
        iters: probe length in iterations (>= 1).
        optimizers: optimizer name -> torch optimizer ('' for a single one).
        lr_end: optimizer name -> each param group's final LR.
        step, evaluate, restore, prepare: the backend's steps (see above).
        timer_hooks: hooks with a ``t`` (the last iteration's end time).
        started: ``time.perf_counter()`` when the probe began (default: now).

    Raises:
        ValueError: ``iters`` < 1.
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"a probe needs iters >= 1 but got {iters!r}.")
    started = time.perf_counter() if started is None else started
    lr_now = {name: [group["lr"] for group in opt.param_groups] for name, opt in optimizers.items()}
    metrics: dict[str, Any] = {}
    error: str | None = None
    done = 0
    try:
        if prepare is not None:
            prepare()
        for t in range(iters):
            cool_down(optimizers, lr_now, lr_end, t, iters)
            done += 1
            error = step(t)
            if error is not None:
                break
        if error is None:
            metrics = dict(evaluate())
    except DivergenceError as err:
        error = str(err)
    finally:
        restore()
    seconds = time.perf_counter() - started
    for hook in timer_hooks:
        hook.t += seconds
    return ProbeResult(metrics, done, seconds, diverged=error is not None, error=error)


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


class TrainingSnapshot:
    """Everything training can change, copied so that ``restore`` puts it back exactly.

    The modules' parameters and every buffer (BatchNorm statistics, EMA averages),
    gradients (accumulation carries them between iterations), train/eval flags; the
    optimizers' state and param-group values; the given objects' attributes (hooks, an
    optimizer wrapper; a GradScaler deep-copied); the python/numpy/torch/CUDA RNG states;
    the data loaders' generators and sampler/dataset epoch state.
    """

    def __init__(self, modules: Iterable[torch.nn.Module], optimizers: Iterable[Any],
                 objects: Iterable[Any], loaders: Iterable[Any]) -> None:
        modules = list({id(m): m for m in modules}.values())
        self.tensors = [(t, t.detach().clone()) for m in modules for t in _tensors(m)]
        self.grads = [(p, None if p.grad is None else p.grad.detach().clone())
                      for m in modules for p in m.parameters()]
        self.training = [(module, module.training) for m in modules for module in m.modules()]
        self.optimizers = [(opt, *_optimizer_state(opt)) for opt in optimizers]
        self.objects = [(obj, _hook_vars(obj)) for obj in objects]
        self.rng = _rng_state()
        self.loaders = [(loader, _loader_state(loader)) for loader in loaders]

    def restore(self) -> None:
        with torch.no_grad():
            for tensor, value in self.tensors:
                tensor.copy_(value)
        for param, grad in self.grads:
            param.grad = grad
        for module, training in self.training:
            module.training = training
        for opt, state, groups in self.optimizers:
            opt.state.clear()
            opt.state.update(state)
            for group, values in zip(opt.param_groups, groups):
                params = group["params"]
                group.clear()
                group.update(values, params=params)
        for obj, attrs in self.objects:
            vars(obj).clear()
            vars(obj).update(attrs)
        _set_rng_state(self.rng)
        for loader, (generator_state, parts) in self.loaders:
            if generator_state is not None:
                loader.generator.set_state(generator_state)
            for part, attrs in parts:
                vars(part).update(attrs)


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


def _tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters and all buffers (non-persistent ones too, which state_dict leaves out)."""
    unique = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return list(unique.values())


def _optimizer_state(
    opt: torch.optim.Optimizer,
) -> tuple[dict[Any, Any], list[dict[str, Any]]]:
    """Per-parameter state (momentum buffers, Adam moments and step) and every param
    group's values but its params (lr, momentum, initial_lr, ...), copied."""
    state = {param: copy.deepcopy(values) for param, values in opt.state.items()}
    groups = [
        {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
        for group in opt.param_groups
    ]
    return state, groups


def _hook_vars(obj: Any) -> dict[str, Any]:
    attrs = dict(vars(obj))
    for name, value in attrs.items():
        if isinstance(value, torch.amp.GradScaler):
            attrs[name] = copy.deepcopy(value)  # updated in place at each step
    return attrs


def _loader_state(loader: Any) -> tuple[torch.Tensor | None, list[tuple[Any, dict[str, Any]]]]:
    generator = getattr(loader, "generator", None)
    parts = [getattr(loader, "sampler", None), getattr(loader, "dataset", None)]
    return (
        generator.get_state() if isinstance(generator, torch.Generator) else None,
        [(part, dict(vars(part))) for part in parts if hasattr(part, "set_epoch")],
    )
