"""The baseline is told to Optuna when the base lies inside the space, untold outside."""

from __future__ import annotations

from pathlib import Path

import optuna
import space_files

from rt3d_tune.search.searchers import search_setup
from rt3d_tune.space.params import BASELINE_KEY, PARAMS_KEY
from rt3d_tune.space.space import load_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"  # Adam lr 0.003


def _searcher(tmp_path, low, **search):
    space = load_space(space_files.write_space(
        tmp_path, "s", POINTNET, space={"optimizer.lr": {"loguniform": [low, 3.0e-2]}},
        search={"algorithm": "tpe", "num_samples": 3, "seed": 0, **search}))
    searcher, _, total, _ = search_setup(space, 3)
    searcher.set_search_properties(None, None, {})
    return searcher, total


def test_a_base_inside_the_space_is_the_first_trial_of_the_study(tmp_path):
    searcher, total = _searcher(tmp_path, 1.0e-3)
    assert total == 4  # the 3 asked for and the baseline
    first = searcher.suggest("t0")
    assert first == {"optimizer.lr": 0.003, BASELINE_KEY: True}
    searcher.on_trial_result("t0", {"accuracy": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("t0", {"accuracy": 0.6, "training_iteration": 2, "final": True})
    second = searcher.suggest("t1")
    assert BASELINE_KEY not in second and second["optimizer.lr"] != 0.003
    trials = searcher._ot_study.get_trials(deepcopy=False)
    assert trials[0].params == {"optimizer.lr": 0.003}
    assert trials[0].state == optuna.trial.TrialState.COMPLETE and trials[0].value == 0.6
    assert trials[0].intermediate_values == {1: 0.5}


def test_a_base_outside_the_space_runs_untold(tmp_path):
    searcher, total = _searcher(tmp_path, 1.0e-2)  # 0.003 is below the range
    assert total == 4
    assert searcher.suggest("t0") == {BASELINE_KEY: True}
    searcher.on_trial_result("t0", {"accuracy": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("t0", {"accuracy": 0.6, "training_iteration": 1, "final": True})
    assert searcher._ot_study.get_trials(deepcopy=False) == []
    second = searcher.suggest("t1")
    assert BASELINE_KEY not in second and 1.0e-2 <= second["optimizer.lr"] <= 3.0e-2
    assert len(searcher._ot_study.get_trials(deepcopy=False)) == 1


def test_without_a_baseline_nothing_is_added(tmp_path):
    searcher, total = _searcher(tmp_path, 1.0e-3, baseline=False)
    assert total == 3 and BASELINE_KEY not in searcher.suggest("t0")


def test_the_grid_runs_the_baseline_as_its_first_point(tmp_path):
    space = load_space(space_files.write_space(
        tmp_path, "g", POINTNET, space={"optimizer.lr": {"grid": [0.001, 0.01]}},
        search={"algorithm": "grid"}))
    _, param_space, _, _ = search_setup(space, 1)
    points = param_space[PARAMS_KEY]["grid_search"]
    assert points == [{BASELINE_KEY: True}, {"optimizer.lr": 0.001}, {"optimizer.lr": 0.01}]
