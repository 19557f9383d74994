"""``custom_imports``: the modules a config imports so their registrations run."""

from __future__ import annotations

import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rt3d_tune.errors import ConfigError

__all__ = ["import_custom_modules"]


@contextlib.contextmanager
def _extra_sys_path(dirs: list[Path]) -> Iterator[None]:
    added = [str(d) for d in dirs if str(d) not in sys.path]
    sys.path.extend(added)
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def import_custom_modules(custom_imports: Any, search_dirs: Sequence[Path] = (), *,
                          file: str | None = None) -> list[str]:
    """Import ``custom_imports = dict(imports=[...] or 'mod', allow_failed_imports=False)``.

    A module is looked up on ``sys.path`` first, then in ``search_dirs`` (the folders of
    the config files), so ``my_hooks`` finds ``my_hooks.py`` next to the config.

    Returns:
        the modules imported.

    Raises:
        ConfigError: a malformed ``custom_imports`` (a name that is a path or a file name
            rather than a dotted module name included), or a failed import without
            ``allow_failed_imports`` (then a warning is issued instead).
    """
    key = "custom_imports"
    allowed = {"imports", "allow_failed_imports"}
    if not isinstance(custom_imports, Mapping) or set(custom_imports) - allowed:
        raise ConfigError("custom_imports has the wrong form", key_path=key, file=file,
                          expected="dict(imports=['pkg.mod', ...], allow_failed_imports=False)",
                          given=custom_imports)
    modules = custom_imports.get("imports", [])
    modules = [modules] if isinstance(modules, str) else modules
    if not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) and m for m in modules):
        raise ConfigError("custom_imports.imports must name modules", key_path=f"{key}.imports",
                          file=file, expected="a module name or a list of them", given=modules)
    for i, name in enumerate(modules):
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(
                "custom_imports names modules, not files or paths",
                key_path=f"{key}.imports.{i}", file=file,
                expected="a dotted module name such as my_project.hooks", given=name,
                hint="put the module next to the config (or on PYTHONPATH) and name it "
                "without '.py' or '/'",
            )
    allow_failed = custom_imports.get("allow_failed_imports", False)
    if not isinstance(allow_failed, bool):
        raise ConfigError("allow_failed_imports must be true or false", file=file,
                          key_path=f"{key}.allow_failed_imports", expected="a bool",
                          given=allow_failed)
    imported = []
    with _extra_sys_path(list(search_dirs)):
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as err:
                reason = f"cannot import custom module {name!r}: {type(err).__name__}: {err}"
                if not allow_failed:
                    raise ConfigError(
                        reason, key_path=f"{key}.imports", file=file,
                        hint="name a module on sys.path or a module path relative to the "
                        "config's folder ('my_hooks' for my_hooks.py next to the config)",
                    ) from err
                warnings.warn(f"{reason} (skipped: allow_failed_imports=True)", UserWarning,
                              stacklevel=2)
                continue
            imported.append(name)
    return imported
