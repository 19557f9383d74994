"""The places the search reaches into Ray's internals, each with its public fallback.

* :func:`skip_unsent_usage_tags` replaces ``ray.air._internal.usage.tag_callbacks``
  (private) on the Ray releases in ``CHECKED_RAY`` only; elsewhere Tune keeps its own
  tagging, which costs 1-2 s of imports per search and changes nothing else.
* :func:`trial_error` reads a failed trial's error through Tune's public
  ``Trial.get_pickled_error`` / ``Trial.get_error``; those read the run's storage, which
  Tune fills only at its next experiment checkpoint, so on the Ray releases in
  ``CHECKED_RAY`` it reads the copies Tune has just written on the driver when they are
  not there yet.
* :func:`loopback_node` makes the embedded instance's node address 127.0.0.1, so that
  every server of it (GCS, raylet, workers, agents) listens on loopback only: Ray's
  public switch is the variable RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once when
  ``ray`` is imported; when Ray was imported before it was set, the constant it sets
  (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``) is set too on the checked
  releases. Elsewhere Ray picks its node address itself (the public behaviour).
* :func:`replace_callbacks` gives a restored ``Tuner`` the callbacks of the driver that
  restores it (``TunerInternal.get_run_config``, private): Tune restores the pickled
  callbacks of the first driver, whose run directory may not be this one (a stored run
  resumed from another machine). Unchecked releases keep Tune's (returns False).
* :func:`quiet_token_notice` filters one message of one Ray logger (by its private
  module name) while the embedded instance starts. It is not gated on the release: on
  a Ray that logs elsewhere or in other words it matches nothing, and Ray's own warning
  shows, which is the public behaviour.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rt3d_tune._compat import checked_release

__all__ = ["CHECKED_RAY", "loopback_node", "quiet_token_notice", "replace_callbacks",
           "skip_unsent_usage_tags", "trial_error"]

# Ray releases whose internals this module was checked against
# (tests/search/test_ray_session.py, tests/search/test_callbacks.py).
CHECKED_RAY = {(2, 60)}

# Ray 2.60 logs this from ``_warn_token_auth_enabled`` when ``ray.init`` starts a local
# instance with RAY_AUTH_MODE unset, i.e. when it turns token authentication on itself.
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster."


LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_node() -> bool:
    """Make a Ray instance started by this process take 127.0.0.1 as its node address.

    Returns:
        True when Ray will (the variable was set before Ray's import, or the constant
        was set on a checked release); False when Ray chooses (an unchecked release
        imported before the variable was set).
    """
    import sys

    os.environ[LOOPBACK_SWITCH] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is None:
        return True  # Ray reads the variable when it is imported
    if getattr(constants, "ENABLE_RAY_CLUSTER", True) is False:
        return True
    import ray

    if not checked_release(ray.__version__, CHECKED_RAY):
        return False
    constants.ENABLE_RAY_CLUSTER = False
    return True


def replace_callbacks(tuner: Any, callbacks: list[Any]) -> bool:
    """Make ``callbacks`` those of the restored ``tuner``; False where it was not done."""
    import ray

    if not checked_release(ray.__version__, CHECKED_RAY):
        return False
    internal = getattr(tuner, "_local_tuner", None)
    if internal is None or not hasattr(internal, "get_run_config"):
        return False
    internal.get_run_config().callbacks = list(callbacks)
    return True


def skip_unsent_usage_tags() -> bool:
    """Skip Tune's callback count for usage statistics while those are off.

    ``Tuner.fit`` counts the callbacks it was given by importing Ray's MLflow, W&B,
    Comet and Aim integrations, which import mlflow and wandb when installed: 1-2 s at
    the start of every search, for a tag that is never sent with usage statistics off
    (the search turns them off unless RAY_USAGE_STATS_ENABLED says otherwise).

    Returns:
        True when the count is skipped; False when Tune keeps it (usage statistics on,
        or a Ray release this was not checked against).
    """
    import ray

    if not checked_release(ray.__version__, CHECKED_RAY):
        return False
    from ray._common.usage import usage_lib
    from ray.air._internal import usage as air_usage

    if usage_lib.usage_stats_enabled() or not hasattr(air_usage, "tag_callbacks"):
        return False
    air_usage.tag_callbacks = _no_usage_tag
    return True


def _no_usage_tag(callbacks: Any) -> bool:
    return False


def trial_error(trial: Any) -> tuple[Any, str]:
    """The last error of a trial Tune has just marked failed (``Callback.on_trial_error``).

    Returns:
        (what Ray pickled: a ``RayTaskError`` wrapping what the trainable raised, a
        ``RayActorError``, or None; Tune's text trace of it, or "").

    ``Trial.get_pickled_error`` and ``Trial.get_error`` read the copies in the run's
    storage. Tune writes the error to its staging folder on the driver first
    (``Trial.handle_error``, just before the callback) and copies it to the storage at
    its next experiment checkpoint, so in the callback both are None on Ray 2.60; on the
    checked releases the staging copies are read then.
    """
    import ray
    from ray import cloudpickle

    staged = checked_release(ray.__version__, CHECKED_RAY)
    try:
        pickled = trial.get_pickled_error()
        if pickled is None and staged:
            pickled = _read_staged(trial.pickled_error_file, cloudpickle.loads)
    # Unpickling a user's exception class can raise anything; the text trace names it.
    except Exception:
        pickled = None
    text = trial.get_error()
    if text is None and staged:
        text = _read_staged(trial.error_file, lambda data: data.decode("utf-8", "replace"))
    return pickled, text or ""


def _read_staged(path: str | None, load: Callable[[bytes], Any]) -> Any:
    if not path or not Path(path).is_file():
        return None
    return load(Path(path).read_bytes())


class _DropTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTICE)


@contextmanager
def quiet_token_notice() -> Iterator[None]:
    """Drop Ray's "Token authentication is enabled" warning for the body, nothing else.

    The embedded instance keeps token authentication on: that is the search's safe
    default, not something the user has to act on.
    """
    logger = logging.getLogger(TOKEN_LOGGER)
    drop = _DropTokenNotice()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
