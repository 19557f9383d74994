"""Where a trial writes its files (config.py, logs, its own checkpoints, rank errors), and
how they reach the run's storage.

A run kept on a local or shared disk: the trial writes straight into
``<run dir>/trials/<trial id>/``, as it always has. A run kept in a URI (``--storage
s3://...``): no node can assume the driver's paths, so the trial writes into a scratch
folder on its own node and copies what changed to ``<storage>/trials/<trial id>/``
before each report to Tune (so what a report says is already stored when Tune acts on
it: ASHA may stop the trial right after), and when the trial ends or fails. A trial
retried on another node first takes back what its earlier attempt stored, so its log
goes on where it stopped.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rt3d_tune.storage import Storage

__all__ = ["TrialFolder", "scratch_root"]

_log = logging.getLogger(__name__)


def scratch_root() -> Path:
    """The node-local folder under which trials of runs kept in a URI write."""
    return Path(tempfile.gettempdir(), "rt3d-tune")


@dataclass
class TrialFolder:
    """A trial's work dir (``path``) and, for a run kept in a URI, its stored copy.

    Build it with :meth:`open`.
    """

    path: Path
    stored: Storage | None = None
    writer: bool = True  # rank 0 writes and uploads; other ranks write nothing
    _seen: dict[str, tuple[int, float]] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: str, storage: str | None, trial_id: str, rank: int = 0) -> TrialFolder:
        """The folder of ``trial_id``; rank 0 creates it (and restores a stored copy).

        Args:
            run_dir: the driver's run directory (where trials write when it is shared).
            storage: the run's URI when the run is kept in one, else None.
        """
        if storage is None:
            folder = cls(Path(run_dir, "trials", trial_id), None, rank == 0)
        else:
            stored = Storage(storage).child("trials", trial_id)
            folder = cls(scratch_root() / Storage(storage).name / trial_id, stored, rank == 0)
        if folder.writer:
            folder.path.mkdir(parents=True, exist_ok=True)
            folder._restore()
        return folder

    def _restore(self) -> None:
        """Take back the files an earlier attempt stored that this node does not have."""
        if self.stored is None:
            return
        have = {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}
        self.stored.download(self.path, keep=lambda name: name not in have)
        for p in self.path.rglob("*"):
            if p.is_file():
                stat = p.stat()
                self._seen[p.relative_to(self.path).as_posix()] = (stat.st_size, stat.st_mtime)

    def persist(self) -> None:
        """Copy what changed to the stored copy (nothing to do for a shared run dir).

        Raises:
            OSError: the storage refused a file: the trial fails and is retried from its
                last checkpoint, rather than going on with files that are not kept.
        """
        if self.stored is None or not self.writer:
            return
        self.stored.upload(self.path, seen=self._seen)
        # What the trial removed since (CheckpointHook's max_keep_ckpts) goes too.
        for name in [name for name in self._seen if not (self.path / name).exists()]:
            self.stored.delete(name)
            del self._seen[name]

    def close(self) -> None:
        """At a trial's end or failure: store what changed, then remove the scratch
        folder (a retry takes its files back from the storage). A storage error is
        logged, not raised over the trial's own outcome, and the scratch copy stays."""
        try:
            self.persist()
        except OSError as err:
            _log.warning("could not store the trial's files in %s: %s", self.stored, err)
            return
        if self.stored is not None and self.writer:
            shutil.rmtree(self.path, ignore_errors=True)

    def reporting(self, report: Callable[..., Any]) -> Callable[..., Any]:
        """``report`` that stores the trial's files first."""
        if self.stored is None:
            return report

        def persist_then_report(*args: Any) -> Any:
            self.persist()
            return report(*args)

        return persist_then_report

    def write_text(self, name: str, text: str) -> Path:
        """Write a file into the folder (any rank: a failed rank's error) and store it."""
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / name
        path.write_text(text, encoding="utf-8")
        if self.stored is not None:
            self.stored.write_bytes(name, text.encode("utf-8"))
        return path

    def where(self, name: str) -> str:
        """Where the user finds ``name``: the stored copy when there is one."""
        return self.stored.child(name).uri if self.stored is not None else str(self.path / name)
