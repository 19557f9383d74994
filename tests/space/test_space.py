"""Reading a space file: every domain, q, branches, sections, and each mistake's key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rt3d_tune.errors import ConfigError
from rt3d_tune.space import (
    Choice,
    Grid,
    Int,
    LogInt,
    LogUniform,
    Uniform,
    check_resources,
    load_space,
)

BASE = """
model = dict(type='Toy')
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[8, 11])
runner = dict(type='EpochBasedRunner', max_epochs=12)
log_config = dict(interval=50, hooks=[dict(type='TextLoggerHook')])
"""
HEAD = "base: base.py\nmetric: acc\nmode: max\n"


def write(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    (tmp_path / "base.py").write_text(BASE)
    path = tmp_path / "space.yaml"
    path.write_text(head + textwrap.dedent(body))
    return path


def load(tmp_path: Path, body: str, head: str = HEAD):
    return load_space(write(tmp_path, body, head))


def error(tmp_path: Path, body: str, head: str = HEAD) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body, head)
    return info.value


def test_every_domain_and_q(tmp_path):
    space = load(tmp_path, """
        space:
          optimizer.momentum: {uniform: [0.5, 0.9], q: 0.1}
          optimizer.lr: {loguniform: [1e-4, 1.0e-2]}
          lr_config.step: {choice: [[8, 11], [16, 22]]}
          runner.max_epochs: {int: [4, 12], q: 4}
          log_config.interval: {logint: [10, 100]}
          optimizer.weight_decay: {grid: [0.0, 1.0e-4]}
        """)
    assert dict(space.params) == {
        "optimizer.momentum": Uniform(0.5, 0.9, 0.1),
        "optimizer.lr": LogUniform(1e-4, 1e-2),  # 1e-4 without a dot is a float, as in YAML 1.2
        "lr_config.step": Choice(([8, 11], [16, 22])),
        "runner.max_epochs": Int(4, 12, 4),
        "log_config.interval": LogInt(10, 100),
        "optimizer.weight_decay": Grid((0.0, 1e-4)),
    }
    assert not space.is_conditional


def test_nested_mappings_flatten_to_key_paths(tmp_path):
    space = load(tmp_path, """
        space:
          optimizer:
            lr: {loguniform: [1.0e-4, 1.0e-2]}
          optimizer_config:
            grad_clip:
              max_norm: {choice: [10, 35]}
        """)
    assert [path for path, _ in space.params] == [
        "optimizer.lr",
        "optimizer_config.grad_clip.max_norm",
    ]


def test_conditional_branches_keep_nested_domains(tmp_path):
    space = load(tmp_path, """
        space:
          optimizer:
            choice:
              - {type: SGD, lr: {loguniform: [1.0e-3, 1.0e-1]}, momentum: 0.9}
              - {type: AdamW, lr: {loguniform: [1.0e-4, 1.0e-2]}}
        """)
    (path, domain), = space.params
    assert path == "optimizer" and space.is_conditional
    assert domain.options[0] == {"type": "SGD", "lr": LogUniform(1e-3, 1e-1), "momentum": 0.9}
    assert domain.options[1] == {"type": "AdamW", "lr": LogUniform(1e-4, 1e-2)}


def test_defaults_and_sections(tmp_path):
    space = load(tmp_path, """
        space:
          optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
        search: {algorithm: qmc, qmc_type: halton, num_samples: 5, seed: 3}
        scheduler: {type: asha, grace_period: 2}
        resources: {cpu: 2, gpu: 0.25, max_concurrent: 3}
        stop: {max_epochs: 6, time_budget_s: 60}
        """)
    assert (space.search.algorithm, space.search.qmc_type, space.search.num_samples,
            space.search.seed) == ("qmc", "halton", 5, 3)
    assert space.scheduler.type == "asha"
    assert dict(space.scheduler.args) == {"grace_period": 2, "reduction_factor": 4, "brackets": 1}
    assert (space.resources.cpu, space.resources.gpu, space.max_concurrent) == (2.0, 0.25, 3)
    assert space.max_epochs == 6 and space.stop.time_budget_s == 60.0
    assert dict(space.fixed_overrides) == {"runner.max_epochs": 6}
    assert space.base_path == (tmp_path / "base.py").resolve()


def test_max_epochs_defaults_to_the_base_runner(tmp_path):
    space = load(tmp_path, "space:\n  optimizer.lr: {uniform: [0.001, 0.01]}\n")
    assert space.max_epochs == 12 and dict(space.fixed_overrides) == {}
    assert space.search.algorithm == "random" and space.scheduler.type == "fifo"


def test_grid_decides_the_trial_count(tmp_path):
    space = load(tmp_path, """
        space:
          optimizer.lr: {grid: [0.1, 0.01]}
        search: {algorithm: grid}
        """)
    assert space.search.num_samples is None


@pytest.mark.parametrize(
    "body, key_path, hint",
    [
        ("space:\n  optimizer.lr: {uniform: [0.1, 0.01]}\n",
         "space.optimizer.lr.uniform", "[0.01, 0.1]"),
        ("space:\n  optimizer.lr: {uniform: [0.1, 0.1]}\n", "space.optimizer.lr.uniform", None),
        ("space:\n  optimizer.lr: {loguniform: [-1, 0.1]}\n",
         "space.optimizer.lr.loguniform[0]", "uniform"),
        ("space:\n  optimizer.lr: {uniform: ['0.1', 1]}\n",
         "space.optimizer.lr.uniform[0]", "without quotes"),
        ("space:\n  optimizer.lr: {uniform: [0, 1, 2]}\n", "space.optimizer.lr.uniform", None),
        ("space:\n  runner.max_epochs: {int: [1.5, 3]}\n",
         "space.runner.max_epochs.int[0]", "uniform"),
        ("space:\n  runner.max_epochs: {logint: [0, 3]}\n",
         "space.runner.max_epochs.logint[0]", "int"),
        ("space:\n  optimizer.lr: {uniform: [0, 1], q: 0.3}\n",
         "space.optimizer.lr.q", "set high to 0.9"),
        ("space:\n  optimizer.lr: {uniform: [0, 1], q: -1}\n", "space.optimizer.lr.q", None),
        ("space:\n  runner.max_epochs: {int: [1, 10], q: 0.5}\n",
         "space.runner.max_epochs.q", None),
        ("space:\n  optimizer.lr: {loguniform: [0.1, 1], q: 0.1}\n",
         "space.optimizer.lr.q", "uniform"),
        ("space:\n  optimizer.lr: {choice: []}\n", "space.optimizer.lr.choice", None),
        ("space:\n  optimizer.lr: {choice: 0.1}\n", "space.optimizer.lr.choice", None),
        ("space:\n  optimizer.lr: {choice: [0.1, 0.1]}\n", "space.optimizer.lr.choice", "once"),
        ("space:\n  optimizer.lr: {unifrom: [0, 1]}\n", "space.optimizer.lr.unifrom", "'uniform'"),
        ("space:\n  optimizer.lr: {uniform: [0, 1], qq: 1}\n", "space.optimizer.lr.qq", "'q'"),
        ("space:\n  optimizer.lr: {uniform: [0, 1], choice: [1]}\n", "space.optimizer.lr", None),
        ("space:\n  optimizer.lr: 0.1\n", "space.optimizer.lr", "base config"),
        ("space: {}\n", "space", None),
        ("space:\n  optimzer.lr: {uniform: [0, 1]}\n", "space.optimzer.lr", "'optimizer'"),
        ("space:\n  optimizer.lrr: {uniform: [0, 1]}\n", "space.optimizer.lrr", "'lr'"),
        ("space:\n  optimizer.lr.x: {uniform: [0, 1]}\n", "space.optimizer.lr.x", None),
        ("space:\n  log_config.hooks.1.interval: {int: [1, 5]}\n",
         "space.log_config.hooks.1.interval", None),
        ("space:\n  log_config.hooks.x: {int: [1, 5]}\n", "space.log_config.hooks.x", None),
        ("space:\n  optimizer..lr: {uniform: [0, 1]}\n", "space.optimizer..lr", None),
        (
            "space:\n  optimizer: {choice: [{type: SGD}]}\n  optimizer.lr: {uniform: [0, 1]}\n",
            "space.optimizer.lr",
            None,
        ),
        (
            ("space:\n  lr_config:\n    choice:\n"
             "      - {policy: step, warmup_iters: {int: [10, 5]}}\n"),
            "space.lr_config.choice[0].warmup_iters.int",
            None,
        ),
        (
            ("space:\n  lr_config:\n    choice:\n      - {policy: step}\n"
             "      - {policy: cyclic, target_ratio: [{uniform: [1, 0]}, 1.0e-4]}\n"),
            "space.lr_config.choice[1].target_ratio[0].uniform",
            None,
        ),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nserach: {}\n", "serach", "'search'"),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nsearch: {algorithm: bayes}\n",
         "search.algorithm", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nsearch: {algorithm: grid}\n",
         "space.optimizer.lr", "grid or choice"),
        ("space:\n  optimizer.lr: {grid: [1, 2]}\nsearch: {algorithm: grid, num_samples: 4}\n",
         "search.num_samples", "remove"),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nsearch: {num_samples: 0}\n",
         "search.num_samples", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nsearch: {num_samples: 2.5}\n",
         "search.num_samples", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nsearch: {seed: true}\n", "search.seed", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nsearch: {qmc_type: sobel}\n",
         "search.qmc_type", "'sobol'"),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nscheduler: {type: ash}\n",
         "scheduler.type", "'asha'"),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\n"
         "scheduler: {type: asha, reduction_factor: 1}\n",
         "scheduler.reduction_factor", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nscheduler: {type: fifo, grace_period: 1}\n",
         "scheduler.grace_period", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\n"
         "scheduler: {type: pbt, quantile_fraction: 0.7}\n",
         "scheduler.quantile_fraction", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nscheduler: {type: median, grace_period: 20}\n",
         "scheduler.grace_period", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nresources: {gpu: 2.5}\n",
         "resources.gpu", "3"),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nresources: {cpu: 0}\n", "resources.cpu", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nresources: {gpus: 1}\n",
         "resources.gpus", "'gpu'"),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nstop: {max_epochs: 0}\n",
         "stop.max_epochs", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nstop: {time_budget_s: fast}\n",
         "stop.time_budget_s", None),
        ("space:\n  optimizer.lr: {uniform: [0, 1]}\nstop: {max_epoch: 3}\n",
         "stop.max_epoch", "'max_epochs'"),
        ("space:\n  runner.max_epochs: {int: [1, 3]}\nstop: {max_epochs: 3}\n",
         "stop.max_epochs", None),
    ],
)
def test_mistakes_name_their_key_path(tmp_path, body, key_path, hint):
    err = error(tmp_path, body)
    assert err.key_path == key_path, err.format()
    assert err.file == str(tmp_path / "space.yaml")
    if hint is not None:
        assert hint in (err.hint or "") + (err.expected or ""), err.format()


@pytest.mark.parametrize(
    "head, key_path",
    [
        ("base: base.py\nmode: max\n", "metric"),
        ("base: base.py\nmetric: acc\n", "mode"),
        ("base: base.py\nmetric: acc\nmode: maximize\n", "mode"),
        ("base: base.py\nmetric: [acc]\nmode: max\n", "metric"),
        ("base: nothing_here.py\nmetric: acc\nmode: max\n", "base"),
        ("metric: acc\nmode: max\n", "base"),
    ],
)
def test_top_level_mistakes(tmp_path, head, key_path):
    err = error(tmp_path, "space:\n  optimizer.lr: {uniform: [0, 1]}\n", head=head)
    assert err.key_path == key_path, err.format()


def test_new_keys_may_be_created_under_existing_dicts(tmp_path):
    space = load(tmp_path, """
        space:
          optimizer.nesterov: {choice: [true, false]}
          optimizer_config.grad_clip.max_norm: {choice: [10, 35]}
          momentum_config: {choice: [null, {policy: cyclic}]}
        """)
    assert len(space.params) == 3


@pytest.mark.parametrize(
    "text, needle",
    [
        ("base: base.py\nmetric: acc\nmode: max\n"
         "space:\n  optimizer.lr: {uniform: [0, 1]\n  x: 1\n",
         "line 6"),
        ("base: base.py\nmetric: !!python/object/apply:os.system ['true']\nmode: max\n",
         "!!python/object"),
        ("base: base.py\nmetric: acc\nmetric: loss\nmode: max\n", "duplicate key 'metric'"),
        ("- just\n- a list\n", "a space file is a mapping"),
    ],
)
def test_yaml_problems_name_file_and_line(tmp_path, text, needle):
    (tmp_path / "base.py").write_text(BASE)
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    assert needle in info.value.format()
    assert str(path) in info.value.format()


def test_missing_space_file(tmp_path):
    with pytest.raises(ConfigError, match="space file not found"):
        load_space(tmp_path / "nope.yaml")


def test_base_config_errors_name_the_base_file(tmp_path):
    (tmp_path / "base.py").write_text("_base_ = ['missing.py']\n")
    path = tmp_path / "space.yaml"
    path.write_text(HEAD + "space:\n  optimizer.lr: {uniform: [0, 1]}\n")
    with pytest.raises(ConfigError) as info:
        load_space(path)
    assert "base.py" in info.value.format() or "missing.py" in info.value.format()


def test_check_resources(tmp_path):
    space = load(
        tmp_path, "space:\n  optimizer.lr: {uniform: [0, 1]}\nresources: {cpu: 1, gpu: 2}\n"
    )
    check_resources(space, {"CPU": 4, "GPU": 2})
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 4, "GPU": 1})
    assert info.value.key_path == "resources.gpu"
    with pytest.raises(ConfigError) as info:
        check_resources(space, {"CPU": 0.5, "GPU": 2})
    assert info.value.key_path == "resources.cpu"


@pytest.mark.parametrize("body, key_path, needle", [
    ("space:\n  runner.max_epochs: {int: [6, 20000]}\n", "space.runner.max_epochs",
     "20,000 epochs (runner.max_epochs)"),
    ("space:\n  runner.max_epochs: {choice: [12, 24, 100000]}\n", "space.runner.max_epochs",
     "100,000 epochs"),
    ("space:\n  runner:\n    choice:\n      - {type: IterBasedRunner, max_iters: 20000000}\n",
     "space.runner", "20,000,000 iterations (runner.max_iters)"),
    ("space:\n  runner.max_iters: {logint: [1, 50000000]}\n", "space.runner.max_iters",
     "50,000,000 iterations"),
])
def test_a_tuned_run_length_is_bounded_like_stop_max_epochs(tmp_path, body, key_path, needle):
    from rt3d_tune.space.bounds import check_search_size

    with pytest.raises(ConfigError) as info:
        check_search_size(load(tmp_path, body))
    assert info.value.key_path == key_path and needle in str(info.value)
    # within the bounds the same spaces are fine
    ok = load(tmp_path, "space:\n  runner.max_epochs: {choice: [12, 24, 10000]}\n")
    assert check_search_size(ok) == ok.search.num_samples
