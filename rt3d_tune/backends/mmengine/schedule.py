"""Budget-scaled schedules for mmengine (OpenMMLab 2.x) configs.

The mmengine counterpart of :mod:`rt3d_tune.schedules.budget`, over ``param_scheduler`` and
``train_cfg`` instead of ``lr_config`` and ``runner``.

:func:`scale_param_schedulers` rewrites ``param_scheduler`` so that a short trial follows
the full run's LR/momentum curve compressed in time, ratio ``r = trial / full``. mmengine
computes a scheduler's value for step ``k`` (an epoch, or an iteration) at *place* ``k``,
from ``begin`` up to its last step ``end - 1``; every place tied to the run length moves
from ``k`` to ``k * r``, in the scheduler's own unit:

* ``begin``, ``milestones`` (MultiStep*), the ``periods`` boundaries (CosineRestart*),
  ``T_max`` (CosineAnnealing*) and ``total_steps`` (OneCycle*) measured from ``begin``,
  and ``step_size`` (Step*, a period; expanded to the decays inside the full run as a
  MultiStep* when it does not scale to a whole step).
* ``end``: absent stays absent, and an ``end`` at the full length becomes the trial's
  (the scheduler runs to the end of training); mmengine's INF stays; any other ``end`` is
  the place where the entry stops and the next one takes over, and moves like a place:
  an entry's scaled ``end`` is the scaled ``begin`` of an entry that began there, so a
  cyclic schedule (two CosineAnnealing entries meeting at the peak) still meets at the
  peak. LinearLR/ConstantLR/PolyLR are the exception: their curve spans
  ``begin .. end - 1`` (mmengine's ``total_iters = end - begin - 1``), so their last step
  moves instead and ``end`` is one past it; they keep their shape
  (``PolyLR(end=max + 1)``, the ``(1 - p)**power`` of mmcv, exactly), and between that
  ``end`` and the next entry's ``begin`` the LR holds their last value, as in the full
  run. An implicit ``T_max``/``total_steps`` (``end - begin``) is written out when
  ``end`` moves.
* ExponentialLR ``gamma`` becomes ``gamma ** (full steps per trial step)``, so the total
  decay is the same. Factors, ``power``, ``eta_min``/``eta_min_ratio``, ``pct_start``,
  ``restart_weights`` are kept.

A by-epoch entry stays in epochs when every moved place lands on a whole epoch; else it is
written in iterations (``by_epoch=False``, ``round(place * iters_per_epoch)``, halves up),
``convert_to_iter_based=True`` entries too (mmengine cannot convert fractional epochs).
A smooth by-epoch curve written in iterations then changes every iteration instead of
once per epoch: it passes through the full curve's per-epoch values at the matching
progress, between them it is smoother.

An LR warm-up counted in iterations (LinearLR with a rising factor, or ConstantLR, from
iteration 0, ``by_epoch=False``, ``end`` at most :data:`WARMUP_MAX_ITERS` and at most half
the full run) is NOT scaled, as :mod:`rt3d_tune.schedules.budget` keeps mmcv's ``warmup_iters``:
it guards the first updates of a fresh model whatever the length of training
(``keep_iter_warmup=False`` scales it too). Types other than mmengine's, and
ReduceOnPlateau* (driven by a metric), cannot be scaled: ConfigError, hinting at
``stop.schedule: truncated``.

Pure: nothing here imports mmengine or torch (:mod:`.simulate` steps mmengine's own
schedulers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

from rt3d_tune.backends.mmengine.dialect import (
    train_loop,
    type_name,
)
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget, Scaling

__all__ = [
    "INF",
    "WARMUP_MAX_ITERS",
    "describe_param_scaling",
    "mmengine_budget",
    "scale_param_schedulers",
    "warmup_end",
]

INF = int(1e9)
"""mmengine's ``end`` for a scheduler that never stops (``param_scheduler.INF``)."""

WARMUP_MAX_ITERS = 1000
"""The longest iteration warm-up kept unscaled (mmdet's schedules use 500 or 1000)."""

_TRUNCATED_HINT = "use stop.schedule: truncated"

# mmengine's registered schedulers: type name -> kind.
_KINDS = ("Constant", "CosineAnnealing", "CosineRestart", "Exponential", "Linear", "MultiStep",
          "OneCycle", "Poly", "ReduceOnPlateau", "Step")
_SCHEDULERS = {
    **{f"{kind}{suffix}": kind for kind in _KINDS for suffix in ("LR", "ParamScheduler")},
    **{f"{kind}Momentum": kind for kind in _KINDS if kind != "OneCycle"},
}
# Kinds whose curve spans begin .. end - 1 (mmengine's total_iters = end - begin - 1).
_SPAN_KINDS = ("Constant", "Linear", "Poly")


