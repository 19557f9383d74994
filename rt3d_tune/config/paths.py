"""Paths that come from the command line, checked before anything is written or started.

A run name is one folder name, never a path: ``--name ../x`` or ``--name /tmp/x`` would
put the run outside ``--output``. An output folder must be a folder this process can
write in; the check creates (and removes) a file there, because permission bits do not
tell the truth for root, read-only mounts or network file systems.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rt3d_tune.errors import ConfigError

__all__ = ["check_file_name", "check_run_name", "check_writable_folder"]

_NAME_BYTES = 255  # the longest file name most file systems take


def check_run_name(name: str, key_path: str = "--name") -> str:
    """``name`` when it is one folder name (no separator, not '.' or '..', not too long).

    Raises:
        ConfigError: anything that would make a path of more than one component.
    """
    seps = [sep for sep in (os.sep, os.altsep, "/") if sep]
    problem = None
    if not name or name.strip() != name:
        problem = "is empty or starts or ends with a blank"
    elif name in (".", ".."):
        problem = f"{name!r} is not a folder name of its own"
    elif any(sep in name for sep in seps):
        problem = "holds a path separator"
    elif "\0" in name:
        problem = "holds a NUL character"
    elif len(name.encode("utf-8", "surrogateescape")) > _NAME_BYTES:
        problem = f"is longer than {_NAME_BYTES} bytes"
    if problem is not None:
        raise ConfigError(
            f"a run name is one folder name; this one {problem}", key_path=key_path,
            expected="a name such as quickstart-lr (no '/', not '.' or '..')", given=name,
            hint="choose where runs go with --output and name the run with --name",
        )
    return name


def check_file_name(name: str, key_path: str) -> str:
    """``name`` when it names a file in a folder, not a path out of it (a filename template).

    Raises:
        ConfigError: a separator, '.' or '..', or an empty name.
    """
    if not name or name in (".", "..") or any(sep and sep in name
                                              for sep in (os.sep, os.altsep, "/", "\0")):
        raise ConfigError("must be a file name, not a path", key_path=key_path,
                          expected="a name such as epoch_{}.pth", given=name,
                          hint="choose the folder with out_dir")
    return name


def check_writable_folder(path: str | os.PathLike[str], key_path: str, *,
                          parents: bool = False) -> Path:
    """Check that ``path`` is (or can be created as) a folder this process can write in.

    Args:
        path: the folder.
        key_path: the argument or config key errors name (``--output``, ``work_dir``).
        parents: missing folders above ``path`` are created too (a work dir, as mmcv
            does); otherwise the parent must exist, since a missing one usually is a typo.

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: naming the folder and why: missing parent, not a folder, not writable.
    """
    folder = Path(path)
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder", key_path=key_path, given=str(path),
                              hint="name a folder (it is created when missing)")
        target = folder
    else:
        target = folder.absolute().parent
        while parents and not target.exists() and target != target.parent:
            target = target.parent
        if not target.exists():
            raise ConfigError(f"the folder {target} does not exist", key_path=key_path,
                              given=str(path), hint=f"create it first (mkdir -p {target}), "
                              "or check the spelling")
        if not target.is_dir():
            raise ConfigError(f"{target} is not a folder", key_path=key_path, given=str(path),
                              hint="name a folder inside an existing folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".rt3d-write-check-", dir=target)
    except OSError as err:
        raise ConfigError(f"cannot write in {target}: {err.strerror or err}", key_path=key_path,
                          given=str(path), hint="choose a folder you can write in") from None
    os.close(fd)
    os.unlink(probe)
    return folder
