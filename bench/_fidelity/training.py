"""Step 2: training the grid's runs on the real runner, into ``grid.csv``.

Each run is one config x training seed x kind (``full``: the base length B; ``scaled``:
the schedule rescaled onto the trial budget T), trained by ``build_runner`` in a
process of its own (one torch thread, its console output in a log file), ``workers``
at once. A small hook records the metric after every epoch and rides the cool-down
probes along (they leave the run bit-identical). The verdict's extra seeds are trained
by the same code, without probes, and appended to the same ``grid.csv``.
"""

from __future__ import annotations

import concurrent.futures
import csv
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from _fidelity.grid import FIELDS, GRID_CSV, KINDS, METRIC, SEEDS, Settings, write_space
from rt3d_tune.runner.hook import Hook


class EpochProbeRecorder(Hook):
    """Records the metric after every epoch and runs the cool-down probes.

    Registered after EvalHook (``Priority.VERY_LOW``, as ``TuneReportHook``), so the
    epoch's evaluation is in ``runner.eval_results``; probes are called exactly as
    ``TuneReportHook._probe`` calls them (the LR hook's ``final_lr``, the EvalHook's
    ``compute_metrics``, ``probe_iters`` of the iterations so far) and leave the run
    as it was.
    """

    def __init__(self, probe_epochs: list[int], ratios: list[float]) -> None:
        self.probe_epochs = set(probe_epochs)
        self.ratios = list(ratios)
        self.epochs: list[dict[str, Any]] = []
        self.started = 0.0

    def before_train_epoch(self, runner: Any) -> None:
        self.started = time.perf_counter()

    def after_train_epoch(self, runner: Any) -> None:
        epoch = runner.epoch + 1
        seconds = time.perf_counter() - self.started
        value = float((getattr(runner, "eval_results", None) or {}).get(METRIC, math.nan))
        probes = {}
        if epoch in self.probe_epochs and epoch < runner.max_epochs:
            probes = {ratio: self._probe(runner, ratio) for ratio in self.ratios}
        self.epochs.append({"epoch": epoch, "metric": value, "seconds": seconds,
                            "probes": probes})

    def _probe(self, runner: Any, ratio: float) -> dict[str, Any]:
        from rt3d_tune.backends.mmcv.probe import cooldown_probe
        from rt3d_tune.backends.probe import probe_iters
        from rt3d_tune.runner.hooks.evaluation import EvalHook
        from rt3d_tune.runner.hooks.lr_updater import LrUpdaterHook

        lr_hook = next((h for h in runner.hooks if isinstance(h, LrUpdaterHook)), None)
        eval_hook = next(h for h in runner.hooks if isinstance(h, EvalHook))
        result = cooldown_probe(
            runner, probe_iters(runner.iter, ratio),
            lr_hook.final_lr if lr_hook is not None else runner.current_lr(),
            lambda: eval_hook.compute_metrics(runner), start_iter=runner.iter,
        )
        value = math.nan if result.diverged else float(result.metrics.get(METRIC, math.nan))
        return {"metric": value, "iters": result.iters, "seconds": result.seconds}


