"""What a trial trains: overrides, its fixed seed, its length, its scaled schedule; and
the winner's config at the base config's full length."""

from __future__ import annotations

from pathlib import Path

import pytest
import space_files

from rt3d_tune.backends.mmcv.simulate import simulate_schedule
from rt3d_tune.space.space import load_space
from rt3d_tune.space.trials import build_trial_configs, confirm_seeds, fixed_seed, trial_overrides

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"  # 6 epochs, cosine
STEP = {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]},
        "lr_config": {"choice": [{"policy": "step", "step": [5], "gamma": 0.1,
                                  "warmup": "linear", "warmup_iters": 3}]}}
PARAMS = {"optimizer.lr": 0.005, "lr_config@choice": 0}
IPE = 10  # iterations per epoch for the schedule


def space(tmp_path: Path, **sections):
    sections.setdefault("space", STEP)
    return load_space(space_files.write_space(tmp_path, "s", POINTNET, **sections))


@pytest.mark.parametrize(("trial_seed", "seed", "expected"), [
    ("fixed", 7, 7), ("fixed", None, 3), (11, 7, 11), ("random", 7, None)])
def test_fixed_seed(tmp_path, trial_seed, seed, expected):
    sp = space(tmp_path, search={"algorithm": "random", "num_samples": 2, "seed": 3,
                                 "trial_seed": trial_seed})
    if seed is not None:
        sp.base_config.seed = seed
    assert fixed_seed(sp) == expected
    assert trial_overrides(sp, PARAMS).get("seed") == expected
    # the default of 7 confirmation seeds (bench/fidelity.py on BEV), none the trials' seed
    assert len(set(confirm_seeds(sp))) == 7 and expected not in confirm_seeds(sp)


def test_a_space_that_tunes_the_seed_keeps_it(tmp_path):
    base = tmp_path / "seeded.py"
    base.write_text(f"_base_ = {str(POINTNET)!r}\nseed = 0\n")
    sp = load_space(space_files.write_space(tmp_path, "s", base,
                                            space={**STEP, "seed": {"choice": [1, 2]}}))
    assert fixed_seed(sp) is None
    assert trial_overrides(sp, {**PARAMS, "seed": 2})["seed"] == 2


def test_scaled_trial_resamples_the_full_curve(tmp_path):
    sp = space(tmp_path, stop={"max_epochs": 3})
    trial, full = build_trial_configs(sp, sp.base_config, PARAMS, iters_per_epoch=lambda _: IPE)
    assert full.runner.max_epochs == 6 and trial.runner.max_epochs == 3
    assert full.lr_config.step == [5]  # the space speaks in the base config's epochs
    assert trial.lr_config.by_epoch is False and trial.lr_config.step == [25]  # 2.5 epochs
    assert trial.lr_config.warmup_iters == 3  # an iteration warm-up is not scaled
    full_lr = [r["lr"] for r in simulate_schedule(full.to_dict(), IPE)]
    trial_lr = [r["lr"] for r in simulate_schedule(trial.to_dict(), IPE)]
    assert len(full_lr) == 60 and len(trial_lr) == 30
    drop_full = next(i for i in range(1, 60) if full_lr[i] < full_lr[i - 1] * 0.5)
    drop_trial = next(i for i in range(1, 30) if trial_lr[i] < trial_lr[i - 1] * 0.5)
    assert abs(drop_trial - drop_full / 2) <= 1


def test_truncated_trial_cuts_the_full_curve(tmp_path):
    sp = space(tmp_path, stop={"max_epochs": 3, "schedule": "truncated"})
    trial, full = build_trial_configs(sp, sp.base_config, PARAMS, iters_per_epoch=lambda _: IPE)
    assert trial.lr_config == full.lr_config and trial.runner.max_epochs == 3
    full_lr = [r["lr"] for r in simulate_schedule(full.to_dict(), IPE)]
    trial_lr = [r["lr"] for r in simulate_schedule(trial.to_dict(), IPE)]
    assert trial_lr == full_lr[:30]  # today's behaviour: the same curve, stopped early


def test_without_a_stop_length_the_trial_is_the_full_run(tmp_path):
    sp = space(tmp_path)
    trial, full = build_trial_configs(sp, sp.base_config, PARAMS, iters_per_epoch=lambda _: IPE)
    assert trial == full and trial.runner.max_epochs == 6
