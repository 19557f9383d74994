"""Where a run lives: a local folder, or a URI in storage every node of a cluster reaches.

A run's storage is a folder on this machine's disk (today's run directory, also an NFS
mount) or a URI that pyarrow's filesystems open: ``s3://bucket/prefix``, ``gs://...``,
``abfs://...``, ``hdfs://...``. S3-compatible servers (MinIO, Ceph) are reached through
the standard variables: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for the endpoint,
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or the usual credential files) for the
keys, ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` for the region.

:class:`Storage` is the one way the package reads and writes there: whole files
(written atomically on a local disk), and folders copied up or down file by file, only
what changed since the last copy. Every failure is an ``OSError``; :func:`check_storage`
turns one into a ``ConfigError`` naming the URI and the filesystem's own reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = ["Storage", "check_storage", "parse_storage"]

# S3 requests: a dead endpoint fails in seconds, not after the SDK's minutes of retries.
S3_CONNECT_TIMEOUT_S = 5.0
S3_REQUEST_TIMEOUT_S = 60.0
S3_ATTEMPTS = 3
_LOCAL_SCHEMES = ("", "file")


def _split(uri: str) -> tuple[str, str]:
    """(scheme, the rest) of ``uri``; a plain path has the scheme ''."""
    if "://" not in uri:
        return "", uri
    scheme, rest = uri.split("://", 1)
    return scheme.lower(), rest


def parse_storage(text: str, key_path: str = "--storage") -> str:
    """``text`` as a storage URI: a URI as given (no trailing '/'), a local path made
    absolute (``file://`` dropped).

    Raises:
        ConfigError: empty, or a URI without a bucket or host.
    """
    text = str(text).strip()
    scheme, rest = _split(text)
    if not text or (scheme and not rest.strip("/")):
        raise ConfigError("names no storage", key_path=key_path, given=text,
                          expected="a folder, or a URI such as s3://bucket/prefix",
                          hint="leave it out to keep runs in --output on this machine")
    if scheme in _LOCAL_SCHEMES:
        return str(Path(rest).expanduser().absolute())
    return f"{scheme}://{rest.rstrip('/')}"


def _s3_filesystem() -> Any:
    """An S3 filesystem configured from the standard AWS variables, with bounded retries."""
    from pyarrow import fs

    options: dict[str, Any] = {
        "connect_timeout": S3_CONNECT_TIMEOUT_S,
        "request_timeout": S3_REQUEST_TIMEOUT_S,
        "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_override"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return fs.S3FileSystem(**options)


@functools.lru_cache(maxsize=8)
def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a parsed storage URI, once per process."""
    from pyarrow import fs

    scheme, rest = _split(uri)
    if scheme in _LOCAL_SCHEMES:
        return fs.LocalFileSystem(), uri
    if scheme in ("s3", "s3a"):
        return _s3_filesystem(), rest
    return fs.FileSystem.from_uri(uri)


@dataclass(frozen=True)
class Storage:
    """A folder in a run's storage (``uri`` as :func:`parse_storage` returns it)."""

    uri: str

    @property
    def remote(self) -> bool:
        """Whether this is an object store or other URI rather than a local path."""
        return _split(self.uri)[0] not in _LOCAL_SCHEMES

    @property
    def name(self) -> str:
        return posixpath.basename(_split(self.uri)[1].rstrip("/"))

    def child(self, *parts: str) -> Storage:
        return Storage(posixpath.join(self.uri, *parts))

    def filesystem(self) -> tuple[Any, str]:
        """(pyarrow filesystem, this folder's path in it): what Tune's storage takes."""
        return _filesystem(self.uri)

    def _path(self, rel: str = "") -> str:
        return posixpath.join(self.filesystem()[1], rel) if rel else self.filesystem()[1]

    def exists(self, rel: str = "") -> bool:
        from pyarrow import fs

        return self.filesystem()[0].get_file_info(self._path(rel)).type != fs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes:
        with self.filesystem()[0].open_input_stream(self._path(rel)) as stream:
            return stream.read()

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole file: an object store puts it at once; a local disk writes a
        temporary file beside it and renames it over."""
        filesystem, _ = self.filesystem()
        path = self._path(rel)
        filesystem.create_dir(posixpath.dirname(path), recursive=True)
        if self.remote:
            with filesystem.open_output_stream(path) as stream:
                stream.write(data)
            return
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def delete(self, rel: str) -> None:
        """Delete one file; a missing one is no error."""
        with contextlib.suppress(FileNotFoundError):
            self.filesystem()[0].delete_file(self._path(rel))

    def remove(self) -> None:
        """Delete this folder and everything below it; a missing one is no error."""
        with contextlib.suppress(FileNotFoundError):
            self.filesystem()[0].delete_dir(self._path())

    def files(self, rel: str = "") -> dict[str, int]:
        """Every file below ``rel``, by its path relative to ``rel``, with its size."""
        from pyarrow import fs

        filesystem, _ = self.filesystem()
        base = self._path(rel).rstrip("/")
        selector = fs.FileSelector(base, recursive=True, allow_not_found=True)
        return {info.path[len(base) + 1:]: info.size
                for info in filesystem.get_file_info(selector) if info.type == fs.FileType.File}

    def upload(self, local: str | os.PathLike[str], rel: str = "", *,
               keep: Callable[[str], bool] = lambda _: True,
               seen: dict[str, tuple[int, float]] | None = None) -> list[str]:
        """Copy the files below the local folder ``local`` to ``rel`` here.

        Args:
            keep: which files (by path relative to ``local``) to copy.
            seen: (size, mtime) of each file at its last upload; files unchanged since
                are skipped, and the dict is updated.

        Returns:
            The relative paths copied.
        """
        from pyarrow import fs

        root = Path(local)
        if not root.is_dir():
            return []
        filesystem, _ = self.filesystem()
        copied = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = path.relative_to(root).as_posix()
            if not keep(name):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed since the listing (a rotated checkpoint)
                continue
            stamp = (stat.st_size, stat.st_mtime)
            if seen is not None and seen.get(name) == stamp:
                continue
            target = self._path(posixpath.join(rel, name) if rel else name)
            if self.remote:
                filesystem.create_dir(posixpath.dirname(target), recursive=True)
                fs.copy_files(str(path), target, source_filesystem=fs.LocalFileSystem(),
                              destination_filesystem=filesystem)
            else:
                self.write_bytes(posixpath.join(rel, name) if rel else name, path.read_bytes())
            if seen is not None:
                seen[name] = stamp
            copied.append(name)
        return copied

    def download(self, local: str | os.PathLike[str], rel: str = "", *,
                 keep: Callable[[str], bool] = lambda _: True) -> list[str]:
        """Copy the files below ``rel`` here into the local folder ``local`` (each file
        written whole, then renamed into place)."""
        root = Path(local)
        copied = []
        for name in sorted(self.files(rel)):
            if not keep(name):
                continue
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            tmp.write_bytes(self.read_bytes(posixpath.join(rel, name) if rel else name))
            os.replace(tmp, target)
            copied.append(name)
        return copied


def skip_parts(*folders: str, suffixes: Iterable[str] = (),
               files: Iterable[str] = ()) -> Callable[[str], bool]:
    """A ``keep`` filter that leaves out the given top-level folders, file suffixes and
    top-level files."""
    suffixes, files = tuple(suffixes), frozenset(files)

    def keep(name: str) -> bool:
        return (name.split("/", 1)[0] not in folders and not name.endswith(suffixes)
                and name not in files)

    return keep


_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


def _reason(err: BaseException, scheme: str) -> str:
    text = str(err).strip() or type(err).__name__
    if scheme in ("s3", "s3a") and not any(os.environ.get(v) for v in _CREDENTIAL_VARIABLES) \
            and not Path("~/.aws/credentials").expanduser().is_file():
        text += " (no credentials were found: no AWS_ACCESS_KEY_ID, no ~/.aws/credentials)"
    return text


def check_storage(uri: str, key_path: str = "--storage") -> Storage:
    """The storage at ``uri``, after writing, reading back and deleting a small file there.

    Raises:
        ConfigError: the URI names no filesystem pyarrow opens, or the file cannot be
            written or read (no bucket, no credentials, an unreachable endpoint), with
            the filesystem's own reason.
    """
    storage = Storage(parse_storage(uri, key_path))
    probe = f".rt3d-write-check-{uuid.uuid4().hex[:12]}"
    try:
        storage.write_bytes(probe, b"rt3d-tune")
        if storage.read_bytes(probe) != b"rt3d-tune":
            raise OSError("a file written there read back different")
        storage.delete(probe)
    except (OSError, ValueError, ImportError) as err:
        hint = ("check the bucket's name, the credentials (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY) and, for MinIO or Ceph, AWS_ENDPOINT_URL"
                if _split(storage.uri)[0] in ("s3", "s3a")
                else "check that the location exists and that this machine can write there")
        reason = _reason(err, _split(storage.uri)[0])
        raise ConfigError(f"cannot write to the storage {storage.uri}: {reason}",
                          key_path=key_path, given=uri, hint=hint) from None
    return storage
