"""``report.html``: what a search found, as pictures and tables that open offline.

Written at the end of every search (it is an exporter, see ``export.py``) and by
``rt3d-tune report RUN_DIR``. The PNG plots are written beside the HTML file and
referenced by name, so the folder can be copied or zipped as it is. Plots need
matplotlib (the ``plot`` extra); without it the report keeps its tables and says how
to install it.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rt3d_tune.results import recorder
from rt3d_tune.results.export import ExportContext, register_exporter

__all__ = ["PLOTS", "best_so_far", "write_report"]

REPORT_HTML = "report.html"
PLOTS = {
    "best_so_far": "report_best_so_far.png",
    "learning_curves": "report_learning_curves.png",
    "parallel": "report_parallel_coordinates.png",
    "importance": "report_importance.png",
    "schedule": "report_schedule.png",
}
_STATUS_STYLE = {
    recorder.TERMINATED: dict(linestyle="-", marker=None),
    recorder.EARLY_STOPPED: dict(linestyle="--", marker="x"),
    recorder.DIVERGED: dict(linestyle=":", marker="X"),
    recorder.ERROR: dict(linestyle=":", marker="X"),
}


def _result_events(
    records: dict[str, recorder.TrialRecord], metric: str
) -> list[tuple[float, int, str, float | None]]:
    """(time, fidelity, trial id, metric) of every report, in the order they happened."""
    events = []
    for rec in records.values():
        for fidelity, result in rec.results.items():
            when = result.get("timestamp")
            if when is None:
                when = (rec.start or 0.0) + float(result.get("time_total_s", 0.0))
            events.append((float(when), fidelity, rec.trial_id, rec.metric(metric, fidelity)))
    events.sort()
    return events


def best_so_far(
    records: dict[str, recorder.TrialRecord], metric: str, mode: str
) -> list[dict[str, float]]:
    """Best metric so far after each report, with the compute spent until then.

    Each report stands for the epochs (fidelity steps) the trial ran since its previous
    report. Returns rows ``trial_epochs``, ``wall_s`` (since the first report's trial
    started) and ``best`` (NaN until a metric was reported).
    """
    events = _result_events(records, metric)
    if not events:
        return []
    start = min((r.start for r in records.values() if r.start is not None), default=events[0][0])
    last_fidelity: dict[str, int] = {}
    rows, spent, best = [], 0, math.nan
    for when, fidelity, trial_id, value in events:
        spent += max(fidelity - last_fidelity.get(trial_id, 0), 1)
        last_fidelity[trial_id] = max(fidelity, last_fidelity.get(trial_id, 0))
        if value is not None and (
            math.isnan(best) or (value > best if mode == "max" else value < best)
        ):
            best = value
        rows.append({"trial_epochs": float(spent), "wall_s": max(when - start, 0.0), "best": best})
    return rows


def _numeric_axis(values: list[Any]) -> tuple[list[float], list[str], bool]:
    """Map a parameter's values to [0, 1]; returns (positions, tick labels, is_log)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        labels = sorted({json.dumps(v, default=str) for v in values})
        index = {label: i for i, label in enumerate(labels)}
        span = max(len(labels) - 1, 1)
        return [index[json.dumps(v, default=str)] / span for v in values], labels, False
    lo, hi = min(values), max(values)
    use_log = lo > 0 and hi / lo > 20
    f = math.log10 if use_log else float
    a, b = f(lo), f(hi)
    span = (b - a) or 1.0
    return [(f(v) - a) / span for v in values], [f"{lo:.3g}", f"{hi:.3g}"], use_log


