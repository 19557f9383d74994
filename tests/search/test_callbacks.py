"""The error text the results recorder keeps for a trial that raised."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import cloudpickle
from ray.exceptions import RayError, RayTaskError

from rt3d_tune._compat import checked_release
from rt3d_tune.errors import ConfigError
from rt3d_tune.search._ray_private import CHECKED_RAY, trial_error
from rt3d_tune.search.callbacks import _error_text

TRACE = """Failure # 1 (occurred at 2026-11-30_08-00-00)
ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1, actor_id=a, repr=train_trial)
  File "trainable.py", line 9, in train_trial
    raise RuntimeError("injected model failure")
RuntimeError: injected model failure
at train iteration 3
"""
MESSAGE = "RuntimeError: injected model failure at train iteration 3"


@dataclass
class FakeTrial:
    """What the recorder uses of Tune's Trial: the public error readers (which read the
    run's storage) and the paths of the copies Tune writes on the driver first."""

    pickled: Any = None
    text: str | None = None
    pickled_error_file: str | None = None
    error_file: str | None = None

    def get_pickled_error(self) -> Any:
        if isinstance(self.pickled, Exception) and not isinstance(self.pickled, RayError):
            raise self.pickled  # the pickled error cannot be loaded in this driver
        return self.pickled

    def get_error(self) -> str | None:
        return self.text


def task_error(cause: BaseException) -> RayTaskError:
    return RayTaskError("train", "Traceback ...", cause, proctitle="ray::train", pid=1,
                        ip="127.0.0.1")


@pytest.mark.parametrize(
    "trial, expected",
    [
        (FakeTrial(task_error(RuntimeError("injected model failure\nat train iteration 3"))),
         MESSAGE),
        (FakeTrial(task_error(ConfigError("no momentum", key_path="optimizer", hint="drop it"))),
         "rt3d_tune.errors.ConfigError: optimizer: no momentum hint: drop it"),
        # Not the trial's own exception (an actor that died), or none kept: the text trace.
        (FakeTrial(RayError("the actor died"), TRACE), MESSAGE),
        (FakeTrial(None, TRACE), MESSAGE),
        (FakeTrial(pickle.UnpicklingError("no module named 'user_model'"), TRACE), MESSAGE),
        (FakeTrial(None, "Failure # 1\nthe actor died unexpectedly\n"),
         "the actor died unexpectedly"),
        (FakeTrial(None, None), "unknown error"),
    ],
    ids=["task-error", "config-error", "actor-error", "text-only", "unpicklable",
         "no-exception-line", "nothing"],
)
def test_error_text_is_the_exception_and_its_message_on_one_line(trial, expected) -> None:
    assert _error_text(trial) == expected


def staged_copies(folder: Path, error: BaseException) -> dict[str, str]:
    """The two files Tune's Trial.handle_error writes on the driver."""
    (folder / "error.pkl").write_bytes(cloudpickle.dumps(error))
    (folder / "error.txt").write_text(TRACE)
    return {"pickled_error_file": str(folder / "error.pkl"),
            "error_file": str(folder / "error.txt")}


@pytest.mark.parametrize("where", ["storage", "staged", "unchecked_ray"])
def test_trial_error_reads_the_drivers_copy_only_until_the_storage_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Public readers first; in on_trial_error they find nothing yet on Ray 2.60, and the
    copies on the driver give the same error. On a Ray release that was not checked,
    only the public readers are used (forced here)."""
    error = task_error(RuntimeError("injected model failure\nat train iteration 3"))
    if where == "storage":  # what the public readers return once Tune has synced
        trial = FakeTrial(error, TRACE)
    elif where == "staged":
        trial = FakeTrial(None, None, **staged_copies(tmp_path, error))
    else:
        monkeypatch.setattr(ray, "__version__", "2.59.0")
        trial = FakeTrial(error, TRACE, **staged_copies(tmp_path, RuntimeError("stale")))
    if where == "staged" and not checked_release(ray.__version__, CHECKED_RAY):
        # The installed Ray was not checked: its public readers alone, which find nothing.
        assert trial_error(trial) == (None, "")
        return
    pickled, text = trial_error(trial)
    assert text == TRACE and repr(pickled.cause) == repr(error.cause)
    assert _error_text(trial) == MESSAGE


def test_on_an_unchecked_ray_release_the_drivers_copy_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray, "__version__", "2.59.0")
    trial = FakeTrial(None, None, **staged_copies(tmp_path, RuntimeError("boom")))
    assert trial_error(trial) == (None, "")
