"""One driver per run directory: ``<run>/run.lock``, held with ``flock`` while it works.

Two ``rt3d-tune search --name X`` on the same output would append to the same
``results.jsonl`` and restore the same Tune state. The first holds an exclusive
``flock`` on ``run.lock`` (which names its pid and host); the second is refused at once,
naming the holder. The kernel drops a ``flock`` when its process dies, however it dies
(SIGKILL included), so a killed driver never leaves a stale lock: the file stays, the
lock does not. The descriptor is not inherited by the processes the driver starts
(Python opens files close-on-exec), so Ray's processes outliving a driver do not hold it.

On a system without ``fcntl`` (Windows) no lock is taken.

A run kept in a URI (``--storage s3://...``) can be continued from any machine, so its
lock lives in the storage too (:class:`StoredRunLock`): an object ``run.lock`` naming
its holder (host, pid, a token), rewritten every ``HEARTBEAT_S`` seconds while it
works. An object store has no flock, so a killed driver does leave its object; the lock
counts as gone once its heartbeat is ``STALE_S`` old, or at once when its holder is a
process of this machine that no longer runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = ["LOCK_FILE", "RunLock", "StoredRunLock", "lock_holder", "refuse_if_held"]

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


HEARTBEAT_S = 20.0  # how often a stored lock's holder rewrites it
STALE_S = 90.0  # a stored lock not rewritten for this long belongs to a dead driver
_SETTLE_S = 1.0  # two drivers writing the lock at once: the last write wins, both read it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoredRunLock:
    """One driver per run kept in a URI: ``run.lock`` in the run's storage.

    Args:
        storage: the run's folder in the storage (``rt3d_tune.storage.Storage``).
        key_path: the argument the error names.
        stale_s: how old a heartbeat may be before the lock counts as gone.

    Raises:
        ConfigError: (from ``acquire``) a live driver holds the lock.
    """

    def __init__(self, storage: Any, key_path: str = "--name", *,
                 stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.storage = storage
        self.key_path = key_path
        self.stale_s = stale_s
        self.heartbeat_s = heartbeat_s
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.storage.read_bytes(LOCK_FILE))
        except (OSError, ValueError):
            return None

    def _write(self) -> None:
        self.storage.write_bytes(LOCK_FILE, json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
            "time": time.time()}).encode())

    def holder(self) -> str | None:
        """Who holds the lock ("pid 123 on host, 4 s ago"), or None when nobody does."""
        lock = self._read()
        if not lock or lock.get("token") == self.token:
            return None
        age = time.time() - float(lock.get("time", 0))
        if age > self.stale_s:
            return None
        if lock.get("host") == socket.gethostname() and not _pid_alive(int(lock.get("pid", 0))):
            return None
        return f"pid {lock.get('pid')} on {lock.get('host')}, its last sign {age:.0f} s ago"

    def _refuse(self, holder: str) -> ConfigError:
        return ConfigError(
            f"another rt3d-tune search ({holder}) is running on this stored run",
            key_path=self.key_path, given=self.storage.uri,
            hint=f"wait for it to end, or choose another --name; a driver that was killed "
            f"elsewhere gives up its lock {self.stale_s:.0f} s after its last sign",
        )

    def acquire(self) -> None:
        holder = self.holder()
        if holder is not None:
            raise self._refuse(holder)
        self._write()
        time.sleep(_SETTLE_S)
        lock = self._read()
        if not lock or lock.get("token") != self.token:
            raise self._refuse(self.holder() or "another driver, at the same moment")
        self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                      name="rt3d-run-lock")
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):  # a passing fault: the next beat tries again
                self._write()

    def release(self) -> None:
        self._stop.set()
        if self._beat is None:
            return
        self._beat.join(timeout=5)
        self._beat = None
        lock = self._read()
        if lock and lock.get("token") == self.token:
            with contextlib.suppress(OSError):  # else it goes stale on its own
                self.storage.delete(LOCK_FILE)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
