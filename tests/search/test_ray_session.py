"""What the search sets up around Ray before Tune runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# Tune calls its usage tagging exactly like this at the start of Tuner.fit.
_TAG_AS_TUNE_DOES = """
import json, os, sys
if sys.argv[1] == "search":
    from rt3d_tune.search.ray_session import _skip_unsent_usage_tags
    _skip_unsent_usage_tags()
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
    import mlflow and wandb (1-2 s per search start) for a tag nobody receives."""
    assert _imported_by_usage_tagging("search", "0") == {"mlflow": False, "wandb": False}


def test_usage_tags_stay_when_the_user_turned_usage_statistics_on() -> None:
    # Plain Tune imports both to count callbacks (the cost the search avoids) ...
    assert _imported_by_usage_tagging("plain", "0") == {"mlflow": True, "wandb": True}
    # ... and the search leaves the count alone when usage statistics are on.
    assert _imported_by_usage_tagging("search", "1") == {"mlflow": True, "wandb": True}
