"""``rt3d_tune.schedules.budget``: a trial's schedule is the full-budget curve, resampled.

The contract part runs every LR and every momentum policy the hooks register, without
and with a linear warm-up (by iteration, by epoch), under an epoch runner (by epoch and
by iteration) and an iteration runner, onto shorter and longer trials. Each curve comes
from the real hooks (``simulate_schedule``). Checked: (a) every milestone of the full
curve at iteration ``i`` shows in the trial within one iteration of ``round(i * r)``,
and the whole trial curve stays within the full curve's values around its matching
progress; (b) relative policies come back unchanged; (c) "truncated" (the config as is,
a shorter runner) is today's curve; (d) scaling up then down gives the milestones back.
Then literal examples, the real mmdet3d schedules, and (e) bad input.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from rt3d_tune.backends.mmcv.schedule import budget_of, describe_scaling, scale_schedule
from rt3d_tune.backends.mmcv.simulate import schedule_hooks, simulate_schedule
from rt3d_tune.config import Config
from rt3d_tune.errors import ConfigError
from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hooks import lr_updater, momentum_updater
from rt3d_tune.schedules.budget import Budget, Scaling

IPE = 10  # iterations per epoch
SCHEDULES = Path(__file__).resolve().parents[2] / "configs" / "_base_" / "schedules"
WARMUP_KEYS = ("warmup", "warmup_iters", "warmup_ratio", "warmup_by_epoch")


def registered(module: Any, suffix: str) -> list[str]:
    """The policies whose hook class ``module`` registers in HOOKS (``Step`` for
    ``StepLrUpdaterHook``): a policy added there is picked up here."""
    return sorted(name[: -len(suffix)] for name in HOOKS
                  if name.endswith(suffix) and name != suffix
                  and HOOKS.get(name).__module__ == module.__name__)


LR_POLICIES = registered(lr_updater, "LrUpdaterHook")
MOMENTUM_POLICIES = registered(momentum_updater, "MomentumUpdaterHook")

# Example arguments per policy, from the progress length P (epochs when the policy
# counts epochs, else iterations) and the iterations N: (variant, args, relative). A
# policy without an entry runs with its defaults.
Args = Callable[[int, int], dict[str, Any]]
LR_EXAMPLES: dict[str, list[tuple[str, Args, bool]]] = {
    "Fixed": [("", lambda P, N: {}, True)],
    "Step": [("list", lambda P, N: {"step": [-(-P * 2 // 3), -(-P * 11 // 12)]}, False),
             ("period", lambda P, N: {"step": P * 5 // 12, "gamma": 0.5}, False)],
    "Exp": [("", lambda P, N: {"gamma": 0.1 ** (1 / P)}, False)],
    "Poly": [("", lambda P, N: {"power": 2.0, "min_lr": 1e-4}, True)],
    "Inv": [("", lambda P, N: {"gamma": 10 / P, "power": 1.5}, False)],
    "CosineAnnealing": [("", lambda P, N: {"min_lr_ratio": 0.01}, True)],
    "LinearAnnealing": [("", lambda P, N: {"min_lr": 1e-3}, True)],
    "FlatCosineAnnealing": [("", lambda P, N: {"start_percent": 0.5, "min_lr_ratio": 0.01},
                             True)],
    "CosineRestart": [("", lambda P, N: {"periods": [P // 4, P // 4, P - 2 * (P // 4)],
                                         "restart_weights": [1, 0.5, 0.25],
                                         "min_lr_ratio": 0.01}, False)],
    "Cyclic": [("", lambda P, N: {"cyclic_times": 2, "target_ratio": (5, 1e-3)}, True)],
    "OneCycle": [("auto", lambda P, N: {"max_lr": 0.5}, True),
                 ("total_steps", lambda P, N: {"max_lr": 0.5, "total_steps": N * 3 // 2},
                  False)],
}
MOMENTUM_EXAMPLES: dict[str, list[tuple[str, Args, bool]]] = {
    "Step": [("list", lambda P, N: {"step": [P // 2, P * 3 // 4], "gamma": 0.9}, False),
             ("period", lambda P, N: {"step": P * 5 // 12, "gamma": 0.9}, False)],
    "CosineAnnealing": [("", lambda P, N: {"min_momentum_ratio": 0.5}, True)],
    "LinearAnnealing": [("", lambda P, N: {"min_momentum": 0.5}, True)],
    "Cyclic": [("", lambda P, N: {}, True)],
    "OneCycle": [("", lambda P, N: {}, True)],
}

# runner kind -> (runner, by_epoch forced into the section or None, trial lengths)
KINDS: dict[str, tuple[dict[str, Any], bool | None, tuple[int, ...]]] = {
    "epoch": ({"type": "EpochBasedRunner", "max_epochs": 12}, None, (3, 5, 20)),
    "epoch-by-iter": ({"type": "EpochBasedRunner", "max_epochs": 12}, False, (3, 5, 20)),
    "iter": ({"type": "IterBasedRunner", "max_iters": 240}, None, (60, 90, 400)),
}
WARMUPS: dict[str, dict[str, Any]] = {
    "no-warmup": {},
    "warmup-iters": {"warmup": "linear", "warmup_iters": 5, "warmup_ratio": 0.1},
    "warmup-epochs": {"warmup": "linear", "warmup_iters": 1, "warmup_ratio": 0.1,
                      "warmup_by_epoch": True},
}


def _cases(section: str) -> list[Any]:
    policies, examples = ((LR_POLICIES, LR_EXAMPLES) if section == "lr_config"
                          else (MOMENTUM_POLICIES, MOMENTUM_EXAMPLES))
    warmups = list(WARMUPS) if section == "lr_config" else ["no-warmup", "warmup-iters"]
    cases = []
    for policy in policies:
        for variant, args, relative in examples.get(policy, [("defaults", lambda P, N: {},
                                                              False)]):
            for kind in KINDS:
                for warmup in warmups:
                    name = "-".join(filter(None, [section[:-7], policy, variant, kind, warmup]))
                    cases.append(pytest.param(section, policy, args, relative, kind, warmup,
                                              id=name))
    return cases


CASES = _cases("lr_config") + _cases("momentum_config")


def make_cfg(section: str, policy: str, args: Args, kind: str, warmup: str) -> dict[str, Any]:
    runner, by_epoch, _ = KINDS[kind]
    cfg: dict[str, Any] = {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
                           "runner": dict(runner)}
    base = budget_of(cfg, IPE)
    # the policy counts epochs under the epoch runner unless by_epoch=False is forced
    length = base.epochs if kind == "epoch" and base.epochs else base.total_iters
    section_cfg = {"policy": policy, **args(length, base.total_iters), **WARMUPS[warmup]}
    if warmup != "no-warmup" and section == "momentum_config":
        section_cfg["warmup_ratio"] = 0.9
    if by_epoch is not None:
        section_cfg["by_epoch"] = by_epoch
    cfg[section] = section_cfg
    return cfg


def trial_budget(base: Budget, length: int) -> Budget:
    if base.iter_based:
        return Budget(iters=length, iters_per_epoch=base.iters_per_epoch)
    return Budget(epochs=length, iters_per_epoch=base.iters_per_epoch)


def curve(cfg: dict[str, Any], budget: Budget, key: str) -> list[float]:
    rows = simulate_schedule(cfg, budget.iters_per_epoch, max_epochs=budget.epochs,
                             max_iters=budget.iters)
    return [row[key] for row in rows]


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def updates_per_epoch(cfg: dict[str, Any], section: str, budget: Budget) -> bool:
    """Whether the real hook sets the regular value once per epoch."""
    return schedule_hooks(cfg, budget.iter_based)[section].by_epoch


def change_points(values: list[float]) -> list[int]:
    return [i for i in range(1, len(values))
            if not math.isclose(values[i], values[i - 1], rel_tol=1e-12, abs_tol=1e-15)]


def up_jumps(values: list[float]) -> list[int]:
    return [i for i in range(1, len(values)) if values[i] > values[i - 1] * (1 + 1e-9)]


def warmup_end(values: list[float], regular: list[float]) -> int:
    """The first iteration from which ``values`` is the curve without warm-up."""
    diffs = [i for i, (a, b) in enumerate(zip(values, regular, strict=True)) if a != b]
    return diffs[-1] + 1 if diffs else 0


def assert_milestones_moved(full: list[float], trial: list[float], r: float,
                            points: Callable[[list[float]], list[int]] = change_points,
                            after: int = 0) -> None:
    """(a): each milestone ``i > after`` of ``full`` is one of ``trial``'s within one
    iteration of ``round(i * r)`` (when that place is inside the trial)."""
    trial_points = set(points(trial))
    for i in points(full):
        place = round_half_up(i * r)
        if i <= after or place >= len(trial):
            continue
        assert trial_points & {place - 1, place, place + 1}, (
            f"milestone at full iteration {i} expected near trial iteration {place}; "
            f"trial milestones {sorted(trial_points)}")


def assert_resampled(values: list[float], others: list[list[float]], r: float,
                     slack: int, others_slack: int, skip_below: int = 0) -> None:
    """``values[j]`` is a value the curves ``others`` (sampled ``1/r`` times as often)
    take between their iterations ``(j - slack) / r - others_slack`` and
    ``(j + slack) / r + others_slack``.

    The slacks are one iteration plus, for a curve updated once per epoch, an epoch.
    Skipped: iterations where either side is inside an (unscaled) warm-up of
    ``skip_below`` iterations, and windows that run past the end of ``others``.
    """
    length = len(others[0])
    for j, value in enumerate(values):
        lo = max(0, math.floor((j - slack) / r) - others_slack)
        hi = math.ceil((j + slack) / r) + others_slack
        if j < skip_below or lo < skip_below or hi >= length:
            continue
        low = min(min(curve[lo:hi + 1]) for curve in others)
        high = max(max(curve[lo:hi + 1]) for curve in others)
        assert low * (1 - 1e-9) - 1e-15 <= value <= high * (1 + 1e-9) + 1e-15, (
            f"iteration {j}: {value} outside [{low}, {high}], the values of the other curve "
            f"over its iterations {lo}..{hi}")


def slack(cfg: dict[str, Any], section: str, budget: Budget) -> int:
    return 1 + (budget.iters_per_epoch if updates_per_epoch(cfg, section, budget) else 0)


def regular_curve(cfg: dict[str, Any], section: str, budget: Budget, key: str,
                  values: list[float]) -> list[float]:
    """The curve of ``cfg`` without warm-up (``values`` when it has none)."""
    if cfg[section].get("warmup") is None:
        return values
    return curve({**cfg, section: {**cfg[section], "warmup": None}}, budget, key)


def per_iteration(cfg: dict[str, Any], section: str) -> dict[str, Any]:
    """A by-epoch section counted in iterations: its curve with every epoch's value
    spread over the epoch's iterations, the curve a by-iteration trial resamples."""
    out = {**cfg[section], "by_epoch": False}
    for key in ("step", "periods"):
        if isinstance(out.get(key), list):
            out[key] = [value * IPE for value in out[key]]
        elif key in out:
            out[key] *= IPE
    return {**cfg, section: out}


