"""bench/fidelity.py runs at tiny sizes, prints its figures (the verdict at trial length
against full length among them) and ends on its target lines; a rerun from the saved
grid (``--grid-run``) trains nothing it already has and reads the same grid."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

RATIO = re.compile(
    r"^RATIO (.+) = ([-+0-9.e]+|inf)(?: \(target ([<>]=) ([0-9.e+-]+): (met|MISSED)\))?$"
)
MODES = ("truncated", "scaled", "scaled+cooldown@0.25", "truncated+cooldown@0.25")


def ratio_lines(out: str) -> list[re.Match[str]]:
    """Every RATIO line, each checked against the format the other benchmarks print."""
    found = []
    for line in out.splitlines():
        if line.startswith("RATIO"):
            match = RATIO.match(line)
            assert match, f"badly formed ratio line: {line!r}"
            found.append(match)
    return found


@pytest.mark.ray
@pytest.mark.slow
def test_fidelity_quick_measures_every_mode_and_reuses_its_grid(ray_local, tmp_path, capsys):
    import fidelity

    keep = tmp_path / "run"
    assert fidelity.main(["--quick", "--keep", str(keep), "--verdict-seeds", "3"]) == 0
    out = capsys.readouterr().out

    # The grid: 4 configs x 2 seeds x (4 full + 2 scaled epochs), probes where asked; the
    # base config (cyclic AdamW at its own lr) is one of them.
    with (keep / "grid.csv").open(newline="") as src:
        rows = list(csv.DictReader(src))
    labels = {r["config"]: r["label"] for r in rows}
    assert "AdamW lr 0.0018 cyclic" in labels.values()
    baseline = next(c for c, label in labels.items() if label == "AdamW lr 0.0018 cyclic")
    runs = {(r["config"], r["seed"], r["kind"]) for r in rows if r["seed"] in ("0", "1")}
    assert len(runs) == 4 * 2 * 2
    # The verdict's third seed: the baseline and the winners only, both kinds, no probes.
    extra = {(r["config"], r["kind"]) for r in rows if r["seed"] == "2"}
    assert (baseline, "full") in extra and (baseline, "scaled") in extra
    assert len(extra) < 4 * 2
    assert not any(r["probe_ratio"] for r in rows if r["seed"] == "2")
    rows = [r for r in rows if r["seed"] in ("0", "1")]
    assert {int(r["epoch"]) for r in rows if r["kind"] == "full"} == {1, 2, 3, 4}
    assert {int(r["epoch"]) for r in rows if r["kind"] == "scaled"} == {1, 2}
    probed = {(r["kind"], int(r["epoch"])) for r in rows if r["probe_ratio"]}
    assert probed == {("full", 1), ("full", 2), ("scaled", 1)}  # T/4 = T/2 = 1; B/4, B/2
    assert all(int(r["probe_iters"]) >= 1 for r in rows if r["probe_ratio"])

    assert "FIGURE truth seed-to-seed rank correlation = " in out
    assert "FIGURE seed spread = " in out
    for mode in MODES:
        assert f"FIGURE {mode} rank correlation at epoch 1 (T/4 = T/2) = " in out
        for seed in (0, 1):
            assert f"FIGURE {mode} search seed {seed} regret = " in out
        assert f"FIGURE {mode} searches with regret within the seed spread = " in out
    assert "WARNING" not in out

    # The verdict of each search's winner, at trial and at full length, over 3 seeds.
    verdict = re.compile(r"^FIGURE verdict search seed (\d) trial-length delta = \S+ bev_mAP .*"
                         r"trial (better|worse|within noise) \(.*, 3 paired seeds\); "
                         r"full (better|worse|within noise) \(.*, 3 paired seeds\); "
                         r"(agree|DISAGREE)\)$")
    found = [m for m in map(verdict.match, out.splitlines()) if m]
    assert [m.group(1) for m in found] == ["0", "1"]
    for m in found:
        assert (m.group(2) == m.group(3)) == (m.group(4) == "agree")
    agree = sum(m.group(4) == "agree" for m in found)
    assert (f"FIGURE verdict agreement, trial-length outcome = full-length outcome = {agree} "
            "of 2 searches") in out
    rate = agree / 2
    if any("(the winner is the baseline)" not in m.group(0) for m in found):
        assert ("FIGURE verdict agreement over every pair of configs with the verdict's seeds"
                " = ") in out
    assert f"RATIO verdict agreement rate (trial-length outcome = full-length) = {rate:.3g}" in out
    assert ("FIGURE BEV pairs 6 (confirm.seeds 5): a gain of one seed spread called better in "
            in out) or "no confirmation-seeds measurement" in out
    lines = ratio_lines(out)
    assert lines[-1].group(1).startswith("best mode ")
    assert lines[-1].group(1).endswith("search seeds with regret within the seed spread")
    assert all(m.group(3) for m in lines if m.group(1).startswith("best mode "))
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert last.startswith("RATIO best mode ") and "(target >= " in last

    # Rerun from the saved grid: no training, the same truth.
    again = tmp_path / "again"
    assert fidelity.main(["--quick", "--grid-run", str(keep), "--keep", str(again),
                          "--search-seeds", "1", "--verdict-seeds", "3"]) == 0
    rerun = capsys.readouterr().out
    assert "training the grid" not in rerun and not (again / "grid.csv").exists()
    with (keep / "grid.csv").open(newline="") as src:  # each run recorded once
        recorded = [(r["config"], r["seed"], r["kind"], r["epoch"], r["probe_ratio"])
                    for r in csv.DictReader(src)]
    assert len(recorded) == len(set(recorded))
    truth = [line for line in out.splitlines() if line.startswith("FIGURE grid best truth")]
    assert truth == [line for line in rerun.splitlines()
                     if line.startswith("FIGURE grid best truth")]
    assert ratio_lines(rerun)[-1].group(1) == lines[-1].group(1)
