"""The LR and momentum schedules against hand-computed values (mmcv 1.7 semantics).

Part 1 checks each policy function at its edges with small literal numbers. Part 2 is
the contract: every policy x every warmup type x by_epoch both ways x warmup_by_epoch,
driven through the real hooks (``simulate_schedule``), against reference formulas
written out here from RUNTIME_SPEC.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from rt3d_tune.backends.mmcv.simulate import simulate_schedule
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules import policies as schedules

C = math.cos
PI = math.pi


def cos_between(start: float, end: float, f: float, w: float = 1.0) -> float:
    """Half a cosine from start to end: the spec's annealing_cos."""
    return end + w * (start - end) * (1 + C(PI * f)) / 2


def approx(expected: float) -> Any:
    return pytest.approx(expected, rel=1e-12, abs=1e-15)


# Part 1: each policy at its edges ----------------------------------------------------
# (factory, kwargs, max_progress, base, {progress: expected})
EDGE_CASES: list[tuple[str, Callable[..., Any], dict[str, Any], int, float, dict[int, float]]] = [
    ("fixed", schedules.fixed, {}, 10, 0.1, {0: 0.1, 9: 0.1}),
    ("step int", schedules.step, {"step": 3}, 10, 1.0,
     {0: 1.0, 2: 1.0, 3: 0.1, 5: 0.1, 6: 0.01, 9: 0.001}),
    ("step list", schedules.step, {"step": [8, 11]}, 12, 1.0,
     {0: 1.0, 7: 1.0, 8: 0.1, 10: 0.1, 11: 0.01}),
    ("step min_lr", schedules.step, {"step": [8, 11], "min_lr": 0.05}, 12, 1.0,
     {7: 1.0, 8: 0.1, 11: 0.05}),
    ("step gamma", schedules.step, {"step": 2, "gamma": 0.5}, 6, 2.0, {1: 2.0, 2: 1.0, 5: 0.5}),
    ("exp", schedules.exp, {"gamma": 0.5}, 10, 1.0, {0: 1.0, 1: 0.5, 3: 0.125}),
    ("poly", schedules.poly, {"power": 2.0, "min_lr": 0.1}, 10, 1.1, {0: 1.1, 5: 0.35, 9: 0.11}),
    ("poly default", schedules.poly, {}, 4, 1.0, {0: 1.0, 1: 0.75, 3: 0.25}),
    ("inv", schedules.inv, {"gamma": 1.0, "power": 2.0}, 10, 1.0, {0: 1.0, 1: 0.25, 3: 1 / 16}),
    ("cosine min_lr", schedules.cosine_annealing, {"min_lr": 0.0}, 4, 1.0,
     {0: 1.0, 1: (1 + C(PI / 4)) / 2, 2: 0.5, 3: (1 + C(3 * PI / 4)) / 2}),
    ("cosine ratio", schedules.cosine_annealing, {"min_lr_ratio": 0.1}, 4, 2.0, {0: 2.0, 2: 1.1}),
    ("linear min_lr", schedules.linear_annealing, {"min_lr": 0.0}, 4, 1.0,
     {0: 1.0, 1: 0.75, 3: 0.25}),
    ("linear ratio", schedules.linear_annealing, {"min_lr_ratio": 0.5}, 4, 2.0, {2: 1.5}),
    # s = round(5 * 0.5) = round(2.5) = 2 (Python rounds half to even, as mmcv)
    ("flat cosine half", schedules.flat_cosine_annealing, {"start_percent": 0.5, "min_lr": 0.0},
     5, 1.0, {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.75, 4: 0.25}),
    # s = round(12 * 0.75) = 9
    ("flat cosine", schedules.flat_cosine_annealing, {"min_lr": 0.0}, 12, 1.0,
     {8: 1.0, 9: 1.0, 10: 0.75, 11: 0.25}),
    ("cosine restart", schedules.cosine_restart,
     {"periods": [4, 2], "restart_weights": [1, 0.5], "min_lr": 0.0}, 6, 1.0,
     {0: 1.0, 2: 0.5, 3: (1 + C(3 * PI / 4)) / 2, 4: 0.5, 5: 0.25}),
    # L = 10, U = 4, peak 10, end 1e-4
    ("cyclic", schedules.cyclic, {}, 10, 1.0,
     {0: 1.0, 2: 5.5, 3: cos_between(1, 10, 0.75), 4: 10.0, 7: 5.00005,
      9: cos_between(10, 1e-4, 5 / 6)}),
    ("cyclic linear", schedules.cyclic, {"anneal_strategy": "linear"}, 10, 1.0,
     {1: 3.25, 2: 5.5, 4: 10.0, 7: 5.00005}),
    # two cycles of 10, the second scaled by gamma: peak 1 - 0.5 + 10 * 0.5 = 5.5
    ("cyclic gamma", schedules.cyclic, {"cyclic_times": 2, "gamma": 0.5}, 20, 1.0,
     {9: cos_between(10, 1e-4, 5 / 6), 10: 1.0, 12: 3.25, 14: 5.5, 17: 2.75005}),
    # 11 // 2 = 5 per cycle; iteration 10 starts a third, partial cycle
    ("cyclic remainder", schedules.cyclic, {"cyclic_times": 2, "target_ratio": 5.0}, 11, 1.0,
     {0: 1.0, 2: 5.0, 5: 1.0, 10: 1.0}),
    # OneCycle, base = initial = max_lr / div_factor = 0.25, final = 0.0025; T = 8:
    # phase ends 0.25*8 - 1 = 1 and 7
    ("one cycle", schedules.one_cycle, {"div_factor": 4, "final_div_factor": 100,
                                        "pct_start": 0.25}, 8, 0.25,
     {0: 0.25, 1: 1.0, 2: cos_between(1.0, 0.0025, 1 / 6), 4: 0.50125, 7: 0.0025}),
    # three phases end at 1, 2*0.25*8 - 2 = 2, 7
    ("one cycle three", schedules.one_cycle, {"div_factor": 4, "final_div_factor": 100,
                                              "pct_start": 0.25, "three_phase": True}, 8, 0.25,
     {0: 0.25, 1: 1.0, 2: 0.25, 3: cos_between(0.25, 0.0025, 0.2), 7: 0.0025}),
    ("one cycle linear", schedules.one_cycle,
     {"div_factor": 4, "final_div_factor": 100, "pct_start": 0.25, "three_phase": True,
      "anneal_strategy": "linear"}, 8, 0.25, {3: 0.2005, 6: 0.052}),
    # total_steps 16 > 8 iterations: phase ends 3 and 15
    ("one cycle total_steps", schedules.one_cycle,
     {"div_factor": 4, "final_div_factor": 100, "pct_start": 0.25, "total_steps": 16}, 8, 0.25,
     {3: 1.0, 7: 0.750625}),
    # 0.3 * 10 = 3.0000000000000004: the first phase ends just after 2, not at 2
    ("one cycle float end", schedules.one_cycle, {"div_factor": 4}, 10, 0.25,
     {2: cos_between(0.25, 1.0, 2 / (0.3 * 10 - 1)),
      3: cos_between(1.0, 0.25 / 1e4, (3 - (0.3 * 10 - 1)) / (9 - (0.3 * 10 - 1)))}),
    ("step momentum", schedules.step_momentum, {"step": 2}, 6, 0.9, {0: 0.9, 2: 0.45, 4: 0.225}),
    ("step momentum min", schedules.step_momentum, {"step": 2, "min_momentum": 0.3}, 6, 0.9,
     {3: 0.45, 4: 0.3}),
    ("cosine momentum", schedules.cosine_annealing_momentum, {"min_momentum_ratio": 0.5}, 2, 0.9,
     {0: 0.9, 1: 0.675}),
    ("linear momentum", schedules.linear_annealing_momentum, {"min_momentum": 0.8}, 4, 0.9,
     {0: 0.9, 2: 0.85}),
    ("cyclic momentum", schedules.cyclic_momentum, {}, 10, 0.95,
     {0: 0.95, 2: 0.9, 4: 0.85, 7: 0.9, 9: cos_between(0.85, 0.95, 5 / 6)}),
]