def assert_same_shape(cfg: dict[str, Any], base: Budget, trial_cfg: dict[str, Any],
                      trial: Budget, section: str, policy: str, warmup: str) -> None:
    """(a), and the trial curve as the full one resampled, for one section's column.

    The coarser curve is checked against the finer one. Also allowed: the finer one's
    values without warm-up (a by-epoch curve hides its first epoch's regular value under
    an epoch-long warm-up, which a scaled, shorter warm-up shows), and, for a by-epoch
    curve that the trial follows by iteration, its per-iteration version (a cosine
    restart anneals a little deeper before each restart than per epoch).
    """
    key = "lr" if section == "lr_config" else "momentum"
    full, short = curve(cfg, base, key), curve(trial_cfg, trial, key)
    full_regular = regular_curve(cfg, section, base, key, full)
    short_regular = regular_curve(trial_cfg, section, trial, key, short)
    r = trial.total_iters / base.total_iters
    unscaled_warmup = cfg[section]["warmup_iters"] if warmup == "warmup-iters" else 0
    full_slack, trial_slack = slack(cfg, section, base), slack(trial_cfg, section, trial)
    if r <= 1:
        others = [full, full_regular]
        if full_slack > trial_slack:  # by epoch, now by iteration: smooth within an epoch
            others.append(curve(per_iteration(cfg, section), base, key))
        assert_resampled(short, others, r, trial_slack, full_slack, unscaled_warmup)
    else:
        assert_resampled(full, [short, short_regular], 1 / r, full_slack, trial_slack,
                         unscaled_warmup)
    full_warmup_end = warmup_end(full, full_regular)
    if policy in ("Fixed", "Step"):
        assert_milestones_moved(full, short, r, after=full_warmup_end)
    if policy == "CosineRestart":
        assert_milestones_moved(full, short, r, up_jumps, after=full_warmup_end)
    if warmup != "no-warmup":
        trial_warmup_end = warmup_end(short, short_regular)
        if warmup == "warmup-iters":
            assert trial_warmup_end == full_warmup_end == unscaled_warmup
        else:
            assert abs(trial_warmup_end - round_half_up(full_warmup_end * r)) <= 1


