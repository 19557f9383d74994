"""Export a search run: the winner as config files, a summary, and the trials table.

Reads only what the run directory holds (``run.json``, ``results.jsonl``,
``trials/<id>/config.py``, ``base_config.py``), so it works for a finished run, an
interrupted one, and a run copied from another machine::

    best/best_config.py    the winner's full config at the base config's length, literals
                           only (rt3d-tune train); the trial's scaled schedule scaled back
    best/best_runtime.py   only what differs from the base, ``_base_`` = the base config
    best/trial_config.py   exactly what the winning trial trained (its shorter budget)
    best/summary.json      the verdict against the base config, metric (the confirmed
                           mean when confirmed), trial, params, seed, both budgets,
                           confirmation runs, versions, compute
    results.csv            one row per trial: params, metric per fidelity, status, time
    study.db               the Optuna study (``rt3d_tune.results.study``)

Extension point: a module that writes more (the mmengine spelling, the HTML report)
decorates ``write(ctx) -> dict[name, Path]`` with :func:`register_exporter` and adds
its module name to ``EXPORTER_MODULES``; ``export_run`` imports those lazily and calls
every registered exporter after the files above exist.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rt3d_tune.backends import backend_for
from rt3d_tune.errors import ConfigError
from rt3d_tune.results import recorder
from rt3d_tune.results.confirmation import ConfirmedConfig, confirmed, winner
from rt3d_tune.space.space import load_run_space

__all__ = [
    "EXPORTER_MODULES",
    "RUN_INFO",
    "ExportContext",
    "export_run",
    "load_context",
    "register_exporter",
    "runtime_diff",
    "write_run_info",
]

RUN_INFO = "run.json"
BEST_DIR = "best"
RESULTS_CSV = "results.csv"
# Modules that register more exporters (imported by export_run).
EXPORTER_MODULES: tuple[str, ...] = (
    "rt3d_tune.results.mmengine_export",
    "rt3d_tune.results.report",
)
_EXPORTERS: list[Callable[[ExportContext], dict[str, Path]]] = []


@dataclass(frozen=True)
class ExportContext:
    """What every exporter gets.

    Attributes:
        run_dir: the run directory; best_dir: ``run_dir/best``.
        info: ``run.json`` (metric, mode, base_path, space_file, seed, algorithm, ...).
        records: every trial by id, statuses final (``recorder.TrialRecord``).
        best: the best trial's record (None when no trial reported the metric).
        study: the run's Optuna study in memory when this export built it (what
            ``study.db`` holds); None otherwise (read ``study.db``).
        confirm_records: the confirmation runs by id (``confirm.jsonl``).
        confirmed: the top configs with their confirmation runs (``confirmation``).
        best: with confirmation, the search trial of the config with the best confirmed
            mean; without, the trial with the best metric.
    """

    run_dir: Path
    best_dir: Path
    info: dict[str, Any]
    records: dict[str, recorder.TrialRecord]
    best: recorder.TrialRecord | None
    study: Any = None
    confirm_records: dict[str, recorder.TrialRecord] = dataclasses.field(default_factory=dict)
    confirmed: list[ConfirmedConfig] = dataclasses.field(default_factory=list)

    @functools.cached_property
    def verdict(self) -> Any:
        """The winner against the baseline (``verdict.Verdict``); None without one."""
        from rt3d_tune.results.verdict import run_verdict

        return run_verdict(self)

    @property
    def winner_confirmation(self) -> ConfirmedConfig | None:
        """The best trial's confirmation runs (None when it was not confirmed)."""
        if self.best is None:
            return None
        return next((g for g in self.confirmed if g.trial_id == self.best.trial_id), None)


def register_exporter(
    fn: Callable[[ExportContext], dict[str, Path]],
) -> Callable[[ExportContext], dict[str, Path]]:
    """Decorator: run ``fn(ctx)`` in every export; it returns name -> written path."""
    if fn not in _EXPORTERS:
        _EXPORTERS.append(fn)
    return fn


