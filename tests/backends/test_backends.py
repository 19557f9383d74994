"""The backend seam: the registry (``backend_for``, ``backend_named``, ``register_backend``)
and each adapter's answers on the repository's own configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt3d_tune.backends import (
    BACKENDS,
    Backend,
    backend_for,
    backend_named,
    read_config,
    register_backend,
)
from rt3d_tune.config import Config
from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget

REPO = Path(__file__).resolve().parents[2]
MMCV_CONFIG = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
MMENGINE_CONFIG = REPO / "configs" / "mmengine" / "pointnet_shapes.py"


@pytest.fixture
def mmcv_cfg() -> Config:
    return read_config(MMCV_CONFIG)[1]


@pytest.fixture
def mmengine_cfg() -> Config:
    pytest.importorskip("mmengine")
    return read_config(MMENGINE_CONFIG)[1]


# the registry --------------------------------------------------------------------------
def test_the_builtin_backends_are_registered_by_name():
    assert list(BACKENDS)[:2] == ["mmcv", "mmengine"]
    for name, backend in BACKENDS.items():
        assert isinstance(backend, Backend) and backend.name == name
        assert backend_named(name) is backend


def test_backend_for_tells_an_mmcv_config(mmcv_cfg: Config):
    assert backend_for(plain_dict(mmcv_cfg)).name == "mmcv"
    assert read_config(MMCV_CONFIG)[0].name == "mmcv"
    assert backend_for({}).name == "mmcv"  # the default


def test_backend_for_tells_an_mmengine_config(mmengine_cfg: Config):
    assert backend_for(plain_dict(mmengine_cfg)).name == "mmengine"
    assert read_config(MMENGINE_CONFIG)[0].name == "mmengine"
    # the plain text alone tells it, before mmengine reads it
    assert backend_for({"train_cfg": {"by_epoch": True, "max_epochs": 2}}).name == "mmengine"


def test_an_unknown_backend_name_names_the_key_and_the_known_backends():
    with pytest.raises(ConfigError) as info:
        backend_named("mmengin", key_path="backend")
    err = info.value
    assert err.key_path == "backend"
    assert "mmcv" in err.expected and "mmengine" in err.expected
    assert "'mmengine'" in (err.hint or "")  # the closest name


def test_an_unknown_backend_in_a_space_file_is_a_config_error(tmp_path: Path):
    from space_files import write_space

    from rt3d_tune.space.space import load_space

    path = write_space(tmp_path, "bad", MMCV_CONFIG, backend="lightning")
    with pytest.raises(ConfigError) as info:
        load_space(path)
    assert info.value.key_path == "backend"
    assert "mmcv" in info.value.format() and "mmengine" in info.value.format()


def test_only_a_backend_instance_registers():
    with pytest.raises(TypeError, match=r"instance of rt3d_tune\.backends\.Backend"):
        register_backend("mmcv")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", list(BACKENDS.values()), ids=list(BACKENDS))
def test_every_backend_answers_the_interface(backend: Backend):
    assert backend.fidelity_unit in ("epoch", "validation round")
    assert backend.seed_key and backend.signature and backend.no_evaluation_hint
    assert backend == backend_named(backend.name) and hash(backend) == hash(backend.name)


# the mmcv adapter ----------------------------------------------------------------------
def test_mmcv_counts_its_runner_and_data(mmcv_cfg: Config):
    from rt3d_tune.runner.data import train_iters_per_epoch

    mmcv = backend_named("mmcv")
    plain = plain_dict(mmcv_cfg)
    assert mmcv.seed_key == "seed"
    assert mmcv.iters_per_epoch(plain) == train_iters_per_epoch(plain) >= 1
    assert mmcv.iters_per_epoch(plain, world_size=2) == train_iters_per_epoch(plain, 2)
    assert mmcv.run_length(plain) == {"max_epochs": 6}
    assert mmcv.max_fidelity(plain, None) == 6 and mmcv.max_fidelity(plain, 3) == 3
    assert mmcv.length_overrides(plain, 3, []) == {"runner.max_epochs": 3}
    iter_runner = {"runner": {"type": "IterBasedRunner", "max_iters": 100},
                   "evaluation": {"interval": 20}}
    assert mmcv.max_fidelity(iter_runner, None) == 5  # evaluation rounds


def test_mmcv_scales_a_step_schedule_and_keeps_a_cosine_one(mmcv_cfg: Config):
    mmcv = backend_named("mmcv")
    full, trial = mmcv.budget(mmcv_cfg, 10), Budget(epochs=3, iters_per_epoch=10)
    assert full == Budget(epochs=6, iters_per_epoch=10)
    cosine = mmcv.scale_schedule(mmcv_cfg, full, trial)
    assert cosine["lr_config"] == plain_dict(mmcv_cfg)["lr_config"]
    assert mmcv.scaling_note(mmcv_cfg, cosine) == ["CosineAnnealing follows the run's length "
                                                   "by itself"]
    step = Config({**plain_dict(mmcv_cfg), "lr_config": {"policy": "step", "step": [4]}})
    scaled = mmcv.scale_schedule(step, full, trial)
    assert scaled["lr_config"]["step"] == [2]
    assert mmcv.describe_scaling(step, scaled) == [
        "lr_config.step: [4] (epochs) -> [2] (epochs)"]
    rows = mmcv.simulate(scaled, 10, max_epochs=3)
    assert len(rows) == 30 and rows[0]["lr"] == pytest.approx(0.003)


# the mmengine adapter ------------------------------------------------------------------
def test_mmengine_counts_its_train_loop_and_dataloader(mmengine_cfg: Config):
    from rt3d_tune.backends.mmengine.simulate import iters_from_dataloader

    mmengine = backend_named("mmengine")
    plain = plain_dict(mmengine_cfg)
    assert mmengine.seed_key == "randomness.seed"
    assert mmengine.iters_per_epoch(plain) == iters_from_dataloader(plain) >= 1
    assert mmengine.iters_per_epoch(plain, world_size=2) == iters_from_dataloader(plain, 2)
    assert mmengine.run_length(plain) == {"max_epochs": 8}
    assert mmengine.max_fidelity(plain, None) == 8 and mmengine.max_fidelity(plain, 4) == 4
    assert mmengine.length_overrides(plain, 4, []) == {"train_cfg.max_epochs": 4}


def test_mmengine_scales_its_param_schedulers(mmengine_cfg: Config):
    mmengine = backend_named("mmengine")
    full = mmengine.budget(mmengine_cfg, 10)
    trial = Budget(epochs=4, iters_per_epoch=10)
    assert full == Budget(epochs=8, iters_per_epoch=10)
    scaled = mmengine.scale_schedule(mmengine_cfg, full, trial)
    cosine = scaled["param_scheduler"][1]
    assert (cosine["end"], cosine["T_max"]) == (4, 4)
    assert scaled["param_scheduler"][0]["end"] == 20  # an iteration warm-up is kept
    assert "param_scheduler.1.end: 8 (epochs) -> 4 (epochs)" in mmengine.describe_scaling(
        mmengine_cfg, scaled)
    rows = mmengine.simulate(scaled, 10, max_epochs=4)
    assert len(rows) == 40 and mmengine.warmup_end(scaled, 10) == 19