# the contract ------------------------------------------------------------------------
def test_every_registered_policy_has_examples() -> None:
    assert LR_POLICIES and set(LR_POLICIES) == set(LR_EXAMPLES)
    assert MOMENTUM_POLICIES and set(MOMENTUM_POLICIES) == set(MOMENTUM_EXAMPLES)


@pytest.mark.parametrize("section,policy,args,relative,kind,warmup", CASES)
def test_trial_follows_the_full_curve(section: str, policy: str, args: Args, relative: bool,
                                      kind: str, warmup: str) -> None:
    cfg = make_cfg(section, policy, args, kind, warmup)
    before = copy.deepcopy(cfg)
    base = budget_of(cfg, IPE)
    key = "lr" if section == "lr_config" else "momentum"
    for length in KINDS[kind][2]:
        trial = trial_budget(base, length)
        scaled = scale_schedule(cfg, base, trial)
        assert cfg == before, "the input config was modified"
        assert scaled["runner"] == cfg["runner"]
        assert_same_shape(cfg, base, scaled, trial, section, policy, warmup)
        if relative:  # (b)
            kept = {k: v for k, v in scaled[section].items()
                    if warmup != "warmup-epochs" or k not in WARMUP_KEYS}
            assert kept == {k: v for k, v in cfg[section].items() if k in kept}
            assert warmup == "warmup-epochs" or scaled == cfg
        if trial.total_iters < base.total_iters:  # (c)
            truncated = curve(cfg, trial, key)
            shorter = {**cfg, "runner": {**cfg["runner"], ("max_iters" if base.iter_based
                                                           else "max_epochs"): length}}
            assert truncated == curve(shorter, budget_of(shorter, IPE), key)
            if not relative:
                assert truncated == curve(cfg, base, key)[:trial.total_iters]