# the training length -------------------------------------------------------------------
def mmengine_budget(cfg: Mapping[str, Any], iters_per_epoch: int) -> Budget:
    """The budget of ``cfg``'s ``train_cfg`` (``max_epochs`` of an epoch loop,
    ``max_iters`` of an iteration loop).

    Raises:
        ConfigError: a missing or malformed ``train_cfg``; ``iters_per_epoch`` < 1.
    """
    iter_based, length = train_loop(plain_dict(cfg))
    if iter_based:
        return Budget(iters=length, iters_per_epoch=iters_per_epoch)
    return Budget(epochs=length, iters_per_epoch=iters_per_epoch)


# where places go ------------------------------------------------------------------------
def _half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def _number(value: Any, key_path: str) -> Fraction:
    """A step count (epochs or iterations) as an exact fraction."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 \
            or not math.isfinite(value):
        raise ConfigError("a scheduler step must be a number >= 0", key_path=key_path,
                          expected="an int >= 0", given=value)
    return Fraction(value)


def _moved(scaling: Scaling, places: Mapping[str, Fraction], epochs: bool
           ) -> tuple[bool, int, dict[str, int]]:
    """An entry's full places -> ``(in_epochs, per_step, trial places)`` by
    :meth:`Scaling.moved`; ``per_step`` is the iterations one trial step covers (1 in
    epochs or iterations alike when the entry keeps its unit): for Exponential's gamma."""
    in_epochs, moved = scaling.moved(list(places.values()), epochs)
    per_step = scaling.full.iters_per_epoch if epochs and not in_epochs else 1
    return in_epochs, per_step, dict(zip(places, moved, strict=True))


