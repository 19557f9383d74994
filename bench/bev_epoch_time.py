"""Seconds per training epoch of the built-in BEV task, as the default config defines it.

A plain loop (forward, backward, AdamW step) over the default config's train set, with
the config's batch size, so the figure is the task's own cost without runner or hooks.
Each setting runs ``--repeats`` epochs after one warm-up epoch and reports the minimum
(the machine is shared). Usage::

    python bench/bev_epoch_time.py [--config configs/pillar_bev/pillar_bev_synthetic.py]
        [--threads 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.utils.data import DataLoader

from rt3d_tune import Config
from rt3d_tune.registry import DATASETS, MODELS


def epoch_seconds(cfg: Config, threads: int, bf16: bool, repeats: int) -> float:
    """Minimum wall time of one training epoch over ``repeats`` epochs (after a warm-up)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = cfg.to_dict()["data"]
    dataset = DATASETS.build(data["train"])
    model = MODELS.build(cfg.to_dict()["model"]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loader = DataLoader(
        dataset, batch_size=data["samples_per_gpu"], shuffle=True, collate_fn=dataset.collate_fn
    )
    times = []
    for epoch in range(repeats + 1):
        start = time.perf_counter()
        for batch in loader:
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with ctx:
                out = model.train_step(batch, optimizer)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
        if epoch:  # the first epoch also generates and caches the scenes
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pillar_bev/pillar_bev_synthetic.py")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    n = cfg.to_dict()["data"]["train"].get("num_scenes")
    print(
        f"config {args.config}: {n} train scenes, batch {cfg.to_dict()['data']['samples_per_gpu']}"
    )
    for threads in args.threads:
        for bf16 in (False, True):
            seconds = epoch_seconds(cfg, threads, bf16, args.repeats)
            mode = "bf16 autocast" if bf16 else "fp32"
            print(f"threads={threads} {mode:13s}: {seconds:.2f} s/epoch")


if __name__ == "__main__":
    main()
