"""The Ray side of one trial: a function trainable that runs the runner and reports.

Data flow inside a trial (docs/ARCHITECTURE.md, "Data flow")::

    Tune config (sampled params) -> overrides -> trial Config -> trials/<id>/config.py
        -> build_runner(cfg, extra_hooks=[TuneReportHook]) -> runner.run()
        EvalHook metrics -> TuneReportHook -> tune.report(metrics, checkpoint)

Fidelity (``training_iteration``, what ASHA/HyperBand/median/PBT count) is the number
of epochs trained when the evaluation ran after a train epoch, and the evaluation
round otherwise (iteration-based runners).

Failure policy: :mod:`rt3d_tune.search.report_hook`.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.priority import Priority
from rt3d_tune.search.report_hook import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    TuneReportHook,
    discard_report,
    report_to_tune,
    report_with_checkpoint,
    run_and_report,
)
from rt3d_tune.search.trial_folder import TrialFolder
from rt3d_tune.search.trial_setup import TrialSetup, build_trial_config, trial_device
from rt3d_tune.space.params import CONFIRM_KEY, trial_params

__all__ = ["apply_optimizer_hyperparams", "train_trial"]


def _optimizers(optimizer: Any) -> list[Any]:
    if isinstance(optimizer, dict):
        return [optimizer[name] for name in sorted(optimizer)]
    return [optimizer] if optimizer is not None else []


def snapshot_hyperparams(optimizer: Any) -> list[list[dict[str, Any]]]:
    """Every param group's hyperparameters (all keys but ``params``) of a fresh optimizer."""
    return [
        [{k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
         for group in opt.param_groups]
        for opt in _optimizers(optimizer)
    ]


def apply_optimizer_hyperparams(optimizer: Any, fresh: list[list[dict[str, Any]]]) -> None:
    """Put the trial config's optimizer arguments back after loading a checkpoint.

    ``load_state_dict`` restores the checkpoint's param-group values, which after a PBT
    exploit are the donor trial's. The LR and momentum hooks keep their base values in
    ``initial_lr`` / ``initial_momentum`` and only set them when absent, so those are
    overwritten too; the hooks then recompute the scheduled values from the new bases.
    """
    for opt, groups in zip(_optimizers(optimizer), fresh):
        for group, values in zip(opt.param_groups, groups):
            for key, value in values.items():
                if key in ("initial_lr", "initial_momentum"):
                    continue
                group[key] = copy.deepcopy(value)
            group["initial_lr"] = values["lr"]
            if "momentum" in values:
                group["initial_momentum"] = values["momentum"]
            elif "betas" in values:
                group["initial_momentum"] = values["betas"][0]


def train_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Ray Tune function trainable: one trial from its params to its last report.

    With ``resources.workers > 1`` this process is rank 0 of the trial's data-parallel
    group and the other ranks run in actors of the trial's placement group
    (``worker_group``); every rank resumes from the same Tune checkpoint.

    Args:
        config: the trial's Tune config (sampled params).
        setup: what every trial of the search shares.
    """
    import ray
    from ray import tune

    from rt3d_tune.search.worker_group import WorkerGroup, free_port

    trial_id = str(tune.get_context().get_trial_id())
    resume = _read_checkpoint(tune.get_checkpoint())
    resources = setup.space.resources
    train_rank: Callable[..., None] = _train_rank
    if setup.space.backend == "mmengine":
        from rt3d_tune.mmengine_backend.trial import train_mmengine_rank as train_rank
    if resources.workers == 1:
        train_rank(config, setup, trial_id, resume)
        return
    rendezvous = (ray.util.get_node_ip_address(), free_port())
    group = WorkerGroup(resources.workers - 1, resources.cpu, resources.gpu,
                        ray.util.get_current_placement_group(), first_bundle=1)
    try:
        group.start(train_rank, [(config, setup, trial_id, resume, rank, resources.workers,
                                  rendezvous) for rank in range(1, resources.workers)])
        try:
            train_rank(config, setup, trial_id, resume, 0, resources.workers, rendezvous)
        except ConfigError:
            raise  # every rank builds the same config: rank 0's message is the cause
        except Exception:
            error = group.first_failure(timeout=_RANK_FAILURE_WAIT_S)
            if error is not None:  # a rank died first: that is the cause
                rank = 1 + (group.failed or 0)
                saved = _save_rank_error(setup.trial_folder(trial_id), rank, error)
                raise RuntimeError(f"a data-parallel worker of the trial failed (rank {rank}):"
                                   f" {_first_line(error)}{saved}") from None
            raise
        group.wait()
    finally:
        group.shutdown()


# How long rank 0, failing, waits for Ray to report a dead rank as the cause (a killed
# rank breaks rank 0's next collective at once; Ray sees the death a moment later).
_RANK_FAILURE_WAIT_S = 10.0


def _save_rank_error(folder: TrialFolder, rank: int, err: BaseException) -> str:
    """The failed rank's whole error (Ray's text holds the rank's own traceback) in
    ``rank<k>_error.txt`` of the trial's folder; what to add to the one-line message."""
    name = f"rank{rank}_error.txt"
    try:
        folder.write_text(name, f"{type(err).__name__}: {err}\n")
    except OSError:
        return ""
    return f"; its traceback: {folder.where(name)}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def _read_checkpoint(checkpoint: Any) -> tuple[bytes, dict[str, Any] | None] | None:
    """(the runner checkpoint's bytes, the report it belongs to) of a Tune checkpoint."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as ckpt_dir:
        data = Path(ckpt_dir, CHECKPOINT_FILE).read_bytes()
        metrics_file = Path(ckpt_dir, METRICS_FILE)
        metrics = (json.loads(metrics_file.read_text(encoding="utf-8"))
                   if metrics_file.exists() else None)
    return data, metrics


def _train_rank(config: dict[str, Any], setup: TrialSetup, trial_id: str,
                resume: tuple[bytes, dict[str, Any] | None] | None, rank: int = 0,
                world_size: int = 1, rendezvous: tuple[str, int] | None = None) -> None:
    """One rank of a trial: build the runner, resume, train; rank 0 reports to Tune."""
    from rt3d_tune.runner.dist import backend_for, init_process_group, process_group

    if setup.cwd and os.path.isdir(setup.cwd):
        os.chdir(setup.cwd)
    device, gpu_ids = trial_device(setup.cpus)
    if world_size > 1:
        assert rendezvous is not None, "a data-parallel rank needs the group's address"
        init_process_group(backend_for(device), *rendezvous, rank, world_size)
    with process_group():
        _train(config, setup, trial_id, resume, device, gpu_ids)


def _train(config: dict[str, Any], setup: TrialSetup, trial_id: str,
           resume: tuple[bytes, dict[str, Any] | None] | None, device: str,
           gpu_ids: list[str]) -> None:
    from rt3d_tune.runner.builder import build_runner
    from rt3d_tune.runner.dist import gather_in_order, get_dist_info
    from rt3d_tune.search.trial_loggers import tag_trial_loggers

    rank, world_size = get_dist_info()
    folder = setup.trial_folder(trial_id, rank)
    metric = setup.space.metric
    confirm = config.get(CONFIRM_KEY) or {}
    extra: dict[str, Any] = {"gpu_ids": ",".join(gpu_ids), "device": device}
    if world_size > 1:
        extra.update(workers=world_size, worker_nodes=",".join(gather_in_order([_node_id()],
                                                                               world_size)))
    if confirm:
        extra.update(confirm_of=confirm["of"], seed=confirm["seed"])
    hook = TuneReportHook(metric, extra=extra, defer_final=True,
                          report=folder.reporting(report_with_checkpoint),
                          checkpoint_final=setup.space.scheduler.type == "pbt" and not confirm,
                          probe_epochs=frozenset() if confirm else setup.probe_epochs,
                          probe_ratio=setup.space.scheduler.probe_ratio)
    try:
        cfg = build_trial_config(setup, trial_params(config), seed=confirm.get("seed"))
        # build_runner writes work_dir/config.py with the seed it used: best_config.py
        # reruns the trial exactly.
        runner = build_runner(
            cfg, work_dir=str(folder.path), extra_hooks=[(hook, Priority.VERY_LOW)],
            device=device,
        )
    except ConfigError as err:
        # One message, no cause chain: Ray copies a trial's exception chain recursively.
        raise ConfigError(f"the trial config does not build: {err.format()}") from None
    tag_trial_loggers(runner.hooks, trial_id=trial_id, search_name=Path(setup.run_dir).name,
                      params=trial_params(config), confirm_of=confirm.get("of"))
    if resume is not None:
        _resume(runner, hook, *resume)
    try:
        run_and_report(runner.run, hook, metric, setup.space.mode, extra,
                       folder.reporting(report_to_tune) if rank == 0 else discard_report,
                       "the base config needs data.val and evaluation = dict(interval=..., "
                       "metric=...)")
    finally:
        folder.close()


def _resume(runner: Any, hook: TuneReportHook, data: bytes,
            metrics: dict[str, Any] | None) -> None:
    """Resume ``runner`` from a trial checkpoint's bytes, keeping the trial's own
    optimizer arguments (PBT hands over a donor's)."""
    fresh = snapshot_hyperparams(runner.optimizer)
    with tempfile.TemporaryDirectory(prefix="rt3d_resume_") as tmp:
        path = Path(tmp, CHECKPOINT_FILE)
        path.write_bytes(data)
        runner.resume(path)
    if metrics is not None:
        # A driver killed after the last report: rerunning reaches no evaluation.
        hook.last_metrics = metrics
        hook.last_fidelity = int(metrics["training_iteration"])
    apply_optimizer_hyperparams(runner.optimizer, fresh)
    hook.last_round = int(getattr(runner, "eval_round", 0))


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
