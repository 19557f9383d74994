"""The Ray side of one trial: the function trainable, and a data-parallel trial's ranks.

Data flow inside a trial (docs/ARCHITECTURE.md, "Data flow")::

    Tune config (sampled params) -> overrides -> trial config -> trials/<id>/config.py
        -> the backend's training, with its Reporter -> tune.report(metrics, checkpoint)

Each rank runs :func:`rt3d_tune.trial.body.train_rank` (every backend alike). Fidelity
(``training_iteration``, what ASHA/HyperBand/median/PBT count) is the backend's
``fidelity_unit``. Failure policy: :mod:`rt3d_tune.backends.report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rt3d_tune.backends.report import CHECKPOINT_FILE, METRICS_FILE
from rt3d_tune.errors import ConfigError
from rt3d_tune.trial.body import train_rank
from rt3d_tune.trial.folder import TrialFolder
from rt3d_tune.trial.setup import TrialSetup

__all__ = ["train_trial"]


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
