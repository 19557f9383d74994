"""The paired verdict on recorded values, its interval computed by hand."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rt3d_tune.results import recorder
from rt3d_tune.results.confirmation import ConfirmedConfig
from rt3d_tune.results.verdict import (
    BETTER,
    WITHIN_NOISE,
    WORSE,
    Verdict,
    outcome_of,
    paired_interval,
    pairs_of,
    run_verdict,
)

# The hand measurement of the quickstart: seeds 0, 1, 2.
WINNER = [0.333, 0.330, 0.367]
BASE = [0.274, 0.364, 0.340]


def test_the_paired_t_interval_by_hand():
    diffs = [w - b for w, b in zip(WINNER, BASE)]  # +0.059, -0.034, +0.027
    mean = (0.059 - 0.034 + 0.027) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in [0.059, -0.034, 0.027]) / 2)
    half = 4.302652729749464 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    delta, ci = paired_interval(diffs)
    assert delta == pytest.approx(0.017333, abs=1e-6)
    assert ci == pytest.approx((mean - half, mean + half))
    assert ci == pytest.approx((-0.10004, 0.13470), abs=1e-4)  # the "about +-0.12"
    assert paired_interval([0.02]) == (0.02, None)
    with pytest.raises(ValueError, match="at least one pair"):
        paired_interval([])


@pytest.mark.parametrize(("ci", "mode", "expected"), [
    ((0.01, 0.05), "max", BETTER), ((-0.05, -0.01), "max", WORSE),
    ((-0.01, 0.05), "max", WITHIN_NOISE), ((-0.05, -0.01), "min", BETTER),
    ((0.01, 0.05), "min", WORSE), (None, "max", WITHIN_NOISE),
])
def test_outcomes(ci, mode, expected):
    assert outcome_of(ci, mode) == expected


def _record(trial_id, value, status=recorder.TERMINATED, baseline=False):
    return recorder.TrialRecord(trial_id, results={3: {"bev_mAP": value}}, status=status,
                                baseline=baseline)


def _group(trial_id, values, baseline=False):
    return ConfirmedConfig(trial_id, {}, None, {f"{trial_id}-{s}": (s, v)
                                                for s, v in values.items()}, baseline)


def test_pairs_are_the_confirmation_seeds_and_the_search_trials_on_the_common_seed():
    winner = _group("w", {1: 0.33, 2: 0.37, 3: None})
    base = _group("b", {1: 0.36, 2: 0.34, 3: 0.30})
    search = (_record("w", 0.333), _record("b", 0.274, baseline=True))
    pairs = pairs_of(winner, base, search, "bev_mAP", 0, "trial")
    assert pairs == {0: (0.333, 0.274), 1: (0.33, 0.36), 2: (0.37, 0.34)}  # 3: winner failed
    # at full length the search's trial-length pair is not one of them
    assert pairs_of(winner, base, search, "bev_mAP", 0, "full") == {1: (0.33, 0.36),
                                                                    2: (0.37, 0.34)}
    # ASHA stopped the baseline: its search value is a lower fidelity's, no pair
    stopped = (search[0], _record("b", 0.2, recorder.EARLY_STOPPED, baseline=True))
    assert 0 not in pairs_of(winner, base, stopped, "bev_mAP", 0, "trial")
    assert 0 not in pairs_of(winner, base, search, "bev_mAP", None, "trial")  # random seeds


@pytest.mark.parametrize(("winner", "expected", "words"), [
    ([0.40, 0.41, 0.42], BETTER, "AdamW.lr=0.0008 beats your config by +0.07"),
    ([0.30, 0.31, 0.33], WORSE, "your config beats the search's best (AdamW.lr=0.0008)"),
    (WINNER, WITHIN_NOISE, "the search found nothing better than your config within noise"),
])
def test_verdict_text_and_summary(winner, expected, words):
    base = [0.33, 0.34, 0.35]
    verdict = Verdict("bev_mAP", "max", "w", "b", "AdamW.lr=0.0008",
                      {s: (w, b) for s, w, b in zip((0, 1, 2), winner, base)})
    assert verdict.outcome == expected
    assert words in verdict.text() and "3 paired seeds" in verdict.text()
    summary = verdict.as_dict()
    assert summary["outcome"] == expected and summary["seeds"] == [0, 1, 2]
    assert summary["baseline"] == pytest.approx(0.34)
    assert summary["winner"] == pytest.approx(sum(winner) / 3)
    assert summary["delta"] == pytest.approx(summary["winner"] - summary["baseline"])
    low, high = summary["ci95"]
    assert low < summary["delta"] < high


REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
BEV = REPO / "configs" / "pillar_bev" / "pillar_bev_synthetic.py"


def _run(tmp_path: Path, space: dict, params: dict, base_params: dict) -> SimpleNamespace:
    """An exported run's context as ``run_verdict`` reads it: the space's copies in the run
    folder, the baseline and the winner confirmed on seeds 1, 2 (winner ahead by 0.07)."""
    (tmp_path / "base_config.py").write_text(f"_base_ = [{str(BEV)!r}]\n")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**space, "base": str(BEV)}))
    search = (_record("w", 0.40), _record("b", 0.33, baseline=True))
    search[0].params, search[1].params = params, base_params
    groups = [_group("w", {1: 0.41, 2: 0.42}), _group("b", {1: 0.34, 2: 0.35}, baseline=True)]
    info = {"metric": "bev_mAP", "mode": "max", "common_seed": 0, "base_path": str(BEV)}
    return SimpleNamespace(run_dir=tmp_path, info=info, best=search[0], confirmed=groups,
                           records={"b": search[1], "w": search[0]})


def test_the_verdict_names_a_choice_winner_by_its_branch_and_changed_params(tmp_path):
    space = yaml.safe_load(QUICKSTART.read_text())
    base_params = {"optimizer@choice": 1, "optimizer@1.lr": 0.0018, "lr_config@choice": 0}
    lr = 0.0008236121944482092  # the quickstart winner
    ctx = _run(tmp_path, space, {**base_params, "optimizer@1.lr": lr}, base_params)
    verdict = run_verdict(ctx)
    assert verdict.text().startswith(
        "AdamW lr 0.0008236 beats your config by +0.07 bev_mAP (95% CI ")
    assert verdict.as_dict()["text"] == verdict.text()
    # a changed schedule is named by its policy (the space's order); an unchanged one
    # is left out
    ctx.best.params = {**base_params, "optimizer@1.lr": lr, "lr_config@choice": 1}
    assert run_verdict(ctx).text().startswith("CosineAnnealing, AdamW lr 0.0008236 beats")
    # another branch: its type and every param drawn in it
    ctx.best.params = {"optimizer@choice": 0, "optimizer@0.lr": 0.01234567,
                       "optimizer@0.momentum": 0.9, "lr_config@choice": 0}
    assert run_verdict(ctx).text().startswith("SGD lr 0.01235 momentum 0.9 beats")


def test_the_verdict_names_a_numeric_winner_by_its_key_path(tmp_path):
    space = {"metric": "bev_mAP", "mode": "max",
             "space": {"optimizer.lr": {"loguniform": [1.0e-4, 1.0e-2]},
                       "optimizer.weight_decay": {"uniform": [0.0, 0.1]}}}
    base_params = {"optimizer.lr": 0.0018, "optimizer.weight_decay": 0.01}
    ctx = _run(tmp_path, space, {"optimizer.lr": 0.000823612, "optimizer.weight_decay": 0.01},
               base_params)
    assert run_verdict(ctx).text().startswith("optimizer.lr 0.0008236 beats your config by")
    # a baseline outside the space (no params): every param of the winner is named
    ctx.records["b"].params = {}
    assert run_verdict(ctx).text().startswith(
        "optimizer.lr 0.0008236, optimizer.weight_decay 0.01 beats your config by")


def test_the_verdict_names_whole_scheduler_lists_and_untyped_choices_as_a_person_reads_them():
    """The mmengine quickstart's space: a choice among whole ``param_scheduler`` lists (named
    by their schedulers), a parameter inside one of its entries (by its key, not its list
    index) and a choice among a plain value and a mapping without a ``type`` (named by its
    key path)."""
    from rt3d_tune.results.param_labels import ParamLabels
    from rt3d_tune.space.space import load_space

    space = load_space(REPO / "search_spaces" / "mmengine_quickstart.yaml")
    winner = {"optim_wrapper.clip_grad@choice": 1, "optim_wrapper.optimizer@choice": 1,
              "optim_wrapper.optimizer@1.lr": 0.0016051911, "param_scheduler@choice": 0,
              "param_scheduler@0.1.eta_min": 0.000195788972}
    base = {"optim_wrapper.clip_grad@choice": 0, "optim_wrapper.optimizer@choice": 0,
            "optim_wrapper.optimizer@0.lr": 0.01, "optim_wrapper.optimizer@0.momentum": 0.9,
            "param_scheduler@choice": 0, "param_scheduler@0.1.eta_min": 0.0001}
    labels = ParamLabels.for_params(space, [*winner, *base])
    assert labels.short(winner, base) == ("AdamW lr 0.001605, LinearLR+CosineAnnealingLR "
                                          "eta_min 0.0001958, optim_wrapper.clip_grad "
                                          "{max_norm: 10}")
    assert labels.value("param_scheduler@choice", 1) == "LinearLR+MultiStepLR"
    # only the scheduler's parameter changed: the list is still named, the rest left out
    assert labels.short({**base, "param_scheduler@0.1.eta_min": 0.0002}, base) == \
        "LinearLR+CosineAnnealingLR eta_min 0.0002"