@pytest.mark.parametrize("name,factory,kwargs,total,base,expected", EDGE_CASES,
                         ids=[case[0] for case in EDGE_CASES])
def test_policy_edges(name: str, factory: Callable[..., Any], kwargs: dict[str, Any], total: int,
                      base: float, expected: dict[int, float]) -> None:
    value = factory(**kwargs)
    for progress, want in expected.items():
        assert value(progress, total, base) == approx(want), f"progress {progress}"


@pytest.mark.parametrize("three_phase,expected", [
    (False, {0: 0.95, 1: 0.85, 4: 0.9, 7: 0.95}),
    (True, {0: 0.95, 1: 0.85, 2: 0.95, 5: 0.95, 7: 0.95}),
])
def test_one_cycle_momentum_edges(three_phase: bool, expected: dict[int, float]) -> None:
    value = schedules.one_cycle_momentum(pct_start=0.25, three_phase=three_phase)
    for it, want in expected.items():
        assert value(it, 8, 0.85, 0.95) == approx(want)


def test_annealing_functions() -> None:
    assert schedules.annealing_cos(1.0, 0.0, 0.0) == 1.0
    assert schedules.annealing_cos(1.0, 0.0, 1.0) == 0.0
    assert schedules.annealing_cos(1.0, 0.0, 0.5, weight=0.5) == approx(0.25)
    assert schedules.annealing_linear(2.0, 1.0, 0.25) == 1.75


