"""The one error type for user mistakes.

Every problem a user can fix by editing a config, a space file or a command line is
raised as :class:`ConfigError`. It carries where the problem is (file and dotted key
path), what was expected, what was given, and a hint. The CLI prints it as one message
and exits with status 2. :class:`RecordingError` (the run directory stopped taking
writes) is printed with the command that resumes the search, status 1; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "DivergenceError", "RecordingError"]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(ValueError):
    """A user-fixable problem in a config, a space file or a command line.

    Args:
        message: what is wrong, in one sentence.
        key_path: dotted key path of the offending value (``optimizer.lr``,
            ``space.lr_config.choice.1.warmup_iters``).
        file: the file the value came from, when known.
        expected: what would have been accepted.
        given: the value that was given (shown with ``repr``).
        hint: how to fix it.
    """

    _MISSING = object()

    def __init__(
        self,
        message: str,
        *,
        key_path: str | None = None,
        file: str | None = None,
        expected: str | None = None,
        given: Any = _MISSING,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.key_path = key_path
        self.file = None if file is None else str(file)
        self.expected = expected
        self.has_given = given is not ConfigError._MISSING
        self.given = given if self.has_given else None
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        """The one-paragraph message the CLI prints."""
        where = ""
        if self.file:
            where += f"{self.file}: "
        if self.key_path:
            where += f"{self.key_path}: "
        parts = [where + self.message]
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        if self.has_given:
            parts.append(f"got {_short(self.given)}")
        text = "; ".join(parts)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def with_context(
        self, *, key_path: str | None = None, file: str | None = None, hint: str | None = None
    ) -> ConfigError:
        """Return a copy with a key-path prefix and/or file filled in (the inner path is
        kept), and ``hint`` in place of the hint when given."""
        path = self.key_path
        if key_path:
            path = f"{key_path}.{path}" if path else key_path
        return ConfigError(
            self.message,
            key_path=path,
            file=self.file or file,
            expected=self.expected,
            given=self.given if self.has_given else ConfigError._MISSING,
            hint=self.hint if hint is None else hint,
        )


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss; the trial is recorded as diverged.

    Args:
        iteration: 0-based global train iteration where it happened.
        epoch: 0-based epoch.
        values: the non-finite log values (name -> value).
    """

    def __init__(self, iteration: int, epoch: int, values: dict[str, float]) -> None:
        self.iteration = iteration
        self.epoch = epoch
        self.values = dict(values)
        shown = ", ".join(f"{k}={v}" for k, v in self.values.items())
        super().__init__(f"training diverged at epoch {epoch}, iteration {iteration}: {shown}")


class RecordingError(OSError):
    """The search could not record a trial event in its run directory (a full disk, a
    folder made read-only): the search stops as a killed driver would, keeping every
    event written so far, and ``--resume`` continues it once the directory is writable.

    Args:
        path: the file the event was for (``results.jsonl`` or ``confirm.jsonl``).
        cause: the OSError the write raised.
    """

    def __init__(self, path: str | Path, cause: OSError) -> None:
        super().__init__(cause.errno, f"cannot record the search's results in {path}: "
                         f"{cause.strerror or cause}")
        self.path = str(path)
        self.cause = cause

    def __str__(self) -> str:
        return self.strerror or super().__str__()