# An epoch warm-up that became an iteration count stays one when scaled again (an
# iteration warm-up is never scaled): round trips start from configs without one.
@pytest.mark.parametrize("section,policy,args,relative,kind,warmup",
                         [case for case in CASES if case.values[-1] != "warmup-epochs"])
def test_scaling_up_then_down_gives_the_milestones_back(
        section: str, policy: str, args: Args, relative: bool, kind: str, warmup: str) -> None:
    cfg = make_cfg(section, policy, args, kind, warmup)
    base = budget_of(cfg, IPE)
    longer = trial_budget(base, KINDS[kind][2][-1])
    back = scale_schedule(scale_schedule(cfg, base, longer), longer, base)
    assert_same_shape(cfg, base, back, base, section, policy, warmup)


# literal examples ----------------------------------------------------------------------
def _epochs_cfg(**sections: Any) -> dict[str, Any]:
    return {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
            "runner": {"type": "EpochBasedRunner", "max_epochs": 12}, **sections}


BASE = Budget(epochs=12, iters_per_epoch=IPE)
QUARTER = Budget(epochs=3, iters_per_epoch=IPE)


@pytest.mark.parametrize("lr_config,trial,expected", [
    # 8 -> 20 iterations, 11 -> 27.5 -> 28: not whole epochs, so by iteration
    ({"policy": "step", "step": [8, 11]}, QUARTER,
     {"policy": "step", "step": [20, 28], "by_epoch": False}),
    # 8 -> 2 and 12 -> 3 epochs: whole epochs, so still by epoch
    ({"policy": "step", "step": [4, 8]}, QUARTER, {"policy": "step", "step": [1, 2]}),
    # a period that scales to a whole epoch stays a period
    ({"policy": "Step", "step": 4}, QUARTER, {"policy": "Step", "step": 1}),
    # one that does not becomes the milestones inside the base run (5, 10; not 15)
    ({"policy": "step", "step": 5}, QUARTER,
     {"policy": "step", "step": [13, 25], "by_epoch": False}),
    # longer than the run: decays never, in the trial either
    ({"policy": "step", "step": 30}, QUARTER,
     {"policy": "step", "step": 75, "by_epoch": False}),
    ({"policy": "step", "step": [8, 11]}, Budget(epochs=24, iters_per_epoch=IPE),
     {"policy": "step", "step": [16, 22]}),
    # cumulative boundaries 3, 6, 12 epochs -> 7.5, 15, 30 iterations
    ({"policy": "CosineRestart", "periods": [3, 3, 6], "restart_weights": [1, 0.5, 0.5],
      "min_lr": 0.0}, QUARTER,
     {"policy": "CosineRestart", "periods": [8, 7, 15], "restart_weights": [1, 0.5, 0.5],
      "min_lr": 0.0, "by_epoch": False}),
    ({"policy": "exp", "gamma": 0.9}, QUARTER, {"policy": "exp", "gamma": 0.9 ** 4.0}),
    ({"policy": "inv", "gamma": 0.1, "power": 2}, QUARTER,
     {"policy": "inv", "gamma": 0.1 * 4.0, "power": 2}),
    ({"policy": "OneCycle", "max_lr": 0.1, "total_steps": 200}, QUARTER,
     {"policy": "OneCycle", "max_lr": 0.1, "total_steps": 50}),
    # an epoch warm-up scales; an iteration warm-up stays
    ({"policy": "CosineAnnealing", "min_lr": 0, "warmup": "linear", "warmup_iters": 4,
      "warmup_by_epoch": True}, QUARTER,
     {"policy": "CosineAnnealing", "min_lr": 0, "warmup": "linear", "warmup_iters": 1,
      "warmup_by_epoch": True}),
    ({"policy": "CosineAnnealing", "min_lr": 0, "warmup": "linear", "warmup_iters": 1,
      "warmup_by_epoch": True}, QUARTER,
     {"policy": "CosineAnnealing", "min_lr": 0, "warmup": "linear", "warmup_iters": 3,
      "warmup_by_epoch": False}),
    ({"policy": "step", "step": [8, 11], "warmup": "exp", "warmup_iters": 25}, QUARTER,
     {"policy": "step", "step": [20, 28], "by_epoch": False, "warmup": "exp",
      "warmup_iters": 25}),
    ({"policy": "step", "step": [8, 11]}, BASE, {"policy": "step", "step": [8, 11]}),
])
def test_scaled_lr_config(lr_config: dict[str, Any], trial: Budget,
                          expected: dict[str, Any]) -> None:
    assert scale_schedule(_epochs_cfg(lr_config=lr_config), BASE, trial)["lr_config"] == expected


