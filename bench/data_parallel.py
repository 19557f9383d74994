"""Data-parallel training throughput of the built-in BEV task: 1 worker against 2.

The runner's data-parallel path (``build_runner`` inside a process group of 2 gloo
ranks: the model in DistributedDataParallel, each rank its shard of the data,
``samples_per_gpu`` per rank, so the global batch doubles, mmdet3d's convention)
against one worker, on the quickstart's base config
(``configs/pillar_bev/pillar_bev_synthetic.py``). Every worker is its own process
(``torch.multiprocessing``, spawn) with one torch thread. Three ways, in turn:

* ``1 worker``: one process, no process group, the whole train set (160 scenes,
  40 iterations of 4 an epoch).
* ``2 workers (DDP)``: 2 gloo ranks on loopback; each trains its shard (20 iterations
  of 4 an epoch; the global batch is 8). The ranks exchange the gradients in backward
  (DDP's all-reduce), the BatchNorm buffers in each forward (DDP broadcasts rank 0's)
  and the log variables after each step (the runner averages them).
* ``2 independent``: the same two shards, trained at the same time by two 1-rank
  processes that never talk (no process group; each one's loader is the DDP rank's
  shard). The difference to 1 worker is what sharing the 2 cores costs; the
  difference to DDP is what the communication and the waiting for the slower rank
  cost.

What is timed: the training iterations only. A hook stamps the end of every training
iteration; each epoch counts from the end of its first iteration to the end of its
last (so the run's first iteration, the warm-up, and whatever happens between epochs
are out). Evaluation and checkpoints are off (``evaluation=None``,
``checkpoint_config=None``); the text log stays as the config has it. The scenes are
generated and cached before the run (untimed). Two more stamps split each iteration
into data (loading, collate, the before-iteration hooks), forward (``train_step`` and
the runner's all-reduce of the log variables) and backward + step (the optimizer
hook: backward with DDP's gradient all-reduce, clip, AdamW step; then the log hooks),
and the process's CPU time (all its threads) is read with the last one: DDP's extra
time per iteration splits into more CPU work and time off the CPU (waiting). Each way
runs ``--repeats`` times, alternating; the best run of each is reported.
After its DDP run, rank 0 also times a bare gloo all-reduce of a tensor the size of
the gradients (the traffic alone, without the waiting), and the independent run's
iteration times, paired, estimate what waiting for the slower rank costs DDP's ranks
(``lockstep_wait``).

``--device cuda``: one trial on the GPU against 2 trials packed on the same GPU (two
independent 1-rank processes, each the whole train set); samples/s of each and summed.
Exits 2 when torch sees no CUDA device.

    python bench/data_parallel.py [--epochs 3] [--samples-per-gpu 4] [--repeats 3]
    python bench/data_parallel.py --device cuda
    python bench/data_parallel.py --quick      # the smoke test's sizes

Prints one FIGURE line per measurement, a ``WHERE THE REST GOES`` line, and ends on
``RATIO 2 workers/1 worker samples/s = x (target >= 2: met|MISSED)``, 2 being the ideal
(``--device cuda``: on ``RATIO 2 packed trials summed/1 trial samples/s``).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import torch

from rt3d_tune.runner.hook import Hook

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pillar_bev" / "pillar_bev_synthetic.py"
PHASES = ("data", "forward", "backward+step")


@dataclass(frozen=True)
class Way:
    """How one measurement runs.

    Attributes:
        name: its FIGURE label.
        procs: processes at once.
        group: the processes form one process group (DDP) rather than run alone.
        shard: each process trains shard ``i`` of ``procs`` (False: the whole train set).
    """

    name: str
    procs: int
    group: bool
    shard: bool


ONE = Way("1 worker", 1, group=False, shard=False)
DDP = Way("2 workers (DDP, 2 gloo ranks)", 2, group=True, shard=True)
INDEPENDENT = Way("2 independent 1-rank processes on the 2 shards", 2, group=False, shard=True)
PACKED = Way("2 trials packed on one GPU", 2, group=False, shard=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_config(args: argparse.Namespace) -> dict[str, Any]:
    """The BEV config, shortened: ``--epochs``, ``--samples-per-gpu``, ``--scenes``; no
    evaluation, no checkpoints."""
    from rt3d_tune import Config

    cfg = Config.fromfile(str(args.config)).to_dict()
    cfg["runner"] = {"type": "EpochBasedRunner", "max_epochs": args.epochs}
    cfg["data"]["samples_per_gpu"] = args.samples_per_gpu
    if args.scenes:
        cfg["data"]["train"]["num_scenes"] = args.scenes
    cfg["evaluation"] = None
    cfg["checkpoint_config"] = None
    cfg["seed"] = 0
    return cfg


# --- what runs in each process -----------------------------------------------------------
class Stamp(Hook):
    """Appends ``time.perf_counter()`` to ``stamps`` at ``stage`` of every training
    iteration (``before_train_iter`` or ``after_train_iter``); ``sync``: after a CUDA
    synchronize, so the stamp counts the queued kernels."""

    def __init__(self, stage: str, stamps: list[float], sync: bool,
                 cpu: list[float] | None = None) -> None:
        self.stage = stage
        self.stamps = stamps
        self.sync = sync
        self.cpu = cpu

    def _stamp(self) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        if self.cpu is not None:  # CPU time of the whole process (all its threads)
            self.cpu.append(time.process_time())

    def before_train_iter(self, runner: Any) -> None:
        if self.stage == "before_train_iter":
            self._stamp()

    def after_train_iter(self, runner: Any) -> None:
        if self.stage == "after_train_iter":
            self._stamp()


def worker(index: int, way: Way, cfg: dict[str, Any], device: str, port: int, out_dir: str,
           barrier: Any) -> None:
    """Train ``cfg`` as process ``index`` of ``way``; write its timings to ``out_dir``."""
    from rt3d_tune.runner.builder import build_runner
    from rt3d_tune.runner.data import build_dataloader

    torch.set_num_threads(1)
    if way.group:
        from rt3d_tune.runner.dist import init_process_group

        init_process_group("gloo", "127.0.0.1", port, index, way.procs)
    sync = device.startswith("cuda")
    # a: before the step (after the data and the before-iteration hooks); b: after
    # train_step (forward + log all-reduce); c: after the optimizer and log hooks.
    a: list[float] = []
    b: list[float] = []
    c: list[float] = []
    cpu: list[float] = []
    hooks = [
        (Stamp("before_train_iter", a, sync), "LOWEST"),
        (Stamp("after_train_iter", b, sync), "HIGHEST"),
        (Stamp("after_train_iter", c, sync, cpu), "LOWEST"),
    ]
    runner = build_runner(cfg, work_dir=Path(out_dir, f"work_{index}"), device=device,
                          extra_hooks=hooks)
    loader = runner.data_loaders[0]
    if way.shard and not way.group:  # the DDP rank's shard, without a process group
        data = cfg["data"]
        runner.data_loaders = [build_dataloader(
            loader.dataset, data["samples_per_gpu"], data.get("workers_per_gpu", 0),
            shuffle=True, seed=runner.seed, rank=index, world_size=way.procs)]
        loader = runner.data_loaders[0]
    dataset = loader.dataset
    for i in range(len(dataset)):  # generate and cache every scene, untimed
        dataset[i]
    epoch_len = [len(loader)] * cfg["runner"]["max_epochs"]
    if barrier is not None:
        barrier.wait()
    runner.run()

    # Per timed iteration (every one but each epoch's first, from the end of the previous
    # iteration to its own end), its three phases and the process's CPU time in seconds.
    iters: list[list[float]] = []
    start = 0
    for n in epoch_len:
        for j in range(start + 1, start + n):
            iters.append([a[j] - c[j - 1], b[j] - a[j], c[j] - b[j], cpu[j] - cpu[j - 1]])
        start += n
    result = {
        "iters": iters,
        "samples": len(iters) * cfg["data"]["samples_per_gpu"],
        "params": sum(p.numel() for p in runner.model.parameters()),
    }
    if way.group:
        result["allreduce_s"] = _time_allreduce(result["params"])
        torch.distributed.barrier()  # no traffic left in flight when the group goes
        torch.distributed.destroy_process_group()
    Path(out_dir, f"rank{index}.json").write_text(json.dumps(result), encoding="utf-8")
    if barrier is not None:
        barrier.wait()  # rank 0 (the store's host) leaves last, with every rank


def _time_allreduce(numel: int, repeats: int = 20) -> float:
    """Seconds of one gloo all-reduce of ``numel`` float32 (median of ``repeats``)."""
    import statistics

    import torch.distributed as dist

    tensor = torch.zeros(numel)
    dist.all_reduce(tensor)  # warm
    times = []
    for _ in range(repeats):
        dist.barrier()
        begin = time.perf_counter()
        dist.all_reduce(tensor)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


# --- the parent --------------------------------------------------------------------------
@dataclass
class Measured:
    """One run of a way, over its processes."""

    samples_per_s: float  # summed over the processes
    per_proc: list[float]  # samples/s of each process
    ms_per_iter: float  # mean over the processes
    phases_ms: dict[str, float]  # per iteration, mean over the processes
    cpu_ms: float  # CPU time of a process (all its threads) per iteration, mean
    timed_iters: int  # per process
    params: int
    allreduce_ms: float | None
    lockstep_ms: float | None  # 2 processes: what lockstep would add (see lockstep_wait)


def lockstep_wait(iters: list[list[list[float]]]) -> float:
    """Seconds per iteration two processes that never wait for each other would lose if
    they had to meet where DDP ranks meet, from their own iteration times.

    DDP ranks meet twice an iteration: after the forward (the runner's all-reduce of the
    log variables; DDP's buffer broadcast is at its start) and at the end of backward (the
    last gradient bucket). So the faster rank waits for the slower one's data + forward,
    then for its backward + step (the step is counted with the backward: it runs between
    the two meetings of the next iteration, so this is an estimate). Iteration ``j`` of
    process 0 is paired with iteration ``j`` of process 1 (the same shards, in the same
    order, as the DDP ranks')."""
    waits = []
    for p0, p1 in zip(*iters, strict=True):
        fwd0, fwd1 = p0[0] + p0[1], p1[0] + p1[1]
        waits.append(abs(fwd0 - fwd1) / 2 + abs(p0[2] - p1[2]) / 2)
    return sum(waits) / len(waits)


def measure(way: Way, cfg: dict[str, Any], device: str) -> Measured:
    """Run ``way`` once (its processes spawned at once) and read back their timings."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(way.procs) if way.procs > 1 else None
    with tempfile.TemporaryDirectory(prefix="rt3d_dp_") as out_dir:
        mp.spawn(worker, args=(way, cfg, device, free_port(), out_dir, barrier),
                 nprocs=way.procs, join=True)
        results = [json.loads(Path(out_dir, f"rank{i}.json").read_text(encoding="utf-8"))
                   for i in range(way.procs)]
    n = len(results)
    seconds = [sum(sum(it[:3]) for it in r["iters"]) for r in results]
    rates = [r["samples"] / s for r, s in zip(results, seconds, strict=True)]
    phases = {k: 1e3 * sum(sum(it[i] for it in r["iters"]) / len(r["iters"]) for r in results) / n
              for i, k in enumerate(PHASES)}
    return Measured(
        samples_per_s=sum(rates),
        per_proc=rates,
        ms_per_iter=sum(phases.values()),
        phases_ms=phases,
        cpu_ms=1e3 * sum(sum(it[3] for it in r["iters"]) / len(r["iters"]) for r in results) / n,
        timed_iters=len(results[0]["iters"]),
        params=results[0]["params"],
        allreduce_ms=1e3 * results[0]["allreduce_s"] if "allreduce_s" in results[0] else None,
        lockstep_ms=1e3 * lockstep_wait([r["iters"] for r in results]) if n == 2 else None,
    )


def best_of(ways: list[Way], cfg: dict[str, Any], device: str,
            repeats: int) -> dict[Way, Measured]:
    """Each way ``repeats`` times, alternating; the run with the most samples/s of each."""
    best: dict[Way, Measured] = {}
    for r in range(repeats):
        for way in ways:
            began = time.perf_counter()
            m = measure(way, cfg, device)
            print(f"# run {r + 1}/{repeats} {way.name}: {m.samples_per_s:.2f} samples/s "
                  f"({time.perf_counter() - began:.1f} s with start-up)", flush=True)
            if way not in best or m.samples_per_s > best[way].samples_per_s:
                best[way] = m
    return best


def report(way: Way, m: Measured, spg: int, repeats: int) -> None:
    batch = spg * (way.procs if way.group else 1)
    split = ", ".join(f"{k} {v:.1f}" for k, v in m.phases_ms.items())
    each = ""
    if way.procs > 1:
        each = "; each " + " + ".join(f"{x:.2f}" for x in m.per_proc)
    _common.figure(
        way.name, m.samples_per_s, "samples/s",
        f"batch {batch}, {m.timed_iters} timed iterations per process{each}, "
        f"best of {repeats}",
    )
    _common.figure(f"{way.name}, per iteration", m.ms_per_iter, "ms",
                   f"{split} ms; CPU time {m.cpu_ms:.1f} ms, all threads; each process")


def run_cpu(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    best = best_of([ONE, DDP, INDEPENDENT], cfg, "cpu", args.repeats)
    one, ddp, ind = best[ONE], best[DDP], best[INDEPENDENT]
    for way in (ONE, DDP, INDEPENDENT):
        report(way, best[way], args.samples_per_gpu, args.repeats)
    _common.figure("gradients all-reduced per iteration", ddp.params * 4 / 2**20, "MiB",
                   f"{ddp.params} float32 parameters")
    _common.figure("bare gloo all-reduce of that size, 2 ranks", ddp.allreduce_ms or 0.0, "ms",
                   "median of 20, after the DDP run")
    lockstep = ind.lockstep_ms or 0.0
    _common.figure("waiting for the slower rank, estimated", lockstep, "ms per iteration",
                   "from the independent run's iteration times, paired; see lockstep_wait")
    scaling = ddp.samples_per_s / one.samples_per_s
    sharing = ind.samples_per_s / one.samples_per_s
    extra = ddp.ms_per_iter - ind.ms_per_iter
    allreduce = ddp.allreduce_ms or 0.0
    more_cpu = ddp.cpu_ms - ind.cpu_ms
    print(
        f"WHERE THE REST GOES: ideal 2.00x; two processes that never talk reach "
        f"{sharing:.2f}x (sharing the 2 cores: {ind.ms_per_iter:.1f} ms per iteration "
        f"against {one.ms_per_iter:.1f} alone); DDP {scaling:.2f}x ({ddp.ms_per_iter:.1f} ms, "
        f"{extra:+.1f} over the independent ones: "
        + ", ".join(f"{k} {ddp.phases_ms[k] - ind.phases_ms[k]:+.1f}" for k in PHASES)
        + f"). Of the {extra:+.1f} ms, {more_cpu:+.1f} is more CPU time in each rank "
        "(work: DDP's hooks and bucket copies, gloo's threads, on the cores the other rank "
        f"needs) and {extra - more_cpu:+.1f} off the CPU (waiting: for the slower rank "
        f"~{lockstep:.1f} estimated, for gloo's round trips; the gradients' bare all-reduce "
        f"takes {allreduce:.1f} ms)",
        flush=True,
    )
    _common.ratio("independent/1 worker samples/s (2 cores shared, no communication)", sharing)
    _common.ratio("DDP/independent samples/s (communication)",
                  ddp.samples_per_s / ind.samples_per_s)
    _common.ratio("scaling efficiency (2 workers/1 worker over the ideal 2)", scaling / 2)
    _common.ratio("2 workers/1 worker samples/s", scaling, target=2.0, op=">=")
    return 0


def run_cuda(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    print(f"GPU {torch.cuda.get_device_name(0)}; {torch.cuda.device_count()} visible", flush=True)
    best = best_of([ONE, PACKED], cfg, "cuda", args.repeats)
    for way in (ONE, PACKED):
        report(way, best[way], args.samples_per_gpu, args.repeats)
    packed = best[PACKED].samples_per_s / best[ONE].samples_per_s
    _common.ratio("packed trial each/1 trial samples/s (mean)", packed / 2)
    _common.ratio("2 packed trials summed/1 trial samples/s", packed, target=2.0, op=">=")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per run")
    parser.add_argument("--samples-per-gpu", type=int, default=4,
                        help="batch per worker (2 workers: twice the global batch)")
    parser.add_argument("--scenes", type=int, default=0,
                        help="train scenes (default: the config's, 160)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way; best kept")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch of 16 scenes, batch 2, one run each (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.scenes, args.samples_per_gpu, args.repeats = 1, 16, 2, 1
    if min(args.epochs, args.samples_per_gpu, args.repeats) < 1 or args.scenes < 0:
        parser.error("--epochs, --samples-per-gpu and --repeats must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("NO CUDA: --device cuda needs a CUDA device and torch sees none "
              f"(torch {torch.__version__}); run without --device for the CPU "
              "measurement.", file=sys.stderr, flush=True)
        return 2
    cfg = bench_config(args)
    n = cfg["data"]["train"]["num_scenes"]
    if n < 4 * args.samples_per_gpu:
        parser.error(f"{n} scenes: each of 2 shards needs at least 2 batches of "
                     f"{args.samples_per_gpu}")
    print(f"config {args.config.name}: {n} train scenes, {args.samples_per_gpu} per worker, "
          f"{args.epochs} epochs, one torch thread per process, device {args.device}",
          flush=True)
    run = run_cuda if args.device == "cuda" else run_cpu
    return run(args, cfg)


if __name__ == "__main__":
    raise SystemExit(main())
