"""``validate``'s verdict on a trial config is whether that trial starts.

For every shipped space (and every broken input of tests/bad_inputs whose space parses),
each trial config ``validate`` checks is also built the way a trial builds it: the
trial's own config (``build_trial_config``, as the trainable does) and its start up to
the first iteration (``build_runner`` for rt3d-tune's runner, ``start_runner`` for
mmengine's). A config validate passes must start; one it refuses must be refused by the
trial with the same first message. The KITTI spaces run over a small KITTI-format
dataset written where their base config looks (``data/kitti`` under the working dir).
No Ray.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.space import load_space
from rt3d_tune.space.validate import validate_space
from rt3d_tune.trial.setup import TrialSetup, build_trial_config

REPO = Path(__file__).resolve().parents[2]
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))
_IDS = itertools.count()


def _broken_spaces() -> list[Path]:
    """The broken inputs whose space parses and is of a size to run: their mistake is in
    the trial configs."""
    from rt3d_tune.space.bounds import check_search_size

    found = []
    for path in sorted((REPO / "tests" / "bad_inputs").glob("*.yaml")):
        try:
            check_search_size(load_space(path))
        except ConfigError:
            continue
        found.append(path)
    return found


BROKEN = _broken_spaces()


@pytest.fixture
def kitti_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working dir whose ``data/kitti`` holds a few KITTI-format scenes (train, val)."""
    from rt3d_tune.tasks import kitti
    from rt3d_tune.tasks.lidar_sim import SceneParams, simulate_scene

    root = tmp_path / "data" / "kitti"
    classes = ("Car", "Pedestrian", "Cyclist")
    ids = [f"{i:06d}" for i in range(4)]
    for i, sample in enumerate(ids):
        scene = simulate_scene(SceneParams(), classes, (5, i))
        kitti.write_scene(root, sample, scene.points.astype(np.float32), scene.gt_boxes,
                          [classes[c] for c in scene.gt_labels])
    kitti.write_image_set(root, "train", ids[:3])
    kitti.write_image_set(root, "val", ids[3:])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _trial_start(space, params, run_dir: Path) -> ConfigError | None:
    """What a trial of ``space`` with ``params`` raises before its first iteration."""
    setup = TrialSetup(run_dir=str(run_dir), base_config=str(space.base_path), space=space)
    work_dir = run_dir / "trials" / f"t{next(_IDS)}"
    try:
        cfg = build_trial_config(setup, params)
        if space.backend.name == "mmengine":
            from rt3d_tune.backends.mmengine.start import start_runner

            plain = plain_dict(cfg)
            plain.update(work_dir=str(work_dir), experiment_name=f"equivalence_{work_dir.name}")
            runner = start_runner(plain, str(space.base_path))
            handlers = runner.logger.handlers
        else:
            from rt3d_tune.runner.builder import build_runner, close_logger

            runner = build_runner(cfg, work_dir=str(work_dir), device="cpu")
            close_logger(runner.logger)
            handlers = []
    except ConfigError as err:
        return err
    for handler in [h for h in handlers if hasattr(h, "baseFilename")]:
        handler.close()
        runner.logger.removeHandler(handler)
    return None


def _assert_same_verdicts(path: Path, samples: int, run_dir: Path) -> int:
    space = load_space(path)
    report = validate_space(space, samples=samples)
    refused = 0
    for check in report.checks:
        started = _trial_start(space, check.params, run_dir)
        if check.problems:
            refused += 1
            assert started is not None, f"{check.label}: validate refused a trial that starts"
            first = check.problems[0]
            assert started.message == first.message and started.key_path == first.key_path, (
                check.label, started.format(), first.format())
        else:
            assert started is None, f"{check.label}: validate passed a trial that fails: " \
                f"{started.format() if started else ''}"
    return refused


@pytest.mark.slow
@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_shipped_space_starts_as_validate_says(path: Path, kitti_here: Path):
    assert _assert_same_verdicts(path, 2, kitti_here / "run") == 0


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_a_broken_trial_config_is_refused_by_validate_and_by_the_trial_alike(
        path: Path, tmp_path: Path):
    assert _assert_same_verdicts(path, 0, tmp_path) >= 1


def test_the_broken_set_covers_both_dialects():
    backends = {load_space(path).backend.name for path in BROKEN}
    assert backends == {"mmcv", "mmengine"}
    assert len(BROKEN) >= 20
