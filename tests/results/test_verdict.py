"""The paired verdict on recorded values, its interval computed by hand."""

from __future__ import annotations

import math

import pytest

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
