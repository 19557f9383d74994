"""Fidelity: how well a short trial ranks configs, and what a search finds with it.

Question (issue 13): at a trial budget of half the base length, which fidelity ranks
BEV configs as well as their full-length result does, and does tpe+asha with it find
a config whose full-length result is within the seed noise of the grid's best, at a
quarter of the grid's compute?

**Task.** ``configs/pillar_bev/pillar_bev_synthetic.py`` (AdamW, cyclic_40e's one-cycle
LR and momentum, 8 epochs of 40 iterations), seed fixed per run, every run on the
real runner (``build_runner``), one torch thread per process, ``--workers`` (2)
processes at once, like a user's 2-core machine. Checkpoints are off and the runs'
logs go to files (neither changes the training).

**Truth grid.** A space (a real ``SearchSpace``) of categorical choices, and the grid
is exactly its Cartesian product (``grid_params``), so every truth config is what
``build_trial_configs`` gives for one of its points:

    optimizer: AdamW (betas (0.95, 0.99), wd 0.01) at --adamw-lrs 1e-4 6e-4 3e-3,
               or SGD (momentum 0.9, wd 1e-4) at --sgd-lrs 3e-3 2e-2
    lr_config: cyclic (the base: target_ratio (10, 1e-4), i.e. ``lr`` is a tenth of the
               peak) | CosineAnnealing with a linear warm-up | step at 3/4 of the base
               length ([6] of 8) with a linear warm-up
    = (3 + 2) x 3 = 15 configs

The warm-ups count iterations (half an epoch of the base: 20), which the product
does not rescale (they guard a fresh model's first updates). ``momentum_config`` is
the base's cyclic one for every policy: tying it to the LR policy would need one key
path for two sections, and then the grid would no longer be exactly what a search
over this space trains. Each config x training seed {0, 1} is trained twice:

    * ``full``: the base length B (8 epochs): bev_mAP after every epoch, and the
      cool-down probe (``rt3d_tune.runner.probe.cooldown_probe``, called as
      ``TuneReportHook._probe`` calls it) at epochs T/4, T/2, B/4, B/2 (1, 2, 4);
    * ``scaled``: the schedule rescaled onto the trial budget T (``--trial-epochs``,
      4; ``build_trial_configs`` with ``stop: {max_epochs: T, schedule: scaled}``):
      bev_mAP after every epoch, and the probe at the rungs T/4, T/2 (1, 2).

Probes leave the run bit-identical, so they ride along in the same run (a small hook
at the report hook's priority). Each probe runs at every ``--probe-ratios`` (0.1, the
product's default, and 0.25, the length the issue's quick measurement used at epoch 4):
the issue asks for the probe length to be measured too, and a second ratio costs a
few iterations per rung instead of a second grid. Everything goes to
``<run>/grid.csv`` (one row per run and epoch, and per probe ratio where a probe ran:
config, its params, seed, run kind full|scaled, epoch, bev_mAP, probe ratio, probe
bev_mAP, probe iterations, seconds of the epoch and of the probe, diverged) with
``grid.json`` (the settings and the space); ``--grid-run PATH`` reuses them (no
training; the grid's settings win over the command line's).

The truth of a config is the mean of its two seeds' bev_mAP after B epochs. The
truth's own seed-to-seed rank correlation (Spearman of seed 0's B-epoch metric against
seed 1's) is what a second full-length run achieves; the seed spread is the mean
|seed 0 - seed 1| of the B-epoch metric over the grid.

**Fidelity modes** at the trial budget T, each giving a metric at the rungs (T/4, T/2)
and at the trial's end T:

    * ``truncated``: the full run's metric after epochs 1, 2; its final is epoch T of
      the full run (a literal prefix of the full run: the step never fires. Note that
      the product's ``stop.schedule: truncated`` also compresses policies that follow
      the runner's length, cyclic and cosine; the prefix is today's behaviour for
      policies with absolute milestones and the issue's measurement);
    * ``scaled``: the scaled run's metric after epochs 1, 2, T;
    * ``scaled+cooldown@r``: the scaled run's probe at the rungs, its plain metric at T
      (what ``TuneReportHook`` reports under ``probe: cooldown``);
    * ``truncated+cooldown@r``: the full run's probe at the rungs (annealed to the full
      schedule's final LR), its plain metric at T.

The rank correlation with the truth is computed fairly: the mode's metric from seed s
against the truth of the OTHER seed 1-s (only the B-epoch metric of seed 1-s, not the
2-seed mean, which would contain seed s's own noise), mean over s in {0, 1}; exactly
the comparison the seed-to-seed figure makes for a second full run. The same-seed
figure is printed for reference (it shares the seed's noise with the truth, so it is
optimistic). A ranking with no spread (every value equal) counts as correlation 0.

**Search regret at equal compute.** A tabular benchmark: for each mode, ``--search-seeds``
(4) searches with the product's searcher and scheduler (``search_setup`` on a real
``SearchSpace``: the grid's space, ``search: {algorithm: tpe, trial_seed: fixed}``,
``scheduler: {type: asha, grace_period: 1, reduction_factor: 2}`` (+ ``probe:
cooldown, probe_ratio: r`` for the cooldown modes), ``stop.max_epochs: T``), run by
``ray.tune.Tuner`` on a local Ray (2 CPUs, two trials at a time) with the product's
``ResultRecorder``. A trial replays the recorded metrics of training seed 0 (the fixed
trial seed) instantly, one report per epoch, as ``TuneReportHook`` would (the probe's
metric at the product's rung epochs, ``rung_epochs``; ``final`` at T). Then the
confirmation: ``select_top`` over the finished trials (top_k ``--top-k`` 2), each
"retrained" with the product's confirmation seed (``confirm_seeds``: 1), whose value
is seed 1's recorded metric at T of the mode's run kind; ``winner`` picks the best mean.
Regret = the grid's best truth - the winner's truth.

Compute is counted in epochs: every epoch a replayed trial reported, plus its probes
(probe iterations / iterations per epoch), plus the confirmation runs (top_k x T).
Every mode gets the same budget: ``--budget`` (0.25) x the grid's compute, the grid's
compute being configs x B epochs (one seed). The search phase gets the budget less the
confirmation's top_k x T, and a Tune ``Stopper`` ends it once what is left cannot pay
for one more epoch (num_samples is only a cap: how many trials fit depends on how
early ASHA stops them, which is the thing measured). The compute actually used is
counted from the recorded results afterwards and printed per search (two trials run at
once, so the last step may overshoot by a fraction of an epoch).

**Targets** (printed, never asserted; truncated is the baseline, in the same run). The
best mode is the one with the highest fair rank correlation at T/2 (ties: at T/4),
not the one that meets the most targets: with 4 search seeds a target count is noisy,
and the rank correlation over the grid is the design measurement. For it: at the T/2
rung a rank correlation >= the seed-to-seed correlation; at T/4 within 0.1 of it;
regret within the seed spread in >= 3 of 4 search seeds at <= 25% of the grid's compute.

    python bench/fidelity.py [--keep DIR] [--grid-run DIR] [--scenes N]
        [--base-epochs 8] [--trial-epochs 4] [--adamw-lrs ...] [--sgd-lrs ...]
        [--policies cyclic cosine step] [--probe-ratios 0.1 0.25] [--search-seeds 4]
        [--budget 0.25] [--top-k 2] [--workers 2] [--quick]

``--quick``: 2 AdamW LRs x {cyclic, step} = 4 configs x 2 seeds, 8 scenes (2
iterations an epoch), 4 epochs base, 2 trial (one rung, at epoch 1), probe ratio 0.25,
2 search seeds, budget 0.75 of the tiny grid (0.25 would not pay for the
confirmation), same code path.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import yaml

from rt3d_tune.runner.hook import Hook

REPO = Path(__file__).resolve().parents[1]
TASK_CONFIG = "configs/pillar_bev/pillar_bev_synthetic.py"
METRIC = "bev_mAP"
MODE = "max"
GRID_CSV = "grid.csv"
GRID_META = "grid.json"
FIELDS = (
    "config", "label", "params", "seed", "kind", "epoch", "metric", "probe_ratio",
    "probe_metric", "probe_iters", "seconds", "probe_seconds", "diverged",
)
KINDS = ("full", "scaled")
SEEDS = (0, 1)  # the two training seeds: 0 is the search's fixed trial seed, 1 confirms
POLICY_NAMES = ("cyclic", "cosine", "step")


# --- the space and the grid -----------------------------------------------------------
def lr_branches(policies: list[str], warmup_iters: int, base_epochs: int) -> list[dict[str, Any]]:
    """The ``lr_config`` options, one per policy name (see the module docstring)."""
    branch = {
        "cyclic": {"policy": "cyclic", "target_ratio": [10, 1.0e-4], "cyclic_times": 1,
                   "step_ratio_up": 0.4},
        "cosine": {"policy": "CosineAnnealing", "warmup": "linear", "warmup_iters": warmup_iters,
                   "warmup_ratio": 0.1, "min_lr_ratio": 1.0e-5},
        "step": {"policy": "step", "step": [max(1, round(0.75 * base_epochs))], "warmup": "linear",
                 "warmup_iters": warmup_iters, "warmup_ratio": 0.1},
    }
    return [branch[name] for name in policies]


def space_section(adamw_lrs: list[float], sgd_lrs: list[float], policies: list[str],
                  warmup_iters: int, base_epochs: int) -> dict[str, Any]:
    """The ``space:`` of the grid: optimizer (with its LRs) x LR policy, all categorical."""
    optimizers = []
    if adamw_lrs:
        optimizers.append({"type": "AdamW", "lr": {"choice": list(adamw_lrs)},
                           "betas": [0.95, 0.99], "weight_decay": 0.01})
    if sgd_lrs:
        optimizers.append({"type": "SGD", "lr": {"choice": list(sgd_lrs)}, "momentum": 0.9,
                           "weight_decay": 1.0e-4})
    return {
        "optimizer": {"choice": optimizers},
        "lr_config": {"choice": lr_branches(policies, warmup_iters, base_epochs)},
    }


def write_base(folder: Path, scenes: int | None, base_epochs: int) -> Path:
    """The task config with seed 0, the base length, no checkpoints (fewer scenes when asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"_base_ = [{str(REPO / TASK_CONFIG)!r}]",
        "seed = 0",
        f"runner = dict(type='EpochBasedRunner', max_epochs={base_epochs})",
        "checkpoint_config = None",
    ]
    if scenes:
        lines.append(f"data = dict(train=dict(num_scenes={scenes}), "
                     f"val=dict(num_scenes={max(10, scenes // 3)}))")
    path = folder / "fidelity_base.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_space(folder: Path, name: str, base: Path, space: dict[str, Any], *,
                trial_epochs: int | None, schedule: str = "scaled", search_seed: int = 0,
                probe_ratio: float | None = None, top_k: int = 2, num_samples: int = 10,
                grace_period: int = 1) -> Any:
    """A space file over the grid's space, loaded (``load_space``): the SearchSpace."""
    from rt3d_tune.space.space import load_space

    scheduler: dict[str, Any] = {"type": "asha", "grace_period": grace_period,
                                 "reduction_factor": 2}
    if probe_ratio is not None:
        scheduler.update(probe="cooldown", probe_ratio=probe_ratio)
    data: dict[str, Any] = {
        "base": str(base),
        "metric": METRIC,
        "mode": MODE,
        "space": space,
        "search": {"algorithm": "tpe", "num_samples": num_samples, "seed": search_seed,
                   "max_concurrent": 2, "trial_seed": "fixed",
                   "confirm": {"top_k": top_k, "seeds": 1}},
        "scheduler": scheduler,
        "resources": {"cpu": 1},
    }
    if trial_epochs is not None:
        data["stop"] = {"max_epochs": trial_epochs, "schedule": schedule}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_space(path)


