"""The report's PNG plots, one function per picture (matplotlib, Agg backend).

Every axis that names a search parameter uses :class:`ParamLabels` (``AdamW.lr``,
``optimizer=AdamW``), as the report's tables do. :func:`draw_plots` writes the PNGs
into the run directory; it raises ImportError without matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rt3d_tune.results import recorder
from rt3d_tune.results.param_labels import ParamLabels, format_number

__all__ = ["PLOTS", "STATUS_WORDS", "PlotData", "best_so_far", "draw_plots", "scored_trials"]

PLOTS = {
    "best_so_far": "report_best_so_far.png",
    "learning_curves": "report_learning_curves.png",
    "parallel": "report_parallel_coordinates.png",
    "importance": "report_importance.png",
    "schedule": "report_schedule.png",
}
STATUS_WORDS = {
    recorder.TERMINATED: "finished",
    recorder.EARLY_STOPPED: "stopped early",
    recorder.DIVERGED: "diverged",
    recorder.ERROR: "failed",
    recorder.RUNNING: "running",
    recorder.INTERRUPTED: "interrupted",
}
_STATUS_STYLE = {  # (line style, marker at the trial's last point)
    recorder.TERMINATED: ("-", None),
    recorder.EARLY_STOPPED: ("--", "x"),
    recorder.DIVERGED: (":", "X"),
    recorder.ERROR: (":", "X"),
}
_NAMED_CURVES = 5  # learning curves labelled with their trial id (the best ones)
_NOT_TAKEN = -0.2  # where a trial without a value (another branch) sits on an axis


@dataclass(frozen=True)
class PlotData:
    """What the plots show. ``schedule``: rows of ``simulate_schedule`` of the best
    config; ``momentum_name``: what its optimizer calls momentum; ``baseline``: the
    metric the base config (the baseline trial) reached in the search, None without."""

    metric: str
    mode: str
    records: dict[str, recorder.TrialRecord]
    labels: ParamLabels
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""
    schedule: list[dict[str, Any]] = field(default_factory=list)
    momentum_name: str = "momentum"
    baseline: float | None = None


def scored_trials(data: PlotData) -> list[tuple[recorder.TrialRecord, float]]:
    """(record, metric) of every trial that reported the metric, best first."""
    scored = [(rec, rec.metric(data.metric)) for rec in data.records.values()]
    return sorted(((rec, v) for rec, v in scored if v is not None),
                  key=lambda rv: rv[1], reverse=(data.mode == "max"))


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


def _draw_best_so_far(plt: Any, data: PlotData) -> Any:
    rows = best_so_far(data.records, data.metric, data.mode)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "trial_epochs", "compute spent (trial-epochs)"),
        (axes[1], "wall_s", "wall time since the first trial started (s)"),
    ):
        ax.step([r[key] for r in rows], [r["best"] for r in rows], where="post",
                 label="best so far")
        if data.baseline is not None:
            ax.axhline(data.baseline, color="tab:red", linestyle="--",
                       label=f"your config: {format_number(data.baseline)}")
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel(f"best {data.metric} so far")
        ax.grid(alpha=0.3)
    return fig


def _name_ends(ax: Any, ends: list[tuple[str, tuple[float, float]]]) -> None:
    """Write trial ids beside their curves' last points, moved apart where they would
    overlap (the x axis grows to the right to make room)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    ax.set_xlim(x0, x1 + 0.1 * (x1 - x0))
    gap, dx = 0.045 * (y1 - y0), 0.015 * (x1 - x0)
    ends = sorted(ends, key=lambda item: item[1][1])
    placed: list[float] = []
    for _, (_, y) in ends:
        placed.append(max([y, *(p + gap for p in placed[-1:])]))
    shift = min(0.0, y1 - gap / 2 - max(placed, default=y1))
    for (name, (x, y)), text_y in zip(ends, placed):
        ax.annotate(name, (x, y), xytext=(x + dx, text_y + shift), fontsize=7, va="center",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})


def _draw_learning_curves(plt: Any, data: PlotData) -> Any:
    # One collection per line style: a plot() call per trial costs ~1 ms each.
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lines: dict[str, tuple[list, list]] = {}
    cuts: dict[str, tuple[list, list, list]] = {}
    ends: dict[str, tuple[float, float]] = {}
    statuses = set()
    for index, rec in enumerate(data.records.values()):
        points = [(f, rec.metric(data.metric, f)) for f in sorted(rec.results)]
        points = [(f, v) for f, v in points if v is not None]
        if not points:
            continue
        linestyle, marker = _STATUS_STYLE.get(rec.status, ("-", None))
        statuses.add(rec.status if rec.status in _STATUS_STYLE else recorder.TERMINATED)
        color = colors[index % len(colors)]
        segments, segment_colors = lines.setdefault(linestyle, ([], []))
        segments.append(points)
        segment_colors.append(color)
        ends[rec.trial_id] = points[-1]
        if marker:  # mark where the trial was cut
            xs, ys, marker_colors = cuts.setdefault(marker, ([], [], []))
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
    _name_ends(ax, [(rec.trial_id, ends[rec.trial_id])
                    for rec, _ in scored_trials(data)[:_NAMED_CURVES] if rec.trial_id in ends])
    words: dict[tuple[str, str | None], list[str]] = {}
    for status in sorted(statuses):
        words.setdefault(_STATUS_STYLE[status], []).append(STATUS_WORDS[status])
    ax.legend(handles=[Line2D([], [], color="0.3", linestyle=ls, marker=m, label=" or ".join(w))
                       for (ls, m), w in words.items()], fontsize=8, loc="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (evaluation round)")
    ax.set_ylabel(data.metric)
    ax.set_title(f"{data.metric} of every trial (the {_NAMED_CURVES} best named)")
    ax.grid(alpha=0.3)
    return fig


