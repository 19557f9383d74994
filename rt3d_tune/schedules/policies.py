"""LR and momentum schedules as pure functions, number for number with mmcv 1.7.

Each policy is a factory: it checks its arguments (ConfigError with the dotted key
path, ``key_path`` being the caller's prefix such as ``lr_config``) and returns the
regular value ``f(progress, max_progress, base) -> float``, where ``progress`` is the
0-based epoch (``max_progress`` = max epochs) or the 0-based global iteration
(``max_progress`` = max iterations). Arithmetic is written in mmcv's order so that
floats match exactly. The hooks in ``rt3d_tune.runner.hooks`` call these; so do the
schedule plots and tests. No torch here.

Where mmcv crashes or silently misbehaves, these raise ConfigError instead: unsorted
``step`` milestones, ``periods`` that end before training does, fewer iterations than
``cyclic_times``, and a OneCycle phase of zero length (mmcv divides by zero; here the
phase yields its end value).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = [
    "ANNEAL_STRATEGIES",
    "WARMUP_TYPES",
    "Schedule",
    "annealing_cos",
    "annealing_linear",
    "check_warmup",
    "cosine_annealing",
    "cosine_annealing_momentum",
    "cosine_restart",
    "cyclic",
    "cyclic_momentum",
    "exp",
    "fixed",
    "flat_cosine_annealing",
    "inv",
    "linear_annealing",
    "linear_annealing_momentum",
    "one_cycle",
    "one_cycle_momentum",
    "one_cycle_phases",
    "one_cycle_value",
    "poly",
    "step",
    "step_momentum",
    "warmup_factor",
]

Schedule = Callable[[int, int, float], float]
"""``(progress, max_progress, base) -> regular value``."""

WARMUP_TYPES = ("constant", "linear", "exp")
ANNEAL_STRATEGIES = ("cos", "linear")


def annealing_cos(start: float, end: float, factor: float, weight: float = 1) -> float:
    """Cosine from ``start`` (factor 0) to ``end`` (factor 1), scaled by ``weight``."""
    cos_out = math.cos(math.pi * factor) + 1
    return end + 0.5 * weight * (start - end) * cos_out


def annealing_linear(start: float, end: float, factor: float) -> float:
    """Straight line from ``start`` (factor 0) to ``end`` (factor 1)."""
    return start + (end - start) * factor


# argument checks ---------------------------------------------------------------------
def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, name: str, key_path: str, *, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` if it is a number inside the bounds, else ConfigError."""
    lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
    hi = "" if high is None else f"{high}" + (")" if high_open else "]")
    expected = f"a number in {lo or '(-inf, '}{hi or 'inf)'}"
    ok = _is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ConfigError(f"invalid {name}", key_path=_key(key_path, name), expected=expected,
                          given=value)
    return value


def _positive_int(value: Any, name: str, key_path: str) -> int:
    if not _is_int(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer", key_path=_key(key_path, name),
                          expected="an int > 0", given=value)
    return value


def _anneal(strategy: Any, key_path: str) -> Callable[[float, float, float], float]:
    if strategy == "cos":
        return annealing_cos
    if strategy == "linear":
        return annealing_linear
    raise ConfigError("unknown anneal_strategy", key_path=_key(key_path, "anneal_strategy"),
                      expected="'cos' or 'linear'", given=strategy)


def _target(min_value: Any, min_ratio: Any, names: tuple[str, str],
            key_path: str) -> Callable[[float], float]:
    """The annealing target: ``min_value``, or ``base * min_ratio``; exactly one is given."""
    if (min_value is None) == (min_ratio is None):
        raise ConfigError(
            f"give exactly one of {names[0]} and {names[1]}",
            key_path=key_path or None,
            expected=f"{names[0]}=<value> or {names[1]}=<ratio of the base>",
            given={names[0]: min_value, names[1]: min_ratio},
        )
    if min_ratio is not None:
        ratio = _number(min_ratio, names[1], key_path)
        return lambda base: base * ratio
    value = _number(min_value, names[0], key_path)
    return lambda base: value