def test_a_restart_period_that_shrinks_to_nothing_is_dropped() -> None:
    cfg = {"optimizer": {"type": "SGD", "lr": 0.1},
           "runner": {"type": "IterBasedRunner", "max_iters": 24},
           "lr_config": {"policy": "CosineRestart", "periods": [1, 1, 22],
                         "restart_weights": (1, 0.5, 0.25), "min_lr": 0.0}}
    base, trial = Budget(iters=24, iters_per_epoch=4), Budget(iters=6, iters_per_epoch=4)
    scaled = scale_schedule(cfg, base, trial)["lr_config"]
    # boundaries 1, 2, 24 -> 0.25, 0.5, 6 -> 1 (at least one), 1, 6
    assert scaled["periods"] == [1, 5] and scaled["restart_weights"] == (1, 0.25)


def test_step_momentum_and_iteration_runner() -> None:
    cfg = {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
           "runner": {"type": "IterBasedRunner", "max_iters": 1000},
           "lr_config": {"policy": "step", "step": [600, 900]},
           "momentum_config": {"policy": "step", "step": 250, "gamma": 0.9}}
    scaled = scale_schedule(cfg, budget_of(cfg, 50), Budget(iters=300, iters_per_epoch=50))
    assert scaled["lr_config"] == {"policy": "step", "step": [180, 270]}
    assert scaled["momentum_config"] == {"policy": "step", "step": 75, "gamma": 0.9}


