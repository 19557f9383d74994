"""Training backends behind one interface (:class:`~rt3d_tune.backends.base.Backend`).

``mmcv`` trains with rt3d-tune's mmcv-style runner (``rt3d_tune.runner``, the default);
``mmengine`` with mmengine's own Runner (OpenMMLab 2.x configs). ``report`` is what both
tell Tune, ``probe`` the cool-down probe core both run. The rest of the package asks
"which backend" once, here:

* :func:`backend_for` -- the backend that reads a config (the first registered one that
  :meth:`~rt3d_tune.backends.base.Backend.detects` it; ``mmcv`` otherwise);
* :func:`backend_named` -- the backend a space file names under ``backend:``;
* :func:`read_config` -- a config file and the backend that reads it;
* :func:`register_backend` -- a third backend, without touching this package.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.backends.base import Backend, TrialRun
from rt3d_tune.backends.mmcv.backend import MmcvBackend
from rt3d_tune.backends.mmengine.backend import MmengineBackend
from rt3d_tune.errors import ConfigError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "TrialRun",
    "backend_for",
    "backend_named",
    "read_config",
    "register_backend",
]

DEFAULT_BACKEND = "mmcv"
BACKENDS: dict[str, Backend] = {}
"""Registered backends by name, in the order they were registered."""


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` (an instance) to :data:`BACKENDS`, replacing one of the same name.

    Raises:
        TypeError: ``backend`` is not a :class:`Backend` instance.
        ValueError: it has no name.
    """
    if not isinstance(backend, Backend):
        raise TypeError(f"a backend is an instance of rt3d_tune.backends.Backend, "
                        f"got {backend!r}")
    if not getattr(backend, "name", ""):
        raise ValueError(f"{type(backend).__name__} needs a name (its class attribute 'name')")
    BACKENDS[backend.name] = backend
    return backend


def backend_named(name: Any, key_path: str = "backend") -> Backend:
    """The registered backend called ``name``.

    Raises:
        ConfigError: no backend has that name (naming ``key_path``, the known backends
            and the closest one).
    """
    if isinstance(name, str) and name in BACKENDS:
        return BACKENDS[name]
    close = difflib.get_close_matches(str(name).lower(), list(BACKENDS), n=1, cutoff=0.5)
    raise ConfigError(f"unknown backend {name!r}", key_path=key_path,
                      expected="one of " + ", ".join(BACKENDS), given=name,
                      hint=f"did you mean {close[0]!r}?" if close else None)


def backend_for(cfg: Mapping[str, Any]) -> Backend:
    """The backend that reads ``cfg`` (a plain-dict view): the first registered backend
    other than the default that detects it, else ``mmcv``."""
    for name, backend in BACKENDS.items():
        if name != DEFAULT_BACKEND and backend.detects(cfg):
            return backend
    return BACKENDS[DEFAULT_BACKEND]


def read_config(path: str | Path, name: str | None = None,
                options: Mapping[str, Any] | None = None, key_path: str = "base", *,
                keep_first_error: bool = False) -> tuple[Backend, Any]:
    """``(backend, config)`` of the file at ``path``: read by the backend ``name`` when
    given, else by the backend that detects it, told before any ``custom_imports`` of
    the file run (a file rt3d-tune's ``Config`` refuses goes to a backend that
    :meth:`~Backend.reads_alone` it).

    Args:
        path: the config file.
        name: the backend that reads it (a space's ``backend:``); None: tell it.
        options: dotted overrides merged into it (``--cfg-options``).
        key_path: where errors point.
        keep_first_error: when rt3d-tune's ``Config`` refused the file and the backend
            that reads it alone fails too (or reads no config of its own), raise the
            first refusal rather than that backend's.

    Raises:
        ConfigError: the file does not load; an unknown ``name``.
    """
    from rt3d_tune.config import Config

    if name is not None:
        backend = backend_named(name)
        return backend, backend.load_config(path, options, key_path)
    try:
        plain = Config.fromfile(str(path), import_custom_modules=False)
    except ConfigError as first:
        reader = next((b for b in BACKENDS.values() if b.reads_alone(path)), None)
        if reader is None:
            raise
        if not keep_first_error:
            return reader, reader.load_config(path, options, key_path)
        try:
            cfg = reader.load_config(path, options, key_path)
        except ConfigError:
            raise first from None
        if not reader.detects(cfg.to_dict()):
            raise first from None
        return reader, cfg
    backend = backend_for(plain.to_dict())
    return backend, backend.load_config(path, options, key_path, loaded=plain)


for _builtin in (MmcvBackend(), MmengineBackend()):
    register_backend(_builtin)