def _axis(labels: ParamLabels, name: str,
          values: list[Any]) -> tuple[list[float], list[tuple[float, str]], bool]:
    """One parallel-coordinates axis: (each trial's position in [0, 1], or _NOT_TAKEN
    when the trial took another branch; (position, text) ticks; is_log)."""
    known = [v for v in values if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in known)
    ticks = [(_NOT_TAKEN, "(not taken)")] if len(known) < len(values) else []
    if labels.is_choice(name) or not numeric:
        shown = [labels.value(name, v) for v in known]
        categories = labels.options(name) or sorted(set(shown))
        categories += sorted(set(shown) - set(categories))
        span = max(len(categories) - 1, 1)
        where = {c: (i / span if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
        positions = [_NOT_TAKEN if v is None else where[labels.value(name, v)] for v in values]
        return positions, ticks + [(where[c], c) for c in categories], False
    lo, hi = min(known), max(known)
    use_log = lo > 0 and hi / lo > 20
    f = math.log10 if use_log else float
    a, b = f(lo), f(hi)
    if a == b:
        return ([_NOT_TAKEN if v is None else 0.5 for v in values],
                ticks + [(0.5, format_number(lo))], False)
    positions = [_NOT_TAKEN if v is None else (f(v) - a) / (b - a) for v in values]
    return positions, ticks + [(0.0, format_number(lo)), (1.0, format_number(hi))], use_log


def _draw_parallel(plt: Any, data: PlotData) -> Any:
    from matplotlib.collections import LineCollection

    scored = scored_trials(data)
    names = data.labels.order({n for rec, _ in scored for n in rec.params})
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 1.5 * len(names) + 2)), 6))
    ax.set_ylim(_NOT_TAKEN - 0.06, 1.06)
    ax.set_yticks([])
    if not (scored and names):
        ax.text(0.5, 0.5, "no trial reported the metric yet", ha="center", va="center")
        return fig
    columns = []
    for x, name in enumerate(names):
        positions, ticks, is_log = _axis(data.labels, name, [r.params.get(name) for r, _ in scored])
        columns.append(positions)
        ax.axvline(x, color="0.75", linewidth=0.8, zorder=0)
        for y, text in ticks:
            ax.text(x + 0.04, y, text + (" (log)" if is_log and y == 1.0 else ""),
                    fontsize=7, va="center", ha="left", color="0.5" if y < 0 else "0.2")
    values = [v for _, v in scored]
    cmap = plt.get_cmap("viridis")
    norm = plt.Normalize(min(values), max(values))
    lines = [list(enumerate(column)) for column in zip(*columns)]
    colors = [cmap(norm(v)) for v in values]
    ax.add_collection(LineCollection(lines, colors=colors, alpha=0.8))
    xs, ys, cs = zip(*((x, y, c) for line, c in zip(lines, colors) for x, y in line))
    ax.scatter(xs, ys, c=cs, s=12, zorder=3)
    ax.set_xlim(-0.3, len(names) - 0.4)
    ax.set_xticks(range(len(names)), [data.labels.name(n) for n in names], rotation=20,
                  fontsize=8)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=ax, label=data.metric)
    ax.set_title(f"parameters of every scored trial, coloured by {data.metric}")
    return fig


def _draw_importance(plt: Any, data: PlotData) -> Any:
    items = sorted(data.importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.45 * len(items) + 1.2)))
    if not items:
        ax.text(0.5, 0.5, data.importance_note or "no importance", ha="center", va="center",
                wrap=True, fontsize=8)
        ax.set_yticks([])
    else:
        bars = ax.barh([data.labels.name(k) for k, _ in items], [v for _, v in items])
        ax.bar_label(bars, labels=[f"{v:.2f}" for _, v in items], padding=3, fontsize=8)
        ax.set_xlim(0, max(1.0, max(v for _, v in items) * 1.1))
    ax.set_xlabel("importance (Optuna's PED-ANOVA; the values add up to 1)")
    return fig


def _draw_schedule(plt: Any, data: PlotData) -> Any:
    if not data.schedule:
        return None
    iters = [r["iter"] for r in data.schedule]
    fig, ax = plt.subplots(figsize=(8, 4))
    handles = ax.plot(iters, [r["lr"] for r in data.schedule], label="learning rate")
    epochs = len({r["epoch"] for r in data.schedule})
    ax.set_xlabel(f"iteration ({epochs} epochs of {len(iters) // epochs})" if epochs > 1
                  else "iteration")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    momenta = [r.get("momentum") for r in data.schedule]
    title = "learning rate of the best config"
    if len({m for m in momenta if m is not None}) > 1:
        twin = ax.twinx()
        handles += twin.plot(iters, momenta, color="tab:orange", label=data.momentum_name)
        twin.set_ylabel(data.momentum_name)
        title = f"learning rate and {data.momentum_name} of the best config"
    elif momenta and momenta[0] is not None:
        title += f" ({data.momentum_name} constant at {format_number(momenta[0])})"
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_title(title)
    return fig


_DRAW: dict[str, Callable[[Any, PlotData], Any]] = {
    "best_so_far": _draw_best_so_far,
    "learning_curves": _draw_learning_curves,
    "parallel": _draw_parallel,
    "importance": _draw_importance,
    "schedule": _draw_schedule,
}


def draw_plots(run_dir: Path, data: PlotData) -> dict[str, Path]:
    """Write every plot that has something to show; returns key -> PNG path.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, Path] = {}
    for key, draw in _DRAW.items():
        fig = draw(plt, data)
        if fig is None:
            continue
        path = run_dir / PLOTS[key]
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out[key] = path
    return out
