"""Runner overhead: rt3d-tune's runner against a hand-written torch loop, same math.

Both train ``_common.BenchMLP`` on ``_common.BenchVectors`` (seeded) for ``--epochs``
epochs of ``--iters`` iterations: SGD with momentum and weight decay, step LR
(x0.1 at epoch 2) with a linear warmup, step momentum, grad clip (max_norm 35), a
text + JSON log every 10 iterations, a checkpoint each epoch (model + optimizer),
and an evaluation (accuracy) each epoch. The runner gets it all from a config (the
default hook set: LR and momentum updaters, OptimizerHook with grad clip,
CheckpointHook, IterTimerHook, EvalHook, TextLoggerHook); the hand loop writes it
out. Each run is a fresh subprocess with one torch thread; the two alternate, and
the median and minimum wall times are compared (the minimum is the figure least
disturbed by other work on a shared machine). Each process first runs 4 iterations
unmeasured, so imports and lazy initialisation count for neither. CPU time (user +
system of the process during the run) is printed too: other load disturbs it far less
than wall time. Separate runs
under tracemalloc give the Python heap peak; ``ru_maxrss`` gives the peak RSS (of the
whole process, and its growth during the measured run). The final weights of the two
must be equal (same math).

    python bench/runner_overhead.py [--repeats 7] [--epochs 3] [--iters 128]
        [--batch 64] [--hidden 512] [--profile 25]

Target: runner/hand wall time <= 1.03, and no more memory.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _common

SEED = 0
BASE_LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1.0e-4
LR_STEP, LR_GAMMA, MOM_GAMMA = 2, 0.1, 0.9
WARMUP_ITERS, WARMUP_RATIO = 50, 0.1
MAX_NORM, LOG_INTERVAL = 35.0, 10


def bench_config(args: argparse.Namespace) -> dict[str, Any]:
    """The runner's config for the benchmark's schedule and hooks."""
    vectors = dict(type="BenchVectors", dim=args.dim)
    return dict(
        model=dict(type="BenchMLP", dim=args.dim, hidden=args.hidden),
        data=dict(
            samples_per_gpu=args.batch,
            workers_per_gpu=0,
            train=dict(vectors, num_samples=args.batch * args.iters, seed=0),
            val=dict(vectors, num_samples=args.val, seed=1),
        ),
        optimizer=dict(type="SGD", lr=BASE_LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY),
        optimizer_config=dict(grad_clip=dict(max_norm=MAX_NORM, norm_type=2)),
        lr_config=dict(
            policy="step",
            step=[LR_STEP],
            gamma=LR_GAMMA,
            warmup="linear",
            warmup_iters=WARMUP_ITERS,
            warmup_ratio=WARMUP_RATIO,
        ),
        momentum_config=dict(policy="step", step=[LR_STEP], gamma=MOM_GAMMA),
        checkpoint_config=dict(interval=1),
        log_config=dict(interval=LOG_INTERVAL, hooks=[dict(type="TextLoggerHook")]),
        evaluation=dict(interval=1),
        runner=dict(type="EpochBasedRunner", max_epochs=args.epochs),
        workflow=[("train", 1)],
        seed=SEED,
    )


def train_runner(args: argparse.Namespace, work_dir: Path) -> Any:
    """Build and run the runner; returns the trained model."""
    from rt3d_tune.runner.builder import build_runner

    runner = build_runner(bench_config(args), work_dir=str(work_dir), device="cpu")
    runner.run()
    return runner.model


def train_hand(args: argparse.Namespace, work_dir: Path) -> Any:
    """The same training written out as a plain torch loop; returns the trained model."""
    import torch
    from torch.utils.data import DataLoader

    work_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    cfg = bench_config(args)
    model = _common.BenchMLP(dim=args.dim, hidden=args.hidden)
    train_set = _common.BenchVectors(
        **{k: v for k, v in cfg["data"]["train"].items() if k != "type"}
    )
    val_set = _common.BenchVectors(**{k: v for k, v in cfg["data"]["val"].items() if k != "type"})
    val_loader = DataLoader(val_set, batch_size=args.batch)
    opt = torch.optim.SGD(
        model.parameters(), lr=BASE_LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    params = [p for p in model.parameters() if p.requires_grad]
    with (
        open(work_dir / "train.log", "w", encoding="utf-8") as text,
        open(work_dir / "train.log.json", "w", encoding="utf-8") as jlog,
    ):
        it = 0
        for epoch in range(args.epochs):
            order = torch.randperm(
                len(train_set), generator=torch.Generator().manual_seed(SEED + epoch)
            )
            loader = DataLoader(train_set, batch_size=args.batch, sampler=order.tolist())
            regular = BASE_LR * LR_GAMMA ** (1 if epoch >= LR_STEP else 0)
            momentum = MOMENTUM * MOM_GAMMA ** (1 if epoch >= LR_STEP else 0)
            losses, tick = [], time.time()
            for batch in loader:
                if it < WARMUP_ITERS:
                    lr = regular * (1 - (1 - it / WARMUP_ITERS) * (1 - WARMUP_RATIO))
                else:
                    lr = regular
                for group in opt.param_groups:
                    group["lr"], group["momentum"] = lr, momentum
                out = model.train_step(batch, opt)
                opt.zero_grad()
                out["loss"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, MAX_NORM, 2)
                opt.step()
                losses.append(out["log_vars"]["loss"])
                it += 1
                if it % LOG_INTERVAL == 0:
                    record = dict(
                        mode="train",
                        epoch=epoch + 1,
                        iter=it,
                        lr=lr,
                        momentum=momentum,
                        loss=sum(losses) / len(losses),
                        grad_norm=float(grad_norm),
                        time=(time.time() - tick) / len(losses),
                    )
                    text.write(
                        f"Epoch [{epoch + 1}][{it}] lr: {lr:.3e}, loss: {record['loss']:.4f}\n"
                    )
                    jlog.write(json.dumps(record) + "\n")
                    losses, tick = [], time.time()
            state = {
                "meta": {"epoch": epoch + 1, "iter": it},
                "state_dict": model.state_dict(),
                "optimizer": opt.state_dict(),
            }
            path = work_dir / f"epoch_{epoch + 1}.pth"
            torch.save(state, path)
            latest = work_dir / "latest.pth"
            latest.unlink(missing_ok=True)
            latest.symlink_to(path.name)
            model.eval()
            with torch.no_grad():
                preds = [p for b in val_loader for p in model.forward_test(b)]
            model.train()
            acc = val_set.evaluate(preds)["accuracy"]
            text.write(f"Epoch(val) [{epoch + 1}] accuracy: {acc:.4f}\n")
            jlog.write(json.dumps(dict(mode="val", epoch=epoch + 1, accuracy=acc)) + "\n")
    return model


def warm_up(fn: Any, args: argparse.Namespace) -> None:
    """A 4-iteration run first: imports and lazy initialisation are not the measured run's."""
    small = argparse.Namespace(**{**vars(args), "epochs": 1, "iters": 4, "val": 64})
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        fn(small, Path(tmp) / "warm")


