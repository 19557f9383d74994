"""``report.html``: what a search found, as pictures and tables that open offline.

Written at the end of every search (it is an exporter, see ``export.py``) and by
``rt3d-tune report RUN_DIR``. The PNG plots (:mod:`report_plots`) are written beside
the HTML file and referenced by name, so the folder can be copied or zipped as it is.
Without matplotlib the report keeps its tables and says how to install it.

It is written for people: parameters show as :class:`ParamLabels` names them
(``optimizer=AdamW``, ``AdamW.lr``), numbers with 4 significant digits, and each trial's
changes to the base config as ``key: old -> new`` lines, as ``rt3d-tune search``
prints them. ``results.csv`` and ``best/summary.json`` keep the exact names and values.
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rt3d_tune.backends import backend_for
from rt3d_tune.results import recorder
from rt3d_tune.results.confirmation import baseline_record
from rt3d_tune.results.export import ExportContext, register_exporter
from rt3d_tune.results.param_labels import (
    ParamLabels,
    format_number,
    rounded_diff,
    run_labels,
)
from rt3d_tune.results.report_plots import (
    PLOTS,
    STATUS_WORDS,
    PlotData,
    best_so_far,
    draw_plots,
    scored_trials,
)

__all__ = ["PLOTS", "best_so_far", "write_report"]

REPORT_HTML = "report.html"
_TITLES = {
    "best_so_far": "Best metric against compute spent",
    "learning_curves": "Learning curves",
    "parallel": "Parallel coordinates",
    "importance": "Parameter importance",
    "schedule": "Learning rate of the best config",
}
_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
    "table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;white-space:pre-line}"
    "td.lines{font-family:monospace;font-size:12px}img{max-width:100%}"
)
_FEW_TRIALS = re.compile(r"Some regimes for parameter `([^`]+)` have less than (\d+) trials")


def _importance_warnings(messages: Iterable[str], labels: ParamLabels) -> str:
    """Optuna's warnings about few trials, in one sentence with readable names."""
    few: list[str] = []
    minimum, other = "2", []
    for message in sorted(set(messages)):
        hit = _FEW_TRIALS.search(message)
        if hit:
            few.append(hit.group(1))
            minimum = hit.group(2)
        else:
            other.append(re.sub(r"`([^`]+)`", lambda m: labels.name(m.group(1)), message))
    parts = other
    if few:
        names = ", ".join(labels.name(p) for p in labels.order(few))
        few_text = (f"few trials back the values of {names} (some of their ranges hold "
                    f"fewer than {minimum} trials)")
        parts = [few_text, *other]
    return "; ".join(parts)


def _importances(ctx: ExportContext, labels: ParamLabels) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances of the run's study; (values, note).

    The study the export just built when there is one, else ``study.db`` read back.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = ctx.study
    if study is None:
        path = ctx.run_dir / "study.db"
        if not path.exists():
            return {}, "No importance: this run has no study.db."
        storage = f"sqlite:///{path}"
        studies = optuna.get_all_study_summaries(storage)
        if not studies:
            return {}, "No importance: the study is empty."
        study = optuna.load_study(study_name=studies[0].study_name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}, f"No importance: {len(complete)} complete trial(s), it needs at least 2."
    try:
        # PED-ANOVA warns when few trials back a value: the report says so instead.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as err:
        return {}, f"No importance: Optuna could not compute it ({err})."
    note = (f"How much of the metric's variation each parameter explains, by Optuna's "
            f"default evaluator (PED-ANOVA) over {len(complete)} complete trials; a "
            "branch's parameters count in the trials that took the branch.")
    few = _importance_warnings((str(w.message) for w in caught), labels)
    if few:
        note += f" Read with care: {few}."
    return {k: float(v) for k, v in values.items()}, note


def _best_config(ctx: ExportContext) -> tuple[Any, int]:
    """(the best trial's Config or None, its iterations per epoch)."""
    path = ctx.best_dir / "best_config.py"
    if ctx.best is None or not path.exists():
        return None, 0
    from rt3d_tune.config import Config

    iters = int(ctx.best.last_result.get("iters_per_epoch") or 0)
    return Config.fromfile(str(path), import_custom_modules=False), iters


def _momentum_name(cfg: Any) -> str:
    """What the schedule's momentum is for the optimizer: Adam's family keeps it in betas."""
    optimizer = dict(cfg.get("optimizer") or (cfg.get("optim_wrapper") or {}).get("optimizer")
                     or {})
    adam_like = "betas" in optimizer or "adam" in str(optimizer.get("type", "")).lower()
    return "beta1" if adam_like else "momentum"


