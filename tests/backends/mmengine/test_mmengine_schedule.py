"""mmengine's own schedulers simulated (``backends.mmengine.simulate``), and a trial's
``param_scheduler`` scaled so its curve is the full run's compressed in time
(``mmengine_backend.schedule``).

Every curve here comes from mmengine's schedulers (``simulate_mmengine_schedule``).
Checked: (a) the simulation against hand-computed curves; (b) for each scheduler type,
at trial/full = 1/2 and 1/4, the trial's LR at progress p equals the full run's at p
(exactly, or within one trial step of rounding); (c) iteration loops, warm-ups, bad
input; (d) ``rt3d-tune schedule`` on small mmengine configs written here.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mmengine")

from mmengine.registry import DATASETS

from rt3d_tune import cli
from rt3d_tune.backends.mmengine.dialect import is_mmengine_config
from rt3d_tune.backends.mmengine.schedule import (
    describe_param_scaling,
    mmengine_budget,
    scale_param_schedulers,
    warmup_end,
)
from rt3d_tune.backends.mmengine.simulate import iters_from_dataloader, simulate_mmengine_schedule
from rt3d_tune.commands import schedule
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget

IPE = 8  # iterations per epoch
FULL_EPOCHS = 16
LR = 0.1


def _cfg(*schedulers: dict[str, Any], epochs: int | None = FULL_EPOCHS,
         iters: int | None = None, optimizer: dict[str, Any] | None = None) -> dict[str, Any]:
    train_cfg = (dict(type="IterBasedTrainLoop", max_iters=iters) if iters is not None
                 else dict(by_epoch=True, max_epochs=epochs))
    return dict(optim_wrapper=dict(type="OptimWrapper", optimizer=optimizer or dict(
        type="SGD", lr=LR, momentum=0.9)), train_cfg=train_cfg,
        param_scheduler=list(schedulers))


def _lrs(cfg: dict[str, Any], ipe: int = IPE, **kwargs: Any) -> list[float]:
    return [row["lr"] for row in simulate_mmengine_schedule(cfg, ipe, **kwargs)]


def _cos(t: float, period: float, low: float = 0.0) -> float:
    return low + (LR - low) * (1 + math.cos(math.pi * t / period)) / 2


# (a) the simulation ---------------------------------------------------------------------
def test_warmup_and_cosine_by_epoch() -> None:
    cfg = _cfg(dict(type="LinearLR", start_factor=0.25, by_epoch=False, begin=0, end=4),
               dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=4), epochs=4)
    rows = simulate_mmengine_schedule(cfg, 5)
    assert [(r["iter"], r["epoch"]) for r in rows] == [(i, i // 5) for i in range(20)]
    # the warm-up factor 0.25 -> 1 over iterations 0..3 times the per-epoch cosine
    expected = [(0.25 + 0.75 * min(i, 3) / 3) * _cos(i // 5, 4) for i in range(20)]
    assert [r["lr"] for r in rows] == pytest.approx(expected, rel=1e-12)
    assert {r["momentum"] for r in rows} == {0.9}


def test_warmup_and_multistep() -> None:
    cfg = _cfg(dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=6),
               dict(type="MultiStepLR", milestones=[2, 3], gamma=0.1), epochs=4)
    expected = [LR * (0.1 + 0.9 * min(i, 5) / 5) * 0.1 ** sum(i // 4 >= m for m in (2, 3))
                for i in range(16)]
    assert _lrs(cfg, 4) == pytest.approx(expected, rel=1e-12)


def test_convert_to_iter_based_steps_every_iteration() -> None:
    cfg = _cfg(dict(type="CosineAnnealingLR", by_epoch=True, convert_to_iter_based=True,
                    T_max=4, eta_min=0.01),
               dict(type="MultiStepMomentum", by_epoch=True, convert_to_iter_based=True,
                    milestones=[1], gamma=0.5), epochs=4)
    rows = simulate_mmengine_schedule(cfg, 5)
    assert [r["lr"] for r in rows] == pytest.approx([_cos(i, 20, 0.01) for i in range(20)])
    assert [r["momentum"] for r in rows] == pytest.approx([0.9] * 5 + [0.45] * 15)


def test_adam_momentum_is_betas0_and_default_end_follows_the_loop() -> None:
    cfg = _cfg(dict(type="CosineAnnealingMomentum", eta_min=0.85),
               dict(type="CosineAnnealingLR"),
               optimizer=dict(type="AdamW", lr=LR, betas=(0.95, 0.999)), epochs=4)
    rows = simulate_mmengine_schedule(cfg, 2, max_epochs=2)  # a shorter loop: end = 2
    assert len(rows) == 4
    assert [r["lr"] for r in rows] == pytest.approx([LR, LR, _cos(1, 2), _cos(1, 2)])
    assert [r["momentum"] for r in rows] == pytest.approx([0.95, 0.95, 0.9, 0.9])


def test_iteration_loop_and_auto_scale_lr() -> None:
    cfg = _cfg(dict(type="MultiStepLR", by_epoch=False, milestones=[5]), iters=8)
    cfg.update(auto_scale_lr=dict(enable=True, base_batch_size=16),
               train_dataloader=dict(batch_size=4, dataset=dict(type="Unused")))
    rows = simulate_mmengine_schedule(cfg, 3, world_size=2)
    assert [r["epoch"] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert [r["lr"] for r in rows] == pytest.approx([LR / 2] * 5 + [LR / 20] * 3)


def test_bad_simulation_input() -> None:
    with pytest.raises(ConfigError) as err:
        simulate_mmengine_schedule(_cfg(dict(type="MultiStepLR")), IPE)  # no milestones
    assert err.value.key_path == "param_scheduler.0"
    with pytest.raises(ConfigError) as err:
        simulate_mmengine_schedule({"train_cfg": dict(by_epoch=True, max_epochs=1)}, IPE)
    assert err.value.key_path == "optim_wrapper"
    with pytest.raises(ConfigError) as err:
        simulate_mmengine_schedule({**_cfg(), "train_cfg": dict(max_epochs=3)}, IPE)
    assert err.value.key_path == "train_cfg"
    with pytest.raises(ConfigError) as err:
        simulate_mmengine_schedule(_cfg(), 0)
    assert err.value.key_path == "iters_per_epoch"


# (b) scaled: the full curve at the same progress -----------------------------------------
# (name, schedulers, compared every iteration (else at each trial epoch's start), how):
# "exact" equal; "step" within the full values one trial step (iteration or epoch) either
# way; "epoch" within one trial epoch either way (a by-epoch ramp made smooth beside a
# by-epoch cosine that steps once a trial epoch).
CASES: list[tuple[str, list[dict[str, Any]], bool, str]] = [
    ("cosine by epoch", [dict(type="CosineAnnealingLR", eta_min=1e-4)], False, "exact"),
    ("cosine converted", [dict(type="CosineAnnealingLR", by_epoch=True,
                               convert_to_iter_based=True, T_max=FULL_EPOCHS, eta_min=1e-4)],
     True, "exact"),
    ("cosine by iteration", [dict(type="CosineAnnealingLR", by_epoch=False,
                                  T_max=FULL_EPOCHS * IPE)], True, "exact"),
    ("cosine after a warm-up by epoch",
     [dict(type="LinearLR", start_factor=0.1, by_epoch=True, end=4),
      dict(type="CosineAnnealingLR", begin=4, end=FULL_EPOCHS, eta_min=1e-4)], True, "epoch"),
    ("multistep by epoch", [dict(type="MultiStepLR", milestones=[10, 14])], True, "exact"),
    ("multistep by iteration", [dict(type="MultiStepLR", by_epoch=False,
                                     milestones=[90, 110])], True, "step"),
    ("step by epoch", [dict(type="StepLR", step_size=6, gamma=0.5)], True, "exact"),
    ("poly, mmcv's end", [dict(type="PolyLR", by_epoch=False, power=2.0,
                               end=FULL_EPOCHS * IPE + 1)], True, "exact"),
    ("poly to the end", [dict(type="PolyLR", power=1.5, eta_min=1e-4)], False, "step"),
    ("exponential by epoch", [dict(type="ExponentialLR", gamma=0.8)], False, "exact"),
    ("exponential by iteration", [dict(type="ExponentialLR", gamma=0.98, by_epoch=False)],
     True, "exact"),
    ("onecycle", [dict(type="OneCycleLR", eta_max=LR, by_epoch=False,
                       total_steps=FULL_EPOCHS * IPE, pct_start=0.25)], True, "step"),
    ("onecycle to the end", [dict(type="OneCycleLR", eta_max=LR, by_epoch=False,
                                  anneal_strategy="linear")], True, "step"),
    ("cosine restarts", [dict(type="CosineRestartLR", periods=[8, 8], restart_weights=[1, 0.5],
                              eta_min=0.0)], False, "exact"),
    ("linear decay by iteration", [dict(type="LinearLR", by_epoch=False, start_factor=1.0,
                                        end_factor=0.05, begin=16, end=112)], True, "step"),
]


def _assert_follows(full: list[float], trial: list[float], every_iter: bool, how: str,
                    tol: float = 1e-12) -> None:
    """Trial iteration j beside full iteration j/r, as ``how`` says (see CASES), within
    ``tol`` (absolute) when compared to a window."""
    k = len(full) // len(trial)  # 1/r
    stride = 1 if every_iter else IPE
    for j in range(0, len(trial), stride):
        i = j * k
        if how == "exact":
            assert trial[j] == pytest.approx(full[i], rel=1e-9, abs=1e-15), (j, i)
        else:
            reach = k * (stride if how == "step" else IPE)
            window = full[max(0, i - reach): i + reach + 1]
            assert min(window) - tol <= trial[j] <= max(window) + tol, (j, i, window)


@pytest.mark.parametrize("trial_epochs", [FULL_EPOCHS // 2, FULL_EPOCHS // 4])
@pytest.mark.parametrize(("name", "schedulers", "every_iter", "how"), CASES,
                         ids=[case[0] for case in CASES])
def test_scaled_curve_is_the_full_curve(name: str, schedulers: list[dict[str, Any]],
                                        every_iter: bool, how: str, trial_epochs: int
                                        ) -> None:
    cfg = _cfg(*schedulers)
    full, trial = Budget(epochs=FULL_EPOCHS, iters_per_epoch=IPE), \
        Budget(epochs=trial_epochs, iters_per_epoch=IPE)
    scaled = scale_param_schedulers(cfg, full, trial)
    assert scaled["train_cfg"]["max_epochs"] == trial_epochs
    assert cfg == _cfg(*schedulers)  # not modified
    full_lrs, trial_lrs = _lrs(cfg), _lrs(scaled)
    assert len(trial_lrs) == trial_epochs * IPE
    _assert_follows(full_lrs, trial_lrs, every_iter, how)


def test_scaling_rules_in_words() -> None:
    cfg = _cfg(dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=5),
               dict(type="MultiStepLR", milestones=[10, 14]),
               dict(type="StepLR", step_size=6, gamma=0.5),
               dict(type="ExponentialLR", gamma=0.9),
               dict(type="LinearLR", start_factor=0.1, end=4),
               dict(type="CosineAnnealingLR", begin=4, end=FULL_EPOCHS))
    full, trial = Budget(epochs=16, iters_per_epoch=IPE), Budget(epochs=4, iters_per_epoch=IPE)
    scaled = scale_param_schedulers(cfg, full, trial)["param_scheduler"]
    assert scaled[0] == cfg["param_scheduler"][0]  # the iteration warm-up is kept
    # 2.5 and 3.5 epochs are not whole: iterations
    assert scaled[1] == dict(type="MultiStepLR", milestones=[20, 28], by_epoch=False)
    # 6 epochs -> 1.5 epochs: a whole 12 iterations
    assert scaled[2] == dict(type="StepLR", gamma=0.5, step_size=12, by_epoch=False)
    assert scaled[3]["gamma"] == pytest.approx(0.9 ** 4)
    # its last step, epoch 3, moves to 0.75 epochs = iteration 6: it never sticks at 0.1
    assert scaled[4] == dict(type="LinearLR", start_factor=0.1, end=7, by_epoch=False)
    assert scaled[5] == dict(type="CosineAnnealingLR", begin=1, end=4)
    ramp = _lrs(scale_param_schedulers(_cfg(cfg["param_scheduler"][4]), full, trial))
    assert ramp[:8] == pytest.approx([LR * (0.1 + 0.15 * min(i, 6)) for i in range(8)])
    assert ramp[6:] == pytest.approx([LR] * (len(ramp) - 6))
    lines = describe_param_scaling(cfg, scale_param_schedulers(cfg, full, trial))
    assert "train_cfg.max_epochs: 16 -> 4" in lines
    assert ("param_scheduler.1.milestones: [10, 14] (epochs) -> [20, 28] "
            "(iterations, by_epoch=False)") in lines
    assert not any(line.startswith("param_scheduler.0") for line in lines)
    # 5 epochs -> 15/16 epochs = 7.5 iterations: the decays inside the run, each moved
    three = scale_param_schedulers(_cfg(dict(type="StepLR", step_size=5, gamma=0.5)), full,
                                   Budget(epochs=3, iters_per_epoch=IPE))
    assert three["param_scheduler"] == [dict(type="MultiStepLR", gamma=0.5, by_epoch=False,
                                             milestones=[8, 15, 23])]
    assert "param_scheduler.0.type: 'StepLR' -> 'MultiStepLR'" in describe_param_scaling(
        _cfg(dict(type="StepLR", step_size=5, gamma=0.5)), three)


def test_whole_epochs_stay_in_epochs_and_longer_trials() -> None:
    cfg = _cfg(dict(type="MultiStepLR", milestones=[8, 12]),
               dict(type="PolyLR", by_epoch=True, convert_to_iter_based=True, end=17))
    full = Budget(epochs=16, iters_per_epoch=IPE)
    half = scale_param_schedulers(cfg, full, Budget(epochs=8, iters_per_epoch=IPE))
    assert half["param_scheduler"] == [
        dict(type="MultiStepLR", milestones=[4, 6]),
        dict(type="PolyLR", by_epoch=True, convert_to_iter_based=True, end=9)]
    double = scale_param_schedulers(cfg, full, Budget(epochs=32, iters_per_epoch=IPE))
    assert double["param_scheduler"][0]["milestones"] == [16, 24]
    assert scale_param_schedulers(cfg, full, full) == cfg


def test_convert_to_iter_based_off_whole_epochs_becomes_iterations() -> None:
    cfg = _cfg(dict(type="CosineAnnealingLR", by_epoch=True, convert_to_iter_based=True,
                    T_max=10, begin=2, end=12))
    scaled = scale_param_schedulers(cfg, Budget(epochs=16, iters_per_epoch=IPE),
                                    Budget(epochs=4, iters_per_epoch=IPE))
    # begin 0.5 epochs, T_max 2.5 epochs, end 3 epochs (24 iterations): it runs its T_max
    assert scaled["param_scheduler"] == [dict(type="CosineAnnealingLR", by_epoch=False,
                                              T_max=20, begin=4, end=24)]


# the junction of a cyclic schedule ---------------------------------------------------------
PEAK = 10 * LR


def _cyclic(epochs: int, junction: int) -> dict[str, Any]:
    """mmdetection3d's cyclic schedule (PointPillars, SECOND, CenterPoint): the LR rises to
    10x by cosine until ``junction`` (epochs), then anneals to 1e-4x; momentum mirrors it."""
    common = dict(by_epoch=True, convert_to_iter_based=True)
    return _cfg(
        dict(type="CosineAnnealingLR", T_max=junction, eta_min=PEAK, begin=0, end=junction,
             **common),
        dict(type="CosineAnnealingLR", T_max=epochs - junction, eta_min=LR * 1e-4,
             begin=junction, end=epochs, **common),
        dict(type="CosineAnnealingMomentum", T_max=junction, eta_min=0.85 / 0.95, begin=0,
             end=junction, **common),
        dict(type="CosineAnnealingMomentum", T_max=epochs - junction, eta_min=1,
             begin=junction, end=epochs, **common),
        epochs=epochs)


def _in_iters(entry: dict[str, Any], key: str, ipe: int) -> int:
    return entry[key] * (ipe if entry.get("by_epoch", True) else 1)


# (full epochs, junction epoch, trial epochs): 1/2 and 1/3, the junction moving to a
# whole trial epoch (the entries stay in epochs) or between two (they become iterations)
@pytest.mark.parametrize(("epochs", "junction", "trial_epochs"),
                         [(80, 32, 40), (30, 12, 10), (16, 5, 8), (30, 13, 10)])
def test_cyclic_entries_meet_at_the_peak(epochs: int, junction: int, trial_epochs: int
                                         ) -> None:
    ipe = 20
    cfg = _cyclic(epochs, junction)
    scaled = scale_param_schedulers(cfg, Budget(epochs=epochs, iters_per_epoch=ipe),
                                    Budget(epochs=trial_epochs, iters_per_epoch=ipe))
    first, second = scaled["param_scheduler"][0], scaled["param_scheduler"][1]
    assert scaled["param_scheduler"][2:] == [
        {**entry, "type": entry["type"].replace("LR", "Momentum"),
         "eta_min": mom["eta_min"]}
        for entry, mom in zip(scaled["param_scheduler"][:2], cfg["param_scheduler"][2:])]
    # the first entry ends where the second begins, at the end of its own T_max
    meet = _in_iters(first, "end", ipe)
    assert meet == _in_iters(second, "begin", ipe) == _in_iters(first, "T_max", ipe)
    assert meet == math.floor(junction * trial_epochs * ipe / epochs + 0.5)
    assert _in_iters(second, "end", ipe) == trial_epochs * ipe
    assert _in_iters(second, "T_max", ipe) == trial_epochs * ipe - meet
    rows = simulate_mmengine_schedule(scaled, ipe)
    lrs = [row["lr"] for row in rows]
    # rising to the peak: mmengine's cosine over the whole T_max, its last step at meet - 1
    rise = [PEAK + (LR - PEAK) * (1 + math.cos(math.pi * j / meet)) / 2 for j in range(meet)]
    assert lrs[:meet] == pytest.approx(rise, rel=1e-9)
    # mmengine's last step is one short of T_max: the peak, but for that one step
    short = (PEAK - LR) * (1 - math.cos(math.pi / meet)) / 2
    assert lrs[meet] == lrs[meet - 1] == pytest.approx(PEAK, abs=short + 1e-15)
    # then down from the peak over the rest of the trial
    low, fall = LR * 1e-4, len(lrs) - meet
    assert lrs[meet:] == pytest.approx(
        [low + (lrs[meet] - low) * (1 + math.cos(math.pi * j / fall)) / 2 for j in range(fall)],
        rel=1e-9)
    # and the full curve at the same progress, within one trial iteration of rounding and
    # the step short of the peak (the fall starts from there)
    full_lrs = _lrs(cfg, ipe)
    _assert_follows(full_lrs, lrs, True, "step", tol=short)
    if meet * epochs == junction * trial_epochs * ipe:  # the junction moved exactly
        assert lrs[:meet] == pytest.approx(full_lrs[: meet * epochs // trial_epochs:
                                                    epochs // trial_epochs], rel=1e-9)
    moms = [row["momentum"] for row in rows]
    assert max(moms) == moms[-1] and min(moms) == moms[meet - 1] == moms[meet]


def test_iteration_loop() -> None:
    cfg = _cfg(dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=20),
               dict(type="MultiStepLR", by_epoch=False, milestones=[300, 350]), iters=400)
    full = mmengine_budget(cfg, 50)
    assert full == Budget(iters=400, iters_per_epoch=50)
    trial = Budget(iters=100, iters_per_epoch=50)
    scaled = scale_param_schedulers(cfg, full, trial)
    assert scaled["train_cfg"] == dict(type="IterBasedTrainLoop", max_iters=100)
    assert scaled["param_scheduler"][0]["end"] == 20  # the warm-up is kept
    assert scaled["param_scheduler"][1]["milestones"] == [75, 88]  # 87.5 rounds up
    rows = simulate_mmengine_schedule(scaled, 50)
    assert len(rows) == 100 and rows[-1]["epoch"] == 1
    assert [rows[i]["lr"] for i in (0, 19, 74, 75, 87, 88)] == pytest.approx(
        [LR * 0.1, LR, LR, LR * 0.1, LR * 0.1, LR * 0.01])
    unscaled = scale_param_schedulers(cfg, full, trial, keep_iter_warmup=False)
    assert unscaled["param_scheduler"][0]["end"] == 6  # last step 19 -> 4.75 -> 5
    with pytest.raises(ConfigError) as err:
        scale_param_schedulers(cfg, full, Budget(iters=10, iters_per_epoch=50))
    assert err.value.key_path == "param_scheduler.0.end"
    assert "warm-up is longer than the whole trial" in err.value.message


@pytest.mark.parametrize(("schedulers", "key_path", "hint"), [
    ([dict(type="LinearLR", by_epoch=False, end=5), dict(type="QuadraticWarmupLR")],
     "param_scheduler.1.type", "stop.schedule: truncated"),
    ([dict(type="ReduceOnPlateauLR", monitor="loss")], "param_scheduler.0.type",
     "stop.schedule: truncated"),
    ([dict(type="MultiStepLR", milestones=["8"])], "param_scheduler.0.milestones", None),
    ([dict(type="LinearLR", begin=4, end=2)], "param_scheduler.0.end", None),
    ([dict(type="ExponentialLR", gamma=-0.5)], "param_scheduler.0.gamma",
     "stop.schedule: truncated"),
])
def test_unscalable(schedulers: list[dict[str, Any]], key_path: str, hint: str | None) -> None:
    full, trial = Budget(epochs=16, iters_per_epoch=IPE), Budget(epochs=4, iters_per_epoch=IPE)
    with pytest.raises(ConfigError) as err:
        scale_param_schedulers(_cfg(*schedulers), full, trial)
    assert err.value.key_path == key_path
    assert hint is None or hint in (err.value.hint or "")


def test_single_dict_and_budget_mismatches() -> None:
    cfg = {**_cfg(), "param_scheduler": dict(type="Custom")}
    full, trial = Budget(epochs=16, iters_per_epoch=IPE), Budget(epochs=4, iters_per_epoch=IPE)
    with pytest.raises(ConfigError) as err:
        scale_param_schedulers(cfg, full, trial)
    assert err.value.key_path == "param_scheduler.type"
    with pytest.raises(ConfigError) as err:
        scale_param_schedulers(_cfg(dict(type="MultiStepLR", milestones=[4]), iters=100),
                               Budget(iters=100, iters_per_epoch=IPE),
                               Budget(iters=50, iters_per_epoch=IPE))
    assert err.value.key_path == "param_scheduler.0.by_epoch"
    with pytest.raises(ConfigError) as err:
        scale_param_schedulers(_cfg(), full, Budget(iters=40, iters_per_epoch=IPE))
    assert err.value.key_path == "train_cfg"


def test_detection_and_warmup_rows() -> None:
    assert is_mmengine_config(_cfg())
    assert is_mmengine_config({"train_cfg": dict(by_epoch=True, max_epochs=2)})
    assert not is_mmengine_config({"runner": dict(max_epochs=2), "lr_config": {},
                                   "optimizer": dict(type="SGD", lr=0.1)})
    assert warmup_end(_cfg(dict(type="LinearLR", by_epoch=False, end=500)), IPE) == 499
    assert warmup_end(_cfg(dict(type="LinearLR", end=2)), IPE) == IPE
    assert warmup_end(_cfg(dict(type="LinearLR", end=2, convert_to_iter_based=True)),
                      IPE) == 2 * IPE - 1
    assert warmup_end(_cfg(dict(type="CosineAnnealingLR")), IPE) is None


# (c) iterations from the train loader, and (d) the command line --------------------------
class TinyScheduleDataset:
    """``size`` samples of nothing: only its length is read."""

    def __init__(self, size: int = 37) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    DATASETS.register_module(name="Rt3dTinyScheduleDataset", module=TinyScheduleDataset,
                             force=True)


def test_iters_from_dataloader() -> None:
    loader = dict(batch_size=4, dataset=dict(type="Rt3dTinyScheduleDataset", size=37))
    assert iters_from_dataloader({"train_dataloader": loader}) == 10
    assert iters_from_dataloader({"train_dataloader": loader}, world_size=2) == 5  # 19 a rank
    assert iters_from_dataloader({"train_dataloader": {**loader, "drop_last": True}}) == 9
    with pytest.raises(ConfigError) as err:
        iters_from_dataloader({"train_dataloader": dict(batch_size=4,
                                                        dataset=dict(type="NoSuchDataset"))})
    assert err.value.key_path == "train_dataloader.dataset"
    assert "--iters-per-epoch" in (err.value.hint or "")


CONFIG = """\
default_scope = 'mmengine'
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
train_dataloader = dict(batch_size=4, dataset=dict(type='Rt3dTinyScheduleDataset', size=37))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='MultiStepLR', by_epoch=True, milestones=[8, 11], gamma=0.1),
]
"""


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    schedule.add_parser(parser.add_subparsers(dest="command"))
    return schedule.run(parser.parse_args(["schedule", *argv]))


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0].isdigit()]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "base.py").write_text(CONFIG)
    path = tmp_path / "cfg.py"  # through mmengine's _base_ and {{_base_.x}}
    path.write_text("_base_ = ['./base.py']\n"
                    "train_cfg = dict(max_epochs={{_base_.train_cfg.max_epochs}})\n")
    return path


def test_cli_full_curve(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = config.parent / "curve.csv"
    assert cli.main(["schedule", str(config), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "iterations per epoch: 10 (from train_dataloader)" in out
    rows = _table(out)
    # first iterations, the warm-up's last steps, each epoch's start, the last iteration
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4, *range(10, 120, 10), 119]
    assert [float(r[2]) for r in rows if int(r[0]) in (0, 4, 80, 119)] == pytest.approx(
        [0.01, 0.1, 0.01, 0.001])
    with open(out_csv, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 120


def test_cli_scaled_and_truncated_trials(config: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    assert _run([str(config), "--iters-per-epoch", "10", "--trial-epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "iterations per epoch" not in out
    assert ("param_scheduler.1.milestones: [8, 11] (epochs) -> [20, 28] "
            "(iterations, by_epoch=False)") in out
    assert "trial (3 epochs, scaled) beside the full budget (12 epochs)" in out
    rows = {int(r[0]): r for r in _table(out)}
    assert float(rows[20][2]) == pytest.approx(0.01) and rows[20][4] == "80"
    assert float(rows[29][2]) == pytest.approx(0.001)
    assert _run([str(config), "--iters-per-epoch", "10", "--trial-epochs", "3",
                 "--truncated"]) == 0
    out = capsys.readouterr().out
    assert "trial (3 epochs, truncated)" in out and "scaled from" not in out
    assert {float(r[2]) for r in _table(out) if int(r[0]) >= 5} == {0.1}  # epochs 8, 11 unmet


def test_cli_errors(config: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schedule", str(config), "--trial-iters", "50"]) == 2
    assert "train_cfg: --trial-iters does not fit" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mmengine", None)  # as if not installed
    assert cli.main(["schedule", str(config), "--iters-per-epoch", "10"]) == 2
    err = capsys.readouterr().err
    assert "CONFIG: this is an mmengine" in err and "pip install 'rt3d-tune[mmengine]'" in err


def test_cli_new_style_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pure-Python (lazy import) config that only mmengine's loader reads."""
    (tmp_path / "sched.py").write_text(
        "from mmengine.optim.scheduler import CosineAnnealingLR\n"
        "from torch.optim import SGD\n"
        "optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type=SGD, lr=0.1))\n"
        "param_scheduler = [dict(type=CosineAnnealingLR, by_epoch=True)]\n"
        "train_cfg = dict(by_epoch=True, max_epochs=4)\n")
    path = tmp_path / "new_style.py"
    path.write_text("from mmengine.config import read_base\n"
                    "with read_base():\n    from .sched import *\n")
    assert _run([str(path), "--iters-per-epoch", "2", "--trial-epochs", "2"]) == 0
    rows = _table(capsys.readouterr().out)
    assert [float(r[2]) for r in rows] == pytest.approx([0.1, 0.1, 0.05, 0.05])