def _is_iter_warmup(entry: Mapping[str, Any], name: str, full: Budget) -> bool:
    """An LR warm-up counted in iterations (see the module docstring)."""
    kind = _SCHEDULERS[name]
    is_lr = name.endswith("LR") or (name.endswith("ParamScheduler")
                                    and entry.get("param_name") == "lr")
    rising = kind == "Constant" or (
        kind == "Linear" and entry.get("start_factor", 1 / 3) < entry.get("end_factor", 1.0))
    end = entry.get("end")
    return (is_lr and rising and entry.get("by_epoch", True) is False
            and not entry.get("convert_to_iter_based", False) and entry.get("begin", 0) == 0
            and isinstance(end, int) and not isinstance(end, bool)
            and end <= min(WARMUP_MAX_ITERS, full.total_iters // 2))


def _check_warmup(entry: Mapping[str, Any], key: str, trial: Budget) -> None:
    if entry["end"] > trial.total_iters:
        raise ConfigError(
            "the warm-up is longer than the whole trial", key_path=f"{key}.end",
            expected=f"at most the trial's {trial.total_iters} iterations ({trial.describe()})",
            given=entry["end"],
            hint="an iteration warm-up is not scaled with the budget: shorten it, count it in "
            "epochs (by_epoch=True), or give trials a longer budget")


def _scale_entry(entry: dict[str, Any], key: str, full: Budget, trial: Budget,
                 keep_iter_warmup: bool) -> dict[str, Any]:
    """One scheduler dict (a copy) rescaled; see the module docstring for the rules."""
    name = type_name(entry.get("type"))
    if name not in _SCHEDULERS:
        raise ConfigError("not one of mmengine's schedulers, so its steps cannot be scaled to "
                          "the trial's budget", key_path=f"{key}.type", given=entry.get("type"),
                          expected="one of " + ", ".join(sorted(_SCHEDULERS)),
                          hint=_TRUNCATED_HINT)
    kind = _SCHEDULERS[name]
    if kind == "ReduceOnPlateau":
        raise ConfigError(f"{name} follows a validation metric, not the training length, so "
                          "it cannot be scaled to the trial's budget", key_path=f"{key}.type",
                          given=entry["type"], hint=_TRUNCATED_HINT)
    by_epoch = entry.get("by_epoch", True)
    if by_epoch and full.iter_based:
        raise ConfigError("by_epoch=True needs an epoch-based train loop",
                          key_path=f"{key}.by_epoch", expected="False with IterBasedTrainLoop",
                          given=by_epoch)
    if keep_iter_warmup and _is_iter_warmup(entry, name, full):
        _check_warmup(entry, key, trial)
        return entry
    epochs = bool(by_epoch)
    scaling = Scaling(full, trial)
    full_len = scaling.length(full, epochs)

    begin = _number(entry.get("begin", 0), f"{key}.begin")
    end = _number(entry["end"], f"{key}.end") if entry.get("end") is not None else None
    if end is not None and end <= begin:
        raise ConfigError("a scheduler must end after it begins", key_path=f"{key}.end",
                          expected=f"more than begin={entry.get('begin', 0)}", given=entry["end"])
    places = {"begin": begin}
    # end: absent -> the trial's default; at the full length -> the trial's; INF -> INF.
    end_moves = end is not None and end != full_len and end < INF
    if end_moves:
        assert end is not None
        # a span kind's shape ends at its last step; any other entry's at its end
        places["end"] = end - 1 if kind in _SPAN_KINDS else end
    # a length from begin (T_max, total_steps), explicit or mmengine's end - begin
    length_key = {"CosineAnnealing": "T_max", "OneCycle": "total_steps"}.get(kind)
    length = None
    if length_key is not None:
        if entry.get(length_key) is not None:
            length = _number(entry[length_key], f"{key}.{length_key}")
        elif end_moves:  # mmengine's end - begin, written out as end moves differently
            assert end is not None
            length = end - begin
        if length is not None:
            places["length_end"] = begin + length
    milestones: list[Fraction] = []
    if kind == "MultiStep":
        milestones = [_number(m, f"{key}.milestones") for m in entry["milestones"]]
        places.update({f"m{i}": begin + m for i, m in enumerate(milestones)})
    boundaries: list[Fraction] = []
    if kind == "CosineRestart":
        periods = [_number(p, f"{key}.periods") for p in entry["periods"]]
        boundaries = [begin + sum(periods[: i + 1]) for i in range(len(periods))]
        places.update({f"b{i}": b for i, b in enumerate(boundaries)})
    step = _number(entry["step_size"], f"{key}.step_size") if kind == "Step" else None
    if step is not None:
        places["step"] = step  # a period: it moves whole or the entry expands below

    in_epochs, per_step, moved = _moved(scaling, places, epochs)
    out = dict(entry)
    if "begin" in entry or moved["begin"]:
        out["begin"] = moved["begin"]
    if not in_epochs and epochs:
        out["by_epoch"] = False
        out.pop("convert_to_iter_based", None)
    if end is not None:
        if end_moves:
            if kind in _SPAN_KINDS:
                floor = 2 if end - begin >= 2 else 1
                out["end"] = max(moved["end"] + 1, moved["begin"] + floor)
            else:
                out["end"] = moved["end"]
        elif end == full_len:
            out["end"] = scaling.length(trial, in_epochs)
        out["end"] = max(out["end"], moved["begin"] + 1)  # mmengine needs end > begin
    if length is not None:
        assert length_key is not None
        value = max(1, moved["length_end"] - moved["begin"])
        if kind == "OneCycle":  # it raises past total_steps: cover every step the trial takes
            stop = min(out.get("end", INF), scaling.length(trial, in_epochs))
            value = max(value, stop - 1 - moved["begin"])
        out[length_key] = value
    if kind == "MultiStep":
        out["milestones"] = [moved[f"m{i}"] - moved["begin"] if m == 0
                             else max(1, moved[f"m{i}"] - moved["begin"])
                             for i, m in enumerate(milestones)]
    if kind == "CosineRestart":
        _set_periods(out, [moved[f"b{i}"] - moved["begin"] for i in range(len(boundaries))])
    if kind == "Exponential":
        out["gamma"] = _scaled_gamma(entry.get("gamma"), scaling, per_step, key)
    if step is not None:
        _set_step(out, entry, name, scaling, epochs, in_epochs, begin, end, step)
    return out


def _scaled_gamma(gamma: Any, scaling: Scaling, per_step: int, key: str) -> float:
    """Exponential ``gamma`` per trial step: the full run's per step, to the power of the
    full steps one trial step covers."""
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or gamma <= 0:
        raise ConfigError("an exponential gamma must be a number > 0 to be rescaled",
                          key_path=f"{key}.gamma", expected="a number > 0", given=gamma,
                          hint=_TRUNCATED_HINT)
    return float(gamma) ** float(1 / (scaling.ratio * per_step))


def _set_periods(out: dict[str, Any], ends: list[int]) -> None:
    """CosineRestart: periods from the moved cumulative boundaries; a period that shrank
    to nothing is dropped with its restart weight."""
    lengths = [b - a for a, b in zip([0, *ends[:-1]], ends)]
    kept = [i for i, length in enumerate(lengths) if length > 0] or [len(lengths) - 1]
    out["periods"] = [max(1, lengths[i]) for i in kept]
    weights = out.get("restart_weights", (1,))
    if len(kept) < len(lengths) and len(weights) == len(lengths):
        out["restart_weights"] = type(weights)(weights[i] for i in kept)


def _set_step(out: dict[str, Any], entry: Mapping[str, Any], name: str, scaling: Scaling,
              epochs: bool, in_epochs: bool, begin: Fraction, end: Fraction | None,
              step: Fraction) -> None:
    """Step: the period when it moves to a whole trial step, else the decays inside the
    full run as a MultiStep of the same family (each within half a step of its place)."""
    unit = 1 if in_epochs or not epochs else scaling.full.iters_per_epoch
    period = step * scaling.ratio * unit
    if period.denominator == 1 and period >= 1:
        out["step_size"] = int(period)
        return
    full_len = Fraction(scaling.length(scaling.full, epochs))
    stop = min(end if end is not None else full_len, full_len)
    decays = [begin + step * k for k in range(1, int((stop - begin) / step) + 2)
              if begin + step * k < stop] or [begin + step]
    start = _half_up(begin * scaling.ratio * unit)
    milestones = [max(1, _half_up(d * scaling.ratio * unit) - start) for d in decays]
    out["type"] = _retyped(entry["type"], "MultiStep" + name[len("Step"):])
    del out["step_size"]
    out["milestones"] = milestones


def _retyped(old: Any, new: str) -> Any:
    """``new`` in the spelling of ``old`` (a scoped name, or mmengine's class)."""
    if isinstance(old, str):
        return f"{old.rsplit('.', 1)[0]}.{new}" if "." in old else new
    from mmengine.registry import PARAM_SCHEDULERS

    return PARAM_SCHEDULERS.get(new)


def _entries(schedulers: Any, key: str) -> Iterator[tuple[str, Any, Any, Any]]:
    """``(key path, container, index, entry)`` of every scheduler in ``param_scheduler``:
    one dict (container None), a list of them, or (several optimizers) a dict of those by
    optimizer name."""
    if isinstance(schedulers, Mapping) and "type" in schedulers:
        yield key, None, None, schedulers
    elif isinstance(schedulers, Mapping):
        for name, value in schedulers.items():
            for path, container, index, entry in _entries(value, f"{key}.{name}"):
                if container is None:
                    container, index = schedulers, name
                yield path, container, index, entry
    elif isinstance(schedulers, (list, tuple)):
        for index, entry in enumerate(schedulers):
            yield f"{key}.{index}", schedulers, index, entry
    else:
        raise ConfigError("param_scheduler is a scheduler dict or a list of them",
                          key_path=key, given=schedulers)


def _lists(schedulers: Any) -> Any:
    """``param_scheduler`` with its tuples of schedulers as lists (to be edited)."""
    if isinstance(schedulers, tuple):
        return list(schedulers)
    if isinstance(schedulers, Mapping) and "type" not in schedulers:
        return {name: _lists(value) for name, value in schedulers.items()}
    return schedulers


def scale_param_schedulers(cfg: Mapping[str, Any], full: Budget, trial: Budget, *,
                           keep_iter_warmup: bool = True) -> dict[str, Any]:
    """``cfg`` with ``param_scheduler`` rescaled from ``full`` to ``trial`` and
    ``train_cfg.max_epochs`` (``max_iters``) set to the trial's.

    See the module docstring for the rules. Pure: mmengine is not imported (unless a
    StepLR given as mmengine's class must become a MultiStepLR).

    Args:
        cfg: an mmengine config (a mapping, or an mmengine Config); not modified.
        full: the budget ``cfg`` was written for (see :func:`mmengine_budget`).
        trial: the trial's budget (same kind, epochs or iterations, as ``full``).
        keep_iter_warmup: keep an iteration LR warm-up unscaled (the default).

    Returns:
        A new config of plain dicts, lists and tuples (a copy even when nothing changes).

    Raises:
        ConfigError: an unknown scheduler type (``param_scheduler.<i>.type``, hinting at
            ``stop.schedule: truncated``), ReduceOnPlateau, a scheduler object, a bad
            step value, ``by_epoch=True`` under an iteration loop, an iteration warm-up
            longer than the trial, or budgets that do not match ``train_cfg``.
    """
    out = plain_dict(cfg)
    if full.iter_based != trial.iter_based or full.iters_per_epoch != trial.iters_per_epoch:
        raise ConfigError("the trial and the full budget count different units",
                          key_path="train_cfg", expected=f"a trial counted like "
                          f"{full.describe()} of {full.iters_per_epoch} iterations",
                          given=f"{trial.describe()} of {trial.iters_per_epoch} iterations")
    iter_based, _ = train_loop(out)
    if iter_based != full.iter_based:
        raise ConfigError("the budget does not match the config's train loop",
                          key_path="train_cfg",
                          expected="max_iters" if full.iter_based else "max_epochs",
                          given=out.get("train_cfg"))
    out["train_cfg"]["max_iters" if iter_based else "max_epochs"] = \
        trial.iters if iter_based else trial.epochs
    schedulers = out.get("param_scheduler")
    if full == trial or schedulers is None:
        return out
    out["param_scheduler"] = _lists(schedulers)
    for key, container, index, entry in list(_entries(out["param_scheduler"],
                                                      "param_scheduler")):
        if not isinstance(entry, Mapping):
            raise ConfigError("a scheduler object cannot be scaled to the trial's budget",
                              key_path=key, given=entry, hint=_TRUNCATED_HINT)
        scaled = _scale_entry(dict(entry), key, full, trial, keep_iter_warmup)
        if container is None:
            out["param_scheduler"] = scaled
        else:
            container[index] = scaled
    return out


# in words -------------------------------------------------------------------------------
_PLACE_KEYS = ("begin", "end", "milestones", "step_size", "T_max", "total_steps", "periods")


def _unit(entry: Mapping[str, Any]) -> str:
    return "epochs" if entry.get("by_epoch", True) else "iterations"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, type):
        return value.__name__
    return repr(value)


def describe_param_scaling(full_cfg: Mapping[str, Any], scaled_cfg: Mapping[str, Any]
                           ) -> list[str]:
    """One line per value :func:`scale_param_schedulers` changed, e.g.
    ``param_scheduler.1.milestones: [8, 11] (epochs) -> [20, 28] (iterations, by_epoch=False)``.

    Steps carry their unit (and the flag that changed it). Empty when nothing changed.
    """
    full, scaled = plain_dict(full_cfg), plain_dict(scaled_cfg)
    lines = []
    loop_full, loop_trial = full.get("train_cfg") or {}, scaled.get("train_cfg") or {}
    for key in ("max_epochs", "max_iters"):
        if key in loop_full and loop_full.get(key) != loop_trial.get(key):
            lines.append(f"train_cfg.{key}: {loop_full[key]} -> {loop_trial.get(key)}")
    if full.get("param_scheduler") is None:
        return lines
    old_entries = list(_entries(full["param_scheduler"], "param_scheduler"))
    new_entries = {path: entry for path, _, _, entry in
                   _entries(scaled["param_scheduler"], "param_scheduler")}
    for path, _, _, old in old_entries:
        new = new_entries.get(path)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old == new:
            continue
        units = (_unit(old), _unit(new))
        for key in [*new, *(k for k in old if k not in new)]:
            place = key in _PLACE_KEYS
            if key in ("by_epoch", "convert_to_iter_based") or (
                    old.get(key) == new.get(key) and not (place and units[0] != units[1]
                                                          and key in old)):
                continue
            left = _fmt(old[key]) if key in old else "(unset)"
            right = _fmt(new[key]) if key in new else "(unset)"
            if place and key in old:
                left += f" ({units[0]})"
            if place and key in new:
                right += f" ({units[1]}, by_epoch=False)" if units[0] != units[1] \
                    else f" ({units[1]})"
            lines.append(f"{path}.{key}: {left} -> {right}")
    return lines


def warmup_end(cfg: Mapping[str, Any], iters_per_epoch: int) -> int | None:
    """The iteration where the first LR warm-up (a rising LinearLR from 0) reaches its
    end factor, None without one: where ``rt3d-tune schedule`` shows the end of warmup."""
    schedulers = cfg.get("param_scheduler")
    if schedulers is None:
        return None
    try:
        entries = [entry for _, _, _, entry in _entries(plain_dict(schedulers), "param_scheduler")]
    except ConfigError:
        return None
    for entry in entries:
        if not isinstance(entry, Mapping) or type_name(entry.get("type")) != "LinearLR":
            continue
        end = entry.get("end")
        if entry.get("begin", 0) != 0 or not isinstance(end, (int, float)) or end >= INF \
                or entry.get("start_factor", 1 / 3) >= entry.get("end_factor", 1.0):
            continue
        if not entry.get("by_epoch", True):
            return int(end) - 1 or None
        if entry.get("convert_to_iter_based", False):  # stepped every iteration
            return int(end * iters_per_epoch) - 1 or None
        return int((end - 1) * iters_per_epoch) or None  # stepped at each epoch's start
    return None