def _mmengine_html(ctx: ExportContext, cfg: Any, iters: int) -> str:
    """One line on best_mmengine.py: exact, or what its header says differs."""
    if cfg is None or iters < 1 or not (ctx.best_dir / "best_mmengine.py").exists():
        return ""
    from rt3d_tune.schedules.mmcv_to_mmengine import INEXACT, OMITTED

    exported = backend_for(cfg).mmengine_spelling(cfg.to_dict(), iters)
    if exported is None:
        return ""
    line = "<p>best/best_mmengine.py holds the same runtime in mmdet3d 1.x (mmengine) spelling"
    if exported.exact:
        return line + ", with the same LR and momentum curve.</p>"
    items = "".join(f"<li>{html.escape(n.text)}</li>" for n in exported.notes
                    if n.kind in (INEXACT, OMITTED))
    return line + "; its schedule differs (the file's header says the same):</p><ul>" + items + \
        "</ul>"


def _diff_lines(ctx: ExportContext, base: dict[str, Any] | None, trial_id: str) -> str:
    """``key: old -> new`` lines (as ``rt3d-tune search`` prints them), numbers rounded."""
    from rt3d_tune.config import Config
    from rt3d_tune.space.sampling import config_diff, format_diff

    trial = ctx.run_dir / "trials" / trial_id / "config.py"
    if base is None or not trial.exists():
        return ""
    new = Config.fromfile(str(trial), import_custom_modules=False).to_dict()
    diff = rounded_diff(config_diff(base, new))
    return "\n".join(format_diff(diff, indent="")) or "(none)"


def _base_config(ctx: ExportContext) -> dict[str, Any] | None:
    from rt3d_tune.config import Config

    path = ctx.run_dir / "base_config.py"
    return Config.fromfile(str(path), import_custom_modules=False).to_dict() \
        if path.exists() else None


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]],
           lines: Iterable[int] = ()) -> str:
    """An HTML table; the columns in ``lines`` show one item per line, in monospace."""
    lines = set(lines)
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td{' class=lines' if i in lines else ''}>{html.escape(str(c))}</td>"
            for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict_html(ctx: ExportContext, in_progress: str | None) -> list[str]:
    """The answer first: whether the search is still running, and the verdict."""
    parts = []
    if in_progress is not None:
        parts.append(f"<p><b>This run is not finished</b> ({html.escape(in_progress)} is still "
                     "searching): this report shows what its trials recorded so far. Run "
                     "<code>rt3d-tune report</code> again for more.</p>")
    if ctx.verdict is not None:
        parts.append(f"<p style='font-size:120%'><b>{html.escape(ctx.verdict.text())}</b></p>")
    return parts


def _summary_html(ctx: ExportContext, labels: ParamLabels) -> list[str]:
    metric, mode = ctx.info["metric"], ctx.info["mode"]
    counts = {word: 0 for word in STATUS_WORDS.values()}
    for rec in ctx.records.values():
        word = STATUS_WORDS.get(rec.status, rec.status.lower())
        counts[word] = counts.get(word, 0) + 1
    parts = [
        f"<p>{len(ctx.records)} trials: "
        + html.escape(", ".join(f"{n} {w}" for w, n in counts.items() if n))
        + f". Metric: <b>{html.escape(metric)}</b>, "
        + ("higher" if mode == "max" else "lower") + " is better.</p>",
    ]
    if ctx.best is not None:
        params = ", ".join(labels.pairs(ctx.best.params))
        value = format_number(ctx.best.metric(metric))
        group = ctx.winner_confirmation
        if group is not None and group.mean is not None:
            value = (f"{format_number(group.mean)}</b> (the mean of {len(group.values)} runs "
                     f"with new seeds; its search trial reached {value})")
        else:
            value += "</b>"
        parts.append(
            f"<p>Best: <b>{html.escape(metric)} {value}, trial {html.escape(ctx.best.trial_id)}"
            + (f", with {html.escape(params)}" if params else "")
            + ". Its full config is best/best_config.py; best/best_runtime.py holds only "
            "what it changed.</p>"
        )
    return parts


