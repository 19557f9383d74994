"""Starting or joining Ray for a search (docs/ARCHITECTURE.md, "Ray").

No address: an embedded local instance on loopback only (every server of it listens on
127.0.0.1, see ``_ray_private.loopback_node``), dashboard off, token authentication on
(Ray's default for a new local instance, with its token in ``~/.ray/auth_token``;
RAY_AUTH_MODE=disabled turns it off). Ray warns about that default at every start; the
search keeps it on purpose, so that warning is not shown. An address (``auto``,
``ray://host:port``, ``host:port``) or RAY_ADDRESS: join that cluster; a cluster that
refuses this driver (most often its authentication token) is a ``ConfigError`` naming
the address and what to do, not Ray's traceback. A Ray already initialized in this
process (a test session, a notebook) is reused and left running.

Leaving a joined cluster: ``disconnect=False`` skips ``ray.shutdown()``, for a process
that ends right after (the CLI, ``os._exit``): the cluster sees the driver go, and
Ray's own shutdown path, where joined drivers have been seen to crash (SIGSEGV) after
a finished search, never runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from rt3d_tune.errors import ConfigError
from rt3d_tune.search._ray_private import (
    loopback_node,
    quiet_token_notice,
    skip_unsent_usage_tags,
)

__all__ = ["TUNE_ENV", "join_error", "ray_session"]

# Tune's per-trial JSON/CSV/TensorBoard loggers cost most of its per-trial overhead and
# the search records results itself (callbacks.ResultRecorder). Set only when unset.
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # The new output engine prints an experiment table even at verbose=0.
    "RAY_AIR_NEW_OUTPUT": "0",
}

_TOKEN_HINT = ("the cluster uses token authentication: give this driver the cluster's token "
               "(on the head node `ray get-auth-token` prints it) as RAY_AUTH_TOKEN, or in "
               "~/.ray/auth_token (or the file RAY_AUTH_TOKEN_PATH names), with "
               "RAY_AUTH_MODE=token")


def join_error(address: str, err: BaseException) -> ConfigError:
    """What ``ray.init(address)`` failing means to the user, as a ConfigError."""
    from ray.exceptions import AuthenticationError

    cause: BaseException | None = err  # Ray wraps the GCS's refusal in ConnectionError
    while cause is not None and not isinstance(cause, AuthenticationError):
        cause = cause.__cause__ or cause.__context__
    err = cause or err
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    name = type(err).__name__
    if isinstance(err, AuthenticationError):
        return ConfigError(f"the Ray cluster at {address} needs an authentication token "
                           f"this driver does not have ({text})", key_path="--address",
                           given=address, hint=_TOKEN_HINT)
    if isinstance(err, ConnectionError):
        # Ray's probe answered (check_ray_address) but the GCS refused the driver: in
        # Ray 2.60 a missing or wrong token ends so, after its 20 s of retries.
        return ConfigError(f"the Ray cluster at {address} answers but refused this driver "
                           f"({text}); a missing or wrong authentication token is the usual "
                           "cause", key_path="--address", given=address, hint=_TOKEN_HINT)
    return ConfigError(f"cannot join the Ray cluster at {address}: {name}: {text}",
                       key_path="--address", given=address,
                       hint="check the address, and that this driver's Ray and Python "
                       "versions are the cluster's")


@contextmanager
def ray_session(address: str | None = None, *, debug: bool = False,
                disconnect: bool = True) -> Iterator[None]:
    """Make Ray available for the body (and shut down only a Ray it started).

    Args:
        address: None for an embedded local instance; ``auto``, ``ray://...`` or
            ``host:port`` to join a cluster (RAY_ADDRESS is honoured when None).
        debug: forward worker logs to this terminal.
        disconnect: leave a joined cluster with ``ray.shutdown()``; False for a process
            that exits right after without it (see the module's docstring).

    Raises:
        ConfigError: the cluster at ``address`` refused this driver.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        loopback_node()  # before ``import ray`` where it can be
    import ray

    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)
    skip_unsent_usage_tags()
    # Without Tune's loggers, ResultGrid warns that it cannot read metrics; we never ask it.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    if ray.is_initialized():
        yield
        return
    quiet = {"log_to_driver": debug, "logging_level": logging.INFO if debug else logging.WARNING}
    if address is None:
        with quiet_token_notice():
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                **quiet,
            )
    else:
        from ray.exceptions import AuthenticationError

        try:
            ray.init(address=address, **quiet)
        except (AuthenticationError, ConnectionError, RuntimeError, ValueError) as err:
            raise join_error(address, err) from None
    try:
        yield
    finally:
        if address is None or disconnect:
            ray.shutdown()
