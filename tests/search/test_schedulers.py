"""Schedulers from the space's section, and PBT end to end on the session's Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rt3d_tune.config import Config
from rt3d_tune.search.schedulers import build_scheduler, clip_to_domains, pbt_mutations
from rt3d_tune.space.domains import Choice, Int, LogUniform
from rt3d_tune.space.rungs import rung_epochs
from rt3d_tune.space.space import SchedulerSettings, load_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"


@pytest.mark.parametrize(
    "kind, args, cls",
    [
        ("fifo", {}, "FIFOScheduler"),
        ("asha", {"grace_period": 2, "reduction_factor": 3}, "AsyncHyperBandScheduler"),
        ("hyperband", {"reduction_factor": 3}, "HyperBandScheduler"),
        ("median", {"grace_period": 2, "min_samples_required": 3}, "MedianStoppingRule"),
        ("pbt", {"perturbation_interval": 2}, "PopulationBasedTraining"),
    ],
)
def test_every_scheduler_counts_fidelity_in_training_iterations(kind, args, cls):
    scheduler = build_scheduler(SchedulerSettings(kind, args), metric="acc", mode="max",
                                max_t=12, mutations={"optimizer.lr": [0.1, 0.01]})
    assert type(scheduler).__name__ == cls
    if kind != "fifo":
        assert scheduler._time_attr == "training_iteration"
        assert scheduler.metric == "acc"


def test_pbt_perturbations_stay_inside_the_domains():
    domains = [("lr", LogUniform(1e-4, 1e-1)), ("warmup", Int(0, 500, q=50)),
               ("clip", Choice((10, 35)))]
    assert set(pbt_mutations(domains)) == {"lr", "warmup", "clip"}
    clipped = clip_to_domains({"lr": 0.5, "warmup": 512.0, "clip": 35}, domains)
    assert clipped == {"lr": 0.1, "warmup": 500, "clip": 35}
    assert clip_to_domains({"warmup": 123}, domains) == {"warmup": 100}


@pytest.mark.ray
@pytest.mark.slow
def test_pbt_exploits_and_the_trial_continues_with_the_new_params(ray_local, tmp_path):
    from rt3d_tune.search.tuner import run_search

    space_file = tmp_path / "pbt.yaml"
    space_file.write_text(yaml.safe_dump({
        "base": str(POINTNET), "metric": "accuracy", "mode": "max",
        "space": {"optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]}},
        "search": {"algorithm": "random", "num_samples": 4, "seed": 0, "max_concurrent": 4},
        # synchronous, so every trial is compared with all the others at each epoch
        "scheduler": {"type": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5,
                      "resample_probability": 0.5, "synch": True},
        "resources": {"cpu": 0.5}, "stop": {"max_epochs": 3},
    }))
    result = run_search(load_space(space_file), output=tmp_path / "runs", name="pbt",
                        status=False)
    records = result.records
    assert len(records) == 4
    assert all(rec.status == "TERMINATED" and rec.fidelity == 3 for rec in records.values())
    changed = [rec for rec in records.values() if rec.param_changes]
    assert changed, "PBT never exploited a trial"
    for rec in changed:
        lr = rec.params["optimizer.lr"]
        assert 1.0e-4 <= lr <= 3.0e-2
        # The trial's work dir holds the config it finished with: the new params.
        cfg = Config.fromfile(str(result.run_dir / "trials" / rec.trial_id / "config.py"))
        assert cfg.optimizer.lr == lr


@pytest.mark.parametrize("args, max_t", [
    ({"grace_period": 1, "reduction_factor": 3}, 8),
    ({"grace_period": 2, "reduction_factor": 2, "brackets": 2}, 12),
    ({"grace_period": 1, "reduction_factor": 1.5}, 6),
])
def test_probe_epochs_are_the_asha_rungs_ray_decides_at(args, max_t):
    import math


    settings = SchedulerSettings("asha", args)
    scheduler = build_scheduler(settings, metric="acc", mode="max", max_t=max_t)
    # a rung is decided at the first report at or after it; the last report has no probe
    ray_rungs = {math.ceil(milestone) for bracket in scheduler._brackets
                 for milestone, _ in bracket._rungs if math.ceil(milestone) < max_t}
    assert rung_epochs(settings, max_t) == ray_rungs and ray_rungs


def _asha_decision_epochs(settings: SchedulerSettings, max_t: int, strong: int = 150,
                          probes: int = 40) -> set[int]:
    """The reports at which Ray's own ASHA decides, found through its public scheduler API
    alone: for each epoch t, on a fresh scheduler, ``strong`` trials report 1.0 at every
    epoch (they fill every rung); then ``probes`` trials report 1.0 until t and 0.0 at t.
    A probe is stopped at t exactly when t is the first report at or after a rung of its
    bracket (below a rung's cutoff nothing else stops a trial). Trials go to brackets at
    random (numpy's global state): seeded, and enough probes to reach every bracket."""
    from types import SimpleNamespace

    import numpy as np
    from ray.tune.schedulers import TrialScheduler

    def report(scheduler, trial, epoch, acc):
        return scheduler.on_trial_result(None, trial, {"training_iteration": epoch,
                                                       "acc": acc})

    found = set()
    for t in range(1, max_t):
        np.random.seed(t)
        scheduler = build_scheduler(settings, metric="acc", mode="max", max_t=max_t)
        trials = [SimpleNamespace(trial_id=f"strong{i}") for i in range(strong)]
        for trial in trials:
            scheduler.on_trial_add(None, trial)
        for epoch in range(1, max_t):
            for trial in trials:
                assert report(scheduler, trial, epoch, 1.0) == TrialScheduler.CONTINUE
        for i in range(probes):
            probe = SimpleNamespace(trial_id=f"probe{i}")
            scheduler.on_trial_add(None, probe)
            for epoch in range(1, t):
                assert report(scheduler, probe, epoch, 1.0) == TrialScheduler.CONTINUE
            if report(scheduler, probe, t, 0.0) == TrialScheduler.STOP:
                found.add(t)
    return found


@pytest.mark.parametrize("args, max_t", [
    ({"grace_period": 1, "reduction_factor": 3}, 8),
    ({"grace_period": 1, "reduction_factor": 4}, 20),
    ({"grace_period": 2, "reduction_factor": 2, "brackets": 2}, 12),
    ({"grace_period": 1, "reduction_factor": 1.5}, 6),
    ({"grace_period": 3, "reduction_factor": 2}, 25),
    ({"grace_period": 1, "reduction_factor": 3, "brackets": 3}, 16),
])
def test_probe_epochs_are_where_the_installed_ray_asha_decides(args, max_t):
    """rung_epochs re-derives the arithmetic of Ray's private ASHA bracket: checked here
    against the decisions of the installed Ray's scheduler, driven as Tune drives it."""

    settings = SchedulerSettings("asha", args)
    decided = _asha_decision_epochs(settings, max_t)
    assert decided and rung_epochs(settings, max_t) == decided


def _hyperband_decision_epochs(settings: SchedulerSettings, max_t: int, trials: int = 120
                               ) -> set[int]:
    """The reports at which Ray's own HyperBand decides, found through its public scheduler
    API alone, driven as Tune drives it with one trial running at a time: the scheduler
    picks the next trial (``choose_trial_to_run``), the trial reports epoch by epoch until
    the scheduler pauses it at a bracket's milestone (its peers have not reached it yet) or
    stops it there (it lost the halving), and a controller stops the trials it is told to.
    Enough trials fill every bracket of a band. Each trial's metric grows at its own rate,
    so a halving has winners and losers."""
    import random
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    class FakeTrial(SimpleNamespace):
        __hash__ = object.__hash__  # the scheduler keys its brackets by trial
        __eq__ = object.__eq__

    scheduler = build_scheduler(settings, metric="acc", mode="max", max_t=max_t)

    class Controller:
        def stop_trial(self, trial: FakeTrial) -> None:
            trial.status = Trial.TERMINATED
            scheduler.on_trial_remove(self, trial)

    controller, rng = Controller(), random.Random(0)
    for i in range(trials):
        scheduler.on_trial_add(controller, FakeTrial(
            trial_id=f"t{i}", status=Trial.PENDING, is_saving=False, done=0, rate=rng.random()))
    found: set[int] = set()
    for _ in range(trials * max_t):
        trial = scheduler.choose_trial_to_run(controller)
        if trial is None:
            break
        trial.status = Trial.RUNNING
        action = TrialScheduler.CONTINUE
        while action == TrialScheduler.CONTINUE and trial.done < max_t:
            trial.done += 1
            action = scheduler.on_trial_result(controller, trial, {
                "training_iteration": trial.done, "acc": trial.rate * trial.done})
        if action == TrialScheduler.CONTINUE:  # ran to max_t
            trial.status = Trial.TERMINATED
            scheduler.on_trial_complete(controller, trial, {})
            continue
        if trial.done < max_t:
            found.add(trial.done)
        trial.status = Trial.PAUSED if action == TrialScheduler.PAUSE else Trial.TERMINATED
    return found


@pytest.mark.parametrize("eta, max_t", [(3, 9), (2, 8), (3, 27), (2, 12), (4, 20), (3, 10)])
def test_probe_epochs_are_where_the_installed_ray_hyperband_decides(eta, max_t):
    """rung_epochs re-derives HyperBand's bracket milestones: checked against the
    decisions of the installed Ray's scheduler, driven as Tune drives it."""
    settings = SchedulerSettings("hyperband", {"reduction_factor": eta})
    decided = _hyperband_decision_epochs(settings, max_t)
    assert decided and rung_epochs(settings, max_t) == decided


def test_probe_epochs_of_hyperband_median_and_the_rest():

    # HyperBand, max_t 9, eta 3: brackets start at 9, 3, 1 and grow by 3 up to 9
    assert rung_epochs(SchedulerSettings("hyperband", {"reduction_factor": 3}), 9) == {1, 3}
    # the median rule decides at every report from its grace period on
    assert rung_epochs(SchedulerSettings("median", {"grace_period": 2}), 5) == {2, 3, 4}
    assert rung_epochs(SchedulerSettings("fifo", {}), 5) == frozenset()
    assert rung_epochs(SchedulerSettings("pbt", {"perturbation_interval": 1}), 5) == frozenset()