def _plots(
    ctx: ExportContext, importances: dict[str, float], schedule: list[dict]
) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    metric, mode = ctx.info["metric"], ctx.info["mode"]
    out: dict[str, Path] = {}

    def save(fig: Any, key: str) -> None:
        path = ctx.run_dir / PLOTS[key]
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out[key] = path

    rows = best_so_far(ctx.records, metric, mode)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "trial_epochs", "compute spent (trial-epochs)"),
        (axes[1], "wall_s", "wall time (s)"),
    ):
        ax.step([r[key] for r in rows], [r["best"] for r in rows], where="post")
        ax.set_xlabel(label)
        ax.set_ylabel(f"best {metric} so far")
        ax.grid(alpha=0.3)
    save(fig, "best_so_far")

    # One collection per line style (a plot() call per trial costs ~1 ms each).
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lines: dict[str, tuple[list, list]] = {}
    cuts: dict[str, tuple[list, list, list]] = {}
    for index, rec in enumerate(ctx.records.values()):
        points = [(f, rec.metric(metric, f)) for f in sorted(rec.results)]
        points = [(f, v) for f, v in points if v is not None]
        if not points:
            continue
        style = _STATUS_STYLE.get(rec.status, dict(linestyle="-", marker=None))
        color = colors[index % len(colors)]
        segments, segment_colors = lines.setdefault(style["linestyle"], ([], []))
        segments.append(points)
        segment_colors.append(color)
        if style["marker"]:  # mark where the trial was cut
            xs, ys, marker_colors = cuts.setdefault(style["marker"], ([], [], []))
            xs.append(points[-1][0])
            ys.append(points[-1][1])
            marker_colors.append(color)
    for linestyle, (segments, segment_colors) in lines.items():
        ax.add_collection(
            LineCollection(segments, colors=segment_colors, linestyles=linestyle, alpha=0.8)
        )
    for marker, (xs, ys, marker_colors) in cuts.items():
        ax.scatter(xs, ys, marker=marker, c=marker_colors, s=81, zorder=3)
    ax.autoscale_view()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (evaluation round)")
    ax.set_ylabel(metric)
    ax.set_title("learning curves (dashed, x: stopped early; dotted, X: diverged/failed)")
    ax.grid(alpha=0.3)
    save(fig, "learning_curves")

    scored = [(rec, rec.metric(metric)) for rec in ctx.records.values()]
    scored = [(rec, v) for rec, v in scored if v is not None]
    names = sorted({n for rec, _ in scored for n in rec.params})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) + 2), 5))
    if scored and names:
        values = [v for _, v in scored]
        cmap = plt.get_cmap("viridis")
        lo, hi = min(values), max(values)
        axes_pos = []
        for name in names:
            present = [rec.params.get(name) for rec, _ in scored]
            known = [v for v in present if v is not None]
            pos, labels, is_log = _numeric_axis(known)
            it = iter(pos)
            axes_pos.append([next(it) if v is not None else math.nan for v in present])
            ax.text(
                len(axes_pos) - 1,
                -0.08,
                " / ".join(labels[:4]) + (" (log)" if is_log else ""),
                ha="center",
                va="top",
                fontsize=7,
            )
        ax.add_collection(
            LineCollection(
                [list(zip(range(len(names)), column)) for column in zip(*axes_pos)],
                colors=[cmap((value - lo) / ((hi - lo) or 1.0)) for _, value in scored],
                alpha=0.8,
            )
        )
        ax.set_xlim(-0.2, len(names) - 0.8)
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, hi))
        fig.colorbar(mappable, ax=ax, label=metric)
    ax.set_ylim(-0.15, 1.05)
    ax.set_yticks([])
    ax.set_title("parameters of every scored trial, coloured by the metric")
    save(fig, "parallel")

    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.5 * len(importances) + 1)))
    if importances:
        items = sorted(importances.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_xlabel("importance (Optuna PED-ANOVA)")
    save(fig, "importance")

    if schedule:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot([r["iter"] for r in schedule], [r["lr"] for r in schedule], label="lr")
        ax.set_xlabel("iteration")
        ax.set_ylabel("learning rate")
        if any(r.get("momentum") is not None for r in schedule):
            twin = ax.twinx()
            twin.plot(
                [r["iter"] for r in schedule],
                [r.get("momentum") for r in schedule],
                color="tab:orange",
                label="momentum",
            )
            twin.set_ylabel("momentum")
        ax.set_title("LR and momentum of the best config")
        save(fig, "schedule")
    return out


def _importances(ctx: ExportContext) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances of the run's study; (values, note).

    The study the export just built when there is one, else ``study.db`` read back.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = ctx.study
    if study is None:
        path = ctx.run_dir / "study.db"
        if not path.exists():
            return {}, "no study.db in this run"
        storage = f"sqlite:///{path}"
        studies = optuna.get_all_study_summaries(storage)
        if not studies:
            return {}, "the study is empty"
        study = optuna.load_study(study_name=studies[0].study_name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}, f"{len(complete)} complete trial(s): importance needs at least 2"
    try:
        # Optuna's default evaluator (PED-ANOVA) warns when few trials back a value:
        # the report says so instead of the terminal.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as err:
        return {}, f"importance could not be computed: {err}"
    note = (
        "Optuna's default evaluator (PED-ANOVA) over the parameters present in every "
        "complete trial (the branch choice stands for the parameters inside its branches)"
    )
    if caught:
        note += "; few trials: " + "; ".join(sorted({str(w.message) for w in caught}))
    return {k: float(v) for k, v in values.items()}, note


def _schedule(ctx: ExportContext) -> list[dict]:
    path = ctx.best_dir / "best_config.py"
    if ctx.best is None or not path.exists():
        return []
    from rt3d_tune.config import Config
    from rt3d_tune.runner.simulate import simulate_schedule

    iters = int(ctx.best.last_result.get("iters_per_epoch") or 10)
    return simulate_schedule(Config.fromfile(str(path), import_custom_modules=False), iters)


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _diff_text(ctx: ExportContext, trial_id: str) -> str:
    from rt3d_tune.config import Config
    from rt3d_tune.results.export import runtime_diff

    base = ctx.run_dir / "base_config.py"
    trial = ctx.run_dir / "trials" / trial_id / "config.py"
    if not (base.exists() and trial.exists()):
        return ""
    diff = runtime_diff(
        Config.fromfile(str(base), import_custom_modules=False).to_dict(),
        Config.fromfile(str(trial), import_custom_modules=False).to_dict(),
    )
    return json.dumps(diff, default=str, sort_keys=True)


def write_report(ctx: ExportContext, top: int = 10) -> dict[str, Path]:
    """Write ``report.html`` (and its PNGs) for a run; returns name -> path."""
    metric, mode = ctx.info["metric"], ctx.info["mode"]
    importances, importance_note = _importances(ctx)
    schedule = _schedule(ctx)
    try:
        plots = _plots(ctx, importances, schedule)
        plot_note = ""
    except ImportError:
        plots = {}
        plot_note = (
            "Plots need matplotlib: <code>pip install 'rt3d-tune[plot]'</code>, then "
            "<code>rt3d-tune report RUN_DIR</code>."
        )
    scored = sorted(
        (
            (rec, rec.metric(metric))
            for rec in ctx.records.values()
            if rec.metric(metric) is not None
        ),
        key=lambda rv: rv[1],
        reverse=(mode == "max"),
    )
    counts: dict[str, int] = {}
    for rec in ctx.records.values():
        counts[rec.status] = counts.get(rec.status, 0) + 1
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>rt3d-tune report: {html.escape(ctx.run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>Search {html.escape(ctx.run_dir.name)}</h1>",
        f"<p>metric <b>{html.escape(metric)}</b> ({mode}); trials: "
        + html.escape(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        + "</p>",
    ]
    if ctx.best is not None:
        parts.append(
            f"<p>best: <b>{ctx.best.metric(metric):.6g}</b> by trial "
            f"{html.escape(ctx.best.trial_id)}; exported to best/best_config.py</p>"
        )
    if plot_note:
        parts.append(f"<p><b>{plot_note}</b></p>")
    titles = {
        "best_so_far": "Best metric against compute spent",
        "learning_curves": "Learning curves",
        "parallel": "Parallel coordinates",
        "importance": "Parameter importance",
        "schedule": "LR and momentum of the best config",
    }
    for key, title in titles.items():
        if key in plots:
            parts.append(f"<h2>{title}</h2><img src='{PLOTS[key]}' alt='{title}'>")
        if key == "importance":
            parts.append(f"<p>{html.escape(importance_note)}</p>")
            parts.append(
                _table(
                    ["parameter", "importance"], [(k, f"{v:.3f}") for k, v in importances.items()]
                )
            )
    parts.append(f"<h2>Top {min(top, len(scored))} trials</h2>")
    parts.append(
        _table(
            ["trial", metric, "epochs", "status", "params", "config diff against the base"],
            [
                (
                    rec.trial_id,
                    f"{value:.6g}",
                    rec.fidelity,
                    rec.status,
                    json.dumps(rec.params, default=str, sort_keys=True),
                    _diff_text(ctx, rec.trial_id),
                )
                for rec, value in scored[:top]
            ],
        )
    )
    failed = [
        rec for rec in ctx.records.values() if rec.status in (recorder.DIVERGED, recorder.ERROR)
    ]
    if failed:
        parts.append("<h2>Diverged or failed trials</h2>")
        parts.append(
            _table(
                ["trial", "status", "error"],
                [(r.trial_id, r.status, r.error or "") for r in failed],
            )
        )
    parts.append("</body></html>")
    path = ctx.run_dir / REPORT_HTML
    path.write_text("\n".join(parts), encoding="utf-8")
    return {"report": path, **{f"plot_{k}": v for k, v in plots.items()}}


register_exporter(write_report)