def _confirmation_html(ctx: ExportContext, labels: ParamLabels) -> list[str]:
    """The top trials trained again with new seeds, best mean first."""
    sign = -1.0 if ctx.info["mode"] == "max" else 1.0
    groups = sorted(ctx.confirmed, key=lambda g: (g.mean is None, sign * (g.mean or 0.0)))
    if not groups:
        return []

    def runs(group: Any) -> str:
        return "\n".join(f"seed {seed}: " + ("failed" if v is None else format_number(v))
                         for seed, v in sorted(group.runs.values(),
                                               key=lambda run: (run[0] is None, run[0] or 0)))

    def mean(group: Any) -> str:
        if group.mean is None:
            return "none finished"
        return f"{format_number(group.mean)} ± {format_number(group.std)}"

    return [
        "<h2>Confirmation of the top trials</h2>",
        (f"<p>The {len(groups)} best trials that ran their whole budget, trained again with "
         "new seeds. The winner is the config with the best mean: the best search value "
         "overstates what its config gives, as part of its lead is its seed's luck.</p>"),
        _table(["trial", f"search {ctx.info['metric']}", "mean ± std", "runs", "parameters"],
               [(g.trial_id, format_number(g.search_value), mean(g), runs(g),
                 "\n".join(labels.pairs(g.params))) for g in groups],
               lines=(3, 4)),
    ]


def _trials_html(ctx: ExportContext, labels: ParamLabels, top: int) -> list[str]:
    metric = ctx.info["metric"]
    data = PlotData(metric, ctx.info["mode"], ctx.records, labels)
    scored = scored_trials(data)[:top]
    base = _base_config(ctx) if scored else None
    parts = [f"<h2>Top {len(scored)} trials</h2>", _table(
        ["trial", metric, "epochs", "status", "parameters", "changes against the base config"],
        [(rec.trial_id, format_number(value), rec.fidelity,
          STATUS_WORDS.get(rec.status, rec.status), "\n".join(labels.pairs(rec.params)),
          _diff_lines(ctx, base, rec.trial_id))
         for rec, value in scored],
        lines=(4, 5),
    )]
    failed = [r for r in ctx.records.values() if r.status in (recorder.DIVERGED, recorder.ERROR)]
    if failed:
        parts.append("<h2>Diverged or failed trials</h2>")
        parts.append(_table(
            ["trial", "status", "parameters", "error"],
            [(r.trial_id, STATUS_WORDS[r.status], "\n".join(labels.pairs(r.params)),
              r.error or "") for r in failed],
            lines=(2,),
        ))
    return parts


def write_report(ctx: ExportContext, top: int = 10, in_progress: str | None = None
                 ) -> dict[str, Path]:
    """Write ``report.html`` (and its PNGs) for a run; returns name -> path.

    ``in_progress``: who is still searching in the run (``run_lock.lock_holder``), for a
    report of a running search; None for a finished (or interrupted) one.
    """
    labels = run_labels(ctx)
    importances, importance_note = _importances(ctx, labels)
    cfg, iters = _best_config(ctx)
    schedule: list[dict[str, Any]] = []
    if cfg is not None:
        schedule = backend_for(cfg).simulate(cfg, iters or 10)
    base = baseline_record(ctx.records)
    data = PlotData(ctx.info["metric"], ctx.info["mode"], ctx.records, labels, importances,
                    importance_note, schedule, _momentum_name(cfg) if cfg is not None else "",
                    base.metric(ctx.info["metric"]) if base is not None else None)
    try:
        plots = draw_plots(ctx.run_dir, data)
        plot_note = ""
    except ImportError:
        plots = {}
        plot_note = (
            "Plots need matplotlib: <code>pip install 'rt3d-tune[plot]'</code>, then "
            "<code>rt3d-tune report RUN_DIR</code>."
        )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>rt3d-tune report: {html.escape(ctx.run_dir.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Search {html.escape(ctx.run_dir.name)}</h1>",
        *_verdict_html(ctx, in_progress),
        *_summary_html(ctx, labels),
        _mmengine_html(ctx, cfg, iters),
    ]
    if plot_note:
        parts.append(f"<p><b>{plot_note}</b></p>")
    for key, title in _TITLES.items():
        if key in plots:
            parts.append(f"<h2>{title}</h2><img src='{PLOTS[key]}' alt='{title}'>")
        if key == "importance":
            parts.append(f"<p>{html.escape(importance_note)}</p>")
            rows = sorted(importances.items(), key=lambda kv: -kv[1])
            if rows:
                parts.append(_table(["parameter", "importance"],
                                    [(labels.name(k), f"{v:.3f}") for k, v in rows]))
    parts += _confirmation_html(ctx, labels)
    parts += _trials_html(ctx, labels, top)
    parts.append("</body></html>")
    path = ctx.run_dir / REPORT_HTML
    path.write_text("\n".join(p for p in parts if p), encoding="utf-8")
    return {"report": path, **{f"plot_{k}": v for k, v in plots.items()}}


register_exporter(write_report)