def test_cli_cyclic_trial_reaches_the_peak(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """mmdetection3d's PointPillars schedule (80 epochs, the LR peaks at epoch 32) at 40."""
    path = tmp_path / "cyclic.py"
    path.write_text(
        "lr = 0.001\nepoch_num = 80\n"
        "optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=lr,"
        " betas=(0.95, 0.99), weight_decay=0.01))\n"
        "param_scheduler = [\n"
        "    dict(type='CosineAnnealingLR', T_max=epoch_num * 0.4, eta_min=lr * 10, begin=0,"
        " end=epoch_num * 0.4, by_epoch=True, convert_to_iter_based=True),\n"
        "    dict(type='CosineAnnealingLR', T_max=epoch_num * 0.6, eta_min=lr * 1e-4,"
        " begin=epoch_num * 0.4, end=epoch_num * 1, by_epoch=True,"
        " convert_to_iter_based=True)]\n"
        "train_cfg = dict(by_epoch=True, max_epochs=epoch_num, val_interval=2)\n")
    out_csv = tmp_path / "trial.csv"
    assert _run([str(path), "--iters-per-epoch", "20", "--trial-epochs", "40",
                 "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "param_scheduler.0.end: 32 (epochs) -> 16 (epochs)" in out
    assert "param_scheduler.1.begin: 32 (epochs) -> 16 (epochs)" in out
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    peak = max(range(len(rows)), key=lambda i: float(rows[i]["lr"]))
    assert peak == 319 and rows[peak]["full_iter"] == "638"
    assert float(rows[320]["lr"]) == pytest.approx(0.01, rel=1e-4)  # it stopped at 0.0099783
    assert float(rows[320]["lr"]) == pytest.approx(float(rows[320]["full_lr"]), rel=1e-4)
