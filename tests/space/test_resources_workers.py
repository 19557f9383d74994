"""``resources.workers`` and ``resources.placement``: data-parallel trials of N workers with
``cpu`` and ``gpu`` each; parsing, every mistake's key path (also through ``rt3d-tune
validate``), and the cluster check on the trial's totals. No Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt3d_tune import cli
from rt3d_tune.errors import ConfigError
from rt3d_tune.space import Resources, check_resources, load_space

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"


def write(tmp_path: Path, resources: str | None) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(f"base: {POINTNET}\nmetric: accuracy\nmode: max\n"
                    "space:\n  optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
                    + ("" if resources is None else f"resources: {resources}\n"))
    return path


def resources(tmp_path: Path, text: str | None) -> Resources:
    return load_space(write(tmp_path, text)).resources


def test_defaults_are_one_worker_packed(tmp_path):
    assert resources(tmp_path, None) == Resources(cpu=1.0, gpu=0.0, workers=1, placement="pack")
    res = resources(tmp_path, "{cpu: 2, gpu: 0.25}")  # one worker: today's meaning, per trial
    assert (res.cpu, res.gpu, res.workers, res.placement) == (2.0, 0.25, 1, "pack")
    assert (res.trial_cpu, res.trial_gpu) == (2.0, 0.25)


@pytest.mark.parametrize("text, expected", [
    ("{workers: 4, cpu: 2, gpu: 1, placement: spread}", (4, 2.0, 1.0, "spread", 8.0, 4.0)),
    ("{workers: 2, cpu: 1}", (2, 1.0, 0.0, "pack", 2.0, 0.0)),  # CPU-only data parallel
    ("{workers: 2, gpu: 2, placement: pack}", (2, 1.0, 2.0, "pack", 2.0, 4.0)),
    ("{workers: 1, gpu: 0.5, placement: spread}", (1, 1.0, 0.5, "spread", 1.0, 0.5)),
])
def test_workers_and_placement_are_read(tmp_path, text, expected):
    res = resources(tmp_path, text)
    assert (res.workers, res.cpu, res.gpu, res.placement, res.trial_cpu, res.trial_gpu) \
        == expected


BAD = [
    # (resources, key path, a text of the hint or expected)
    ("{workers: 0}", "resources.workers", "an integer >= 1"),
    ("{workers: -2}", "resources.workers", "an integer >= 1"),
    ("{workers: 1.5}", "resources.workers", "an integer >= 1"),
    ("{workers: 2.0}", "resources.workers", "an integer >= 1"),
    ("{workers: true}", "resources.workers", "an integer >= 1"),
    ("{workers: '2'}", "resources.workers", "an integer >= 1"),
    ("{workers: null}", "resources.workers", "an integer >= 1"),
    ("{worker: 2}", "resources.worker", "'workers'"),
    ("{placement: scatter}", "resources.placement", "one of pack, spread"),
    ("{placement: PACK}", "resources.placement", "'pack'"),
    ("{placement: Spread}", "resources.placement", "'spread'"),
    ("{placement: 1}", "resources.placement", "one of pack, spread"),
    ("{placment: spread}", "resources.placment", "'placement'"),
    ("{workers: 2, gpu: 0.5}", "resources.gpu", "use gpu: 1, or workers: 1"),
    ("{workers: 3, gpu: 0.25}", "resources.gpu", "whole number of GPUs per worker"),
    ("{workers: 2, gpu: 1.5}", "resources.gpu", "use gpu: 2"),
]


@pytest.mark.parametrize("text, key_path, needle", BAD, ids=[b[0] for b in BAD])
def test_mistakes_name_their_key_path(tmp_path, text, key_path, needle):
    with pytest.raises(ConfigError) as info:
        resources(tmp_path, text)
    err = info.value
    assert err.key_path == key_path, err.format()
    assert err.file == str(tmp_path / "space.yaml")
    assert err.expected and err.hint, err.format()  # every one says what would do and how
    if not key_path.endswith(("worker", "placment")):  # unknown keys: no value to show
        assert err.has_given, err.format()
    assert needle in err.hint + err.expected, err.format()


@pytest.mark.parametrize("text, key_path, needle", BAD, ids=[b[0] for b in BAD])
def test_validate_exits_2_naming_the_key_path(tmp_path, capsys, text, key_path, needle):
    assert cli.main(["validate", str(write(tmp_path, text)), "--samples", "0"]) == 2
    out, err = capsys.readouterr()
    assert f"{key_path}: " in err and needle in err and "hint:" in err, err
    assert "Traceback" not in out + err


def test_one_worker_keeps_its_gpu_rules(tmp_path):
    """A fraction of one GPU, or whole GPUs, as before workers existed."""
    assert resources(tmp_path, "{workers: 1, gpu: 0.25}").gpu == 0.25
    with pytest.raises(ConfigError) as info:
        resources(tmp_path, "{workers: 1, gpu: 1.5}")
    assert info.value.format().endswith(
        "resources.gpu: a trial may use a fraction of one GPU, or whole GPUs; got 1.5\n"
        "  hint: use 2")


# check_resources: a trial holds workers x (cpu, gpu) --------------------------------------
def test_one_worker_messages_are_unchanged(tmp_path):
    space = load_space(write(tmp_path, "{cpu: 2, gpu: 2}"))
    check_resources(space, {"CPU": 2, "GPU": 2})
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 4, "GPU": 1})
    err = info.value
    assert (err.key_path, err.message, err.expected, err.given) == (
        "resources.gpu", "each trial asks for 2 GPUs but the cluster has 1", "at most 1", 2.0)
    assert err.hint == "lower it, or join a cluster with more (--address)"
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 1.5, "GPU": 2})
    assert info.value.key_path == "resources.cpu"
    assert info.value.message == "each trial asks for 2 CPUs but the cluster has 1.5"


def test_workers_multiply_what_a_trial_asks_for(tmp_path):
    space = load_space(write(tmp_path, "{workers: 2, cpu: 1}"))
    check_resources(space, {"CPU": 2})
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 1, "GPU": 8})
    err = info.value
    assert err.key_path == "resources.workers"  # what the user most likely lowers
    assert err.message == "each trial asks for 2 workers x 1 CPUs = 2 CPUs but the cluster has 1"
    assert (err.expected, err.given) == ("at most 1 workers of 1 CPUs", 2)
    assert "workers: 1" in err.hint
    assert err.file == str(tmp_path / "space.yaml")


def test_too_many_gpus_in_all_names_workers(tmp_path):
    space = load_space(write(tmp_path, "{workers: 4, cpu: 1, gpu: 1}"))
    check_resources(space, {"CPU": 4, "GPU": 4})
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 16, "GPU": 2})
    err = info.value
    assert err.key_path == "resources.workers"
    assert "4 workers x 1 GPUs = 4 GPUs but the cluster has 2" in err.message
    assert "use workers: 2" in err.hint


def test_one_worker_too_big_names_the_resource(tmp_path):
    """Fewer workers would not help when one worker alone does not fit."""
    space = load_space(write(tmp_path, "{workers: 2, cpu: 1, gpu: 2}"))
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 8, "GPU": 1})
    err = info.value
    assert err.key_path == "resources.gpu"
    assert "2 workers x 2 GPUs = 4 GPUs but the cluster has 1" in err.message
    assert (err.expected, err.given) == ("at most 1 per worker", 2.0)


def test_fractional_cpus_add_up_without_rounding_noise(tmp_path):
    space = load_space(write(tmp_path, "{workers: 3, cpu: 0.1}"))
    check_resources(space, {"CPU": 0.3})  # 3 x 0.1 is 0.30000000000000004
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 0.25})
    assert info.value.key_path == "resources.workers"
    assert info.value.expected == "at most 2 workers of 0.1 CPUs"
