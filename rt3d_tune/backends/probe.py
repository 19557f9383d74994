"""The cool-down probe core every backend runs: anneal, train, evaluate, put it all back.

At a rung, the scheduler compares trials that sit at different points of their LR
schedules, and the plain metric there mostly measures where each LR is. A short linear
cool-down from the current LR to the schedule's final value recovers most of what the
full decay would give (warmup-stable-decay schedules, Hagele et al. 2024), so the metric
after it ranks trials by what they would reach.

:func:`run_cooldown` holds the loop: it sets every param group's LR (:func:`cool_down`),
calls the backend's ``step``, its ``evaluate``, and its ``restore`` whatever happened;
:class:`TrainingSnapshot` copies everything a training iteration changes, so that the
main trajectory goes on bit for bit as if no probe had run. A backend supplies the
steps: ``backends.mmcv.probe.cooldown_probe`` (rt3d-tune's runner) and
``backends.mmengine.probe.mmengine_cooldown_probe`` (mmengine's Runner).
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
from rt3d_tune.schedules.policies import annealing_linear

__all__ = ["ProbeResult", "TrainingSnapshot", "cool_down", "probe_iters", "run_cooldown"]


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
