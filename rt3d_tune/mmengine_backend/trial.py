"""One trial of an mmengine config: ``Runner.from_cfg(cfg).train()`` plus a report hook.

The trial's config is the base (read by mmengine's ``Config``) with the trial's
overrides, its seed in ``randomness.seed`` and its schedule scaled to its length
(``rt3d_tune.mmengine_backend.schedule``); its work dir is ``trials/<id>/``, mmengine's own
(logs, vis backends, ``CheckpointHook``'s files), with ``config.py`` beside them for
the export. ``MMTuneReportHook`` (VERY_LOW priority) reports every validation to Tune with
a checkpoint written by mmengine's saver; a retried or resumed trial goes on through
mmengine's resume from that checkpoint. A non-finite loss raises ``DivergenceError``
(the trial is DIVERGED, as with rt3d-tune's runner). Fidelity is the number of
validation rounds (``train_cfg.val_interval`` epochs, or iterations, each).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from rt3d_tune.config.keypaths import plain_dict
from rt3d_tune.errors import ConfigError
from rt3d_tune.mmengine_backend.hooks import MMTuneReportHook
from rt3d_tune.mmengine_backend.start import start_runner
from rt3d_tune.runner.dist import process_group
from rt3d_tune.search.report_hook import (
    CHECKPOINT_FILE,
    TuneReportHook,
    discard_report,
    report_to_tune,
    report_with_checkpoint,
    run_and_report,
)
from rt3d_tune.search.trial_setup import TrialSetup, build_trial_config, trial_device
from rt3d_tune.space.params import CONFIRM_KEY, trial_params

__all__ = ["train_mmengine_rank"]


# load_from of a trial resuming from its own Tune checkpoint (see _load_trial_checkpoint).
TRIAL_SCHEME = "rt3d-trial://"


def _load_trial_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for ``rt3d-trial://<path>``: a checkpoint this search's trial
    wrote with mmengine's saver moments before. Its message hub pickles mmengine's
    HistoryBuffer and numpy values, which torch >= 2.6 refuses by default
    (``weights_only=True``); mmengine 0.10 loads with torch's default. Only this
    search's own checkpoints take this path; a user's ``load_from`` keeps torch's check.
    """
    import torch

    return torch.load(filename[len(TRIAL_SCHEME):], map_location=map_location,
                      weights_only=False)


def _register_trial_scheme() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes=TRIAL_SCHEME, force=True)(_load_trial_checkpoint)


def _join_group(plain: dict[str, Any], device: str, rank: int, world_size: int,
                rendezvous: tuple[str, int] | None) -> None:
    """Join the trial's process group and make ``plain`` a distributed mmengine run.

    The group is set up here (gloo on CPU, nccl on CUDA) because mmengine's pytorch
    launcher selects a CUDA device unconditionally; a Runner finding a group already
    set up uses it. Each rank sees its own GPU as device 0 (``LOCAL_RANK=0``); on CPU the
    wrapper gets no device ids (mmengine passes ``LOCAL_RANK``'s, which DDP refuses for a
    CPU module) unless the config chooses its own ``model_wrapper_cfg``.
    """
    import os

    from rt3d_tune.runner.dist import backend_for, init_process_group

    assert rendezvous is not None, "a data-parallel rank needs the group's address"
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    init_process_group(backend_for(device), *rendezvous, rank, world_size)
    plain["launcher"] = "pytorch"
    if device == "cpu" and plain.get("model_wrapper_cfg") is None:
        plain["model_wrapper_cfg"] = {"type": "MMDistributedDataParallel", "device_ids": None,
                                      "broadcast_buffers": False}


def train_mmengine_rank(config: dict[str, Any], setup: TrialSetup, trial_id: str,
                        resume: tuple[bytes, dict[str, Any] | None] | None, rank: int = 0,
                        world_size: int = 1, rendezvous: tuple[str, int] | None = None) -> None:
    """One rank of a trial (the whole trial on one worker): build its config, train it on
    mmengine's Runner; rank 0 reports to Tune.

    With several workers every rank joins the trial's process group, then runs the
    Runner as a distributed one (``_join_group``): mmengine's own
    MMDistributedDataParallel wrapper, distributed sampler and result collection.
    """
    import os

    if setup.cwd and os.path.isdir(setup.cwd):
        os.chdir(setup.cwd)
    device, gpu_ids = trial_device(setup.cpus)
    folder = setup.trial_folder(trial_id, rank)
    work_dir = folder.path
    confirm = config.get(CONFIRM_KEY) or {}
    extra: dict[str, Any] = {"gpu_ids": ",".join(gpu_ids), "device": device}
    if world_size > 1:
        extra["workers"] = world_size
    if confirm:
        extra.update(confirm_of=confirm["of"], seed=confirm["seed"])
    reporter = TuneReportHook(setup.space.metric, extra=extra, defer_final=True,
                              report=folder.reporting(report_with_checkpoint),
                              checkpoint_final=setup.space.scheduler.type == "pbt"
                              and not confirm,
                              probe_epochs=frozenset() if confirm else setup.probe_epochs,
                              probe_ratio=setup.space.scheduler.probe_ratio)
    try:
        cfg = build_trial_config(setup, trial_params(config), seed=confirm.get("seed"))
    except ConfigError as err:
        raise ConfigError(f"the trial config does not build: {err.format()}") from None
    if rank == 0:
        cfg.dump(str(work_dir / "config.py"))  # what the trial trains, for the export
    plain = plain_dict(cfg)
    plain.update(work_dir=str(work_dir),
                 experiment_name=f"{trial_id}_{time.strftime('%Y%m%d_%H%M%S')}")
    if world_size > 1:
        _join_group(plain, device, rank, world_size, rendezvous)
    with process_group(), tempfile.TemporaryDirectory(prefix="rt3d_resume_") as tmp:
        if resume is not None:
            data, metrics = resume
            path = Path(tmp, CHECKPOINT_FILE)
            path.write_bytes(data)
            _register_trial_scheme()
            plain.update(resume=True, load_from=TRIAL_SCHEME + str(path))
            if metrics is not None and rank == 0:  # a driver killed after the last report
                reporter.last_metrics = metrics
                reporter.last_fidelity = int(metrics["training_iteration"])
        try:
            runner = start_runner(plain, setup.base_config)
        except ConfigError as err:
            raise ConfigError(f"the trial config does not build: {err.format()}") from None
        runner.register_hook(MMTuneReportHook(reporter, rank), priority="VERY_LOW")
        try:
            run_and_report(runner.train, reporter, setup.space.metric, setup.space.mode, extra,
                           folder.reporting(report_to_tune) if rank == 0 else discard_report,
                           "the base config needs val_dataloader, val_evaluator and val_cfg")
        finally:
            folder.close()
