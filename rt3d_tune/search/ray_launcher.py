"""``rt3d-tune train CONFIG --launcher ray --workers N``: one data-parallel training run
on Ray, outside any search: N ``RankWorker`` actors in a placement group, each running
``rt3d_tune.runner.train.train`` as one rank of a gloo (CPU) or nccl (CUDA) group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rt3d_tune.errors import ConfigError, DivergenceError

__all__ = ["train_on_ray"]


def train_on_ray(
    config_path: str,
    train_kwargs: Mapping[str, Any],
    *,
    workers: int,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    placement: str = "pack",
) -> dict[str, Any]:
    """Train ``config_path`` on ``workers`` ranks; rank 0's summary (epochs, iterations,
    work dir).

    Raises:
        ConfigError: the cluster cannot hold the workers, or the config is wrong (raised
            by a rank, re-raised here as the user's mistake it is).
        DivergenceError: the loss became non-finite.
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from rt3d_tune.search.ray_session import ray_session
    from rt3d_tune.search.worker_group import WorkerGroup

    with ray_session(address):
        _check_fits(ray.cluster_resources(), workers, cpus_per_worker, gpus_per_worker)
        bundle = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
        group_pg = placement_group([dict(bundle) for _ in range(workers)],
                                   strategy=placement.upper())
        ray.get(group_pg.ready())
        group = WorkerGroup(workers, cpus_per_worker, gpus_per_worker, group_pg)
        try:
            rendezvous = ray.get(group.actors[0].rendezvous.remote())
            group.start(_train_rank, [(config_path, dict(train_kwargs), rank, workers,
                                       rendezvous, os.getcwd(), cpus_per_worker)
                                      for rank in range(workers)])
            try:
                return group.wait()[0]
            except ray.exceptions.RayTaskError as err:
                if isinstance(err.cause, (ConfigError, DivergenceError)):
                    raise err.cause from None
                raise
        finally:
            group.shutdown()
            remove_placement_group(group_pg)


def _check_fits(available: Mapping[str, float], workers: int, cpus: float, gpus: float) -> None:
    for key, per_worker in (("CPU", cpus), ("GPU", gpus)):
        have = float(available.get(key, 0))
        if workers * per_worker > have:
            raise ConfigError(
                f"{workers} workers x {per_worker:g} {key}s need {workers * per_worker:g} "
                f"{key}s but the Ray cluster has {have:g}",
                key_path="--workers",
                expected=f"at most {int(have // per_worker) if per_worker else workers}",
                given=workers,
                hint="lower --workers, or join a cluster with more (--address)",
            )


def _train_rank(config_path: str, train_kwargs: dict[str, Any], rank: int, world_size: int,
                rendezvous: tuple[str, int], cwd: str, cpus: float) -> dict[str, Any]:
    """One rank: join the group, train, leave it; rank 0's summary."""
    import ray
    import torch

    from rt3d_tune.config import Config
    from rt3d_tune.runner.dist import backend_for, init_process_group, process_group
    from rt3d_tune.runner.train import train

    os.chdir(cwd)
    torch.set_num_threads(max(1, round(cpus)))
    device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    init_process_group(backend_for(device), *rendezvous, rank, world_size)
    with process_group():
        runner = train(Config.fromfile(config_path), progress=False, **train_kwargs)
    return {"epoch": runner.epoch, "iter": runner.iter, "work_dir": runner.work_dir}
