"""Starting or joining Ray for a search (DESIGN.md, "Ray").

No address: an embedded local instance on loopback only, dashboard off, token
authentication on (Ray's default for a new local instance, with its token in
``~/.ray/auth_token``; RAY_AUTH_MODE=disabled turns it off). Ray warns about that default
at every start; the search keeps it on purpose, so that warning is not shown. An address
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

from rt3d_tune.search._ray_private import quiet_token_notice, skip_unsent_usage_tags

__all__ = ["TUNE_ENV", "ray_session"]

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
    skip_unsent_usage_tags()
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
        with quiet_token_notice():
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