@pytest.mark.parametrize("warmup,t,expected", [
    ("constant", 0, 0.1), ("constant", 9, 0.1),
    ("linear", 0, 0.1), ("linear", 5, 0.55), ("linear", 9, 0.91),
    ("exp", 0, 0.1), ("exp", 5, 0.1 ** 0.5),
])
def test_warmup_factor(warmup: str, t: int, expected: float) -> None:
    assert schedules.warmup_factor(warmup, t, 10, 0.1) == approx(expected)


BAD_ARGS = [
    (schedules.step, {"step": 0}, "lr_config.step"),
    (schedules.step, {"step": [11, 8]}, "lr_config.step"),
    (schedules.step, {"step": 2.5}, "lr_config.step"),
    (schedules.step, {"step": 3, "gamma": "x"}, "lr_config.gamma"),
    (schedules.exp, {"gamma": None}, "lr_config.gamma"),
    (schedules.cosine_annealing, {}, "lr_config"),
    (schedules.cosine_annealing, {"min_lr": 0, "min_lr_ratio": 0.1}, "lr_config"),
    (schedules.linear_annealing, {"min_lr_ratio": "a"}, "lr_config.min_lr_ratio"),
    (schedules.flat_cosine_annealing, {"start_percent": 1.0, "min_lr": 0},
     "lr_config.start_percent"),
    (schedules.flat_cosine_annealing, {"start_percent": -0.1, "min_lr": 0},
     "lr_config.start_percent"),
    (schedules.cosine_restart, {"periods": [5, 5], "restart_weights": [1], "min_lr": 0},
     "lr_config.restart_weights"),
    (schedules.cosine_restart, {"periods": [], "min_lr": 0}, "lr_config.periods"),
    (schedules.cyclic, {"by_epoch": True}, "lr_config.by_epoch"),
    (schedules.cyclic, {"step_ratio_up": 1.0}, "lr_config.step_ratio_up"),
    (schedules.cyclic, {"target_ratio": (1, 2, 3)}, "lr_config.target_ratio"),
    (schedules.cyclic, {"anneal_strategy": "tri"}, "lr_config.anneal_strategy"),
    (schedules.cyclic, {"gamma": 0}, "lr_config.gamma"),
    (schedules.cyclic, {"cyclic_times": 0}, "lr_config.cyclic_times"),
    (schedules.one_cycle, {"pct_start": 1.5}, "lr_config.pct_start"),
    (schedules.one_cycle, {"total_steps": 2.5}, "lr_config.total_steps"),
    (schedules.one_cycle, {"div_factor": 0}, "lr_config.div_factor"),
    (schedules.step_momentum, {"step": 2, "min_momentum": "x"}, "lr_config.min_momentum"),
    (schedules.cosine_annealing_momentum, {}, "lr_config"),
]


@pytest.mark.parametrize("factory,kwargs,key", BAD_ARGS,
                         ids=[f"{f.__name__}-{k}" for f, k, _ in BAD_ARGS])
def test_bad_arguments_name_their_key(factory: Callable[..., Any], kwargs: dict[str, Any],
                                      key: str) -> None:
    with pytest.raises(ConfigError) as info:
        factory(key_path="lr_config", **kwargs)
    assert info.value.key_path == key