def test_config_objects_and_equal_budgets() -> None:
    cfg = Config(_epochs_cfg(lr_config={"policy": "step", "step": [8, 11]}))
    same = scale_schedule(cfg, BASE, BASE)
    assert type(same) is dict and same == cfg.to_dict()
    assert scale_schedule(cfg, BASE, QUARTER)["lr_config"]["step"] == [20, 28]


def test_describe_scaling() -> None:
    cfg = _epochs_cfg(lr_config={"policy": "step", "step": [8, 11], "warmup": "linear",
                                 "warmup_iters": 1, "warmup_by_epoch": True},
                      momentum_config={"policy": "step", "step": 4})
    scaled = scale_schedule(cfg, BASE, QUARTER)
    assert describe_scaling(cfg, scaled) == [
        "lr_config.step: [8, 11] (epochs) -> [20, 28] (iterations, by_epoch=False)",
        "lr_config.warmup_iters: 1 (epochs) -> 3 (iterations, warmup_by_epoch=False)",
        "momentum_config.step: 4 (epochs) -> 1 (epochs)",
    ]
    exp = _epochs_cfg(lr_config={"policy": "exp", "gamma": 0.5})
    assert describe_scaling(exp, scale_schedule(exp, BASE, QUARTER)) == [
        "lr_config.gamma: 0.5 -> 0.0625 (per epoch)"]
    assert describe_scaling(cfg, scale_schedule(cfg, BASE, BASE)) == []


def test_budget() -> None:
    assert BASE.total_iters == 120 and not BASE.iter_based and BASE.describe() == "12 epochs"
    iters = Budget(iters=1, iters_per_epoch=7)
    assert iters.total_iters == 1 and iters.iter_based and iters.describe() == "1 iteration"
    with pytest.warns(UserWarning, match="total_epochs"):
        assert budget_of({"total_epochs": 4}, 3) == Budget(epochs=4, iters_per_epoch=3)


