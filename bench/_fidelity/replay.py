"""Step 4: a search replayed from the grid, as the product runs it, and its confirmation.

Each search is the product's own (``search_setup``: tpe + asha on the grid's space, the
baseline trial first) run by ``ray.tune.Tuner`` with the product's ``ResultRecorder``;
its trials replay the grid's recorded seed-0 metrics instantly, one report per epoch as
``TuneReportHook`` reports them. A compute ``Stopper`` ends the search at its share of
the budget; the top configs are then confirmed on seed 1 (``select_top``, ``winner``).
Trials unpickle this module's functions by value (see :func:`register_by_value`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _fidelity.grid import METRIC, MODE, SEEDS, config_key, write_space
from _fidelity.loading import Grid, Mode


def register_by_value() -> None:
    """Ray's workers cannot import this bench module: pickle its functions by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])



def _replay_trial(config: dict[str, Any], table: dict[str, Any]) -> None:
    """A trial of the tabular benchmark: the recorded metric of each epoch, at once.

    Reports as ``TuneReportHook`` does: one report per epoch, the probe's metric at the
    rungs (the plain one as ``<metric>_plain``), ``final`` and ``done`` at the end.
    """
    from ray import tune

    from rt3d_tune.space.params import trial_params
    from rt3d_tune.space.sampling import overrides_from_params

    space = table["space"]
    overrides = overrides_from_params(space, trial_params(config))
    key = json.dumps({path: overrides[path] for path, _ in space.params}, sort_keys=True)
    cid = table["ids"][key]
    curve = table["curves"][cid]
    last = len(curve)
    for epoch, (value, plain, probe_iters) in enumerate(curve, start=1):
        result = {table["metric"]: value, "config_id": cid, "epoch": epoch,
                  "probe_iters": probe_iters, "final": epoch == last, "diverged": False}
        if probe_iters:
            result[f"{table['metric']}_plain"] = plain
        if epoch == last:
            result["done"] = True
        tune.report(result)


class ComputeStopper:
    """Ends the search phase once its share of the compute cannot pay for one more epoch.

    Counts every reported epoch plus its probe (probe iterations / iterations per epoch).
    (A Tune ``Stopper``: ``__call__`` per result, ``stop_all`` for the whole search.)
    """

    def __init__(self, share: float, iters_per_epoch: int) -> None:
        self.share = share
        self.iters_per_epoch = iters_per_epoch
        self.spent = 0.0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.spent += 1.0 + float(result.get("probe_iters") or 0) / self.iters_per_epoch
        return False

    def stop_all(self) -> bool:
        return self.spent + 1.0 > self.share + 1e-9


def _tune_stopper(share: float, iters_per_epoch: int) -> Any:
    """:class:`ComputeStopper` as a ``ray.tune.Stopper`` (Ray is imported only here)."""
    from ray.tune import Stopper

    class _Stopper(ComputeStopper, Stopper):
        pass

    return _Stopper(share, iters_per_epoch)


@dataclass
class SearchOutcome:
    """One replayed search: its confirmed winner (a grid config id), regret and compute."""

    mode: str
    seed: int
    winner: str | None
    confirmed: bool
    truth: float
    regret: float
    compute: float  # epochs: search + probes + confirmation
    trials: int
    finished: int


