"""What the search sets up around Ray before Tune runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from rt3d_tune._compat import checked_release
from rt3d_tune.search._ray_private import (
    CHECKED_RAY,
    TOKEN_LOGGER,
    TOKEN_NOTICE,
    quiet_token_notice,
)

pytestmark = pytest.mark.slow

# Tune calls its usage tagging exactly like this at the start of Tuner.fit. "unchecked":
# the search on a Ray release its private patch was not checked against.
_TAG_AS_TUNE_DOES = """
import json, os, sys
import ray
if sys.argv[1] == "unchecked":
    ray.__version__ = "2.59.0"
if sys.argv[1] in ("search", "unchecked"):
    from rt3d_tune.search._ray_private import skip_unsent_usage_tags
    skip_unsent_usage_tags()
from ray.tune import Callback
import ray.tune.tune as tune_module
tune_module.air_usage.tag_callbacks([Callback()])
print(json.dumps({name: name in sys.modules for name in ("mlflow", "wandb")}))
"""


def _imported_by_usage_tagging(mode: str, usage_stats: str) -> dict[str, bool]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED=usage_stats)
    out = subprocess.run(
        [sys.executable, "-c", _TAG_AS_TUNE_DOES, mode],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_search_start_skips_usage_tags_that_are_never_sent() -> None:
    """With usage statistics off (the search's setting), Tune's callback count would
    import mlflow and wandb (1-2 s per search start) for a tag nobody receives. On a Ray
    release the patch was not checked against, Tune's own tagging stays."""
    import ray

    skipped = checked_release(ray.__version__, CHECKED_RAY)
    imported = not skipped
    assert _imported_by_usage_tagging("search", "0") == {"mlflow": imported, "wandb": imported}


def test_usage_tags_stay_when_the_user_turned_usage_statistics_on() -> None:
    # Plain Tune imports both to count callbacks (the cost the search avoids) ...
    assert _imported_by_usage_tagging("plain", "0") == {"mlflow": True, "wandb": True}
    # ... and the search leaves the count alone when usage statistics are on.
    assert _imported_by_usage_tagging("search", "1") == {"mlflow": True, "wandb": True}


def test_on_an_unchecked_ray_release_tune_tags_as_it_always_does() -> None:
    """The fallback is Tune's own path: the same imports as plain Tune, nothing patched."""
    assert _imported_by_usage_tagging("unchecked", "0") == {"mlflow": True, "wandb": True}


def test_the_token_notice_filter_drops_that_one_message_while_it_is_on(caplog) -> None:
    ray_logger = logging.getLogger(TOKEN_LOGGER)
    notice = TOKEN_NOTICE + " Set RAY_AUTH_MODE=disabled to opt out."
    with caplog.at_level(logging.WARNING, logger=TOKEN_LOGGER):
        with quiet_token_notice():
            ray_logger.warning(notice)
            ray_logger.warning("Token authentication is disabled for this Ray cluster.")
        ray_logger.warning(notice)
    assert [r.getMessage() for r in caplog.records] == [
        "Token authentication is disabled for this Ray cluster.", notice]
    assert ray_logger.filters == []


# A fresh embedded instance (the test session's Ray is already running in this process).
_EMBEDDED = """
import os
from ray._raylet import AuthenticationMode, get_authentication_mode
from rt3d_tune.search.ray_session import ray_session
with ray_session():
    print("TOKEN_AUTH", get_authentication_mode() == AuthenticationMode.TOKEN)
"""


@pytest.mark.ray
def test_the_embedded_instance_keeps_token_auth_on_without_rays_warning(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    proc = subprocess.run([sys.executable, "-c", _EMBEDDED], capture_output=True, text=True,
                          env=env, cwd=tmp_path, check=True, timeout=240)
    assert "TOKEN_AUTH True" in proc.stdout
    assert "Token authentication" not in proc.stdout + proc.stderr