def config_key(space: Any, params: dict[str, Any]) -> str:
    """A config's identity: the overrides of the space's own key paths, as JSON."""
    from rt3d_tune.space.sampling import overrides_from_params

    overrides = overrides_from_params(space, params)
    return json.dumps({path: overrides[path] for path, _ in space.params}, sort_keys=True)


def config_label(space: Any, params: dict[str, Any]) -> str:
    """``AdamW lr 0.0006 cosine``."""
    from rt3d_tune.space.sampling import overrides_from_params

    over = overrides_from_params(space, params)
    policy = {"cyclic": "cyclic", "CosineAnnealing": "cosine", "step": "step"}.get(
        over["lr_config"]["policy"], over["lr_config"]["policy"])
    return f"{over['optimizer']['type']} lr {over['optimizer']['lr']:g} {policy}"


@dataclass(frozen=True)
class Settings:
    """What the grid was trained with (``grid.json``)."""

    base_epochs: int
    trial_epochs: int
    probe_ratios: tuple[float, ...]
    scenes: int | None
    iters_per_epoch: int
    space: dict[str, Any]
    configs: tuple[dict[str, Any], ...]  # {id, label, params, key}

    @property
    def rungs(self) -> list[int]:
        """The rung epochs at T/4 and T/2 (at least 1, below T)."""
        t = self.trial_epochs
        return sorted({e for e in (max(1, t // 4), max(1, t // 2)) if e < t})

    def probe_epochs(self, kind: str) -> list[int]:
        """Where a run of ``kind`` probes: the rungs; the full run also at B/4 and B/2."""
        epochs = set(self.rungs)
        length = self.base_epochs if kind == "full" else self.trial_epochs
        if kind == "full":
            epochs |= {max(1, self.base_epochs // 4), max(1, self.base_epochs // 2)}
        return sorted(e for e in epochs if e < length)

    def to_json(self) -> dict[str, Any]:
        return {"base_epochs": self.base_epochs, "trial_epochs": self.trial_epochs,
                "probe_ratios": list(self.probe_ratios), "scenes": self.scenes,
                "iters_per_epoch": self.iters_per_epoch, "space": self.space,
                "configs": list(self.configs), "task": TASK_CONFIG, "metric": METRIC}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(int(data["base_epochs"]), int(data["trial_epochs"]),
                   tuple(float(r) for r in data["probe_ratios"]), data.get("scenes"),
                   int(data["iters_per_epoch"]), data["space"],
                   tuple(data["configs"]))


# --- training the grid ----------------------------------------------------------------
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
        from rt3d_tune.runner.hooks.evaluation import EvalHook
        from rt3d_tune.runner.hooks.lr_updater import LrUpdaterHook
        from rt3d_tune.runner.probe import cooldown_probe, probe_iters

        lr_hook = next((h for h in runner.hooks if isinstance(h, LrUpdaterHook)), None)
        eval_hook = next(h for h in runner.hooks if isinstance(h, EvalHook))
        result = cooldown_probe(
            runner, probe_iters(runner.iter, ratio),
            lr_hook.final_lr if lr_hook is not None else runner.current_lr(),
            lambda: eval_hook.compute_metrics(runner), start_iter=runner.iter,
        )
        value = math.nan if result.diverged else float(result.metrics.get(METRIC, math.nan))
        return {"metric": value, "iters": result.iters, "seconds": result.seconds}


def _worker_init(log_dir: str) -> None:
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


def train_grid(folder: Path, base: Path, settings: Settings, space_full: Any, space_scaled: Any,
               workers: int) -> float:
    """Train every config x seed x kind into ``folder/grid.csv``; returns wall seconds."""
    from rt3d_tune.config import Config
    from rt3d_tune.runner.data import train_iters_per_epoch
    from rt3d_tune.space.trials import build_trial_configs

    base_cfg = Config.fromfile(str(base))
    tasks = []
    for kind, space, epochs in (("full", space_full, settings.base_epochs),
                                ("scaled", space_scaled, settings.trial_epochs)):
        for config in settings.configs:
            for seed in SEEDS:
                cfg, _ = build_trial_configs(space, base_cfg, config["params"], seed=seed,
                                             iters_per_epoch=train_iters_per_epoch)
                tasks.append({
                    "cfg": cfg.to_dict(), "config": config["id"], "label": config["label"],
                    "params": json.dumps(config["params"], sort_keys=True), "seed": seed,
                    "kind": kind, "epochs": epochs, "probe_epochs": settings.probe_epochs(kind),
                    "ratios": list(settings.probe_ratios),
                    "work_dir": str(folder / "runs" / f"{config['id']}_s{seed}_{kind}"),
                })
    log_dir = folder / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"training the grid: {len(settings.configs)} configs x {len(SEEDS)} seeds x "
          f"(full {settings.base_epochs} + scaled {settings.trial_epochs} epochs), "
          f"{workers} processes; logs in {log_dir}", flush=True)
    started = time.perf_counter()
    path = folder / GRID_CSV
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        out.flush()
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_worker_init,
            initargs=(str(log_dir),),
        ) as pool:
            futures = [pool.submit(train_run, task) for task in tasks]  # full runs first
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


# --- reading the grid -----------------------------------------------------------------
@dataclass
class Grid:
    """The recorded grid: metrics per (config, seed, kind) and epoch, probes per ratio."""

    settings: Settings
    metric: dict[tuple[str, int, str], dict[int, float]] = field(default_factory=dict)
    seconds: dict[tuple[str, int, str], dict[int, float]] = field(default_factory=dict)
    probe: dict[tuple[str, int, str, float], dict[int, tuple[float, int, float]]] = field(
        default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [c["id"] for c in self.settings.configs]

    def value(self, cid: str, seed: int, kind: str, epoch: int) -> float:
        """The plain metric; a diverged (NaN) epoch counts as 0, the metric's floor."""
        value = self.metric[(cid, seed, kind)][epoch]
        return 0.0 if math.isnan(value) else value

    def probed(self, cid: str, seed: int, kind: str, ratio: float, epoch: int) -> float:
        """The probe's metric; a diverged probe falls back to the plain metric (as the
        report hook does)."""
        value = self.probe[(cid, seed, kind, ratio)][epoch][0]
        return self.value(cid, seed, kind, epoch) if math.isnan(value) else value

    def probe_iters(self, cid: str, seed: int, kind: str, ratio: float, epoch: int) -> int:
        return int(self.probe[(cid, seed, kind, ratio)][epoch][1])

    def truth(self, cid: str, seed: int | None = None) -> float:
        """The B-epoch metric of ``seed``; None: the mean of both seeds."""
        b = self.settings.base_epochs
        if seed is not None:
            return self.value(cid, seed, "full", b)
        return statistics.fmean(self.value(cid, s, "full", b) for s in SEEDS)


def load_grid(path: Path) -> Grid:
    """The grid of a run folder (or its ``grid.csv``), checked complete."""
    folder = path.parent if path.is_file() else path
    settings = Settings.from_json(json.loads((folder / GRID_META).read_text(encoding="utf-8")))
    grid = Grid(settings)
    with (folder / GRID_CSV).open(newline="", encoding="utf-8") as src:
        for row in csv.DictReader(src):
            key = (row["config"], int(row["seed"]), row["kind"])
            epoch = int(row["epoch"])
            grid.metric.setdefault(key, {})[epoch] = float(row["metric"])
            grid.seconds.setdefault(key, {})[epoch] = float(row["seconds"])
            if row["probe_ratio"]:
                grid.probe.setdefault((*key, float(row["probe_ratio"])), {})[epoch] = (
                    float(row["probe_metric"]), int(row["probe_iters"]),
                    float(row["probe_seconds"]))
    for cid in grid.ids:
        for seed in SEEDS:
            for kind, length in (("full", settings.base_epochs), ("scaled", settings.trial_epochs)):
                got = grid.metric.get((cid, seed, kind), {})
                if sorted(got) != list(range(1, length + 1)):
                    raise SystemExit(f"{folder / GRID_CSV}: the grid is incomplete: {cid} seed "
                                     f"{seed} {kind} has epochs {sorted(got)}")
                for ratio in settings.probe_ratios:
                    probes = grid.probe.get((cid, seed, kind, ratio), {})
                    if sorted(probes) != settings.probe_epochs(kind):
                        raise SystemExit(f"{folder / GRID_CSV}: no probe {ratio} of {cid} seed "
                                         f"{seed} {kind} at {settings.probe_epochs(kind)}")
    return grid


# --- fidelity modes -------------------------------------------------------------------
def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (scipy); a side with no spread counts as 0."""
    from scipy.stats import spearmanr

    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return 0.0
    return float(spearmanr(xs, ys).statistic)


@dataclass(frozen=True)
class Mode:
    """A fidelity at the trial budget: which run it reads, and whether rungs are probed."""

    name: str
    kind: str  # "full" (truncated: a prefix of the full run) or "scaled"
    probe_ratio: float | None = None

    def at(self, grid: Grid, cid: str, seed: int, epoch: int) -> float:
        """The metric a trial of this mode reports after ``epoch`` (probe at the rungs)."""
        if self.probe_ratio is not None and epoch in grid.settings.rungs:
            return grid.probed(cid, seed, self.kind, self.probe_ratio, epoch)
        return grid.value(cid, seed, self.kind, epoch)

    def report_probe_iters(self, grid: Grid, cid: str, seed: int, epoch: int) -> int:
        if self.probe_ratio is not None and epoch in grid.settings.rungs:
            return grid.probe_iters(cid, seed, self.kind, self.probe_ratio, epoch)
        return 0


def modes_of(settings: Settings) -> list[Mode]:
    modes = [Mode("truncated", "full"), Mode("scaled", "scaled")]
    for ratio in settings.probe_ratios:
        modes.append(Mode(f"scaled+cooldown@{ratio:g}", "scaled", ratio))
    for ratio in settings.probe_ratios:
        modes.append(Mode(f"truncated+cooldown@{ratio:g}", "full", ratio))
    return modes


def correlations(grid: Grid, values: Any) -> tuple[float, float]:
    """(fair, same-seed) rank correlation of ``values(cid, seed)`` with the truth: seed s
    against the truth of seed 1-s (fair) or of seed s, mean over s."""
    ids = grid.ids
    fair = [spearman([values(c, s) for c in ids], [grid.truth(c, 1 - s) for c in ids])
            for s in SEEDS]
    same = [spearman([values(c, s) for c in ids], [grid.truth(c, s) for c in ids])
            for s in SEEDS]
    return statistics.fmean(fair), statistics.fmean(same)


# --- search regret --------------------------------------------------------------------
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
    from rt3d_tune.search.schedulers import rung_epochs
    from rt3d_tune.search.searchers import max_fidelity, search_setup
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
    probes = (rung_epochs(space.scheduler, max_fidelity(space))
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


# --- main -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None,
                        help="the run folder (default: a temporary folder)")
    parser.add_argument("--grid-run", type=Path, default=None,
                        help="reuse the grid of an earlier run folder (or its grid.csv)")
    parser.add_argument("--scenes", type=int, default=None, help="train scenes (default 160)")
    parser.add_argument("--base-epochs", type=int, default=8, help="the base length B")
    parser.add_argument("--trial-epochs", type=int, default=4, help="the trial budget T")
    parser.add_argument("--adamw-lrs", type=float, nargs="*", default=[1.0e-4, 6.0e-4, 3.0e-3])
    parser.add_argument("--sgd-lrs", type=float, nargs="*", default=[3.0e-3, 2.0e-2])
    parser.add_argument("--policies", nargs="+", choices=POLICY_NAMES, default=list(POLICY_NAMES))
    parser.add_argument("--probe-ratios", type=float, nargs="+", default=[0.1, 0.25])
    parser.add_argument("--search-seeds", type=int, default=None,
                        help="searches per mode (default 4; --quick 2)")
    parser.add_argument("--budget", type=float, default=0.25,
                        help="compute per search, as a fraction of the grid's (configs x B)")
    parser.add_argument("--top-k", type=int, default=2, help="configs confirmed per search")
    parser.add_argument("--grace-period", type=int, default=1,
                        help="ASHA's first rung in epochs (1: rungs at T/4 and T/2; 2: T/2 only)")
    parser.add_argument("--workers", type=int, default=2, help="training processes at once")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.adamw_lrs, args.sgd_lrs, args.policies = [3.0e-4, 3.0e-3], [], ["cyclic", "step"]
        args.base_epochs, args.trial_epochs, args.scenes = 4, 2, args.scenes or 8
        args.probe_ratios, args.budget = [0.25], 0.75
    if args.search_seeds is None:
        args.search_seeds = 2 if args.quick else 4
    if not 2 <= args.trial_epochs <= args.base_epochs:
        parser.error("--trial-epochs must be in [2, --base-epochs]")
    return args


def prepare(folder: Path, args: argparse.Namespace) -> tuple[Settings, Path]:
    """The settings of a new grid (its space enumerated) and its base config."""
    from rt3d_tune.config import Config
    from rt3d_tune.runner.data import train_iters_per_epoch
    from rt3d_tune.space.sampling import grid_params

    base = write_base(folder, args.scenes, args.base_epochs)
    ipe = train_iters_per_epoch(Config.fromfile(str(base)))
    section = space_section(args.adamw_lrs, args.sgd_lrs, args.policies, max(1, ipe // 2),
                            args.base_epochs)
    space = write_space(folder / "spaces", "grid", base, section, trial_epochs=None)
    configs = tuple(
        {"id": f"c{i:02d}", "label": config_label(space, params), "params": params,
         "key": config_key(space, params)}
        for i, params in enumerate(grid_params(space))
    )
    settings = Settings(args.base_epochs, args.trial_epochs, tuple(args.probe_ratios),
                        args.scenes, ipe, section, configs)
    return settings, base


def print_grid(grid: Grid) -> None:
    s = grid.settings
    print(f"truth grid, {METRIC} per epoch (full run, seed 0 | seed 1 after {s.base_epochs}; "
          f"scaled run to {s.trial_epochs} epochs, seed 0):")
    for config in s.configs:
        cid = config["id"]
        full = " ".join(f"{grid.value(cid, 0, 'full', e):.3f}" for e in range(1, s.base_epochs + 1))
        scaled = " ".join(f"{grid.value(cid, 0, 'scaled', e):.3f}"
                          for e in range(1, s.trial_epochs + 1))
        print(f"    {cid} {config['label']:<24} truth {grid.truth(cid):.3f}: full {full} | "
              f"{grid.truth(cid, 1):.3f}; scaled {scaled}")
    for kind in KINDS:
        for ratio in s.probe_ratios:
            probes = " ".join(
                f"e{e} " + ",".join(f"{grid.probed(c['id'], 0, kind, ratio, e):.2f}"
                                    for c in s.configs) for e in s.probe_epochs(kind))
            print(f"    probe {ratio:g} of the {kind} run, seed 0, configs in order: {probes}")
    epoch_s = [v for key, d in grid.seconds.items() for v in d.values() if not math.isnan(v)]
    probe_s = [p[2] for d in grid.probe.values() for p in d.values()]
    _common.figure("training epoch + evaluation", statistics.fmean(epoch_s), "s",
                   f"mean of {len(epoch_s)}, one thread, {len(s.configs)} configs")
    if probe_s:
        _common.figure("cool-down probe + evaluation", statistics.fmean(probe_s), "s",
                       f"mean of {len(probe_s)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rt3d_fidelity_") as tmp:
        folder = (args.keep or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        if args.grid_run:
            grid_folder = args.grid_run.parent if args.grid_run.is_file() else args.grid_run
            grid = load_grid(grid_folder)
            base = grid_folder / "fidelity_base.py"
            s = grid.settings
            print(f"grid from {grid_folder} (its settings win: B {s.base_epochs}, T "
                  f"{s.trial_epochs}, probe ratios {list(s.probe_ratios)}, {len(grid.ids)} "
                  "configs)", flush=True)
            wall = math.nan
        else:
            settings, base = prepare(folder, args)
            (folder / GRID_META).write_text(json.dumps(settings.to_json(), indent=1),
                                            encoding="utf-8")
            space_full = write_space(folder / "spaces", "full", base, settings.space,
                                     trial_epochs=None)
            space_scaled = write_space(folder / "spaces", "scaled", base, settings.space,
                                       trial_epochs=settings.trial_epochs)
            wall = train_grid(folder, base, settings, space_full, space_scaled, args.workers)
            grid = load_grid(folder)
        report(folder, grid, base, args, wall)
    return 0


def report(folder: Path, grid: Grid, base: Path, args: argparse.Namespace, wall: float) -> None:
    s = grid.settings
    b, t, ids = s.base_epochs, s.trial_epochs, grid.ids
    print_grid(grid)
    if not math.isnan(wall):
        _common.figure("grid training wall time", wall, "s",
                       f"{len(ids)} configs x 2 seeds x (B {b} + T {t} epochs), "
                       f"{args.workers} processes")
    seed_to_seed = spearman([grid.truth(c, 0) for c in ids], [grid.truth(c, 1) for c in ids])
    spread = statistics.fmean(abs(grid.truth(c, 0) - grid.truth(c, 1)) for c in ids)
    best_truth = max(grid.truth(c) for c in ids)
    best_ids = [c["label"] for c in s.configs if grid.truth(c["id"]) == best_truth]
    _common.figure("truth seed-to-seed rank correlation", seed_to_seed, "",
                   f"Spearman, seed 0 vs seed 1 {METRIC} after {b} epochs, {len(ids)} configs")
    _common.figure("seed spread", spread, METRIC,
                   f"mean |seed 0 - seed 1| after {b} epochs")
    _common.figure("grid best truth", best_truth, METRIC,
                   f"{best_ids[0]}, mean of 2 seeds after {b} epochs")

    # What the full run's plain metric and its probes say at each epoch (issue's table).
    for epoch in range(1, b):
        fair, same = correlations(grid, lambda c, sd, e=epoch: grid.value(c, sd, "full", e))
        _common.figure(f"full run after epoch {epoch}, rank correlation with the truth", fair,
                       "", f"other seed; same seed {same:.3f}; cost {epoch} epochs")
    for ratio in s.probe_ratios:
        for epoch in s.probe_epochs("full"):
            fair, same = correlations(
                grid, lambda c, sd, e=epoch, r=ratio: grid.probed(c, sd, "full", r, e))
            cost = epoch + statistics.fmean(
                grid.probe_iters(c, sd, "full", ratio, epoch) for c in ids for sd in SEEDS
            ) / s.iters_per_epoch
            _common.figure(f"full run after epoch {epoch} + probe {ratio:g}, rank correlation "
                           "with the truth", fair, "",
                           f"other seed; same seed {same:.3f}; cost {cost:.2f} epochs")

    # Each mode at the rungs and at the trial's end.
    modes = modes_of(s)
    quarter, half = max(1, t // 4), max(1, t // 2)

    def where(epoch: int) -> str:
        names = [name for name, at in (("T/4", quarter), ("T/2", half)) if at == epoch]
        return " = ".join(names) if names else "T, the trial's end"

    rho: dict[str, dict[int, float]] = {}
    for mode in modes:
        rho[mode.name] = {}
        for epoch in sorted({quarter, half, t}):
            fair, same = correlations(grid, lambda c, sd, e=epoch, m=mode: m.at(grid, c, sd, e))
            rho[mode.name][epoch] = fair
            _common.figure(f"{mode.name} rank correlation at epoch {epoch} ({where(epoch)})",
                           fair, "", f"other seed, mean over 2 seeds; same seed {same:.3f}")

    # Search regret at equal compute.
    from rt3d_tune.search._ray_private import quiet_token_notice
    from rt3d_tune.search.ray_session import ray_session

    with quiet_token_notice():
        _common.start_ray(2)
    if __name__ != "__main__":  # trials unpickle this module's functions by value
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    grid_compute = len(ids) * b
    need = math.ceil(0.75 * args.search_seeds)
    outcomes: dict[str, list[SearchOutcome]] = {}
    label = {c["id"]: c["label"] for c in s.configs}
    for mode in modes:
        for seed in range(args.search_seeds):
            started = time.perf_counter()
            with ray_session():  # Ray is up: only the search's environment and logging
                out = run_search(folder, grid, base, mode, seed, args.budget, args.top_k,
                                 args.grace_period)
            outcomes.setdefault(mode.name, []).append(out)
            within = out.regret <= spread + 1e-12
            _common.figure(
                f"{mode.name} search seed {seed} regret", out.regret, METRIC,
                f"winner {out.winner} {label.get(out.winner, '-')}"
                f"{'' if out.confirmed else ' (unconfirmed)'}, truth {out.truth:.3f}, "
                f"compute {out.compute:.1f} epochs = {out.compute / grid_compute:.3f} of grid, "
                f"{out.trials} trials ({out.finished} finished), within spread "
                f"{'yes' if within else 'no'}, {time.perf_counter() - started:.0f} s")
        count = sum(o.regret <= spread + 1e-12 for o in outcomes[mode.name])
        _common.figure(f"{mode.name} searches with regret within the seed spread", count,
                       f"of {args.search_seeds}",
                       f"mean regret {statistics.fmean(o.regret for o in outcomes[mode.name]):.4f}")

    # Targets: truncated (the baseline) and the best mode.
    def targets(mode_name: str, prefix: str) -> None:
        outs = outcomes[mode_name]
        _common.ratio(f"{prefix}: rank correlation at T/2 (epoch {half}) - seed-to-seed",
                      rho[mode_name][half] - seed_to_seed, 0.0, ">=")
        _common.ratio(f"{prefix}: seed-to-seed - rank correlation at T/4 (epoch {quarter})",
                      seed_to_seed - rho[mode_name][quarter], 0.1, "<=")
        _common.ratio(f"{prefix}: compute / grid compute, max over search seeds",
                      max(o.compute for o in outs) / grid_compute, 0.25, "<=")
        _common.ratio(f"{prefix}: search seeds with regret within the seed spread",
                      sum(o.regret <= spread + 1e-12 for o in outs), need, ">=")

    for mode in modes[1:]:
        _common.ratio(f"{mode.name} - truncated, rank correlation at T/2 (epoch {half})",
                      rho[mode.name][half] - rho["truncated"][half])
    best = max(modes, key=lambda m: (rho[m.name][half], rho[m.name][quarter]))
    if best.name != "truncated":
        targets("truncated", "baseline truncated")
    targets(best.name, f"best mode {best.name}")


if __name__ == "__main__":
    raise SystemExit(main())
