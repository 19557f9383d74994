"""Step 3: reading the grid back, and what a fidelity mode reads from it.

:func:`load_grid` reads ``grid.csv`` (checked complete: every config x seed 0, 1 x kind
with its probes; extra seeds, trained for the verdict only, need their epochs only).
A :class:`Mode` is a fidelity at the trial budget: which run kind it reads and whether
its rungs report the cool-down probe. :func:`correlations` ranks a mode's metric
against the truth of the other seed (the fair comparison, see ``fidelity.py``).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _fidelity.grid import GRID_CSV, GRID_META, KINDS, SEEDS, Settings


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

    def seeds(self, cid: str) -> list[int]:
        """The training seeds of ``cid`` with both a full and a scaled run."""
        return sorted(seed for (c, seed, kind) in self.metric
                      if c == cid and kind == "full" and (c, seed, "scaled") in self.metric)


def load_grid(path: Path) -> Grid:
    """The grid of a run folder (or its ``grid.csv``), checked complete.

    Raises:
        SystemExit: a run of seed 0 or 1 is missing, or any run lacks an epoch.
    """
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
    lengths = {"full": settings.base_epochs, "scaled": settings.trial_epochs}
    for cid in grid.ids:
        for seed in SEEDS:
            for kind in KINDS:
                grid.metric.setdefault((cid, seed, kind), {})
    for (cid, seed, kind), got in grid.metric.items():
        if sorted(got) != list(range(1, lengths[kind] + 1)):
            raise SystemExit(f"{folder / GRID_CSV}: the grid is incomplete: {cid} seed "
                             f"{seed} {kind} has epochs {sorted(got)}")
        for ratio in settings.probe_ratios if seed in SEEDS else ():
            probes = grid.probe.get((cid, seed, kind, ratio), {})
            if sorted(probes) != settings.probe_epochs(kind):
                raise SystemExit(f"{folder / GRID_CSV}: no probe {ratio} of {cid} seed "
                                 f"{seed} {kind} at {settings.probe_epochs(kind)}")
    return grid



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

