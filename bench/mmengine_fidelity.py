"""mmengine fidelity: does the cool-down probe rank mmengine trials better than the plain metric?

Question: on the built-in mmengine PointNet task (``configs/mmengine/pointnet_shapes.py``,
trained on mmengine's own Runner), at a trial budget of half the base length, how well
does the metric at ASHA's rungs rank configs against their full-length result: the plain
validation accuracy, or the cool-down probe's (``rt3d_tune.backends.mmengine.probe``)?
``bench/fidelity.py`` measures the same for mmcv-style configs (the BEV task).

**Grid.** A real space file over the task (``load_space``), all categorical, whose
Cartesian product (``grid_params``) is the grid:

    optim_wrapper.optimizer: SGD (momentum 0.9, wd 1e-4) at --sgd-lrs 3e-3 1e-2 3e-2
                             | AdamW (wd 0.01) at --adamw-lrs 3e-4 1e-3 3e-3
    param_scheduler: LinearLR warm-up (start 0.1, one epoch of iterations, not rescaled)
                     + CosineAnnealingLR over B epochs (eta_min_ratio 0.01: the base's
                       1e-4 for SGD 0.01, relative so every LR gets the same shape)
                   | the same warm-up + MultiStepLR, milestone at 3/4 of B ([6] of 8), gamma 0.1
    = (3 + 3) x 2 = 12 configs

Each config x training seed {0, 1} (``randomness.seed``) is trained twice, each trial
config built by the search's own code path (``tuner._trial_setup`` +
``trial.setup.build_trial_config``: overrides, seed, ``scale_param_schedulers``), run as
the trial runs it (``Runner.from_cfg``, one torch thread, ``StopOnDivergence``;
checkpoints off):

    * ``full``: the base length B (8 epochs, space without ``stop``); its final accuracy
      is the truth;
    * ``trial``: ``stop: {max_epochs: T}`` (4), the schedule scaled onto T; plain accuracy
      after every validation round, and the probe (``mmengine_cooldown_probe``, called
      from ``after_val_epoch`` exactly as ``MMTuneReportHook`` calls it, ``probe_iters`` of
      the iterations so far at ``--probe-ratio`` 0.25) at the rounds where the search's
      trials probe: ``rung_epochs`` of the space's ASHA (grace 1, reduction factor 2),
      i.e. T/4 and T/2 (rounds 1 and 2). The probe leaves the run bit-identical, so
      plain and probe come from the same run.

Truth of a config = mean over the seeds of the full run's final accuracy. Each fidelity
(plain or probe at a rung, the trial's final at T) of seed s is rank-correlated
(Spearman, scipy, via ``_fidelity.loading.spearman``: no spread counts as 0) with the truth, mean
over s; the note gives each seed's figure and the fairer one against the OTHER seeds'
full-length results (which share no noise with seed s, as the seed-to-seed figure:
seed s's final against seed o's, mean over the pairs: what a second full run achieves).
The probe's cost: its seconds (validation included) over the trial's training seconds
(``runner.train()``, its validations included, less the probes). A diverged probe falls
back to the plain metric (as the report hook does). Targets (reported, never asserted):
probe at T/2 >= plain at T/2. Every run goes to ``<out>/runs.csv`` (one row per run and round).

    python bench/mmengine_fidelity.py [--out DIR] [--base-epochs 8] [--trial-epochs 4]
        [--sgd-lrs ...] [--adamw-lrs ...] [--seeds 0 1] [--probe-ratio 0.25]
        [--train-samples 320] [--val-samples 200] [--workers 2] [--quick]

``--quick``: 3 configs (SGD 1e-2 x {cosine, step}, AdamW 3e-3 x cosine), seed 0 only,
B = 4 and T = 2 epochs (a 1-epoch trial has no rung before its end), 32 train and 32
validation samples (2 iterations an epoch); the same code path.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import math
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import yaml
from _fidelity.loading import spearman
from _fidelity.training import worker_init

REPO = Path(__file__).resolve().parents[1]
TASK_CONFIG = "configs/mmengine/pointnet_shapes.py"
METRIC = "accuracy"
BATCH = 16  # the task's train batch size
FIELDS = ("config", "label", "seed", "kind", "round", "accuracy", "probe_accuracy",
          "probe_iters", "probe_seconds", "probe_diverged", "diverged", "train_seconds")


# --- the space ------------------------------------------------------------------------
def write_base(folder: Path, train_samples: int, val_samples: int, base_epochs: int) -> Path:
    """The task at ``base_epochs`` (its cosine to match), fewer samples when asked, no
    checkpoints; an mmengine config over the built-in one."""
    lines = [
        f"_base_ = [{str(REPO / TASK_CONFIG)!r}]",
        f"train_dataloader = dict(dataset=dict(num_samples={train_samples}))",
        f"val_dataloader = dict(dataset=dict(num_samples={val_samples}))",
        f"train_cfg = dict(max_epochs={base_epochs})",
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, "
        f"end=20), dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end={base_epochs}, "
        f"T_max={base_epochs}, eta_min=1e-4)]",
        "default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=-1), "
        "logger=dict(type='LoggerHook', interval=50))",
        "randomness = dict(seed=0)",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mmengine_fidelity_base.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def space_section(sgd_lrs: list[float], adamw_lrs: list[float], base_epochs: int,
                  warmup_iters: int) -> dict[str, Any]:
    optimizers = []
    if sgd_lrs:
        optimizers.append({"type": "SGD", "lr": {"choice": list(sgd_lrs)}, "momentum": 0.9,
                           "weight_decay": 1.0e-4})
    if adamw_lrs:
        optimizers.append({"type": "AdamW", "lr": {"choice": list(adamw_lrs)},
                           "weight_decay": 0.01})
    warmup = {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0,
              "end": warmup_iters}
    cosine = {"type": "CosineAnnealingLR", "by_epoch": True, "begin": 0, "end": base_epochs,
              "T_max": base_epochs, "eta_min_ratio": 0.01}
    step = {"type": "MultiStepLR", "by_epoch": True, "begin": 0, "end": base_epochs,
            "milestones": [max(1, round(0.75 * base_epochs))], "gamma": 0.1}
    return {"optim_wrapper.optimizer": {"choice": optimizers},
            "param_scheduler": {"choice": [[warmup, cosine], [warmup, step]]}}


def load_space(folder: Path, name: str, base: Path, section: dict[str, Any],
               trial_epochs: int | None, probe_ratio: float) -> Any:
    """A space file as a user writes it, loaded by the product (``load_space``)."""
    from rt3d_tune.space.space import load_space as load

    data: dict[str, Any] = {
        "base": str(base), "metric": METRIC, "mode": "max", "space": section,
        "search": {"algorithm": "grid", "trial_seed": "fixed", "max_concurrent": 2},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2,
                      "probe": "cooldown", "probe_ratio": probe_ratio},
        "resources": {"cpu": 1},
    }
    if trial_epochs is not None:
        data["stop"] = {"max_epochs": trial_epochs, "schedule": "scaled"}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load(path)


def config_label(space: Any, params: dict[str, Any]) -> str:
    """``SGD lr 0.01 cosine``."""
    from rt3d_tune.space.sampling import overrides_from_params

    over = overrides_from_params(space, params)
    opt = over["optim_wrapper.optimizer"]
    policy = "cosine" if over["param_scheduler"][-1]["type"] == "CosineAnnealingLR" else "step"
    return f"{opt['type']} lr {opt['lr']:g} {policy}"


# --- one run ----------------------------------------------------------------------------
def _recorder(probe_rounds: set[int], ratio: float) -> Any:
    from mmengine.hooks import Hook

    from rt3d_tune.backends.mmengine.probe import mmengine_cooldown_probe
    from rt3d_tune.backends.probe import probe_iters

    class RoundRecorder(Hook):
        """Accuracy after every validation round; the probe where the trial probes (as
        ``MMTuneReportHook.after_val_epoch``: never at the last round)."""

        priority = "VERY_LOW"

        def __init__(self) -> None:
            self.rounds: list[dict[str, Any]] = []

        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            done = int(runner.epoch)
            row: dict[str, Any] = {"round": done, "accuracy": float((metrics or {})[METRIC]),
                                   "probe_accuracy": "", "probe_iters": "",
                                   "probe_seconds": "", "probe_diverged": ""}
            if done in probe_rounds and done < runner.max_epochs:
                result = mmengine_cooldown_probe(runner, probe_iters(int(runner.iter), ratio))
                row.update(probe_accuracy=float(result.metrics.get(METRIC, math.nan)),
                           probe_iters=result.iters, probe_seconds=result.seconds,
                           probe_diverged=int(result.diverged))
            self.rounds.append(row)

    return RoundRecorder()


def train_run(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one config x seed x kind as a search trial does; its CSV rows."""
    from mmengine.config import Config as MMConfig
    from mmengine.runner import Runner

    from rt3d_tune.backends.mmengine.hooks import StopOnDivergence
    from rt3d_tune.config.keypaths import plain_dict
    from rt3d_tune.errors import DivergenceError
    from rt3d_tune.trial.setup import build_trial_config

    setup = task["setup"]
    plain = plain_dict(build_trial_config(setup, task["params"], seed=task["seed"]))
    name = f"{task['config']}_s{task['seed']}_{task['kind']}"
    plain.update(work_dir=str(Path(task["work_dir"]) / name), experiment_name=name)
    runner = Runner.from_cfg(MMConfig(plain, filename=setup.base_config))
    rounds = set(setup.probe_epochs) if task["kind"] == "trial" else set()  # truth: no probes
    recorder = _recorder(rounds, setup.space.scheduler.probe_ratio)
    runner.register_hook(StopOnDivergence(), priority="VERY_LOW")
    runner.register_hook(recorder, priority="VERY_LOW")
    started = time.perf_counter()
    diverged = 0
    try:
        runner.train()
    except DivergenceError:
        diverged = 1
    seconds = time.perf_counter() - started
    seconds -= sum(r["probe_seconds"] or 0.0 for r in recorder.rounds)
    rows = {r["round"]: r for r in recorder.rounds}
    out = []
    for rnd in range(1, task["epochs"] + 1):  # a diverged run: accuracy 0 from there on
        row = rows.get(rnd) or {"round": rnd, "accuracy": 0.0, "probe_accuracy": "",
                                "probe_iters": "", "probe_seconds": "", "probe_diverged": ""}
        out.append({**{k: task[k] for k in ("config", "label", "seed", "kind")}, **row,
                    "diverged": diverged, "train_seconds": seconds})
    return out


