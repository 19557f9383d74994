"""GPU packing: aggregate BEV training throughput with 1, 2 and 4 trials per GPU.

For each packing k in ``--packing`` (default 1 2 4), k Ray tasks each ask for
``1/k`` GPU (fractional resources, as ``resources.gpu`` of a space file) and train the
built-in BEV task (the config's model, data, optimizer; fp32, or bf16 autocast with
``--bf16``) on the GPU Ray assigned: the dataset is built and a few iterations run
first (not timed), then each trains for ``--seconds`` seconds. The aggregate
throughput is the scenes trained by all k per second of the common window; the ratio
is against k = 1 measured in the same run. Without a GPU it says so and exits 0.

    python bench/gpu_packing.py [--seconds 60] [--packing 1 2 4] [--time-limit 540]

Everything prints on stdout; settings that would not fit ``--time-limit`` (seconds,
the whole script) are skipped and said so.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import _common

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pillar_bev" / "pillar_bev_synthetic.py"


def train_for(
    config: str, seconds: float, warmup_iters: int, bf16: bool, start_at: float
) -> dict[str, Any]:
    """Train the config's model on the assigned GPU; scenes trained in the timed window.

    The window opens at ``start_at`` (a shared wall-clock time, so the k trials overlap)
    and lasts ``seconds``.
    """
    import contextlib

    import torch
    from torch.utils.data import DataLoader

    from rt3d_tune import Config
    from rt3d_tune.registry import DATASETS, MODELS
    from rt3d_tune.runner.optimizer import build_optimizer

    cfg = Config.fromfile(config).to_dict()
    device = torch.device("cuda")
    torch.manual_seed(0)
    dataset = DATASETS.build(cfg["data"]["train"])
    model = MODELS.build(cfg["model"]).to(device).train()
    optimizer = build_optimizer(model, cfg["optimizer"], "optimizer")
    loader = DataLoader(
        dataset,
        batch_size=cfg["data"]["samples_per_gpu"],
        shuffle=True,
        collate_fn=getattr(dataset, "collate_fn", None),
        drop_last=True,
    )

    def to_device(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.to(device, non_blocking=True)
        if isinstance(x, dict):
            return {k: to_device(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(to_device(v) for v in x)
        return x

    batches = [to_device(b) for b in loader]  # generates the scenes, outside the window

    def step(batch: Any) -> None:
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            out = model.train_step(batch, optimizer)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()

    for i in range(warmup_iters):
        step(batches[i % len(batches)])
    torch.cuda.synchronize()
    while time.time() < start_at:
        time.sleep(0.01)
    scenes, i, begin = 0, 0, time.time()
    while time.time() - begin < seconds:
        batch = batches[i % len(batches)]
        step(batch)
        scenes += cfg["data"]["samples_per_gpu"]
        i += 1
    torch.cuda.synchronize()
    return {
        "scenes": scenes,
        "seconds": time.time() - begin,
        "gpu": str(torch.cuda.get_device_name(0)),
        "ids": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def measure(k: int, args: argparse.Namespace) -> float:
    """Aggregate scenes per second of k trials sharing one GPU."""
    import ray

    task = ray.remote(num_gpus=1.0 / k, num_cpus=1)(train_for)
    # Each trial builds its data first; the common window starts after a margin.
    start_at = time.time() + args.setup
    refs = [
        task.remote(str(args.config), args.seconds, args.warmup_iters, args.bf16, start_at)
        for _ in range(k)
    ]
    results = ray.get(refs)
    total = sum(r["scenes"] for r in results)
    window = max(r["seconds"] for r in results)
    for j, r in enumerate(results):
        _common.figure(
            f"k={k} trial {j} throughput",
            r["scenes"] / r["seconds"],
            "scenes/s",
            f"{r['gpu']}, CUDA_VISIBLE_DEVICES={r['ids']}",
        )
    return total / window


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--packing", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=60.0, help="timed window per setting")
    parser.add_argument(
        "--setup",
        type=float,
        default=60.0,
        help="seconds allowed for building data and warm-up before the window",
    )
    parser.add_argument("--warmup-iters", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=540.0,
        help="seconds for the whole script; later settings are skipped",
    )
    parser.add_argument("--quick", action="store_true", help="short windows (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.setup, args.packing = 5.0, 30.0, [1, 2]
    import torch

    if not torch.cuda.is_available():
        print(
            "NO GPU: torch sees no CUDA device; gpu_packing needs one (run it on a GPU "
            "machine: python bench/gpu_packing.py). Nothing measured.",
            flush=True,
        )
        return 0
    began = time.time()
    _common.start_ray(os.cpu_count() or 2)
    import ray

    print(
        f"GPU {torch.cuda.get_device_name(0)}; Ray GPUs "
        f"{ray.cluster_resources().get('GPU', 0):g}; config {args.config}",
        flush=True,
    )
    throughput: dict[int, float] = {}
    for k in args.packing:
        if time.time() - began + args.setup + args.seconds + 30 > args.time_limit:
            print(f"SKIPPED k={k}: it would not fit --time-limit {args.time_limit:g} s", flush=True)
            continue
        throughput[k] = measure(k, args)
        _common.figure(
            f"k={k} trials per GPU (gpu={1 / k:g} each), aggregate", throughput[k], "scenes/s"
        )
    base = throughput.get(1)
    for k, value in throughput.items():
        if base and k != 1:
            _common.ratio(f"aggregate k={k}/k=1", value / base)
    if base and len(throughput) > 1:
        best = max(throughput, key=throughput.get)
        _common.ratio(f"best packing k={best}, aggregate/k=1", throughput[best] / base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
