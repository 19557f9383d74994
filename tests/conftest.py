"""Shared fixtures. Ray: one local instance for the whole session, loopback only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Ray binds to the machine's outward address unless this is set before ray.init
# (docs/ARCHITECTURE.md, "Ray"); every test keeps Ray traffic on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# MLflow 3 refuses its file store (all mlflow-skinny writes) unless asked; set before Ray
# starts so trial workers inherit it.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

# Property tests explore new examples on a developer's machine; CI replays a fixed
# sequence so that a run's verdict does not depend on chance.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance (2 CPUs, no dashboard), shut down at the end."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread in the test process: Ray trial workers run beside it on the
    same 2 cores, and oversubscribed torch threads make small models many times slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server on 127.0.0.1 for the session (``tests/s3_server.py``)."""
    from s3_server import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process's S3 client variables pointed at the session's server."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    from rt3d_tune import storage

    storage._filesystem.cache_clear()  # filesystems built under other variables
    yield s3_server
    storage._filesystem.cache_clear()
