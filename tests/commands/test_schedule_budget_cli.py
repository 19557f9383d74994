"""``rt3d-tune schedule --trial-epochs/--trial-iters [--truncated]``: a trial beside the
full budget."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import pytest

from rt3d_tune.backends.mmcv.simulate import simulate_schedule
from rt3d_tune.commands import schedule
from rt3d_tune.errors import ConfigError

STEP_1X = ("optimizer: {type: SGD, lr: 0.1, momentum: 0.9}\n"
           "runner: {type: EpochBasedRunner, max_epochs: 12}\n"
           "lr_config: {policy: step, step: [8, 11], warmup: linear, warmup_iters: 5}\n")
ITERS = ("optimizer: {type: SGD, lr: 0.1, momentum: 0.9}\n"
         "runner: {type: IterBasedRunner, max_iters: 1000}\n"
         "lr_config: {policy: step, step: [600, 900]}\n"
         "momentum_config: {policy: cyclic}\n")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    schedule.add_parser(parser.add_subparsers(dest="command"))
    return schedule.run(parser.parse_args(["schedule", *argv]))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def _table(out: str) -> list[list[str]]:
    """The rows of the printed table (lines that start with an iteration number)."""
    return [line.split() for line in out.splitlines() if line.split()[:1] != []
            and line.split()[0].isdigit()]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def plotted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[float]]]:
    """The (label, x) of each curve the comparison plot draws (it is drawn too)."""
    seen: list[tuple[str, list[float]]] = []
    draw = schedule._plot

    def record(curves: Any, path: Path, title: str, xlabel: str) -> None:
        assert xlabel == "fraction of training"
        seen.extend((label, list(xs)) for label, xs, _ in curves)
        draw(curves, path, title, xlabel)

    monkeypatch.setattr(schedule, "_plot", record)
    return seen


def test_scaled_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      plotted: list[tuple[str, list[float]]]) -> None:
    out_csv, out_png = tmp_path / "trial.csv", tmp_path / "trial.png"
    assert _run([str(_write(tmp_path, STEP_1X)), "--iters-per-epoch", "10", "--trial-epochs",
                 "3", "--csv", str(out_csv), "--plot", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "lr_config.step: [8, 11] (epochs) -> [20, 28] (iterations, by_epoch=False)" in out
    assert "trial (3 epochs, scaled) beside the full budget (12 epochs)" in out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["iter"])
    assert header.split() == ["iter", "epoch", "lr", "momentum", "full", "iter", "full", "lr",
                              "full", "mom."]
    rows = _table(out)
    # first iterations, end of the (unscaled, 5-iteration) warm-up, epoch starts, last
    assert [int(r[0]) for r in rows] == [0, 1, 2, 4, 5, 10, 20, 29]
    # trial iteration j of 30 beside full iteration round(j * 120 / 30)
    assert [int(r[4]) for r in rows] == [0, 4, 8, 16, 20, 40, 80, 116]
    lines = _read_csv(out_csv)
    assert len(lines) == 30 and list(lines[0]) == ["iter", "epoch", "lr", "momentum",
                                                   "full_iter", "full_lr", "full_momentum"]
    lrs = [float(line["lr"]) for line in lines]
    # the milestones moved from epochs 8 and 11 (iterations 80, 110) to 20 and 28
    assert lrs[19] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.01)
    assert lrs[27] == pytest.approx(0.01) and lrs[28] == pytest.approx(0.001)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [label for label, _ in plotted] == ["full budget (12 epochs)",
                                               "trial (3 epochs, scaled)"]
    assert all(xs[0] == 0 and xs[-1] < 1 for _, xs in plotted)
    assert [len(xs) for _, xs in plotted] == [120, 30]


def test_truncated_trial_is_the_start_of_the_full_curve(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        plotted: list[tuple[str, list[float]]]) -> None:
    path = _write(tmp_path, STEP_1X)
    out_csv = tmp_path / "trial.csv"
    _run([str(path), "--iters-per-epoch", "10", "--trial-epochs", "3", "--truncated", "--csv",
          str(out_csv), "--plot", str(tmp_path / "t.png")])
    out = capsys.readouterr().out
    assert "scaled from" not in out and "trial (3 epochs, truncated)" in out
    full = simulate_schedule({"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
                              "runner": {"type": "EpochBasedRunner", "max_epochs": 3},
                              "lr_config": {"policy": "step", "step": [8, 11],
                                            "warmup": "linear", "warmup_iters": 5}}, 10)
    assert [float(line["lr"]) for line in _read_csv(out_csv)] == [row["lr"] for row in full]
    assert plotted[1][0] == "trial (3 epochs, truncated)"


def test_iteration_runner_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "trial.csv"
    _run([str(_write(tmp_path, ITERS)), "--iters-per-epoch", "50", "--trial-iters", "300",
          "--csv", str(out_csv)])
    out = capsys.readouterr().out
    assert "schedule scaled from 1000 iterations to 300 iterations:" in out
    assert "lr_config.step: [600, 900] (iterations) -> [180, 270] (iterations)" in out
    lines = _read_csv(out_csv)
    assert len(lines) == 300
    # the cyclic momentum follows the run length: the trial's low point is at 40%
    momentum = [float(line["momentum"]) for line in lines]
    assert momentum.index(min(momentum)) == 120


def test_a_schedule_that_follows_the_run_length_is_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run([str(_write(tmp_path, ITERS.replace("step, step: [600, 900]", "CosineAnnealing, "
                                             "min_lr: 0.0"))),
          "--iters-per-epoch", "50", "--trial-iters", "300"])
    assert "  (unchanged)" in capsys.readouterr().out.splitlines()


def test_without_trial_options_the_output_is_as_before(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    _run([str(_write(tmp_path, STEP_1X)), "--iters-per-epoch", "10"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["iter", "epoch", "lr", "momentum"]
    assert "full" not in out and "trial" not in out


@pytest.mark.parametrize("text,argv,match,key", [
    (STEP_1X, ["--trial-iters", "30"], "--trial-iters does not fit", "runner"),
    (ITERS, ["--trial-epochs", "3"], "--trial-epochs does not fit", "runner"),
    (STEP_1X, ["--truncated"], "--truncated needs a trial length", None),
    (STEP_1X, ["--trial-epochs", "0"], "--trial-epochs is too small", None),
    (STEP_1X.replace("warmup_iters: 5", "warmup_iters: 50"), ["--trial-epochs", "3"],
     "longer than the whole trial", "lr_config.warmup_iters"),
])
def test_bad_trial_options(tmp_path: Path, text: str, argv: list[str], match: str,
                           key: str | None) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        _run([str(_write(tmp_path, text)), "--iters-per-epoch", "10", *argv])
    assert info.value.key_path == key


def test_trial_lengths_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _run([str(_write(tmp_path, STEP_1X)), "--trial-epochs", "3", "--trial-iters", "30"])
