"""Starting or joining Ray for a search (DESIGN.md, "Ray").

No address: an embedded local instance on loopback only, dashboard off. An address
(``auto``, ``ray://host:port``, ``host:port``) or RAY_ADDRESS: join that cluster. A
Ray already initialized in this process (a test session, a notebook) is reused and
left running.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = ["TUNE_ENV", "check_gpus", "ray_session"]

# Tune's per-trial JSON/CSV/TensorBoard loggers cost most of its per-trial overhead and
# the search records results itself (callbacks.ResultRecorder). Set only when unset.
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # The new output engine prints an experiment table even at verbose=0.
    "RAY_AIR_NEW_OUTPUT": "0",
}


@contextmanager
def ray_session(address: str | None = None, *, debug: bool = False) -> Iterator[None]:
    """Make Ray available for the body (and shut down only a Ray it started).

    Args:
        address: None for an embedded local instance; ``auto``, ``ray://...`` or
            ``host:port`` to join a cluster (RAY_ADDRESS is honoured when None).
        debug: forward worker logs to this terminal.
    """
    import ray

    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)
    _skip_unsent_usage_tags()
    # Without Tune's loggers, ResultGrid warns that it cannot read metrics; we never ask it.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        yield
        return
    quiet = {"log_to_driver": debug, "logging_level": logging.INFO if debug else logging.WARNING}
    if address is None:
        # Without this Ray takes the outward IP as the node address even when local.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            **quiet,
        )
    else:
        ray.init(address=address, **quiet)
        warnings.warn(
            "joined the Ray cluster at "
            f"{address}: the run directory must be on storage every node sees "
            "(a shared file system), or trials on other nodes cannot write their results",
            stacklevel=2,
        )
    try:
        yield
    finally:
        ray.shutdown()


def _skip_unsent_usage_tags() -> None:
    """Skip Tune's callback count for usage statistics while those are off.

    ``Tuner.fit`` counts the callbacks it was given by importing Ray's MLflow, W&B,
    Comet and Aim integrations, which import mlflow and wandb when installed: 1-2 s at
    the start of every search, for a tag that is never sent with usage statistics off
    (the search turns them off unless RAY_USAGE_STATS_ENABLED says otherwise).
    """
    from ray._common.usage import usage_lib
    from ray.air._internal import usage as air_usage

    if not usage_lib.usage_stats_enabled() and hasattr(air_usage, "tag_callbacks"):
        air_usage.tag_callbacks = _no_usage_tag


def _no_usage_tag(callbacks: Any) -> bool:
    return False


def check_gpus(gpu_per_trial: float) -> None:
    """Refuse a search whose trials need more GPUs than the cluster has.

    Raises:
        ConfigError: ``resources.gpu`` is above the cluster's GPU count.
    """
    import ray

    available = float(ray.cluster_resources().get("GPU", 0.0))
    if gpu_per_trial > available:
        raise ConfigError(
            "the trials need more GPUs than the Ray cluster has",
            key_path="resources.gpu",
            expected=f"at most {available:g} (the cluster's GPUs)",
            given=gpu_per_trial,
            hint="lower resources.gpu (fractions share a GPU) or join a cluster with GPUs "
            "(--address)",
        )
