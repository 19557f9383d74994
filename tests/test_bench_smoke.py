"""Each benchmark runs at tiny sizes and prints its figures and its RATIO summary line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

FIGURE = re.compile(r"^FIGURE .+ = [-+0-9.e]+(inf)? ", re.MULTILINE)
RATIO = re.compile(
    r"^RATIO (.+) = ([-+0-9.e]+|inf)(?: \(target ([<>]=) ([0-9.e+-]+): (met|MISSED)\))?$"
)


def ratios(out: str) -> list[tuple[str, float]]:
    """(name, value) of every RATIO line, checking each line's format."""
    found = []
    for line in out.splitlines():
        if line.startswith("RATIO"):
            match = RATIO.match(line)
            assert match, f"badly formed ratio line: {line!r}"
            found.append((match.group(1), float(match.group(2))))
    return found


def figure_note(out: str, name: str) -> str:
    """The note in parentheses of the FIGURE line named ``name``."""
    for line in out.splitlines():
        if line.startswith(f"FIGURE {name} = "):
            return line.rsplit("  (", 1)[1].rstrip(")")
    raise AssertionError(f"no figure {name!r} in:\n{out}")


def last_line_is(out: str, name: str) -> None:
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert last.startswith(f"RATIO {name} = "), last
    assert "(target" in last


@pytest.mark.slow
def test_runner_overhead_trains_the_same_weights_both_ways(capsys):
    import runner_overhead

    assert runner_overhead.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "SAME_WEIGHTS True" in out  # the hand loop does the runner's exact math
    assert len(FIGURE.findall(out)) >= 8
    assert all(value > 0 for name, value in ratios(out) if "/" in name)
    last_line_is(out, "runner/hand wall (min)")


def test_gpu_packing_says_so_without_a_gpu(capsys):
    import gpu_packing
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the real benchmark is the lead's to run")
    assert gpu_packing.main(["--quick"]) == 0
    assert "NO GPU" in capsys.readouterr().out


@pytest.mark.ray
@pytest.mark.slow
def test_trial_overhead_and_scale_measure_rt3d_against_raw_tune(ray_local, capsys):
    import _common
    import scale
    import trial_overhead

    assert trial_overhead.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" not in out  # every no-op trial terminated
    # The target line is against the fair baseline, measured at the same n.
    last_line_is(out, "rt3d/raw_fair")
    assert figure_note(out, _common.RAW_FAIR.name) == "n=2"
    assert figure_note(out, "rt3d-tune run_search").startswith("n=2,")

    assert scale.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" not in out
    last_line_is(out, "rt3d/raw_fair")
    assert figure_note(out, f"{_common.RAW_FAIR.name}, wall") == "n=4"
    assert figure_note(out, "rt3d-tune run_search wall").startswith("n=4,")


@pytest.mark.ray
@pytest.mark.slow
def test_search_efficiency_compares_methods_with_the_grid(ray_local, capsys):
    import search_efficiency

    assert search_efficiency.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "grid best bev_mAP" in out and "tpe_asha seed 0 best bev_mAP" in out
    last_line_is(out, "tpe_asha/grid compute to 99% of grid best")


@pytest.mark.slow
def test_data_parallel_compares_two_ranks_with_one_worker(capsys):
    import data_parallel
    import torch

    assert data_parallel.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for way in (data_parallel.ONE, data_parallel.DDP, data_parallel.INDEPENDENT):
        assert f"FIGURE {way.name} = " in out
        assert f"FIGURE {way.name}, per iteration = " in out
    assert "WHERE THE REST GOES: ideal 2.00x;" in out
    assert all(value > 0 for _, value in ratios(out))
    last_line_is(out, "2 workers/1 worker samples/s")
    if not torch.cuda.is_available():  # --device cuda without a GPU: a message, exit 2
        assert data_parallel.main(["--quick", "--device", "cuda"]) == 2
        assert "NO CUDA" in capsys.readouterr().err


@pytest.mark.slow
def test_mmengine_fidelity_ranks_plain_and_probe_on_mmengine_runs(tmp_path, capsys):
    pytest.importorskip("mmengine")
    import csv

    import mmengine_fidelity

    assert mmengine_fidelity.main(["--quick", "--out", str(tmp_path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    with (tmp_path / "runs.csv").open(newline="") as src:
        rows = list(csv.DictReader(src))
    # 3 configs x 1 seed x (4 full + 2 trial rounds); the probe at the trial's rung only
    assert len({(r["config"], r["seed"], r["kind"]) for r in rows}) == 3 * 2
    assert sorted({int(r["round"]) for r in rows if r["kind"] == "full"}) == [1, 2, 3, 4]
    assert sorted({int(r["round"]) for r in rows if r["kind"] == "trial"}) == [1, 2]
    probed = [r for r in rows if r["probe_iters"]]
    assert {(r["kind"], r["round"]) for r in probed} == {("trial", "1")} and len(probed) == 3
    assert all(int(r["probe_iters"]) >= 1 and r["probe_diverged"] == "0" for r in probed)
    for name in ("plain accuracy at T/2 (round 1)", "probe 0.25 accuracy at T/2 (round 1)",
                 "trial final accuracy at T (round 2)", "probe seconds / trial training seconds"):
        assert name in out
    assert len(FIGURE.findall(out)) >= 8
    assert ratios(out)
    last_line_is(out, "probe/plain rank correlation at T/2")


@pytest.mark.slow
def test_storage_compares_a_run_in_s3_with_a_local_one(capsys):
    import storage

    assert storage.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert FIGURE.search(out)
    assert "trials and confirmation runs" in figure_note(out, "search, run kept in S3 (moto "
                                                             "on 127.0.0.1)")
    last_line_is(out, "s3/local")
