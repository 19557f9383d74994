"""One rank of an mmengine trial: ``Runner.from_cfg(cfg)`` plus a report hook.

The trial's config is the base (read by mmengine's ``Config``) with the trial's
overrides, its seed in ``randomness.seed`` and its schedule scaled to its length
(``rt3d_tune.backends.mmengine.schedule``); its work dir is ``trials/<id>/``, mmengine's own
(logs, vis backends, ``CheckpointHook``'s files), with ``config.py`` beside them for
the export. ``MMTuneReportHook`` (VERY_LOW priority) reports every validation to Tune with
a checkpoint written by mmengine's saver; a retried or resumed trial goes on through
mmengine's resume from that checkpoint. A non-finite loss raises ``DivergenceError``
(the trial is DIVERGED, as with rt3d-tune's runner). Fidelity is the number of
validation rounds (``train_cfg.val_interval`` epochs, or iterations, each).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from rt3d_tune.backends.base import TrialRun
from rt3d_tune.config.keypaths import plain_dict

__all__ = ["start_mmengine_trial"]


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


def _distributed(plain: dict[str, Any], device: str, rank: int, world_size: int) -> None:
    """Make ``plain`` a distributed mmengine run in the trial's process group (joined
    already, gloo on CPU, nccl on CUDA: mmengine's pytorch launcher selects a CUDA device
    unconditionally; a Runner finding a group already set up uses it). Each rank sees
    its own GPU as device 0 (``LOCAL_RANK=0``); on CPU the wrapper gets no device ids
    (mmengine passes ``LOCAL_RANK``'s, which DDP refuses for a CPU module) unless the
    config chooses its own ``model_wrapper_cfg``.
    """
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    plain["launcher"] = "pytorch"
    if device == "cpu" and plain.get("model_wrapper_cfg") is None:
        plain["model_wrapper_cfg"] = {"type": "MMDistributedDataParallel", "device_ids": None,
                                      "broadcast_buffers": False}


def start_mmengine_trial(cfg: Any, run: TrialRun) -> Callable[[], Any]:
    """mmengine's Runner for ``cfg`` in ``run.work_dir`` with ``MMTuneReportHook`` over
    ``run.reporter`` (VERY_LOW priority), resumed through mmengine's own resume from
    ``run.resume_path`` when set; its ``train``.

    With several ranks the Runner is a distributed one (``_distributed``): mmengine's
    own MMDistributedDataParallel wrapper, distributed sampler and result collection.

    Raises:
        ConfigError: the Runner does not start.
    """
    from rt3d_tune.backends.mmengine.hooks import MMTuneReportHook
    from rt3d_tune.backends.mmengine.start import start_runner

    plain = plain_dict(cfg)
    plain.update(work_dir=str(run.work_dir),
                 experiment_name=f"{run.trial_id}_{time.strftime('%Y%m%d_%H%M%S')}")
    if run.world_size > 1:
        _distributed(plain, run.device, run.rank, run.world_size)
    if run.resume_path is not None:
        _register_trial_scheme()
        plain.update(resume=True, load_from=TRIAL_SCHEME + str(run.resume_path))
    runner = start_runner(plain, run.config_file)
    runner.register_hook(MMTuneReportHook(run.reporter, run.rank), priority="VERY_LOW")
    return runner.train