def _target_ratio(value: Any, key_path: str) -> tuple[float, float]:
    """Cyclic ``target_ratio``: a number r means (r, r/1e5); a 1- or 2-sequence."""
    if _is_number(value):
        return (value, value / 1e5)
    if isinstance(value, (list, tuple)) and len(value) in (1, 2) and all(map(_is_number, value)):
        return (value[0], value[0] / 1e5) if len(value) == 1 else (value[0], value[1])
    raise ConfigError("invalid target_ratio", key_path=_key(key_path, "target_ratio"),
                      expected="a number or a pair (peak ratio, end ratio)", given=value)


# warmup -----------------------------------------------------------------------------
def check_warmup(warmup: Any, warmup_iters: Any, warmup_ratio: Any, key_path: str = "") -> None:
    """Check the common warmup arguments.

    Args:
        warmup: None, 'constant', 'linear' or 'exp'.
        warmup_iters: iterations (or epochs with ``warmup_by_epoch``); > 0 when warmup is set.
        warmup_ratio: in (0, 1].
        key_path: prefix of the key paths in errors (``lr_config``).

    Raises:
        ConfigError: any of the above does not hold.
    """
    if warmup is None:
        return
    if warmup not in WARMUP_TYPES:
        raise ConfigError("unknown warmup type", key_path=_key(key_path, "warmup"),
                          expected="None, 'constant', 'linear' or 'exp'", given=warmup)
    if not _is_int(warmup_iters) or warmup_iters <= 0:
        raise ConfigError("warmup_iters must be a positive integer when warmup is set",
                          key_path=_key(key_path, "warmup_iters"), expected="an int > 0",
                          given=warmup_iters, hint="set warmup=None to train without warmup")
    _number(warmup_ratio, "warmup_ratio", key_path, low=0, high=1, low_open=True)


def warmup_factor(warmup: str, cur_iter: int, warmup_iters: int, warmup_ratio: float) -> float:
    """The warmup multiplier at iteration ``cur_iter`` (< ``warmup_iters``).

    The LR is ``regular * factor``; momentum is ``regular / factor`` (mmcv's dividing
    warmup). constant: ``ratio``; linear: ``1 - (1 - t/W)*(1 - ratio)``; exp:
    ``ratio**(1 - t/W)``.
    """
    if warmup == "constant":
        return warmup_ratio
    if warmup == "linear":
        k = (1 - cur_iter / warmup_iters) * (1 - warmup_ratio)
        return 1 - k
    if warmup == "exp":
        return warmup_ratio ** (1 - cur_iter / warmup_iters)
    raise ConfigError("unknown warmup type", key_path="warmup",
                      expected="'constant', 'linear' or 'exp'", given=warmup)


# policies shared by LR and momentum -------------------------------------------------
def _step(step_: Any, gamma: Any, floor: Any, floor_name: str, key_path: str) -> Schedule:
    if isinstance(step_, (list, tuple)):
        if not step_ or not all(_is_int(s) and s > 0 for s in step_):
            raise ConfigError("step milestones must be positive integers",
                              key_path=_key(key_path, "step"),
                              expected="an int > 0 or a list of them", given=step_)
        if list(step_) != sorted(step_):
            raise ConfigError("step milestones must be in increasing order",
                              key_path=_key(key_path, "step"),
                              expected=f"sorted, e.g. {sorted(step_)}", given=step_)
    else:
        _positive_int(step_, "step", key_path)
    _number(gamma, "gamma", key_path)
    if floor is not None:
        _number(floor, floor_name, key_path)

    def value(progress: int, max_progress: int, base: float) -> float:
        if isinstance(step_, int):
            e = progress // step_
        else:
            e = sum(1 for s in step_ if s <= progress)
        out = base * (gamma**e)
        return out if floor is None else max(out, floor)

    return value


def _annealing(anneal: Callable[[float, float, float], float], target: Callable[[float], float]
               ) -> Schedule:
    def value(progress: int, max_progress: int, base: float) -> float:
        return anneal(base, target(base), progress / max_progress)

    return value


