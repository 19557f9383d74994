"""``rt3d-tune validate``: builds sampled and coverage trial configs without Ray, prints
their diffs, and reports every problem with its key path and the space entry behind it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rt3d_tune import cli
from rt3d_tune.space import load_space
from rt3d_tune.space.validate import sample_params, validate_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(f"base: {POINTNET}\nmetric: accuracy\nmode: max\n" + textwrap.dedent(body))
    return path


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_spaces_validate(path, capsys):
    assert cli.main(["validate", str(path), "--samples", "2"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "ok: " in out and "coverage 1" in out


def test_prints_each_trial_diff_against_the_base(capsys):
    assert cli.main(["validate", str(REPO / "search_spaces" / "pointnet_quick.yaml"),
                     "--samples", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "sample 3 (random, seed 1): ok" in out
    assert "runner.max_epochs: 6 -> 4" in out
    assert "optimizer.momentum: <absent> ->" in out  # an SGD branch over the Adam base


def test_reports_every_problem_with_its_origin(tmp_path, capsys):
    path = write(tmp_path, """
        space:
          optimizer:
            choice:
              - {type: Adam, lr: {loguniform: [1.0e-4, 1.0e-2]}}
              - {type: SGD, lr: 0.01, betas: [0.9, 0.99]}
          lr_config:
            choice:
              - {policy: CosineAnnealing, min_lr_ratio: 0.01}
              - {policy: Cosine, min_lr_ratio: 0.01}
              - {policy: cyclic, by_epoch: true}
        """)
    assert cli.main(["validate", str(path), "--samples", "0"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "3 problem(s)" in err
    assert "optimizer.betas" in err and "set by space.optimizer.choice[1]" in err
    assert "lr_config.policy" in err and "set by space.lr_config.choice[1]" in err
    assert "by_epoch" in err and "set by space.lr_config.choice[2]" in err
    assert "Traceback" not in captured.out + err


def test_coverage_reaches_every_option_and_both_bounds(tmp_path):
    space = load_space(write(tmp_path, """
        space:
          optimizer.lr: {uniform: [0.001, 0.01]}
          lr_config:
            choice:
              - {policy: step, step: [2], warmup: linear, warmup_iters: {int: [0, 10]}}
              - {policy: CosineAnnealing, min_lr_ratio: {choice: [0.1, 0.01, 0.001]}}
        """))
    labelled = sample_params(space, 0, 0)
    params = [p for _, p in labelled]
    assert len(params) == 3
    assert {p["lr_config@choice"] for p in params} == {0, 1}
    min_lr_key = "lr_config@1.min_lr_ratio"
    assert {p[min_lr_key] for p in params if min_lr_key in p} == {0.01}
    assert {p["optimizer.lr"] for p in params} == {0.001, 0.01}
    report = validate_space(space, samples=0)
    # warmup_iters at its low bound 0 with linear warmup is a real mistake of this space
    assert not report.ok
    (err, labels), = report.problems
    assert err.key_path == "lr_config.warmup_iters" and len(labels) == 2


def test_grid_spaces_check_the_first_grid_points(tmp_path, capsys):
    path = write(tmp_path, """
        space:
          optimizer.lr: {grid: [0.001, 0.003, 0.01]}
        search: {algorithm: grid}
        """)
    assert cli.main(["validate", str(path), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "grid point 2 of 3: ok" in out and "grid point 3" not in out


def test_bad_option_values_exit_2(tmp_path, capsys):
    path = write(tmp_path, "space:\n  optimizer.lr: {uniform: [0.001, 0.01]}\n")
    assert cli.main(["validate", str(path), "--samples", "-1"]) == 2
    assert "--samples" in capsys.readouterr().err


def test_validate_starts_no_ray_and_no_training():
    code = (
        "import sys\nfrom rt3d_tune import cli\n"
        f"rc = cli.main(['validate', {str(REPO / 'search_spaces' / 'pointnet_quick.yaml')!r}, "
        "'--samples', '1'])\n"
        "print('RAY_IMPORTED' if 'ray' in sys.modules else 'NO_RAY', rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=REPO, check=False).stdout
    assert out.strip().splitlines()[-1] == "NO_RAY 0"


@pytest.mark.parametrize("scheduler, note", [
    ({"type": "asha", "grace_period": 1, "reduction_factor": 2},
     "rung probes: after epochs 1, 2 a trial reports accuracy after a cool-down of 0.25 of "
     "the iterations so far (asha's rungs; scheduler.probe: none reports the plain metric)"),
    ({"type": "asha", "grace_period": 2, "reduction_factor": 3, "probe_ratio": 0.1},
     "rung probes: after epoch 2 a trial reports accuracy after a cool-down of 0.1 of"),
    ({"type": "asha", "probe": "none"}, None),
    ({"type": "fifo"}, None),
])
def test_validate_says_where_trials_report_a_probe(tmp_path, capsys, scheduler, note):
    import yaml

    path = write(tmp_path, "space:\n  optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
                 "stop: {max_epochs: 4}\nscheduler: " + yaml.safe_dump(scheduler,
                                                                       default_flow_style=True))
    assert cli.main(["validate", str(path), "--samples", "1"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "rung probes" in line]
    if note is None:
        assert notes == []
    else:
        assert len(notes) == 1 and note in notes[0]
