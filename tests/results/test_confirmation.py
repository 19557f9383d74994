"""Choosing the top trials to confirm and the confirmed winner, from records."""

from __future__ import annotations

import pytest

from rt3d_tune.results.confirmation import confirmed, select_top, winner
from rt3d_tune.results.recorder import DIVERGED, EARLY_STOPPED, ERROR, TERMINATED, TrialRecord


def rec(tid: str, value: float | None, status: str = TERMINATED, **kw) -> TrialRecord:
    results = {} if value is None else {4: {"acc": value, "training_iteration": 4}}
    return TrialRecord(tid, params={"lr": float(len(tid))}, results=results, status=status, **kw)


def records(*recs: TrialRecord) -> dict[str, TrialRecord]:
    return {r.trial_id: r for r in recs}


def test_select_top_takes_finished_trials_only_best_first_ties_by_start():
    search = records(rec("a", 0.5), rec("b", 0.9, EARLY_STOPPED), rec("c", 0.7),
                     rec("d", 0.7), rec("e", None, ERROR), rec("f", 0.95, DIVERGED))
    assert [r.trial_id for r in select_top(search, "acc", "max", 3)] == ["c", "d", "a"]
    assert [r.trial_id for r in select_top(search, "acc", "min", 1)] == ["a"]
    assert select_top(search, "acc", "max", 0) == []


def test_winner_is_the_best_mean_over_new_seeds_not_the_lucky_search_trial():
    search = records(rec("lucky", 0.9), rec("steady", 0.8))
    confirm = records(
        rec("c1", 0.70, confirm_of="lucky", seed=1), rec("c2", 0.72, confirm_of="lucky", seed=2),
        rec("c3", 0.79, confirm_of="steady", seed=1), rec("c4", 0.81, confirm_of="steady", seed=2),
    )
    groups = confirmed(search, confirm, "acc")
    assert [g.trial_id for g in groups] == ["lucky", "steady"]
    best = winner(groups, "max")
    assert best is not None and best.trial_id == "steady"
    assert best.mean == pytest.approx(0.80) and best.std == pytest.approx(0.01414, abs=1e-4)
    assert best.search_value == 0.8 and sorted(s for s, _ in best.runs.values()) == [1, 2]
    assert winner(groups, "min").trial_id == "lucky"


def test_failed_confirmation_runs_count_as_missing_values():
    search = records(rec("a", 0.9), rec("b", 0.8))
    confirm = records(rec("c1", None, ERROR, confirm_of="a", seed=1),
                      rec("c2", 0.5, DIVERGED, confirm_of="a", seed=2),
                      rec("c3", 0.6, confirm_of="b", seed=1),
                      rec("x", 0.99, confirm_of="unknown", seed=1))
    groups = confirmed(search, confirm, "acc")
    assert [g.trial_id for g in groups] == ["a", "b"]
    assert groups[0].values == [] and groups[0].mean is None
    assert winner(groups, "max").trial_id == "b"
    assert winner([], "max") is None
