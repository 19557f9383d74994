"""One rank of a trial, for every backend: the steps they share around the backend's own
training (:meth:`rt3d_tune.backends.base.Backend.start_trial`).

    Tune config (sampled params) -> trial folder -> device, process group
        -> trial config (build_trial_config) -> trials/<id>/config.py
        -> backend.start_trial(cfg, TrialRun) -> train
        -> last report (run_and_report) -> folder closed

Fidelity (``training_iteration``) is the backend's ``fidelity_unit``: epochs of the mmcv
backend (an iteration runner's evaluation rounds), validation rounds of mmengine.

Failure policy: :mod:`rt3d_tune.backends.report`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rt3d_tune.backends.base import TrialRun
from rt3d_tune.backends.report import CHECKPOINT_FILE, Reporter, run_and_report
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.params import CONFIRM_KEY, trial_params
from rt3d_tune.trial.setup import TrialSetup, build_trial_config, trial_device

__all__ = ["discard_report", "report_to_tune", "report_with_checkpoint", "train_rank"]


def report_to_tune(metrics: dict[str, Any]) -> None:
    """``tune.report(metrics)``."""
    from ray import tune

    tune.report(metrics)


def report_with_checkpoint(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    """``tune.report`` with the folder ``checkpoint_dir`` as the report's checkpoint."""
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    tune.report(metrics, checkpoint=checkpoint)


def discard_report(metrics: dict[str, Any]) -> None:
    """What ranks other than 0 do with a report."""


def _not_built(err: ConfigError) -> ConfigError:
    # One message, no cause chain: Ray copies a trial's exception chain recursively.
    return ConfigError(f"the trial config does not build: {err.format()}")


def train_rank(config: dict[str, Any], setup: TrialSetup, trial_id: str,
               resume: tuple[bytes, dict[str, Any] | None] | None, rank: int = 0,
               world_size: int = 1, rendezvous: tuple[str, int] | None = None) -> None:
    """One rank of a trial (the whole trial on one worker): its config built, trained by
    the space's backend; rank 0 reports to Tune.

    Args:
        config: the trial's Tune config (sampled params, a confirmation's marker).
        setup: what every trial of the search shares.
        trial_id: Tune's id of the trial.
        resume: (the checkpoint's bytes, the report it belongs to) to resume from.
        rank, world_size: this rank of the trial's data-parallel group.
        rendezvous: the group's (address, port) when ``world_size > 1``.

    Raises:
        ConfigError: the trial config does not build.
    """
    from rt3d_tune.runner.dist import (
        backend_for,
        gather_in_order,
        init_process_group,
        process_group,
    )

    if setup.cwd and os.path.isdir(setup.cwd):
        os.chdir(setup.cwd)
    device, gpu_ids = trial_device(setup.cpus)
    if world_size > 1:
        if rendezvous is None:
            raise ValueError("a data-parallel rank needs the group's address")
        init_process_group(backend_for(device), *rendezvous, rank, world_size)
    space = setup.space
    with process_group(), tempfile.TemporaryDirectory(prefix="rt3d_resume_") as tmp:
        folder = setup.trial_folder(trial_id, rank)
        confirm = config.get(CONFIRM_KEY) or {}
        extra: dict[str, Any] = {"gpu_ids": ",".join(gpu_ids), "device": device}
        if world_size > 1:
            extra.update(workers=world_size,
                         worker_nodes=",".join(gather_in_order([_node_id()], world_size)))
        if confirm:
            extra.update(confirm_of=confirm["of"], seed=confirm["seed"])
        reporter = Reporter(space.metric, extra=extra, defer_final=True,
                            report=folder.reporting(report_with_checkpoint),
                            checkpoint_final=space.scheduler.type == "pbt" and not confirm,
                            probe_epochs=frozenset() if confirm else setup.probe_epochs,
                            probe_ratio=space.scheduler.probe_ratio)
        resume_path = None
        if resume is not None:
            data, metrics = resume
            resume_path = Path(tmp, CHECKPOINT_FILE)
            resume_path.write_bytes(data)
            if metrics is not None:  # a driver killed after the last report
                reporter.last_metrics = metrics
                reporter.last_fidelity = int(metrics["training_iteration"])
        run = TrialRun(trial_id=trial_id, work_dir=folder.path, reporter=reporter,
                       device=device, rank=rank, world_size=world_size,
                       resume_path=resume_path, config_file=setup.base_config,
                       search_name=Path(setup.run_dir).name, params=trial_params(config),
                       confirm_of=confirm.get("of"))
        try:
            cfg = build_trial_config(setup, trial_params(config), seed=confirm.get("seed"))
            if rank == 0:
                space.backend.persist(cfg, folder.path)
            train = space.backend.start_trial(cfg, run)
        except ConfigError as err:
            raise _not_built(err) from None
        try:
            run_and_report(train, reporter, space.metric, space.mode, extra,
                           folder.reporting(report_to_tune) if rank == 0 else discard_report,
                           space.backend.no_evaluation_hint)
        finally:
            folder.close()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
