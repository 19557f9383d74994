"""mmcv's ``lr_config`` / ``momentum_config`` as mmengine ``param_scheduler`` entries.

mmengine chains its schedulers: every step of every scheduler derives the group's new
value from its current one. Most steps multiply it (LinearLR, ConstantLR, StepLR,
MultiStepLR, ExponentialLR, and CosineAnnealingLR or PolyLR towards 0); products commute,
so mmcv's warmup, which scales the regular LR, chains exactly with them. Three kinds of
step do not multiply:

- CosineAnnealingLR, PolyLR and CosineRestartLR towards a minimum compute
  ``eta_min + f * (current - eta_min)``, so a warmup factor in ``current`` does not
  scale ``eta_min`` as mmcv scales its target;
- CosineRestartLR sets ``base * restart_weight`` at a restart (and when it is built);
- OneCycleLR sets its own value at every step.

Where such a step happens while the warmup still scales the LR, the plain chain would
drift from mmcv. A by-epoch step is bracketed instead: MultiStepLR entries divide the
warmup factor out just before it and multiply it back just after, which is exact. A
by-iteration step would need a bracket per iteration, so the chain stays plain and a
note says from which iteration it differs. A warmup under OneCycle is left out (nothing
can scale OneCycleLR's value), with a note.

Every note says exactly what the file contains; :mod:`mmengine_export` writes them at
the top of ``best_mmengine.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rt3d_tune.schedules.policies import warmup_factor

__all__ = [
    "COPIED",
    "EXPLAINED",
    "INEXACT",
    "OMITTED",
    "Note",
    "param_schedulers",
    "run_length",
]

OMITTED = "omitted"  # not in the file
INEXACT = "inexact"  # in the file, and its curve differs from mmcv's where the note says
EXPLAINED = "explained"  # exact, written in an unusual way the note explains
COPIED = "copied"  # copied as written, not checked


@dataclass(frozen=True)
class Note:
    """One thing a reader of ``best_mmengine.py`` must know: its kind and a sentence."""

    kind: str
    text: str


# mmcv's policy names, for a case-insensitive match (mmcv title-cases lowercase names).
_POLICY_NAMES = (
    "Fixed", "Step", "Exp", "Poly", "Inv", "CosineAnnealing", "FlatCosineAnnealing",
    "CosineRestart", "Cyclic", "OneCycle", "LinearAnnealing",
)


def run_length(cfg: Mapping[str, Any], iters_per_epoch: int) -> tuple[bool, int, int]:
    """``(epoch_based, max_epochs or 0, max_iters)`` of the config's runner."""
    runner = dict(cfg.get("runner") or {})
    if runner.get("type", "EpochBasedRunner") == "IterBasedRunner":
        return False, 0, int(runner["max_iters"])
    epochs = int(runner.get("max_epochs", cfg.get("total_epochs", 0)))
    return True, epochs, epochs * iters_per_epoch


@dataclass(frozen=True)
class _Span:
    """Where one schedule runs.

    ``length`` counts epochs when ``by_epoch`` (the scheduler steps at each epoch's end),
    else iterations. ``base`` is the smallest starting value of any param group (None
    when the optimizer does not say); ``uniform`` is True when every group starts there.
    """

    section: str  # 'lr_config' or 'momentum_config'
    param: str  # 'lr' or 'momentum'
    policy: str
    by_epoch: bool
    length: int
    iters_per_epoch: int
    base: float | None
    uniform: bool

    @property
    def unit(self) -> str:
        return "epoch" if self.by_epoch else "iteration"

    @property
    def suffix(self) -> str:
        return "LR" if self.param == "lr" else "Momentum"

    def entry(self, name: str, begin: int, end: int, **args: Any) -> dict[str, Any]:
        """``dict(type=<name>LR or <name>Momentum, **args, by_epoch, begin, end)``."""
        return {"type": name + self.suffix, **args, "by_epoch": self.by_epoch, "begin": begin,
                "end": end}


