"""One driver per run directory: ``<run>/run.lock``, held with ``flock`` while it works.

Two ``rt3d-tune search --name X`` on the same output would append to the same
``results.jsonl`` and restore the same Tune state. The first holds an exclusive
``flock`` on ``run.lock`` (which names its pid and host); the second is refused at once,
naming the holder. The kernel drops a ``flock`` when its process dies, however it dies
(SIGKILL included), so a killed driver never leaves a stale lock: the file stays, the
lock does not. The descriptor is not inherited by the processes the driver starts
(Python opens files close-on-exec), so Ray's processes outliving a driver do not hold it.

On a system without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

from rt3d_tune.errors import ConfigError

__all__ = ["LOCK_FILE", "RunLock", "lock_holder", "refuse_if_held"]

LOCK_FILE = "run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _holder_text(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 200).decode("utf-8", "replace").split()
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "another process"


def lock_holder(run_dir: str | os.PathLike[str]) -> str | None:
    """Who holds the run directory's lock ("pid 123 on host"), or None when nobody does."""
    path = Path(run_dir, LOCK_FILE)
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_text(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _held(run_dir: Path, holder: str, key_path: str) -> ConfigError:
    return ConfigError(
        f"another rt3d-tune search ({holder}) is running in this run directory",
        key_path=key_path, given=str(run_dir),
        hint="wait for it to end, or choose another --name; a driver that was killed "
        "holds no lock",
    )


def refuse_if_held(run_dir: str | os.PathLike[str], key_path: str = "--name") -> None:
    """Raise the error :meth:`RunLock.acquire` would raise, without taking the lock.

    Raises:
        ConfigError: a live process holds the run directory's lock.
    """
    holder = lock_holder(run_dir)
    if holder is not None:
        raise _held(Path(run_dir), holder, key_path)


class RunLock:
    """Holds ``<run_dir>/run.lock`` from ``acquire`` (or ``with``) to ``release``.

    Args:
        run_dir: the run directory (created when missing).
        key_path: the argument the error names (``--name``).

    Raises:
        ConfigError: (from ``acquire``) another live process holds the lock, or the
            lock file cannot be written.
    """

    def __init__(self, run_dir: str | os.PathLike[str], key_path: str = "--name") -> None:
        self.run_dir = Path(run_dir)
        self.key_path = key_path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ConfigError naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return
        path = self.run_dir / LOCK_FILE
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(f"cannot write the run lock {path}: {err.strerror or err}",
                              key_path=self.key_path, given=str(self.run_dir)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(fd)
            os.close(fd)
            raise _held(self.run_dir, holder, self.key_path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the file stays, emptied: nobody holds it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
