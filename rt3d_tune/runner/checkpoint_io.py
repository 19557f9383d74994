"""Checkpoint files: atomic writes, the ``latest.pth`` link, safe loading, auto-resume lookup.

A checkpoint is ``{'meta': {...}, 'state_dict': {...}, 'optimizer': {...}}`` holding
only tensors and plain containers, so it loads with ``torch.load(weights_only=True)``
(no pickled code runs when a checkpoint is opened).

A save serializes in the caller's thread; waiting for the disk (fsync) and renaming
the file into place can go to a background thread (``background=True``, what
CheckpointHook does), so training does not stop for the disk. Every later save,
load or lookup in this process first waits for those (:func:`wait_for_saves`), and
so does the end of a run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from rt3d_tune.errors import ConfigError

__all__ = [
    "LATEST",
    "CheckpointWriteError",
    "atomic_save",
    "find_latest_checkpoint",
    "load_checkpoint_file",
    "update_latest",
    "wait_for_saves",
]

LATEST = "latest.pth"


_finisher: ThreadPoolExecutor | None = None
_pending: list[Future[None]] = []


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a lost mount); the file it was to
    replace, and ``latest.pth``, are as they were. Raised with ``errno`` ENOSPC for a
    full disk. (Built by :func:`_write_error`; OSError's own arguments, so that it
    pickles, as Ray does with a trial's exception.)"""


def _write_error(path: Path, cause: BaseException) -> CheckpointWriteError:
    reason = _reason(path.parent, cause)
    code = errno.ENOSPC if reason.startswith("No space") else getattr(cause, "errno", None)
    return CheckpointWriteError(code, f"cannot write the checkpoint {path}: {reason}; the "
                                f"checkpoints written before it (and {LATEST}) are kept")


def _reason(folder: Path, cause: BaseException) -> str:
    """Why a write failed, in words: torch's writer says only "file write failed"."""
    try:
        fs = os.statvfs(folder)
        free = fs.f_bavail * fs.f_frsize
    except (OSError, AttributeError):
        free = None
    if getattr(cause, "errno", None) == errno.ENOSPC or free == 0:
        return f"No space left on device ({'?' if free is None else f'{free:,}'} bytes free)"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"


def atomic_save(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    then: Callable[[Path], Any] | None = None,
    background: bool = False,
) -> Path:
    """Save ``obj`` with ``torch.save`` so that ``path`` is either the old or the new file.

    The data go to a temporary file in the same folder, are flushed to disk (fsync),
    and the file is renamed over ``path`` (``os.replace`` is atomic on POSIX and
    Windows). A crash or an exception mid-write leaves ``path`` as it was, and removes
    the temporary file.

    Args:
        obj: what to save.
        path: the final file name.
        then: called with ``path`` once the file carries its name (e.g. update_latest).
        background: return once ``obj`` is serialized; fsync, rename and ``then`` run
            in a background thread (in order with other saves). Failures there are
            raised by the next :func:`wait_for_saves`.

    Raises:
        CheckpointWriteError: the file could not be written (a full disk says so).
    """
    wait_for_saves()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # Saved by name: torch's own file writer, ~2x faster than through a Python handle.
        torch.save(obj, tmp_name)
    except (OSError, RuntimeError) as err:  # torch's writer raises RuntimeError on ENOSPC
        _unlink_quietly(tmp_name)
        raise _write_error(path, err) from err
    except BaseException:
        _unlink_quietly(tmp_name)
        raise
    if not background:
        _finish(tmp_name, path, then)
        return path
    global _finisher
    if _finisher is None:
        _finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rt3d-ckpt")
    _pending.append(_finisher.submit(_finish, tmp_name, path, then))
    return path


def wait_for_saves() -> None:
    """Block until every background save is on disk under its name.

    Raises:
        OSError: (or whatever the background step raised) for the first failed save.
    """
    while _pending:
        _pending.pop(0).result()


def _finish(tmp_name: str, path: Path, then: Callable[[Path], Any] | None) -> None:
    try:
        fd = os.open(tmp_name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except OSError as err:
        _unlink_quietly(tmp_name)
        raise _write_error(path, err) from err
    except BaseException:
        _unlink_quietly(tmp_name)
        raise
    # No fsync of the folder: after a power loss the rename may be lost, which leaves
    # the previous, complete checkpoint in place; the file's own fsync above is what
    # keeps a half-written file from ever carrying the final name.
    if then is not None:
        try:
            then(path)
        except OSError as err:  # the new file is complete; latest.pth still names the old one
            raise _write_error(Path(path.parent, LATEST), err) from err


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


def update_latest(
    target: str | os.PathLike[str], latest: str | os.PathLike[str] | None = None
) -> Path:
    """Point ``latest.pth`` (beside ``target`` unless given) at ``target``, atomically.

    A relative symlink is created under a temporary name and renamed over the old link;
    where symlinks are not allowed, the file is copied to a temporary name and renamed.
    """
    target = Path(target)
    latest = target.parent / LATEST if latest is None else Path(latest)
    tmp = latest.parent / f".{latest.name}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        rel = os.path.relpath(target, latest.parent)
        os.symlink(rel, tmp)
    except (OSError, NotImplementedError):
        shutil.copyfile(target, tmp)
    os.replace(tmp, latest)
    return latest


def load_checkpoint_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Returns:
        The checkpoint dict; a bare state dict is wrapped as ``{'state_dict': ...}``.

    Raises:
        ConfigError: the file is missing, or holds something other than tensors and
            plain containers (a checkpoint written by other code that pickled objects).
    """
    wait_for_saves()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "checkpoint file not found", expected="an existing .pth file", given=str(path)
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            "the checkpoint holds pickled objects and is not loaded (weights_only=True)",
            given=str(path),
            hint="re-save it with only tensors and plain containers "
            f"(torch.load said: {str(err).splitlines()[0]})",
        ) from err
    except (RuntimeError, EOFError) as err:
        raise ConfigError(f"the checkpoint is unreadable: {err}", given=str(path)) from err
    if not isinstance(ckpt, dict):
        raise ConfigError("a checkpoint must hold a dict", given=str(path))
    if "state_dict" not in ckpt:
        ckpt = {"state_dict": ckpt, "meta": {}}
    return ckpt


_NUMBERED = re.compile(r"^(epoch|iter)_(\d+)\.pth$")


def find_latest_checkpoint(work_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint auto-resume picks in ``work_dir``.

    ``latest.pth`` when it exists and resolves to a file; else the ``epoch_N.pth`` or
    ``iter_N.pth`` with the largest N; else None.
    """
    wait_for_saves()
    work_dir = Path(work_dir)
    latest = work_dir / LATEST
    if latest.is_file():
        return latest
    best: tuple[int, Path] | None = None
    if work_dir.is_dir():
        for entry in work_dir.iterdir():
            match = _NUMBERED.match(entry.name)
            if match and entry.is_file():
                number = int(match.group(2))
                if best is None or number > best[0]:
                    best = (number, entry)
    return None if best is None else best[1]