def train_all(tasks: list[dict[str, Any]], folder: Path, workers: int) -> list[dict[str, Any]]:
    """Every run, ``workers`` spawned processes at once, into ``folder/runs.csv``."""
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with (folder / "runs.csv").open("w", newline="", encoding="utf-8") as out, \
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=worker_init,
                initargs=(str(folder),)) as pool:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        futures = [pool.submit(train_run, task) for task in tasks]  # full runs first
        for n, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            got = future.result()
            writer.writerows(got)
            out.flush()
            rows += got
            first = got[0]
            curve = " ".join(f"{r['accuracy']:.3f}" + (f"[{r['probe_accuracy']:.3f}]"
                                                        if r["probe_iters"] != "" else "")
                             for r in got)
            print(f"  [{n}/{len(tasks)}] {first['config']} {first['label']} seed "
                  f"{first['seed']} {first['kind']}: {curve} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


# --- main -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for runs.csv, the spaces and logs (default: a temp dir)")
    parser.add_argument("--base-epochs", type=int, default=8, help="the base length B")
    parser.add_argument("--trial-epochs", type=int, default=4, help="the trial budget T")
    parser.add_argument("--sgd-lrs", type=float, nargs="*", default=[3.0e-3, 1.0e-2, 3.0e-2])
    parser.add_argument("--adamw-lrs", type=float, nargs="*", default=[3.0e-4, 1.0e-3, 3.0e-3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--probe-ratio", type=float, default=0.25)
    parser.add_argument("--train-samples", type=int, default=320)
    parser.add_argument("--val-samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="training processes at once")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    args = parser.parse_args(argv)
    if args.quick:  # 3 configs (see run), one seed, 2 iterations an epoch
        args.sgd_lrs, args.adamw_lrs, args.seeds = [1.0e-2], [3.0e-3], [0]
        args.base_epochs, args.trial_epochs = 4, 2
        args.train_samples, args.val_samples = 2 * BATCH, 32
    if not 2 <= args.trial_epochs <= args.base_epochs:
        parser.error("--trial-epochs must be in [2, --base-epochs]: a rung needs a round "
                     "before the trial's end")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rt3d_mmengine_fidelity_") as tmp:
        folder = (args.out or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        run(folder, args)
    return 0


def run(folder: Path, args: argparse.Namespace) -> None:
    from rt3d_tune.search.tuner import _trial_setup
    from rt3d_tune.space.sampling import grid_params

    base = write_base(folder, args.train_samples, args.val_samples, args.base_epochs)
    ipe = -(-args.train_samples // BATCH)
    section = space_section(args.sgd_lrs, args.adamw_lrs, args.base_epochs, ipe)
    full = load_space(folder, "full", base, section, None, args.probe_ratio)
    trial = load_space(folder, "trial", base, section, args.trial_epochs, args.probe_ratio)
    if args.quick:  # 3 configs: SGD x both schedules, AdamW x cosine
        grid = grid_params(full)[:3]
    else:
        grid = grid_params(full)
    configs = [(f"c{i:02d}", params, config_label(full, params)) for i, params in enumerate(grid)]
    b, t = args.base_epochs, args.trial_epochs
    trial_setup = _trial_setup(trial, folder / "trial_runs", 1.0)
    rungs = sorted(trial_setup.probe_epochs)
    quarter, half = max(1, t // 4), max(1, t // 2)
    print(f"{len(configs)} configs x seeds {args.seeds} x (full {b} + trial {t} epochs, "
          f"{ipe} iterations an epoch), probes {args.probe_ratio:g} at rounds {rungs} (the "
          f"search's rungs), {args.workers} processes; logs in {folder}", flush=True)
    tasks = [{"setup": setup, "config": cid, "params": params, "label": label, "seed": seed,
              "kind": kind, "epochs": epochs, "work_dir": str(folder / "work")}
             for kind, setup, epochs in (("full", _trial_setup(full, folder / "full_runs", 1.0), b),
                                         ("trial", trial_setup, t))
             for cid, params, label in configs for seed in args.seeds]
    started = time.perf_counter()
    rows = train_all(tasks, folder, args.workers)
    wall = time.perf_counter() - started
    report(rows, configs, args, rungs, quarter, half, wall)


def report(rows: list[dict[str, Any]], configs: list[Any], args: argparse.Namespace,
           rungs: list[int], quarter: int, half: int, wall: float) -> None:
    b, t, seeds = args.base_epochs, args.trial_epochs, args.seeds
    at = {(r["config"], r["seed"], r["kind"], r["round"]): r for r in rows}
    ids = [cid for cid, _, _ in configs]

    def plain(c: str, s: int, rnd: int, kind: str = "trial") -> float:
        return float(at[(c, s, kind, rnd)]["accuracy"])

    def probe(c: str, s: int, rnd: int) -> float:
        value = at[(c, s, "trial", rnd)]["probe_accuracy"]
        return plain(c, s, rnd) if value == "" or math.isnan(value) else float(value)

    truth = {c: statistics.fmean(plain(c, s, b, "full") for s in seeds) for c in ids}
    for cid, _, label in configs:
        print(f"    {cid} {label:<22} truth {truth[cid]:.3f}; seed {seeds[0]} full "
              + " ".join(f"{plain(cid, seeds[0], e, 'full'):.3f}" for e in range(1, b + 1))
              + " | trial " + " ".join(
                  f"{plain(cid, seeds[0], e):.3f}" + (f"[{probe(cid, seeds[0], e):.3f}]"
                                                      if e in rungs else "")
                  for e in range(1, t + 1)), flush=True)

    def rho(values: Any) -> tuple[float, str]:
        """Mean over seeds against the truth; the note: each seed's, and the mean against
        the other seeds' finals."""
        each = [spearman([values(c, s) for c in ids], [truth[c] for c in ids]) for s in seeds]
        if len(seeds) < 2:
            return each[0], f"{len(ids)} configs, one seed"
        other = statistics.fmean(
            spearman([values(c, s) for c in ids], [plain(c, o, b, "full") for c in ids])
            for s in seeds for o in seeds if o != s)
        return statistics.fmean(each), (
            f"{len(ids)} configs, mean over {len(seeds)} seeds: "
            + ", ".join(f"{v:.3f}" for v in each) + f"; vs the other seed's final {other:.3f}")

    figures = {}
    for name, where, rnd, fn in (
            ("plain", "T/4", quarter, lambda c, s, r=quarter: plain(c, s, r)),
            (f"probe {args.probe_ratio:g}", "T/4", quarter, lambda c, s, r=quarter: probe(c, s, r)),
            ("plain", "T/2", half, lambda c, s, r=half: plain(c, s, r)),
            (f"probe {args.probe_ratio:g}", "T/2", half, lambda c, s, r=half: probe(c, s, r)),
            ("trial final", "T", t, lambda c, s: plain(c, s, t))):
        value, note = rho(fn)
        figures[(name.split()[0], where)] = value
        _common.figure(f"{name} accuracy at {where} (round {rnd}), rank correlation with the "
                       "truth", value, "", note)
    if len(seeds) >= 2:
        pairs = [(s, o) for s in seeds for o in seeds if s < o]
        s2s = statistics.fmean(spearman([plain(c, s, b, "full") for c in ids],
                                        [plain(c, o, b, "full") for c in ids]) for s, o in pairs)
        _common.figure("seed-to-seed rank correlation of the full-length accuracy", s2s, "",
                       f"seed vs seed after {b} epochs: what a second full run achieves")
        spread = statistics.fmean(abs(plain(c, s, b, "full") - plain(c, o, b, "full"))
                                  for c in ids for s, o in pairs)
        _common.figure("seed spread of the full-length accuracy", spread, METRIC,
                       "mean |seed - seed|")
    else:
        print("# one seed: no seed-to-seed figure", flush=True)
    trial_rows = [r for r in rows if r["kind"] == "trial"]
    probes = [r for r in trial_rows if r["probe_iters"] != ""]
    runs = {(r["config"], r["seed"]): r["train_seconds"] for r in trial_rows}
    probe_s = [r["probe_seconds"] for r in probes]
    _common.figure("probe seconds / trial training seconds", sum(probe_s) / sum(runs.values()),
                   "", f"{len(probes)} probes, {statistics.fmean(probe_s):.2f} s each with "
                   f"their validation; {statistics.fmean(runs.values()):.1f} s a trial of {t} "
                   "epochs without them")
    _common.figure("probes diverged", sum(int(r["probe_diverged"]) for r in probes),
                   f"of {len(probes)}")
    _common.figure("runs diverged", len({(r["config"], r["seed"], r["kind"]) for r in rows
                                         if r["diverged"]}), f"of {2 * len(runs)}")
    _common.figure("wall time", wall, "s", f"{args.workers} processes")
    got, base = figures[("probe", "T/2")], figures[("plain", "T/2")]
    _common.ratio("probe - plain rank correlation at T/2", got - base)
    # plain's correlation <= 0: a ratio says nothing; more is "inf", less 0, equal 1
    value = got / base if base > 0 else (math.inf if got > base else 0.0 if got < base else 1.0)
    _common.ratio("probe/plain rank correlation at T/2", value, 1.0, ">=")


if __name__ == "__main__":
    raise SystemExit(main())