def worker(args: argparse.Namespace) -> None:
    """One measured run in this process; prints one JSON line, saves the final weights."""
    import torch

    torch.set_num_threads(1)
    fn = train_runner if args.worker == "runner" else train_hand
    warm_up(fn, args)
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        if args.trace:
            tracemalloc.start()
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        model = fn(args, Path(tmp) / "work")
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        peak = tracemalloc.get_traced_memory()[1] if args.trace else 0
    if args.weights:
        torch.save(model.state_dict(), args.weights)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "rss_mb": after.ru_maxrss / 1024,
                "rss_growth_mb": (after.ru_maxrss - before.ru_maxrss) / 1024,
                "trace_mb": peak / 2**20,
            }
        ),
        flush=True,
    )


def run_worker(
    args: argparse.Namespace, kind: str, trace: bool = False, weights: str = ""
) -> dict[str, float]:
    """Run one variant in a fresh subprocess; returns its JSON figures."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--epochs",
        str(args.epochs),
        "--iters",
        str(args.iters),
        "--batch",
        str(args.batch),
        "--hidden",
        str(args.hidden),
        "--dim",
        str(args.dim),
        "--val",
        str(args.val),
    ]
    cmd += ["--trace"] if trace else []
    cmd += ["--weights", weights] if weights else []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile_runner(args: argparse.Namespace, top: int) -> None:
    """cProfile of one runner run in this process: where the runner spends its time."""
    import torch

    torch.set_num_threads(1)
    warm_up(train_runner, args)
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        prof = cProfile.Profile()
        prof.runcall(train_runner, args, Path(tmp) / "work")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each, alternating")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--iters", type=int, default=128, help="iterations per epoch")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--val", type=int, default=1024, help="validation samples")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="TOP",
        help="also cProfile one runner run (TOP functions by own time)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--worker", choices=("runner", "hand"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.repeats, args.iters, args.hidden, args.val = 1, 16, 64, 128
    walls: dict[str, list[float]] = {"runner": [], "hand": []}
    cpus: dict[str, list[float]] = {"runner": [], "hand": []}
    rss: dict[str, list[float]] = {"runner": [], "hand": []}
    growth: dict[str, list[float]] = {"runner": [], "hand": []}
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        weights = {k: str(Path(tmp, f"{k}.pt")) for k in walls}
        for rep in range(args.repeats):
            order = ("runner", "hand") if rep % 2 == 0 else ("hand", "runner")
            for kind in order:
                res = run_worker(args, kind, weights=weights[kind])
                walls[kind].append(res["wall"])
                cpus[kind].append(res["cpu"])
                rss[kind].append(res["rss_mb"])
                growth[kind].append(res["rss_growth_mb"])
        traced = {kind: run_worker(args, kind, trace=True)["trace_mb"] for kind in walls}
        import torch

        a, b = torch.load(weights["runner"]), torch.load(weights["hand"])
        same = all(torch.equal(a[k], b[k]) for k in a)
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"SAME_WEIGHTS {same} (max abs difference {diff:.3g})", flush=True)
    for kind in ("hand", "runner"):
        med, low = _common.median_min(walls[kind])
        _common.figure(f"{kind} wall time", med, "s", f"median of {args.repeats}, min {low:.3f}")
        med, low = _common.median_min(cpus[kind])
        _common.figure(f"{kind} CPU time", med, "s", f"median of {args.repeats}, min {low:.3f}")
        _common.figure(f"{kind} peak RSS of the process", max(rss[kind]), "MiB", "imports included")
        _common.figure(
            f"{kind} peak RSS growth during the run",
            statistics.median(growth[kind]),
            "MiB",
            f"median of {args.repeats}, max {max(growth[kind]):.2f}",
        )
        _common.figure(f"{kind} tracemalloc peak", traced[kind], "MiB")
    # The median: one run's growth moves by +-1.5 MiB with what the allocator keeps.
    _common.ratio(
        "runner-hand peak RSS growth (MiB, median)",
        statistics.median(growth["runner"]) - statistics.median(growth["hand"]),
        0.0,
    )
    _common.ratio(
        "runner-hand peak RSS growth (MiB, max)", max(growth["runner"]) - max(growth["hand"])
    )
    _common.ratio("runner/hand peak RSS of the process", max(rss["runner"]) / max(rss["hand"]))
    _common.ratio("runner/hand tracemalloc peak", traced["runner"] / max(traced["hand"], 1e-9))
    if args.profile:
        profile_runner(args, args.profile)
    _common.ratio(
        "runner/hand CPU time (median)",
        _common.median_min(cpus["runner"])[0] / _common.median_min(cpus["hand"])[0],
        1.03,
    )
    _common.ratio(
        "runner/hand wall (median)",
        _common.median_min(walls["runner"])[0] / _common.median_min(walls["hand"])[0],
        1.03,
    )
    _common.ratio("runner/hand wall (min)", min(walls["runner"]) / min(walls["hand"]), 1.03)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
