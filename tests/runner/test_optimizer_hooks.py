"""Optimizer hooks: clipping logs grad_norm, accumulation equals the big batch, fp16, divergence."""

from __future__ import annotations

import pytest
import runner_fixtures as fx
import torch

from rt3d_tune.errors import ConfigError, DivergenceError
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.runner.hooks.optimizer import (
    Fp16OptimizerHook,
    GradientCumulativeFp16OptimizerHook,
    GradientCumulativeOptimizerHook,
    OptimizerHook,
)


def _train(tmp_path, **overrides):
    runner = build_runner(fx.toy_config(**overrides), work_dir=tmp_path)
    runner.run()
    return runner


def _toy_data(samples_per_gpu: int) -> dict:
    return {"samples_per_gpu": samples_per_gpu, "workers_per_gpu": 0,
            "train": {"type": "ToyRegression", "length": 16}}


def _weights(runner) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in runner.model.parameters()])


def test_grad_clip_logs_grad_norm_every_iteration_and_clips(tmp_path) -> None:
    runner = _train(tmp_path, optimizer_config={"grad_clip": {"max_norm": 0.5, "norm_type": 2}})
    norms = runner.log_buffer.val_history["grad_norm"]
    assert len(norms) == runner.max_iters == 8
    assert all(n > 0.5 for n in norms)  # the norm before clipping is logged
    assert runner.log_buffer.n_history["grad_norm"] == [4] * 8