def _cyclic(by_epoch: Any, target_ratio: Any, cyclic_times: Any, step_ratio_up: Any,
            anneal_strategy: Any, gamma: Any, key_path: str) -> Schedule:
    if by_epoch:
        raise ConfigError("the cyclic policy only works per iteration",
                          key_path=_key(key_path, "by_epoch"), expected="False", given=by_epoch)
    ratio = _target_ratio(target_ratio, key_path)
    times = _positive_int(cyclic_times, "cyclic_times", key_path)
    up = _number(step_ratio_up, "step_ratio_up", key_path, low=0, high=1, high_open=True)
    anneal = _anneal(anneal_strategy, key_path)
    _number(gamma, "gamma", key_path, low=0, high=1, low_open=True)

    def value(progress: int, max_progress: int, base: float) -> float:
        length = max_progress // times
        if length < 1:
            raise ConfigError("fewer iterations than cycles",
                              key_path=_key(key_path, "cyclic_times"),
                              expected=f"at most max_iters = {max_progress}", given=times)
        up_len = int(up * length)
        cycle, i = progress // length, progress % length
        scale = gamma**cycle
        peak = 1 - scale + ratio[0] * scale
        if i < up_len:
            return anneal(base * 1, base * peak, i / up_len)
        return anneal(base * peak, base * ratio[1], (i - up_len) / (length - up_len))

    return value


def _pct_start(value: Any, key_path: str) -> float:
    return _number(value, "pct_start", key_path, low=0, high=1)


def one_cycle_phases(total: int, pct_start: float, start: float, peak: float, end: float,
                     three_phase: bool) -> list[tuple[float, float, float]]:
    """OneCycle phases ``(end_iter, start_value, end_value)`` over ``total`` iterations.

    Two-phase: start -> peak until ``pct_start*total - 1``, then peak -> end. Three-phase:
    start -> peak, peak -> start until ``2*pct_start*total - 2``, then start -> end.
    ``pct_start*total`` is a float and is not rounded (as mmcv).
    """
    first = float(pct_start * total) - 1
    if three_phase:
        return [(first, start, peak), (float(2 * pct_start * total) - 2, peak, start),
                (total - 1, start, end)]
    return [(first, start, peak), (total - 1, peak, end)]


def one_cycle_value(it: int, phases: Sequence[tuple[float, float, float]],
                    anneal: Callable[[float, float, float], float]) -> float:
    """The value at iteration ``it``: the first phase with ``it <= end_iter`` (else the last)."""
    prev_end: float = 0
    for index, (end_iter, start_value, end_value) in enumerate(phases):
        if it <= end_iter or index == len(phases) - 1:
            span = end_iter - prev_end
            factor = (it - prev_end) / span if span else 1.0
            return anneal(start_value, end_value, factor)
        prev_end = end_iter
    raise ValueError("one_cycle_value needs at least one phase")


# LR policies ------------------------------------------------------------------------
def fixed() -> Schedule:
    """Fixed: always ``base``."""
    return lambda progress, max_progress, base: base


def step(step: Any, gamma: Any = 0.1, min_lr: Any = None, *, key_path: str = "") -> Schedule:
    """Step: ``max(base*gamma**e, min_lr)``; ``e = p // step`` (int) or #milestones <= p (list).

    Raises:
        ConfigError: ``step`` not a positive int or a sorted list of them; bad gamma/min_lr.
    """
    return _step(step, gamma, min_lr, "min_lr", key_path)


def exp(gamma: Any, *, key_path: str = "") -> Schedule:
    """Exp: ``base*gamma**p``."""
    _number(gamma, "gamma", key_path)
    return lambda progress, max_progress, base: base * gamma**progress


def poly(power: Any = 1.0, min_lr: Any = 0.0, *, key_path: str = "") -> Schedule:
    """Poly: ``(base - min_lr)*(1 - p/P)**power + min_lr``."""
    _number(power, "power", key_path)
    _number(min_lr, "min_lr", key_path)

    def value(progress: int, max_progress: int, base: float) -> float:
        coeff = (1 - progress / max_progress) ** power
        return (base - min_lr) * coeff + min_lr

    return value


def inv(gamma: Any, power: Any = 1.0, *, key_path: str = "") -> Schedule:
    """Inv: ``base*(1 + gamma*p)**(-power)``."""
    _number(gamma, "gamma", key_path)
    _number(power, "power", key_path)
    return lambda progress, max_progress, base: base * (1 + gamma * progress) ** (-power)