# the real mmdet3d schedules ----------------------------------------------------------
@pytest.mark.parametrize("fraction", [1 / 4, 3 / 8], ids=["quarter", "three-eighths"])
@pytest.mark.parametrize("path", sorted(SCHEDULES.glob("*.py")), ids=lambda p: p.stem)
def test_mmdet3d_schedules(path: Path, fraction: float) -> None:
    cfg = Config.fromfile(path).to_dict()
    epochs = cfg["runner"]["max_epochs"]
    trial_epochs = max(1, round(epochs * fraction))
    lr_cfg = cfg["lr_config"]
    warmup = lr_cfg.get("warmup_iters", 0) if lr_cfg.get("warmup") else 0
    # enough iterations per epoch for the (unscaled) warm-up to fit twice into the trial
    ipe = max(IPE, math.ceil(2 * warmup / trial_epochs))
    base, trial = budget_of(cfg, ipe), Budget(epochs=trial_epochs, iters_per_epoch=ipe)
    scaled = scale_schedule(cfg, base, trial)
    policy = str(lr_cfg["policy"]).lower()
    sections = [s for s in ("lr_config", "momentum_config") if cfg.get(s) is not None]
    for section in sections:
        assert_same_shape(cfg, base, scaled, trial, section,
                          "Step" if policy == "step" and section == "lr_config" else policy,
                          "warmup-iters" if warmup and section == "lr_config" else "no-warmup")
    if policy == "step":
        assert scaled["lr_config"]["step"] != lr_cfg["step"]
        assert describe_scaling(cfg, scaled)[0].startswith("lr_config.step: ")
    else:  # cosine and cyclic follow the run length
        assert scaled == cfg and describe_scaling(cfg, scaled) == []


# (e) bad input --------------------------------------------------------------------------
class CustomTestLrUpdaterHook(lr_updater.LrUpdaterHook):
    """A user's policy: halves the LR every epoch."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = lambda p, n, base: base / 2 ** p


class SubclassedStepLrUpdaterHook(lr_updater.StepLrUpdaterHook):
    """A user's variant of one of ours: its arguments may mean something else."""