def test_clip_sees_parameters_added_or_frozen_mid_training() -> None:
    """The clip's parameter list is kept between iterations, yet a parameter a hook
    adds (or a module it attaches) is clipped at the next iteration, and a frozen one
    is left out: the grad norm equals mmcv's walk of model.parameters() each time."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    hook = OptimizerHook(grad_clip={"max_norm": 1.0e6})
    assert hook.model_parameters(model) is hook.model_parameters(model)  # kept

    def clipped_norm() -> float:
        model.zero_grad()
        extra = sum((p.sum() for n, p in model.named_parameters() if n != "0.weight"), 0.0)
        (model(torch.ones(1, 3)).sum() + extra).backward()
        expected = torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad and p.grad is not None], 1.0e6
        )
        got = hook.clip_grads(hook.model_parameters(model))
        assert float(got) == pytest.approx(float(expected))
        return float(got)

    first = clipped_norm()
    assert len(hook.model_parameters(model)) == 2
    model.register_parameter("scale", torch.nn.Parameter(torch.full((4,), 5.0)))
    assert len(hook.model_parameters(model)) == 3
    assert clipped_norm() > first  # the new parameter's gradient counts
    model.append(torch.nn.Linear(2, 2))
    assert len(hook.model_parameters(model)) == 5
    clipped_norm()
    model.scale.requires_grad_(False)
    model.scale.grad = None
    clipped_norm()  # frozen: filtered out, as mmcv does


def test_no_grad_clip_logs_no_grad_norm(tmp_path) -> None:
    assert "grad_norm" not in _train(tmp_path).log_buffer.val_history


def test_bad_grad_clip_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        build_runner(
            fx.toy_config(optimizer_config={"grad_clip": {"norm": 3}}), work_dir=tmp_path
        )
    assert err.value.key_path == "optimizer_config.grad_clip"


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path) -> None:
    sgd = {"type": "SGD", "lr": 0.05}
    big = _train(
        tmp_path / "big",
        optimizer=sgd,
        data=_toy_data(samples_per_gpu=4),
    )
    small = _train(
        tmp_path / "small",
        optimizer=sgd,
        data=_toy_data(samples_per_gpu=2),
        optimizer_config={"type": "GradientCumulativeOptimizerHook", "cumulative_iters": 2},
    )
    assert small.iter == 2 * big.iter
    torch.testing.assert_close(_weights(small), _weights(big), rtol=1e-6, atol=1e-7)


def test_remainder_stretch_divides_by_its_length_and_steps_on_the_last_iter(tmp_path) -> None:
    lr = 0.05
    data = _toy_data(samples_per_gpu=2)
    runner = build_runner(
        fx.toy_config(
            optimizer={"type": "SGD", "lr": lr},
            data=data,
            runner={"type": "EpochBasedRunner", "max_epochs": 1},
            optimizer_config={"type": "GradientCumulativeOptimizerHook", "cumulative_iters": 3},
        ),
        work_dir=tmp_path,
    )
    model = fx.ToyLinear()
    model.load_state_dict(runner.model.state_dict())
    runner.run()
    loader = runner.data_loaders[0]
    loader.sampler.set_epoch(0)
    batches = list(loader)  # 8 batches: stretches of 3, 3 and a remainder of 2
    for stretch in (batches[0:3], batches[3:6], batches[6:8]):
        model.zero_grad()
        for batch in stretch:
            (((model(batch) - batch["y"]) ** 2).mean() / len(stretch)).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    torch.testing.assert_close(
        _weights(runner), torch.cat([p.detach().flatten() for p in model.parameters()])
    )


def test_cumulative_iters_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        GradientCumulativeOptimizerHook(cumulative_iters=0)


def test_fp16_on_cpu_runs_bf16_autocast_and_says_so(tmp_path) -> None:
    runner = _train(tmp_path, optimizer_config={"type": "Fp16OptimizerHook", "loss_scale": 512.0})
    assert set(runner.model.autocast_dtypes) == {torch.bfloat16}
    assert runner.autocast is None  # restored after the run
    assert "bfloat16 autocast on cpu" in next(tmp_path.glob("*.log")).read_text()
    assert torch.isfinite(_weights(runner)).all()


@pytest.mark.parametrize(
    ("optimizer_config", "expected"),
    [
        ({"grad_clip": None}, Fp16OptimizerHook),
        (
            {"type": "GradientCumulativeOptimizerHook", "cumulative_iters": 2},
            GradientCumulativeFp16OptimizerHook,
        ),
    ],
)
def test_top_level_fp16_key_selects_the_fp16_hook(tmp_path, optimizer_config, expected) -> None:
    runner = build_runner(
        fx.toy_config(optimizer_config=optimizer_config, fp16={"loss_scale": "dynamic"}),
        work_dir=tmp_path,
    )
    hooks = [h for h in runner.hooks if isinstance(h, OptimizerHook)]
    assert [type(h) for h in hooks] == [expected]


def test_bad_loss_scale_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Fp16OptimizerHook(loss_scale="auto")


def test_no_autocast_without_fp16(tmp_path) -> None:
    assert set(_train(tmp_path).model.autocast_dtypes) == {None}


def test_nan_loss_raises_divergence_at_once_before_the_update(tmp_path) -> None:
    runner = build_runner(
        fx.toy_config(model={"type": "ToyLinear", "nan_at": 5}), work_dir=tmp_path
    )
    with pytest.raises(DivergenceError) as err:
        runner.run()
    assert (err.value.iteration, err.value.epoch) == (5, 1)
    assert "loss" in err.value.values
    assert torch.isfinite(_weights(runner)).all()


def test_detect_anomalous_params_logs_unused_parameters(tmp_path) -> None:
    runner = build_runner(
        fx.toy_config(
            optimizer_config={"detect_anomalous_params": True},
            runner={"type": "EpochBasedRunner", "max_epochs": 1},
        ),
        work_dir=tmp_path,
    )
    runner.model.unused = torch.nn.Linear(1, 1)
    runner.run()
    assert (
        "unused.weight with shape (1, 1) is not in the computational graph"
        in next(tmp_path.glob("*.log")).read_text()
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_runs_float16_autocast_with_a_grad_scaler(tmp_path) -> None:
    runner = build_runner(
        fx.toy_config(optimizer_config={"type": "Fp16OptimizerHook", "loss_scale": "dynamic"}),
        work_dir=tmp_path,
        device="cuda",
    )
    runner.run()
    hook = next(h for h in runner.hooks if isinstance(h, Fp16OptimizerHook))
    assert set(runner.model.autocast_dtypes) == {torch.float16}
    assert hook.loss_scaler is not None and runner.meta["fp16"]["loss_scaler"]["scale"] > 0
    assert runner.model.fc.weight.device.type == "cuda"
    assert "float16 autocast on CUDA" in next(tmp_path.glob("*.log")).read_text()


def test_importing_the_hooks_installs_no_torch_hook() -> None:
    """torch's global registration hooks are installed when a hook first needs the
    count, not by an import."""
    import subprocess
    import sys

    code = ("import torch\n"
            "from rt3d_tune.runner.hooks import optimizer as o\n"
            "torch.nn.Linear(2, 2)\n"
            "print(o._registrations)\n"
            "o.OptimizerHook().model_parameters(torch.nn.Linear(2, 2))\n"
            "torch.nn.Linear(2, 2)\n"
            "print(o._registrations)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.splitlines() == ["None", "2"]  # the last Linear's weight and bias