def cosine_annealing(min_lr: Any = None, min_lr_ratio: Any = None, *,
                     key_path: str = "") -> Schedule:
    """CosineAnnealing: ``annealing_cos(base, target, p/P)``.

    Raises:
        ConfigError: not exactly one of min_lr and min_lr_ratio.
    """
    return _annealing(annealing_cos, _target(min_lr, min_lr_ratio, ("min_lr", "min_lr_ratio"),
                                             key_path))


def linear_annealing(min_lr: Any = None, min_lr_ratio: Any = None, *,
                     key_path: str = "") -> Schedule:
    """LinearAnnealing: ``annealing_linear(base, target, p/P)``."""
    return _annealing(annealing_linear, _target(min_lr, min_lr_ratio, ("min_lr", "min_lr_ratio"),
                                                key_path))


def flat_cosine_annealing(start_percent: Any = 0.75, min_lr: Any = None, min_lr_ratio: Any = None,
                          *, key_path: str = "") -> Schedule:
    """FlatCosineAnnealing: ``base`` while ``p < s = round(P*start_percent)``, then cosine.

    Raises:
        ConfigError: start_percent outside [0, 1); not exactly one of min_lr, min_lr_ratio.
    """
    _number(start_percent, "start_percent", key_path, low=0, high=1, high_open=True)
    target = _target(min_lr, min_lr_ratio, ("min_lr", "min_lr_ratio"), key_path)

    def value(progress: int, max_progress: int, base: float) -> float:
        start = round(max_progress * start_percent)
        if progress - start < 0:
            return base
        return annealing_cos(base, target(base), (progress - start) / (max_progress - start))

    return value


def cosine_restart(periods: Any, restart_weights: Any = (1,), min_lr: Any = None,
                   min_lr_ratio: Any = None, *, key_path: str = "") -> Schedule:
    """CosineRestart: cosine within each period, restarting at ``restart_weights[i]`` height.

    Raises:
        ConfigError: periods not positive ints, restart_weights of another length, not
            exactly one of min_lr/min_lr_ratio; at run time, periods summing to less
            than the training length.
    """
    if not isinstance(periods, (list, tuple)) or not periods or not all(
            _is_int(p) and p > 0 for p in periods):
        raise ConfigError("periods must be a list of positive integers",
                          key_path=_key(key_path, "periods"), expected="e.g. [10, 10]",
                          given=periods)
    if not isinstance(restart_weights, (list, tuple)) or len(restart_weights) != len(periods) \
            or not all(map(_is_number, restart_weights)):
        raise ConfigError("restart_weights must be numbers, one per period",
                          key_path=_key(key_path, "restart_weights"),
                          expected=f"a list of {len(periods)} numbers", given=restart_weights)
    target = _target(min_lr, min_lr_ratio, ("min_lr", "min_lr_ratio"), key_path)
    cumulative = [sum(periods[: i + 1]) for i in range(len(periods))]

    def value(progress: int, max_progress: int, base: float) -> float:
        if cumulative[-1] < max_progress:
            raise ConfigError("periods end before training does",
                              key_path=_key(key_path, "periods"),
                              expected=f"periods summing to at least {max_progress}",
                              given=list(periods))
        idx = next(i for i, end in enumerate(cumulative) if progress < end)
        restart = 0 if idx == 0 else cumulative[idx - 1]
        alpha = min((progress - restart) / periods[idx], 1)
        return annealing_cos(base, target(base), alpha, restart_weights[idx])

    return value


def cyclic(by_epoch: Any = False, target_ratio: Any = (10, 1e-4), cyclic_times: Any = 1,
           step_ratio_up: Any = 0.4, anneal_strategy: Any = "cos", gamma: Any = 1, *,
           key_path: str = "") -> Schedule:
    """Cyclic (per iteration): base -> peak over ``step_ratio_up`` of each cycle, then down.

    ``L = P // cyclic_times``, ``U = int(step_ratio_up*L)``, ``s = gamma**(p // L)``,
    ``peak = base*(1 - s + target_ratio[0]*s)``, end ``base*target_ratio[1]``.

    Raises:
        ConfigError: by_epoch true, bad target_ratio/cyclic_times/step_ratio_up (in
            [0, 1))/anneal_strategy/gamma (in (0, 1]); at run time, ``P < cyclic_times``.
    """
    return _cyclic(by_epoch, target_ratio, cyclic_times, step_ratio_up, anneal_strategy, gamma,
                   key_path)