@pytest.mark.parametrize("warmup,iters,ratio,key", [
    ("cosine", 5, 0.1, "lr_config.warmup"),
    ("linear", 0, 0.1, "lr_config.warmup_iters"),
    ("linear", 2.5, 0.1, "lr_config.warmup_iters"),
    ("exp", 5, 0.0, "lr_config.warmup_ratio"),
    ("constant", 5, 1.5, "lr_config.warmup_ratio"),
])
def test_bad_warmup(warmup: str, iters: Any, ratio: Any, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        schedules.check_warmup(warmup, iters, ratio, "lr_config")
    assert info.value.key_path == key


@pytest.mark.parametrize("factory,kwargs,total,key", [
    (schedules.cosine_restart, {"periods": [5, 4], "restart_weights": [1, 1], "min_lr": 0}, 10,
     "periods"),
    (schedules.cyclic, {"cyclic_times": 4}, 3, "cyclic_times"),
    (schedules.one_cycle, {"total_steps": 9}, 10, "total_steps"),
])
def test_run_time_checks(factory: Callable[..., Any], kwargs: dict[str, Any], total: int,
                         key: str) -> None:
    value = factory(**kwargs)
    with pytest.raises(ConfigError) as info:
        value(0, total, 1.0)
    assert info.value.key_path == key


# Part 2: the contract, through the hooks ---------------------------------------------
EPOCHS, ITERS_PER_EPOCH = 4, 5
BASE_LR, BASE_MOMENTUM = 0.1, 0.9


def ref_warmup(kind: str | None, t: int, w: int, k: float) -> float:
    if kind is None or t >= w:
        return 1.0
    return {"constant": k, "linear": 1 - (1 - t / w) * (1 - k), "exp": k ** (1 - t / w)}[kind]


def ref_value(policy: str, a: dict[str, Any], p: int, n: int, b: float) -> float:
    """The regular value of ``policy`` at progress p of n, base b (RUNTIME_SPEC.md)."""
    target = a.get("min_lr", a.get("min_momentum"))
    if target is None:
        target = b * a.get("min_lr_ratio", a.get("min_momentum_ratio", 0))
    if policy == "Fixed":
        return b
    if policy == "Step":
        e = p // a["step"] if isinstance(a["step"], int) else len([m for m in a["step"] if m <= p])
        return max(b * a.get("gamma", 0.1) ** e, a.get("min_lr") or 0)
    if policy == "StepMomentum":
        return b * a.get("gamma", 0.5) ** (p // a["step"])
    if policy == "Exp":
        return b * a["gamma"] ** p
    if policy == "Poly":
        return (b - a["min_lr"]) * (1 - p / n) ** a["power"] + a["min_lr"]
    if policy == "Inv":
        return b * (1 + a["gamma"] * p) ** -a["power"]
    if policy == "CosineAnnealing":
        return cos_between(b, target, p / n)
    if policy == "LinearAnnealing":
        return b + (target - b) * p / n
    if policy == "FlatCosineAnnealing":
        s = round(n * a["start_percent"])
        return b if p < s else cos_between(b, target, (p - s) / (n - s))
    if policy == "CosineRestart":
        period = n // 2  # the contract uses two equal periods with weights 1 and 0.5
        i = p // period
        return cos_between(b, target, (p - i * period) / period, [1, 0.5][i])
    if policy == "Cyclic":
        length = n // 2  # cyclic_times=2, gamma=0.5
        up = int(0.4 * length)
        c, i = divmod(p, length)
        peak = b * (1 - 0.5**c + a["target_ratio"][0] * 0.5**c)
        if i < up:
            return cos_between(b, peak, i / up)
        return cos_between(peak, b * a["target_ratio"][1], (i - up) / (length - up))
    if policy == "OneCycle":  # max_lr 1.0, div 25, final 1e4, pct 0.25 of 20: ends 4, 19
        lo, hi, end = 1.0 / 25, 1.0, 1.0 / 25 / 1e4
        return cos_between(lo, hi, p / 4) if p <= 4 else cos_between(hi, end, (p - 4) / 15)
    if policy == "OneCycleMomentum":  # 0.85..0.95, pct 0.25 of 20: ends 4, 19
        return cos_between(0.95, 0.85, p / 4) if p <= 4 else cos_between(0.85, 0.95, (p - 4) / 15)
    raise AssertionError(policy)


def lr_policies(by_epoch: bool) -> list[tuple[str, dict[str, Any]]]:
    n = EPOCHS if by_epoch else EPOCHS * ITERS_PER_EPOCH
    policies = [
        ("Fixed", {}),
        ("Step", {"step": [1, 3]} if by_epoch else {"step": 7}),
        ("Step", {"step": [2], "gamma": 0.5, "min_lr": 0.06}),
        ("Exp", {"gamma": 0.9}),
        ("Poly", {"power": 2.0, "min_lr": 0.001}),
        ("Inv", {"gamma": 0.1, "power": 0.75}),
        ("CosineAnnealing", {"min_lr": 0.001}),
        ("CosineAnnealing", {"min_lr_ratio": 0.01}),
        ("LinearAnnealing", {"min_lr_ratio": 0.1}),
        ("FlatCosineAnnealing", {"start_percent": 0.5, "min_lr": 0.0}),
        ("CosineRestart", {"periods": [n // 2, n // 2], "restart_weights": [1, 0.5],
                           "min_lr": 0.001}),
    ]
    if not by_epoch:
        policies += [
            ("Cyclic", {"target_ratio": (10, 1e-4), "cyclic_times": 2, "gamma": 0.5}),
            ("OneCycle", {"max_lr": 1.0, "pct_start": 0.25}),
        ]
    return policies


WARMUPS = [None, "constant", "linear", "exp"]
LR_CASES = [
    (policy, args, by_epoch, warmup, by_epoch_warmup)
    for by_epoch in (True, False)
    for policy, args in lr_policies(by_epoch)
    for warmup in WARMUPS
    for by_epoch_warmup in ((False, True) if warmup else (False,))
]


def _config(lr_config: dict[str, Any] | None = None,
            momentum_config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "optimizer": {"type": "SGD", "lr": BASE_LR, "momentum": BASE_MOMENTUM},
        "runner": {"type": "EpochBasedRunner", "max_epochs": EPOCHS},
        "lr_config": lr_config,
        "momentum_config": momentum_config,
    }


@pytest.mark.parametrize(
    "policy,args,by_epoch,warmup,warmup_by_epoch", LR_CASES,
    ids=[f"{p}{i}-{'epoch' if e else 'iter'}-{w}{'-wbe' if wbe else ''}"
         for i, (p, _, e, w, wbe) in enumerate(LR_CASES)],
)
def test_lr_contract(policy: str, args: dict[str, Any], by_epoch: bool, warmup: str | None,
                     warmup_by_epoch: bool) -> None:
    # 7 iterations of warmup cross the first epoch boundary; 2 epochs are 10 iterations
    warmup_iters = 2 if warmup_by_epoch else 7
    lr_config = {"policy": policy, "by_epoch": by_epoch, **args}
    if warmup:
        lr_config.update(warmup=warmup, warmup_iters=warmup_iters, warmup_ratio=0.2,
                         warmup_by_epoch=warmup_by_epoch)
    rows = simulate_schedule(_config(lr_config), ITERS_PER_EPOCH)
    assert len(rows) == EPOCHS * ITERS_PER_EPOCH
    w = warmup_iters * ITERS_PER_EPOCH if warmup_by_epoch else warmup_iters
    base = 1.0 / 25 if policy == "OneCycle" else BASE_LR
    for row in rows:
        it, epoch = row["iter"], row["epoch"]
        p, n = (epoch, EPOCHS) if by_epoch else (it, EPOCHS * ITERS_PER_EPOCH)
        want = ref_value(policy, args, p, n, base) * ref_warmup(warmup, it, w, 0.2)
        assert row["lr"] == approx(want), f"iter {it}"
        assert row["momentum"] == BASE_MOMENTUM


def momentum_policies(by_epoch: bool) -> list[tuple[str, str, dict[str, Any]]]:
    policies = [
        ("Step", "StepMomentum", {"step": 2 if by_epoch else 7}),
        ("CosineAnnealing", "CosineAnnealing", {"min_momentum": 0.8}),
        ("LinearAnnealing", "LinearAnnealing", {"min_momentum_ratio": 0.9}),
    ]
    if not by_epoch:
        policies += [
            ("Cyclic", "Cyclic", {"target_ratio": (0.85 / 0.95, 1), "cyclic_times": 2,
                                  "gamma": 0.5}),
            ("OneCycle", "OneCycleMomentum", {"pct_start": 0.25}),
        ]
    return policies


MOMENTUM_CASES = [
    (policy, ref, args, by_epoch, warmup)
    for by_epoch in (True, False)
    for policy, ref, args in momentum_policies(by_epoch)
    for warmup in WARMUPS
]


@pytest.mark.parametrize(
    "policy,ref,args,by_epoch,warmup", MOMENTUM_CASES,
    ids=[f"{p}-{'epoch' if e else 'iter'}-{w}" for p, _, _, e, w in MOMENTUM_CASES],
)
def test_momentum_contract(policy: str, ref: str, args: dict[str, Any], by_epoch: bool,
                           warmup: str | None) -> None:
    momentum_config = {"policy": policy, "by_epoch": by_epoch, **args}
    if warmup:
        momentum_config.update(warmup=warmup, warmup_iters=7, warmup_ratio=0.8)
    rows = simulate_schedule(_config(momentum_config=momentum_config), ITERS_PER_EPOCH)
    for row in rows:
        it, epoch = row["iter"], row["epoch"]
        p, n = (epoch, EPOCHS) if by_epoch else (it, EPOCHS * ITERS_PER_EPOCH)
        want = ref_value(ref, args, p, n, BASE_MOMENTUM) / ref_warmup(warmup, it, 7, 0.8)
        assert row["momentum"] == approx(want), f"iter {it}"
        assert row["lr"] == BASE_LR