@pytest.mark.parametrize("cls", [CustomTestLrUpdaterHook, SubclassedStepLrUpdaterHook])
def test_a_custom_policy_cannot_be_scaled(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "StepLrUpdaterHook" in HOOKS  # populated before the patch
    monkeypatch.setitem(HOOKS._modules, cls.__name__, cls)
    policy = cls.__name__[: -len("LrUpdaterHook")]
    cfg = _epochs_cfg(lr_config={"policy": policy, "step": [8]} if "Step" in policy
                      else {"policy": policy})
    with pytest.raises(ConfigError, match="cannot be scaled") as info:
        scale_schedule(cfg, BASE, QUARTER)
    assert info.value.key_path == "lr_config.policy"
    assert info.value.hint == "use stop.schedule: truncated"


@pytest.mark.parametrize("cfg,base,trial,key", [
    (_epochs_cfg(lr_config={"policy": "stepp", "step": [8]}), BASE, QUARTER, "lr_config.policy"),
    (_epochs_cfg(lr_config={"step": [8]}), BASE, QUARTER, "lr_config"),
    (_epochs_cfg(lr_config={"policy": "step", "step": [11, 8]}), BASE, QUARTER, "lr_config.step"),
    (_epochs_cfg(lr_config={"policy": "exp", "gamma": -0.5}), BASE, QUARTER, "lr_config.gamma"),
    (_epochs_cfg(lr_config={"policy": "fixed", "warmup": "linear", "warmup_iters": 31}), BASE,
     QUARTER, "lr_config.warmup_iters"),
    (_epochs_cfg(momentum_config={"policy": "cyclic", "warmup": "linear", "warmup_iters": 31}),
     BASE, QUARTER, "momentum_config.warmup_iters"),
    (_epochs_cfg(lr_config=lr_updater.FixedLrUpdaterHook()), BASE, QUARTER, "lr_config"),
    ({"optimizer": {"type": "SGD", "lr": 0.1},
      "runner": {"type": "IterBasedRunner", "max_iters": 120},
      "lr_config": {"policy": "step", "step": [8], "by_epoch": True}},
     Budget(iters=120, iters_per_epoch=IPE), Budget(iters=30, iters_per_epoch=IPE),
     "lr_config.by_epoch"),
    (_epochs_cfg(lr_config={"policy": "step", "step": [8]}), BASE,
     Budget(iters=30, iters_per_epoch=IPE), "runner"),
    (_epochs_cfg(lr_config={"policy": "step", "step": [8]}),
     Budget(iters=120, iters_per_epoch=IPE), Budget(iters=30, iters_per_epoch=IPE), "runner"),
])
def test_bad_input_names_the_key(cfg: dict[str, Any], base: Budget, trial: Budget,
                                 key: str) -> None:
    with pytest.raises(ConfigError) as info:
        scale_schedule(cfg, base, trial)
    assert info.value.key_path == key


def test_the_warmup_error_explains_why() -> None:
    cfg = _epochs_cfg(lr_config={"policy": "fixed", "warmup": "linear", "warmup_iters": 31})
    with pytest.raises(ConfigError, match="longer than the whole trial") as info:
        scale_schedule(cfg, BASE, QUARTER)
    assert "not scaled" in info.value.hint
    cfg["lr_config"]["warmup_iters"] = 30  # as long as the trial: allowed
    assert scale_schedule(cfg, BASE, QUARTER) == cfg


@pytest.mark.parametrize("kwargs,key", [
    ({"epochs": 0, "iters_per_epoch": 1}, "runner.max_epochs"),
    ({"iters": 2.5, "iters_per_epoch": 1}, "runner.max_iters"),
    ({"epochs": 1, "iters_per_epoch": 0}, "iters_per_epoch"),
    ({"epochs": 1, "iters": 4, "iters_per_epoch": 2}, "runner"),
    ({"iters_per_epoch": 2}, "runner"),
])
def test_bad_budget(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Budget(**kwargs)
    assert info.value.key_path == key


# one rule for both backends -----------------------------------------------------------
def test_scaling_moves_places_to_whole_epochs_or_rounded_iterations() -> None:
    scaling = Scaling(Budget(epochs=16, iters_per_epoch=IPE), Budget(epochs=4, iters_per_epoch=IPE))
    assert scaling.ratio == Fraction(1, 4)
    assert scaling.moved([8, 12], True) == (True, [2, 3])
    # 2.5 epochs is not whole: all in iterations, halves up (25, 7.5 -> 8)
    assert scaling.moved([10, 12], True) == (False, [25, 30])
    assert scaling.moved([30, 41], False) == (False, [8, 10])
    assert scaling.places([3], True) == [Fraction(15, 2)]
    assert (Scaling.length(scaling.trial, True), Scaling.length(scaling.trial, False)) == (4, 40)


@pytest.mark.parametrize(("full", "trial", "milestones", "by_epoch"), [
    (16, 8, [8, 12], True), (16, 4, [10, 14], True), (12, 5, [8, 11], True),
    (16, 3, [9, 13], True), (16, 4, [70, 130], False), (24, 7, [100, 201], False)])
def test_both_backends_move_milestones_alike(full: int, trial: int, milestones: list[int],
                                            by_epoch: bool) -> None:
    """mmcv's ``lr_config.step`` and mmengine's MultiStepLR ``milestones`` go through the one
    :class:`Scaling`: the same full milestones land on the same trial steps and units."""
    from rt3d_tune.backends.mmengine.schedule import scale_param_schedulers

    base, short = Budget(epochs=full, iters_per_epoch=IPE), Budget(epochs=trial,
                                                                  iters_per_epoch=IPE)
    mmcv = scale_schedule({"runner": {"type": "EpochBasedRunner", "max_epochs": full},
                           "lr_config": {"policy": "step", "step": milestones,
                                         "by_epoch": by_epoch}}, base, short)["lr_config"]
    mmengine = scale_param_schedulers(
        {"train_cfg": {"by_epoch": True, "max_epochs": full},
         "param_scheduler": [{"type": "MultiStepLR", "milestones": milestones,
                              "by_epoch": by_epoch}]}, base, short)["param_scheduler"][0]
    assert mmcv["step"] == mmengine["milestones"]
    assert mmcv.get("by_epoch", True) == mmengine.get("by_epoch", True)
