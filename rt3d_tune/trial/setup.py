"""What every trial of a search shares, and what one trial trains: :class:`TrialSetup`,
:func:`build_trial_config` and :func:`trial_device`, for every backend.

The trial body (``rt3d_tune.trial.body``) and ``validate``'s trial check build trial
configs here; the backend (``SearchSpace.backend``) reads the base config and counts its
iterations per epoch.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rt3d_tune.trial.folder import TrialFolder

if TYPE_CHECKING:
    from rt3d_tune.backends.base import Backend
    from rt3d_tune.space.space import SearchSpace

__all__ = ["TrialSetup", "build_trial_config", "trial_device"]


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of one search shares (passed once through ``tune.with_parameters``).

    Args:
        run_dir: absolute path of the search run directory; trials write under
            ``run_dir/trials/<trial id>/``.
        base_config: absolute path of the base config file.
        space: the parsed space.
        cpus: CPUs per trial (sets torch's thread count).
        cwd: the driver's working directory; trials run there so that relative paths
            in the user's config mean what they mean to ``rt3d-tune train``.
        probe_epochs: the epochs (fidelities) where the scheduler decides, at which a
            trial reports a probe's metric (``scheduler.probe``); empty: no probes.
        storage: the run's URI when it is kept in one (``--storage s3://...``): trials
            then write on their own node and store their files there
            (``trial_folder``); None: trials write into ``run_dir``.
    """

    run_dir: str
    base_config: str
    space: SearchSpace
    cpus: float = 1.0
    cwd: str | None = None
    probe_epochs: frozenset[int] = frozenset()
    storage: str | None = None

    def trial_folder(self, trial_id: str, rank: int = 0) -> TrialFolder:
        """Where ``trial_id`` writes (rank 0 creates it)."""
        return TrialFolder.open(self.run_dir, self.storage, trial_id, rank)


@functools.lru_cache(maxsize=4)
def _load_base(path: str, mtime: float, backend: Backend) -> Any:
    """The base config, loaded once per worker process (actors are reused).

    Loaded from the file rather than unpickled from the driver's copy so that its
    ``custom_imports`` run (and register the user's classes) in this process too; read
    by the space's backend.
    """
    return backend.load_config(path)


def build_trial_config(setup: TrialSetup, params: dict[str, Any], seed: int | None = None) -> Any:
    """What the trial trains (``rt3d_tune.space.trials.build_trial_configs``).

    Raises:
        ConfigError: an override the base config cannot take, a schedule that cannot scale.
    """
    from rt3d_tune.space.trials import build_trial_configs

    space = setup.space
    backend = space.backend
    base = _load_base(setup.base_config, os.path.getmtime(setup.base_config), backend)
    # A data-parallel trial counts one rank's shard, as its runner will.
    iters_per_epoch = functools.partial(backend.iters_per_epoch,
                                        world_size=space.resources.workers)
    trial, _ = build_trial_configs(space, base, params, seed=seed,
                                   iters_per_epoch=iters_per_epoch)
    return trial


def trial_device(cpus: float) -> tuple[str, list[str]]:
    """('cuda' or 'cpu', the GPU ids Ray assigned); also sets torch's thread count."""
    import ray
    import torch

    torch.set_num_threads(max(1, round(cpus)))
    gpu_ids = [str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else []
    device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
    return device, gpu_ids