def run_search(folder: Path, grid: Grid, base: Path, mode: Mode, search_seed: int,
               budget: float, top_k: int, grace_period: int = 1) -> SearchOutcome:
    """One tpe+asha search of ``mode`` replaying the grid, then the confirmation."""
    from ray import tune

    from rt3d_tune.results.confirmation import ConfirmedConfig, select_top, winner
    from rt3d_tune.results.recorder import best_record, load_records
    from rt3d_tune.search.callbacks import ResultRecorder
    from rt3d_tune.search.searchers import search_setup
    from rt3d_tune.space.rungs import rung_epochs
    from rt3d_tune.space.trials import confirm_seeds, fixed_seed

    settings = grid.settings
    t = settings.trial_epochs
    name = f"{mode.name.replace('+', '_').replace('@', '_')}_seed{search_seed}"
    grid_compute = len(grid.ids) * settings.base_epochs
    confirm_cost = top_k * t
    share = budget * grid_compute - confirm_cost
    if share < t:
        print(f"WARNING {mode.name}: the search's share of the budget ({share:g} epochs = "
              f"{budget:g} x {grid_compute} - confirmation {confirm_cost}) cannot finish one "
              f"trial of {t} epochs", flush=True)
    space = write_space(folder / "spaces", name, base, settings.space, trial_epochs=t,
                        schedule="scaled" if mode.kind == "scaled" else "truncated",
                        search_seed=search_seed, probe_ratio=mode.probe_ratio, top_k=top_k,
                        num_samples=20 * len(grid.ids), grace_period=grace_period)
    trial_seed = fixed_seed(space)
    seeds = confirm_seeds(space)
    assert trial_seed in SEEDS and all(s in SEEDS for s in seeds), (trial_seed, seeds)
    probes = (rung_epochs(space.scheduler, space.max_fidelity)
              if space.scheduler.probe != "none" else frozenset())
    assert set(probes) <= set(settings.rungs), (probes, settings.rungs)
    ids = {config["key"]: config["id"] for config in settings.configs}
    for config in settings.configs:  # the space still names the grid's configs
        assert config_key(space, config["params"]) == config["key"], config
    curves = {}
    for cid in grid.ids:
        curve = []
        for epoch in range(1, t + 1):
            probed = epoch in probes and epoch < t
            value = mode.at(grid, cid, trial_seed, epoch) if probed else grid.value(
                cid, trial_seed, mode.kind, epoch)
            iters = mode.report_probe_iters(grid, cid, trial_seed, epoch) if probed else 0
            curve.append((value, grid.value(cid, trial_seed, mode.kind, epoch), iters))
        curves[cid] = curve
    table = {"space": space, "ids": ids, "curves": curves, "metric": METRIC}

    run_dir = folder / "searches" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    search_alg, param_space, samples, scheduler = search_setup(space, space.search.num_samples)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_replay_trial, table=table), {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler,
                                    num_samples=samples, max_concurrent_trials=2,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name="ray", storage_path=str(run_dir),
                                  stop=_tune_stopper(share, settings.iters_per_epoch),
                                  callbacks=[ResultRecorder(run_dir)], verbose=0),
    )
    tuner.fit()

    records = load_records(run_dir, finished=True)
    spent = sum(1.0 + float(r.get("probe_iters") or 0) / settings.iters_per_epoch
                for rec in records.values() for r in rec.results.values())
    cid_of = {tid: next(iter(rec.results.values()))["config_id"]
              for tid, rec in records.items() if rec.results}
    top = select_top(records, METRIC, MODE, top_k)
    groups = []
    for rec in top:
        cid = cid_of[rec.trial_id]
        runs = {f"{rec.trial_id}-confirm-seed{s}": (s, grid.value(cid, s, mode.kind, t))
                for s in seeds}
        groups.append(ConfirmedConfig(rec.trial_id, dict(rec.params), rec.metric(METRIC), runs))
    spent += len(top) * len(seeds) * t
    best = winner(groups, MODE)
    if best is not None:
        chosen, confirmed = cid_of[best.trial_id], True
    else:  # nothing finished its budget: the best trial seen, unconfirmed (as the export)
        rec = best_record(records, METRIC, MODE)
        chosen, confirmed = (cid_of[rec.trial_id] if rec is not None else None), False
    best_truth = max(grid.truth(c) for c in grid.ids)
    truth = grid.truth(chosen) if chosen is not None else 0.0
    return SearchOutcome(mode.name, search_seed, chosen, confirmed, truth, best_truth - truth,
                         spent, len(records),
                         sum(1 for rec in records.values() if rec.status == "TERMINATED"))