def one_cycle(total_steps: Any = None, pct_start: Any = 0.3, anneal_strategy: Any = "cos",
              div_factor: Any = 25, final_div_factor: Any = 1e4, three_phase: Any = False, *,
              key_path: str = "") -> Schedule:
    """OneCycle LR; ``base`` is the initial LR ``max_lr/div_factor``, T = total_steps or P.

    Raises:
        ConfigError: bad arguments; at run time, ``total_steps`` < max iterations.
    """
    if total_steps is not None:
        _positive_int(total_steps, "total_steps", key_path)
    pct = _pct_start(pct_start, key_path)
    anneal = _anneal(anneal_strategy, key_path)
    _number(div_factor, "div_factor", key_path, low=0, low_open=True)
    _number(final_div_factor, "final_div_factor", key_path, low=0, low_open=True)

    def value(progress: int, max_progress: int, base: float) -> float:
        total = max_progress if total_steps is None else total_steps
        if total < max_progress:
            raise ConfigError("total_steps is shorter than training",
                              key_path=_key(key_path, "total_steps"),
                              expected=f">= max_iters = {max_progress}", given=total)
        phases = one_cycle_phases(total, pct, base * 1, base * div_factor,
                                  base * (1 / final_div_factor), bool(three_phase))
        return one_cycle_value(progress, phases, anneal)

    return value


# momentum policies ------------------------------------------------------------------
def step_momentum(step: Any, gamma: Any = 0.5, min_momentum: Any = None, *,
                  key_path: str = "") -> Schedule:
    """Step momentum: ``max(base*gamma**e, min_momentum)`` (see :func:`step`)."""
    return _step(step, gamma, min_momentum, "min_momentum", key_path)


def cosine_annealing_momentum(min_momentum: Any = None, min_momentum_ratio: Any = None, *,
                              key_path: str = "") -> Schedule:
    """Cosine annealing of momentum; exactly one of min_momentum, min_momentum_ratio."""
    return _annealing(annealing_cos, _target(
        min_momentum, min_momentum_ratio, ("min_momentum", "min_momentum_ratio"), key_path))


def linear_annealing_momentum(min_momentum: Any = None, min_momentum_ratio: Any = None, *,
                              key_path: str = "") -> Schedule:
    """Linear annealing of momentum; exactly one of min_momentum, min_momentum_ratio."""
    return _annealing(annealing_linear, _target(
        min_momentum, min_momentum_ratio, ("min_momentum", "min_momentum_ratio"), key_path))


def cyclic_momentum(by_epoch: Any = False, target_ratio: Any = (0.85 / 0.95, 1),
                    cyclic_times: Any = 1, step_ratio_up: Any = 0.4, anneal_strategy: Any = "cos",
                    gamma: Any = 1, *, key_path: str = "") -> Schedule:
    """Cyclic momentum: the :func:`cyclic` formula on the base momentum."""
    return _cyclic(by_epoch, target_ratio, cyclic_times, step_ratio_up, anneal_strategy, gamma,
                   key_path)


def one_cycle_momentum(pct_start: Any = 0.3, anneal_strategy: Any = "cos",
                       three_phase: Any = False, *, key_path: str = ""
                       ) -> Callable[[int, int, float, float], float]:
    """OneCycle momentum: ``f(it, max_iters, base_momentum, max_momentum)``.

    Two-phase: max -> base until ``pct_start*T - 1``, then base -> max; three-phase:
    max -> base, base -> max, then flat at max.
    """
    pct = _pct_start(pct_start, key_path)
    anneal = _anneal(anneal_strategy, key_path)

    def value(progress: int, max_progress: int, base_momentum: float,
              max_momentum: float) -> float:
        phases = one_cycle_phases(max_progress, pct, max_momentum, base_momentum, max_momentum,
                                  bool(three_phase))
        return one_cycle_value(progress, phases, anneal)

    return value
