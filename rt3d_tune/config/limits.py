"""Bounds on the work a user's input can ask for, and reading a user's file within them.

Every size a config, a space file or a command line sets is bounded here, so that a
typo or a hostile file is answered in about a second with the number it would have
taken, instead of running until it is killed. The bounds are far above what a real
search of a 3D detector uses (a few dozen trials, configs of a few kilobytes, nesting
of ten levels), and each error says which bound was hit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rt3d_tune.errors import ConfigError

__all__ = [
    "MAX_BASE_FILES",
    "MAX_CHOICE_OPTIONS",
    "MAX_EPOCHS",
    "MAX_EXACT_INT",
    "MAX_FILE_BYTES",
    "MAX_INDEX_DIGITS",
    "MAX_ITERS",
    "MAX_NESTING",
    "MAX_SEED",
    "MAX_TRIALS",
    "MAX_WORKERS",
    "MAX_YAML_VALUES",
    "count_text",
    "read_user_file",
]

MAX_FILE_BYTES = 1 << 20  # a config or space file; real ones are a few kilobytes
MAX_NESTING = 50  # levels of mappings and lists in a file or a --cfg-options value
MAX_YAML_VALUES = 200_000  # values of a YAML document once its aliases are expanded
MAX_BASE_FILES = 256  # files one config loads through its _base_ chains
MAX_TRIALS = 10_000  # trials of a search: num_samples, or the grid's Cartesian product
MAX_CHOICE_OPTIONS = 1_000  # options of one choice or grid
MAX_EXACT_INT = 2**53  # int domain bounds: larger integers are not exact as floats
MAX_SEED = 2**32 - 1  # what numpy's and Optuna's seeded generators accept
MAX_EPOCHS = 10_000  # a trial's (or the base config's) epochs
MAX_ITERS = 10_000_000  # a schedule's iterations (validate simulates every one)
MAX_INDEX_DIGITS = 9  # a list index in a key path (workflow.0.1)
MAX_WORKERS = 1_024  # data-parallel ranks of one trial (each one a placement bundle)


def count_text(count: int) -> str:
    """A count for a message: ``12,345``, or ``about 10^40`` when it has many digits."""
    return f"{count:,}" if count < 10**15 else f"about 10^{len(str(count)) - 1}"


def read_user_file(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of a config or space file, refused before reading when it cannot be one.

    Args:
        path: the file.
        what: how to name it in errors ("space file", "config file").

    Raises:
        ConfigError: missing, not a regular file (a folder, a FIFO, a device: reading
            those would block or never end), larger than ``MAX_FILE_BYTES``, unreadable
            or not UTF-8.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", file=str(path)) from None
    except OSError as err:
        raise ConfigError(f"cannot read the {what}: {err.strerror}", file=str(path)) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"the {what} is a folder", file=str(path),
                          expected="a .yaml, .yml, .py or .json file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the {what} is not a regular file (a pipe, a socket or a device)",
                          file=str(path), hint="write it to a file and pass that file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # the size may have changed since stat
    except OSError as err:
        raise ConfigError(f"cannot read the {what}: {err.strerror}", file=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"the {what} is {max(info.st_size, len(data)):,} bytes, more than the "
            f"{MAX_FILE_BYTES:,} a {what} may have", file=str(path),
            hint="configs and space files are a few kilobytes; is this the right file?",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"the {what} is not UTF-8 text: {err}", file=str(path)) from None