@dataclass(frozen=True)
class _Scheduler:
    """A scheduler dict, and its steps (0 = when it is built, then one per epoch or
    iteration) that set the value instead of multiplying the current one."""

    entry: dict[str, Any]
    fixed: tuple[range, ...] = ()

    def fixed_at(self, step: int) -> bool:
        return any(step in steps for steps in self.fixed)

    @property
    def fixed_action(self) -> str:
        """What its fixed steps do, for a note."""
        name = self.entry["type"]
        if name.startswith("CosineRestart"):
            return f"{name} restarts or steps towards its minimum"
        return f"{name} steps towards its minimum"


Policy = Callable[[Mapping[str, Any], _Span, list[Note]], list[_Scheduler]]


# --- the regular schedule, one function per mmcv policy -------------------------------
def _target(cfg: Mapping[str, Any], span: _Span) -> tuple[dict[str, float], bool]:
    """(``eta_min`` or ``eta_min_ratio`` from mmcv's minimum, whether it is nonzero)."""
    ratio = cfg.get(f"min_{span.param}_ratio")
    if ratio is not None:
        return {"eta_min_ratio": ratio}, ratio != 0
    value = cfg.get(f"min_{span.param}", 0.0)
    return {"eta_min": value}, value != 0


def _fixed(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    return []


def _step(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    step = cfg["step"]
    gamma = cfg.get("gamma", 0.1 if span.param == "lr" else 0.5)
    if isinstance(step, int):
        entry = span.entry("Step", 0, span.length, step_size=step, gamma=gamma)
        decays = list(range(step, span.length, step))
    else:
        entry = span.entry("MultiStep", 0, span.length, milestones=list(step), gamma=gamma)
        decays = [m for m in step if m < span.length]
    floor = cfg.get(f"min_{span.param}")
    if floor is not None:
        _note_step_floor(span, entry["type"], decays, gamma, floor, notes)
    return [_Scheduler(entry)]


def _note_step_floor(span: _Span, name: str, decays: list[int], gamma: float, floor: float,
                     notes: list[Note]) -> None:
    """mmengine's step schedulers have no floor: say from when mmcv's would hold."""
    floor_key = f"{span.section}.min_{span.param}={floor:g}"
    if span.base is None:
        notes.append(Note(INEXACT, f"{floor_key}: {name} has no floor; the file may go below it."))
        return
    values = [(at, span.base * gamma ** (i + 1)) for i, at in enumerate(decays)]
    below = [(at, value) for at, value in values if value < floor]
    if below:
        (at, _), (_, last) = below[0], values[-1]
        notes.append(Note(INEXACT, (
            f"{floor_key}: {name} has no floor: from {span.unit} {at} on mmcv holds the "
            f"{span.param} at {floor:g}, this file goes on down to {last:.4g} "
            f"(from {span.base:.4g})."
        )))


def _exp(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    return [_Scheduler(span.entry("Exponential", 0, span.length, gamma=cfg["gamma"]))]


def _poly(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    # PolyLR reaches eta_min at step end - begin - 1: end = length + 1 gives mmcv's
    # (1 - p / length) ** power.
    eta_min = cfg.get("min_lr", 0.0)
    entry = span.entry("Poly", 0, span.length + 1, eta_min=eta_min, power=cfg.get("power", 1.0))
    return [_Scheduler(entry, (range(1, span.length + 1),) if eta_min else ())]


def _cosine(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    return _cosine_from(0, cfg, span)


def _flat_cosine(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    return _cosine_from(round(span.length * cfg.get("start_percent", 0.75)), cfg, span)


def _cosine_from(start: int, cfg: Mapping[str, Any], span: _Span) -> list[_Scheduler]:
    if start >= span.length:  # mmcv stays flat to the end
        return []
    target, nonzero = _target(cfg, span)
    entry = span.entry("CosineAnnealing", start, span.length, T_max=span.length - start, **target)
    return [_Scheduler(entry, (range(start + 1, span.length),) if nonzero else ())]


def _linear(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    ratio = cfg.get(f"min_{span.param}_ratio")
    if ratio is None and span.uniform and span.base:
        ratio = cfg[f"min_{span.param}"] / span.base
        notes.append(Note(EXPLAINED, (
            f"{span.section}: LinearAnnealing to min_{span.param}={cfg[f'min_{span.param}']:g} "
            f"is Linear{span.suffix} with end_factor = min_{span.param} / "
            f"{span.param} = {ratio:.6g}: change both together."
        )))
    if ratio is None or not 0 <= ratio <= 1:
        reason = ("the param groups start from different values" if ratio is None
                  else f"its end_factor must be in [0, 1], got {ratio:g}")
        notes.append(Note(OMITTED, f"{span.section}: LinearAnnealing ({reason})."))
        return []
    entry = span.entry("Linear", 0, span.length + 1, start_factor=1.0, end_factor=ratio)
    return [_Scheduler(entry)]


def _cosine_restart(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    periods = list(cfg["periods"])
    weights = list(cfg.get("restart_weights", [1]))
    target, nonzero = _target(cfg, span)
    if nonzero and any(w != 1 for w in weights):
        notes.append(Note(OMITTED, (
            f"{span.section}: CosineRestart with restart_weights other than 1 and a minimum "
            "(CosineRestartLR restarts at base * weight, mmcv at min + weight * (base - min))."
        )))
        return []
    entry = span.entry("CosineRestart", 0, span.length, periods=periods,
                       restart_weights=weights, **target)
    restarts = [sum(periods[:i]) for i in range(len(periods))]
    fixed = tuple(range(r, r + 1) for r in restarts)
    return [_Scheduler(entry, fixed + ((range(1, span.length),) if nonzero else ()))]


def _cyclic(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    """One cycle of mmcv's ``cyclic`` as two cosines (up, then down).

    The up phase runs one step longer (``end = up + 1``) so that it lands on the peak
    at the iteration where mmcv starts the down phase, which starts from that value.
    """
    default = (10, 1e-4) if span.param == "lr" else (0.85 / 0.95, 1)
    ratio = cfg.get("target_ratio", default)
    if isinstance(ratio, (int, float)):
        ratio = (ratio, ratio / 1e5)
    if cfg.get("cyclic_times", 1) != 1 or cfg.get("anneal_strategy", "cos") != "cos":
        notes.append(Note(OMITTED, (
            f"{span.section}: cyclic with cyclic_times != 1 or linear annealing "
            "(mmengine has no repeating or linear cyclic scheduler)."
        )))
        return []
    up = int(cfg.get("step_ratio_up", 0.4) * span.length)
    rise = span.entry("CosineAnnealing", 0, up + 1, T_max=up, eta_min_ratio=ratio[0])
    fall = span.entry("CosineAnnealing", up, span.length, T_max=span.length - up,
                      eta_min_ratio=ratio[1])
    return [_Scheduler(rise, (range(1, up + 1),)),
            _Scheduler(fall, (range(up + 1, span.length),))]


def _one_cycle(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> list[_Scheduler]:
    total = int(cfg.get("total_steps") or span.length)
    entry = span.entry(
        "OneCycle", 0, total,
        eta_max=cfg["max_lr"],
        total_steps=total,
        pct_start=float(cfg.get("pct_start", 0.3)),
        anneal_strategy=cfg.get("anneal_strategy", "cos"),
        div_factor=cfg.get("div_factor", 25.0),
        final_div_factor=cfg.get("final_div_factor", 1e4),
        three_phase=cfg.get("three_phase", False),
    )
    return [_Scheduler(entry, (range(total),))]


_LR_POLICIES: dict[str, Policy] = {
    "Fixed": _fixed, "Step": _step, "Exp": _exp, "Poly": _poly, "CosineAnnealing": _cosine,
    "FlatCosineAnnealing": _flat_cosine, "LinearAnnealing": _linear,
    "CosineRestart": _cosine_restart, "Cyclic": _cyclic, "OneCycle": _one_cycle,
}
_MOMENTUM_POLICIES: dict[str, Policy] = {
    "Step": _step, "CosineAnnealing": _cosine, "LinearAnnealing": _linear, "Cyclic": _cyclic,
}


# --- the warmup, and how the regular schedule chains with it --------------------------
@dataclass(frozen=True)
class _Warmup:
    """mmcv's warmup: its type, length in iterations and ratio, and its mmengine entry."""

    kind: str
    iters: int
    ratio: float

    def factor(self, it: int) -> float:
        return warmup_factor(self.kind, it, self.iters, self.ratio) if it < self.iters else 1.0

    def entry(self) -> dict[str, Any]:
        # mmcv stops warming up at iteration == iters; LinearLR and ConstantLR reach
        # factor 1 at step end - begin - 1, hence end = iters + 1.
        if self.kind == "linear":
            args: dict[str, Any] = {"type": "LinearLR", "start_factor": self.ratio,
                                    "end_factor": 1.0}
        else:
            args = {"type": "ConstantLR", "factor": self.ratio}
        return {**args, "by_epoch": False, "begin": 0, "end": self.iters + 1}


def _warmup(cfg: Mapping[str, Any], span: _Span, notes: list[Note]) -> _Warmup | None:
    kind = cfg.get("warmup")
    if not kind:
        return None
    where = f"{span.section}.warmup={kind!r}"
    if span.param != "lr":
        notes.append(Note(OMITTED, f"{where} (mmengine has no momentum warmup)."))
        return None
    if kind not in ("linear", "constant"):
        notes.append(Note(OMITTED, f"{where} (mmengine has no exponential warmup)."))
        return None
    if span.policy == "OneCycle":
        notes.append(Note(OMITTED, (
            f"{where} under OneCycle (OneCycleLR sets the LR itself at every iteration, "
            "so no warmup can scale it)."
        )))
        return None
    iters = int(cfg.get("warmup_iters", 0))
    if cfg.get("warmup_by_epoch", False):
        iters *= span.iters_per_epoch
    return _Warmup(kind, iters, float(cfg.get("warmup_ratio", 0.1)))


def _bracket(scheduler: _Scheduler, warmup: _Warmup, span: _Span,
             notes: list[Note]) -> list[dict[str, Any]]:
    """A by-epoch scheduler between MultiStepLR entries that take the warmup factor out
    before each of its fixed steps that the warmup overlaps, and put it back after."""
    by_factor: dict[float, list[int]] = {}
    for epoch in range(1, span.length):
        factor = warmup.factor(epoch * span.iters_per_epoch)
        if factor != 1.0 and scheduler.fixed_at(epoch):
            by_factor.setdefault(factor, []).append(epoch)
    if not by_factor:
        return [scheduler.entry]

    def multiply(gamma: float, epochs: list[int]) -> dict[str, Any]:
        return span.entry("MultiStep", 0, span.length, milestones=epochs, gamma=gamma)

    epochs = sorted(e for group in by_factor.values() for e in group)
    notes.append(Note(EXPLAINED, (
        f"{span.section}: the {warmup.kind} warmup still scales the LR when epoch"
        f"{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))} begin"
        f"{'' if len(epochs) > 1 else 's'}, where {scheduler.fixed_action}; the MultiStepLR "
        "entries before it divide the warmup factor out and "
        "those after it multiply it back, so the curve is mmcv's."
    )))
    return ([multiply(1.0 / f, e) for f, e in by_factor.items()] + [scheduler.entry]
            + [multiply(f, e) for f, e in by_factor.items()])


def _first_drift(scheduler: _Scheduler, warmup: _Warmup, warmup_last: bool) -> int | None:
    """The first iteration at which a by-iteration scheduler's fixed step meets a
    warmed-up value (warmup_last: the warmup steps after it in the same hook)."""
    shift = 1 if warmup_last else 0
    for it in range(shift, warmup.iters + shift):
        if scheduler.fixed_at(it) and warmup.factor(it - shift) != 1.0:
            return it
    return None


def _chain(regular: list[_Scheduler], warmup: _Warmup | None, span: _Span,
           notes: list[Note]) -> list[dict[str, Any]]:
    """The regular schedulers and the warmup, in an order and form that chains exactly
    where mmengine can; a note where it cannot."""
    if warmup is None:
        return [s.entry for s in regular]
    # A scheduler that sets the value when built must be built before the warmup scales it.
    warmup_last = any(s.fixed_at(0) for s in regular)
    entries: list[dict[str, Any]] = []
    drifts: dict[int, _Scheduler] = {}
    for scheduler in regular:
        if span.by_epoch:
            entries += _bracket(scheduler, warmup, span, notes)
            continue
        entries.append(scheduler.entry)
        drift = _first_drift(scheduler, warmup, warmup_last)
        if drift is not None:
            drifts.setdefault(drift, scheduler)
    if drifts:
        first = min(drifts)
        notes.append(Note(INEXACT, (
            f"{span.section}: {drifts[first].fixed_action} while the {warmup.kind} warmup "
            f"of {warmup.iters} iterations still scales the LR, and mmengine does not apply "
            f"the warmup to that minimum as mmcv does: the LR differs from mmcv's from "
            f"iteration {first} on."
        )))
    return (entries + [warmup.entry()]) if warmup_last else ([warmup.entry()] + entries)


# --- one section ----------------------------------------------------------------------
def _base(cfg: Mapping[str, Any], param: str) -> tuple[float | None, bool]:
    """(the smallest starting value of any param group, whether all groups share it)."""
    optimizer = dict(cfg.get("optimizer") or {})
    if param == "momentum":
        value = optimizer.get("momentum", (optimizer.get("betas") or (None,))[0])
        return (float(value) if isinstance(value, (int, float)) else None), True
    paramwise = dict(optimizer.get("paramwise_cfg") or {})
    mults = [paramwise.get("bias_lr_mult")] + [
        dict(v).get("lr_mult") for v in dict(paramwise.get("custom_keys") or {}).values()
    ]
    mults = [float(m) for m in mults if m is not None]
    lr = optimizer.get("lr")
    if not isinstance(lr, (int, float)):
        return None, False
    return float(lr) * min([1.0, *mults]), not mults


def _section(cfg: Mapping[str, Any], section: str, iters_per_epoch: int,
             notes: list[Note]) -> list[dict[str, Any]]:
    sec = dict(cfg.get(section) or {})
    if not sec:
        return []
    param = "lr" if section == "lr_config" else "momentum"
    raw = str(sec.get("policy", "Fixed" if param == "lr" else ""))
    policy = {name.lower(): name for name in _POLICY_NAMES}.get(raw.lower(), raw)
    epoch_based, max_epochs, max_iters = run_length(cfg, iters_per_epoch)
    by_epoch = (bool(sec.get("by_epoch", True)) and epoch_based
                and policy not in ("Cyclic", "OneCycle"))
    base, uniform = _base(cfg, param)
    span = _Span(section, param, policy, by_epoch, max_epochs if by_epoch else max_iters,
                 iters_per_epoch, base, uniform)
    build = (_LR_POLICIES if param == "lr" else _MOMENTUM_POLICIES).get(policy)
    if build is None:
        notes.append(Note(OMITTED, f"{section}.policy={raw!r} (no mmengine scheduler does it)."))
        regular: list[_Scheduler] = []
    else:
        regular = build(sec, span, notes)
    return _chain(regular, _warmup(sec, span, notes), span, notes)


def param_schedulers(cfg: Mapping[str, Any],
                     iters_per_epoch: int) -> tuple[list[dict[str, Any]], list[Note]]:
    """mmengine's ``param_scheduler`` for the config's LR and momentum schedule.

    Args:
        cfg: the full mmcv-1.x config, as plain dicts.
        iters_per_epoch: train iterations per epoch; warmups and iteration-based
            schedulers are written in iterations from it.

    Returns:
        (the scheduler dicts, the notes on what they do not do exactly as mmcv).
    """
    notes: list[Note] = []
    entries = _section(cfg, "lr_config", iters_per_epoch, notes)
    entries += _section(cfg, "momentum_config", iters_per_epoch, notes)
    return entries, notes