def write_run_info(run_dir: Path, info: dict[str, Any]) -> Path:
    """Write ``run.json``: what export needs to know about the search."""
    path = Path(run_dir, RUN_INFO)
    path.write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def runtime_diff(base: Any, trial: Any) -> dict[str, Any]:
    """The part of ``trial`` that differs from ``base``, as a child config would write it.

    Mappings are compared key by key; a mapping that lost keys of the base (a choice
    branch replaced the subtree) is written whole with ``_delete_=True`` so that the
    merge does not bring the base's other keys back. Everything else is replaced.
    """
    diff: dict[str, Any] = {}
    for key, value in trial.items():
        if key not in base:
            diff[key] = value
        elif value != base[key]:
            old = base[key]
            if isinstance(value, dict) and isinstance(old, dict):
                if set(old) - set(value):
                    diff[key] = {"_delete_": True, **value}
                else:
                    diff[key] = runtime_diff(old, value)
            else:
                diff[key] = value
    return diff


def reproduce_command(info: dict[str, Any], best_config: Path) -> str:
    """The command that retrains the best trial to the same metric on a CPU.

    A trial runs with as many torch threads as CPUs it asked for (``resources.cpu``);
    CPU float sums depend on the thread count, so the retraining must use the same.
    """
    cpus = float(dict(info.get("resources") or {}).get("cpu", 1))
    return f"OMP_NUM_THREADS={max(1, round(cpus))} rt3d-tune train {best_config}"


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("rt3d-tune", "torch", "ray", "optuna"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def _counts(records: dict[str, recorder.TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rec in records.values():
        counts[rec.status] = counts.get(rec.status, 0) + 1
    return counts


def _compute(records: dict[str, recorder.TrialRecord]) -> dict[str, float]:
    starts = [r.start for r in records.values() if r.start is not None]
    ends = [r.end for r in records.values() if r.end is not None]
    trial_s = sum(float(r.last_result.get("time_total_s", 0.0)) for r in records.values())
    probe_epochs = sum(float(res.get("probe_iters", 0)) / max(1, int(res.get("iters_per_epoch")
                                                                    or 1))
                       for r in records.values() for res in r.results.values())
    return {
        # rung probes' training counts in the compute spent, as epochs of the task
        "trial_epochs": sum(r.fidelity for r in records.values()),
        "probe_epochs": round(probe_epochs, 3),
        "trial_seconds": round(trial_s, 3),
        "wall_seconds": round(max(ends) - min(starts), 3) if starts and ends else 0.0,
    }


def _write_results_csv(ctx: ExportContext) -> Path:
    metric = ctx.info["metric"]
    params = sorted({name for rec in ctx.records.values() for name in rec.params})
    fidelities = sorted({f for rec in ctx.records.values() for f in rec.results})
    header = (
        ["trial_id", "status", metric, "epochs", "time_s"]
        + [f"param:{name}" for name in params]
        + [f"{metric}@{f}" for f in fidelities]
        + ["gpu_ids", "error"]
    )
    path = ctx.run_dir / RESULTS_CSV
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for rec in ctx.records.values():
            last = rec.last_result
            value = rec.metric(metric)
            writer.writerow(
                [rec.trial_id, rec.status, "" if value is None else value, rec.fidelity,
                 round(float(last.get("time_total_s", 0.0)), 3)]
                + [json.dumps(rec.params[n]) if n in rec.params else "" for n in params]
                + [_cell(rec.metric(metric, f)) for f in fidelities]
                + [last.get("gpu_ids", ""), rec.error or ""]
            )
    return path


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _full_budget_config(space: Any, best: recorder.TrialRecord, seed: Any,
                        base: Any) -> Any:
    """The winner at the base config's length: base + its params' overrides and its seed,
    the runner and schedule left as the base has them (the trial's were scaled from it)."""
    from rt3d_tune.space.sampling import apply_overrides
    from rt3d_tune.space.trials import trial_overrides

    overrides = trial_overrides(space, best.params, seed=seed, full_budget=True)
    return apply_overrides(base, overrides)


def _budgets(base: dict[str, Any], trial: dict[str, Any], info: dict[str, Any]
             ) -> dict[str, Any]:
    """The two lengths: what the base config trains and what each trial trained."""
    backend = backend_for(base)
    return {"full": backend.run_length(base),
            "trial": {**backend.run_length(trial),
                      "schedule": info.get("schedule", "truncated")}}


def _header(ctx: ExportContext, best: recorder.TrialRecord, budgets: dict[str, Any]) -> str:
    """The comment at the top of best_config.py: whose config, at what length, from what."""
    full, trial = budgets["full"], budgets["trial"]
    lines = [f"# The winner of {ctx.run_dir.name} (trial {best.trial_id}) at the base "
             f"config's length: {_length_text(full)}."]
    if full != {k: v for k, v in trial.items() if k != "schedule"}:
        how = ("its LR and momentum milestones were scaled to that length,\n# and are "
               "scaled back here" if trial["schedule"] == "scaled"
               else "its schedule was cut short")
        lines.append(f"# Its trial trained {_length_text(trial)}: {how}.")
        lines.append("# What the trial ran exactly is trial_config.py.")
    group = ctx.winner_confirmation
    if group is not None and group.mean is not None:
        lines.append(f"# Confirmed: {ctx.info['metric']} {group.mean:.4g} +- {group.std:.2g} "
                     f"(mean +- std over {len(group.values)} new seeds at the trial's length).")
    return "\n".join(lines) + "\n"


def _length_text(length: dict[str, Any]) -> str:
    if length.get("max_iters") is not None:
        return f"{length['max_iters']} iterations"
    return f"{length.get('max_epochs')} epochs"


def _write_best(ctx: ExportContext) -> dict[str, Path]:
    from rt3d_tune.config import Config
    from rt3d_tune.config.text import dumps

    best = ctx.best
    if best is None:
        return {}
    trial_cfg_path = ctx.run_dir / "trials" / best.trial_id / "config.py"
    if not trial_cfg_path.exists():
        raise ConfigError(
            "the best trial's config is missing",
            file=str(trial_cfg_path),
            hint="the run directory is incomplete; was it copied without trials/?",
        )
    ctx.best_dir.mkdir(parents=True, exist_ok=True)
    trial_cfg = Config.fromfile(str(trial_cfg_path), import_custom_modules=False)
    trial_config = ctx.best_dir / "trial_config.py"
    trial_config.write_text(
        f"# Exactly what trial {best.trial_id} of {ctx.run_dir.name} trained.\n"
        + dumps(trial_cfg.to_dict(), "py"), encoding="utf-8")
    base_cfg = Config.fromfile(str(ctx.run_dir / "base_config.py"), import_custom_modules=False)
    from rt3d_tune.space.trials import config_seed

    space = load_run_space(ctx.run_dir, ctx.info, base_cfg)
    seed = config_seed(space, trial_cfg)
    full_cfg = _full_budget_config(space, best, seed, base_cfg)
    budgets = _budgets(base_cfg.to_dict(), trial_cfg.to_dict(), ctx.info)
    header = _header(ctx, best, budgets)
    best_config = ctx.best_dir / "best_config.py"
    best_config.write_text(header + dumps(full_cfg.to_dict(), "py"), encoding="utf-8")

    base_path = Path(ctx.info["base_path"])
    if not base_path.exists():  # the run moved: point at the resolved copy beside it
        base_path = ctx.run_dir / "base_config.py"
    diff = runtime_diff(base_cfg.to_dict(), full_cfg.to_dict())
    rel = os.path.relpath(base_path, ctx.best_dir)
    best_runtime = ctx.best_dir / "best_runtime.py"
    best_runtime.write_text(header + "# Only what the winner changed.\n"
                            + dumps({"_base_": rel, **diff}, "py"), encoding="utf-8")
    summary_path = ctx.best_dir / "summary.json"
    summary = _summary(ctx, best, diff, budgets, seed,
                       (trial_config, best_config))
    summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return {"best_config": best_config, "best_runtime": best_runtime,
            "trial_config": trial_config, "summary": summary_path}


def _summary(ctx: ExportContext, best: recorder.TrialRecord, diff: dict[str, Any],
             budgets: dict[str, Any], seed: Any, configs: tuple[Path, Path]) -> dict[str, Any]:
    metric = ctx.info["metric"]
    group = ctx.winner_confirmation
    search_value = best.metric(metric)
    trial_config, best_config = configs
    verdict = ctx.verdict
    return {
        # the answer first: does the winner beat the base config? (``verdict``)
        "verdict": verdict.as_dict() if verdict is not None else None,
        "metric": metric,
        "mode": ctx.info["mode"],
        # the headline: the confirmed mean when the top configs were confirmed
        "best_value": group.mean if group is not None and group.mean is not None
        else search_value,
        "confirmed": group is not None and group.mean is not None,
        "search_value": search_value,
        "trial_id": best.trial_id,
        "epochs": best.fidelity,
        "budget": budgets,
        "params": best.params,
        "changed": diff,
        "seed": seed,
        "search_seed": ctx.info.get("seed"),
        "algorithm": ctx.info.get("algorithm"),
        "scheduler": ctx.info.get("scheduler"),
        "confirmation": [g.as_dict() for g in ctx.confirmed],
        "versions": _versions(),
        "compute": _compute({**ctx.records, **ctx.confirm_records}),
        "trials": _counts(ctx.records),
        "reproduce": reproduce_command(ctx.info, trial_config),
        "train_full": reproduce_command(ctx.info, best_config),
    }


def load_run_info(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a run directory.

    Raises:
        ConfigError: not a search run directory.
    """
    path = Path(run_dir, RUN_INFO)
    if not path.exists():
        raise ConfigError(
            "not a search run directory (no run.json)",
            key_path="RUN_DIR",
            given=str(run_dir),
            hint="pass the directory `rt3d-tune search` created: <output>/<name>",
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_context(run_dir: str | Path, finished: bool = True) -> ExportContext:
    """What exporters get for a run directory (finished or interrupted; with
    ``finished`` false, a running one: its unended trials stay RUNNING).

    Raises:
        ConfigError: not a search run directory.
    """
    run_dir = Path(run_dir).resolve()
    info = load_run_info(run_dir)
    records = recorder.load_records(run_dir, finished=finished)
    confirm_records = recorder.load_records(run_dir, finished=finished,
                                            filename=recorder.CONFIRM_JSONL)
    groups = confirmed(records, confirm_records, info["metric"])
    chosen = winner(groups, info["mode"])
    best = records[chosen.trial_id] if chosen is not None else \
        recorder.best_record(records, info["metric"], info["mode"])
    return ExportContext(run_dir, run_dir / BEST_DIR, info, records, best,
                         confirm_records=confirm_records, confirmed=groups)


def export_run(run_dir: str | Path, context: ExportContext | None = None) -> dict[str, Path]:
    """Write every export file of a run (finished or interrupted); returns name -> path.

    Args:
        run_dir: the run directory.
        context: its ``load_context`` when the caller has read it already.

    Raises:
        ConfigError: not a run directory, or its best trial's config is missing.
    """
    from rt3d_tune.results.study import build_study, write_study

    ctx = context if context is not None else load_context(run_dir)
    run_dir, info, records = ctx.run_dir, ctx.info, ctx.records

    paths = {"results_csv": _write_results_csv(ctx)}
    paths.update(_write_best(ctx))
    if records:
        study = build_study(load_run_space(run_dir, info), records)
        paths["study"] = write_study(run_dir, study, run_dir.name)
        ctx = dataclasses.replace(ctx, study=study)
    for module in EXPORTER_MODULES:
        importlib.import_module(module)
    # In EXPORTER_MODULES' order whatever imported them first: the report reads what
    # the others wrote (best_mmengine.py).
    order = {module: i for i, module in enumerate(EXPORTER_MODULES)}
    for exporter in sorted(_EXPORTERS, key=lambda f: order.get(f.__module__, len(order))):
        paths.update(exporter(ctx))
    return paths
