"""A run kept in a URI (``--storage s3://bucket/prefix``): its copy there and the local
working copy a driver, ``export`` or ``report`` works in.

The storage holds everything a run is, under ``<URI>/<name>/``: the files the driver
writes (``run.json``, ``space.yaml``, ``base_config.py``, ``results.jsonl/csv``,
``confirm.jsonl``, ``best/``, ``study.db``, ``report.html`` and its PNGs), each
trial's folder (``trials/<id>/``, stored by the trials themselves, see
``rt3d_tune.trial.folder``) and Tune's own state and checkpoints (``ray/``,
``ray_confirm/``, written by Tune through the same filesystem).

The working copy is an ordinary run directory: the package's readers and writers work
on it unchanged, and these functions copy it up and down.
"""

from __future__ import annotations

from pathlib import Path

from rt3d_tune.results.run_lock import LOCK_FILE
from rt3d_tune.storage import Storage, parse_storage, skip_parts

__all__ = ["TUNE_FOLDERS", "fetch_run", "fetch_trials", "run_location", "upload_run",
           "working_copy"]

# Written into the storage by Tune itself; never copied through the working copy.
TUNE_FOLDERS = ("ray", "ray_confirm")
# Trials' own checkpoints (CheckpointHook's epoch_N.pth): kept in the storage, not
# copied down for an export, which reads configs and logs.
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")
# What the driver writes: all but the trials' folders and Tune's, and the local run
# lock (the stored run has its own, ``StoredRunLock``, under the same name).
_DRIVER_FILES = skip_parts("trials", *TUNE_FOLDERS, files=[LOCK_FILE])


def upload_run(run_dir: str | Path, storage: Storage,
               seen: dict[str, tuple[int, float]] | None = None) -> list[str]:
    """Copy the driver's files of ``run_dir`` (all but trials' folders and Tune's) to
    ``storage``; with ``seen``, only what changed since the last call."""
    return storage.upload(run_dir, keep=_DRIVER_FILES, seen=seen)


def fetch_run(storage: Storage, run_dir: str | Path) -> list[str]:
    """The driver's files of a stored run into ``run_dir`` (to resume or export it)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return storage.download(run_dir, keep=_DRIVER_FILES)


def fetch_trials(storage: Storage, run_dir: str | Path) -> list[str]:
    """Every trial's stored folder (configs, logs, rank errors; not checkpoints) into
    ``run_dir/trials``."""
    return storage.child("trials").download(
        Path(run_dir, "trials"), keep=skip_parts(suffixes=_CHECKPOINT_SUFFIXES))


def run_location(storage: str | None, output: str | Path) -> tuple[Path, Storage | None]:
    """(where run directories go on this machine, the URI runs are kept in or None).

    ``--storage`` as a path (an NFS mount) is where the run directories go, as
    ``--output`` would be; as a URI the runs are kept there, with working copies under
    ``output``.
    """
    if not storage:
        return Path(output), None
    store = Storage(parse_storage(storage))
    if not store.remote:
        return Path(store.uri), None
    return Path(output), store


def working_copy(run: str, output: str | Path = "runs") -> tuple[Path, Storage | None]:
    """(a run directory to read and write, the stored run it mirrors or None).

    ``run`` is a run directory, or the URI of a run kept in storage
    (``s3://bucket/prefix/NAME``): then its files (not Tune's state, not checkpoints)
    are copied into ``<output>/<NAME>``, the working copy that ``export`` and ``report``
    write in; :func:`upload_run` copies what they wrote back.

    Raises:
        ConfigError: a URI with no run in it.
    """
    from rt3d_tune.errors import ConfigError
    from rt3d_tune.results.recorder import RESULTS_JSONL
    from rt3d_tune.storage import check_storage

    if "://" not in run:
        return Path(run), None
    if not Storage(parse_storage(run, "RUN")).remote:  # file://
        return Path(parse_storage(run, "RUN")), None
    store = check_storage(run, "RUN")
    if not store.exists(RESULTS_JSONL):
        raise ConfigError("not a search run: it holds no results.jsonl", key_path="RUN",
                          given=store.uri, hint="name the run's folder: <--storage>/<name>")
    local = Path(output, store.name)
    fetch_run(store, local)
    fetch_trials(store, local)
    return local, store