def worker_init(log_dir: str) -> None:
    """One torch thread; the runners' console output goes to a file per worker."""
    import torch

    torch.set_num_threads(1)
    fd = os.open(os.path.join(log_dir, f"worker-{os.getpid()}.log"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def train_run(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one config x seed x kind; its CSV rows (a diverged run: NaN from there on)."""
    from rt3d_tune.errors import DivergenceError
    from rt3d_tune.runner.builder import build_runner
    from rt3d_tune.runner.priority import Priority

    recorder = EpochProbeRecorder(task["probe_epochs"], task["ratios"])
    runner = build_runner(task["cfg"], work_dir=task["work_dir"],
                          extra_hooks=[(recorder, Priority.VERY_LOW)], device="cpu")
    diverged_at = None
    try:
        runner.run()
    except DivergenceError as err:
        diverged_at = int(err.epoch) + 1
    rows = []
    common = {key: task[key] for key in ("config", "label", "params", "seed", "kind")}
    done = {item["epoch"]: item for item in recorder.epochs}
    for epoch in range(1, task["epochs"] + 1):
        lost = {ratio: {"metric": math.nan, "iters": 0, "seconds": math.nan}
                for ratio in task["ratios"]} if epoch in task["probe_epochs"] else {}
        item = done.get(epoch, {"metric": math.nan, "seconds": math.nan, "probes": lost})
        base = {**common, "epoch": epoch, "metric": item["metric"], "seconds": item["seconds"],
                "diverged": int(diverged_at is not None and epoch >= diverged_at)}
        if not item["probes"]:
            rows.append({**base, "probe_ratio": "", "probe_metric": "", "probe_iters": "",
                         "probe_seconds": ""})
        for ratio, probe in item["probes"].items():
            rows.append({**base, "probe_ratio": ratio, "probe_metric": probe["metric"],
                         "probe_iters": probe["iters"], "probe_seconds": probe["seconds"]})
    return rows

def _task(folder: Path, settings: Settings, base_cfg: Any, spaces: dict[str, Any],
          config: dict[str, Any], seed: int, kind: str, probes: bool) -> dict[str, Any]:
    """What :func:`train_run` needs for one run (its config built as a trial's)."""
    from rt3d_tune.runner.data import train_iters_per_epoch
    from rt3d_tune.space.trials import build_trial_configs

    cfg, _ = build_trial_configs(spaces[kind], base_cfg, config["params"], seed=seed,
                                 iters_per_epoch=train_iters_per_epoch)
    return {
        "cfg": cfg.to_dict(), "config": config["id"], "label": config["label"],
        "params": json.dumps(config["params"], sort_keys=True), "seed": seed, "kind": kind,
        "epochs": settings.base_epochs if kind == "full" else settings.trial_epochs,
        "probe_epochs": settings.probe_epochs(kind) if probes else [],
        "ratios": list(settings.probe_ratios),
        "work_dir": str(folder / "runs" / f"{config['id']}_s{seed}_{kind}"),
    }


def train_runs(folder: Path, base: Path, settings: Settings,
               runs: list[tuple[str, int, str, bool]], workers: int, *, append: bool) -> float:
    """Train ``runs`` ((config id, seed, kind, with probes), longest first) into
    ``folder/grid.csv`` (``append``: after the rows already there; else a new file);
    returns the wall seconds."""
    from rt3d_tune.config import Config

    base_cfg = Config.fromfile(str(base))
    spaces = {
        "full": write_space(folder / "spaces", "full", base, settings.space, trial_epochs=None),
        "scaled": write_space(folder / "spaces", "scaled", base, settings.space,
                              trial_epochs=settings.trial_epochs),
    }
    by_id = {c["id"]: c for c in settings.configs}
    tasks = [_task(folder, settings, base_cfg, spaces, by_id[cid], seed, kind, probes)
             for cid, seed, kind, probes in runs]
    log_dir = folder / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    path = folder / GRID_CSV
    with path.open("a" if append else "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        if not append:
            writer.writeheader()
        out.flush()
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=worker_init,
            initargs=(str(log_dir),),
        ) as pool:
            futures = [pool.submit(train_run, task) for task in tasks]
            for n, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                rows = future.result()
                writer.writerows(rows)
                out.flush()
                first = rows[0]
                curve = " ".join(f"{r['metric']:.3f}" for r in rows
                                 if r["probe_ratio"] in ("", settings.probe_ratios[0]))
                print(f"  [{n}/{len(tasks)}] {first['config']} {first['label']} seed "
                      f"{first['seed']} {first['kind']}: {curve} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def train_grid(folder: Path, base: Path, settings: Settings, workers: int) -> float:
    """Train every config x seed (0, 1) x kind, with probes, into a new
    ``folder/grid.csv``; returns the wall seconds."""
    log_dir = folder / "runs"
    print(f"training the grid: {len(settings.configs)} configs x {len(SEEDS)} seeds x "
          f"(full {settings.base_epochs} + scaled {settings.trial_epochs} epochs), "
          f"{workers} processes; logs in {log_dir}", flush=True)
    runs = [(c["id"], seed, kind, True)
            for kind in KINDS for c in settings.configs for seed in SEEDS]  # full first
    return train_runs(folder, base, settings, runs, workers, append=False)
