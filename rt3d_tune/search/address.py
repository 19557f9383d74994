"""Is a Ray cluster there? A quick probe of ``--address`` before ``ray.init`` is handed it.

``ray.init`` at an address where no Ray runs retries for minutes. Before that, the
search opens a TCP connection to the address's port with a timeout and speaks the
first words of gRPC (HTTP/2), which the GCS (``host:port``) and the Ray Client server
(``ray://host:port``) both speak: a refused or silent port, or one where another kind
of server answers, is refused at once, naming the address and what to check.

``auto`` is resolved as Ray resolves it: ``RAY_ADDRESS``, else the address file of the
last ``ray start`` on this machine (``<RAY_TMPDIR or TMPDIR or /tmp>/ray/
ray_current_cluster``), else a raylet running here. Imports neither Ray nor torch.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rt3d_tune.errors import ConfigError

__all__ = ["ProbeTarget", "check_ray_address", "resolve_address"]

CONNECT_TIMEOUT_S = 5.0  # name lookup and TCP connect, together
ANSWER_TIMEOUT_S = 5.0  # the server's first HTTP/2 frame
# The client connection preface of HTTP/2 and an empty SETTINGS frame (RFC 9113, 3.4).
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 0x4
_HINT = ("is `ray start --head` running there? Check the port (the head's GCS port, 6379 by "
         "default; the Ray Client port, 10001 by default, for ray://) and RAY_ADDRESS; "
         "without --address the search starts its own local Ray")


@dataclass(frozen=True)
class ProbeTarget:
    """Where the probe connects: the address as given, where it came from, host and port."""

    address: str
    source: str  # the argument or variable it came from, for errors
    host: str
    port: int


def _address_file() -> Path:
    tmp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(tmp, "ray", "ray_current_cluster")


def _local_raylet_gcs() -> str | None:
    """The ``--gcs-address`` of a raylet running on this machine (Ray's last resort for auto)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"raylet"):
            continue
        for arg in args:
            if arg.startswith(b"--gcs-address="):
                return arg.split(b"=", 1)[1].decode()
    return None


def resolve_address(address: str | None) -> ProbeTarget | None:
    """The cluster address the search will hand ``ray.init``, parsed; None when there is
    nothing to probe (an embedded local Ray, or a scheme other than ray://).

    Raises:
        ConfigError: ``auto`` finds no cluster, or the address is not ``host:port``.
    """
    source = "--address"
    if address is None:
        address, source = os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if address is None or address == "local":
        return None
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS")
        file = _address_file()
        if env and env != "auto":
            address, source = env, "RAY_ADDRESS (for --address auto)"
        elif file.is_file() and file.read_text(encoding="utf-8", errors="replace").strip():
            address = file.read_text(encoding="utf-8", errors="replace").strip()
            source = f"{file} (for --address auto)"
        else:
            found = _local_raylet_gcs()
            if found is None:
                raise ConfigError(
                    "no running Ray cluster found: RAY_ADDRESS is not set, no `ray start` "
                    f"left its address in {file}, and no raylet runs on this machine",
                    key_path="--address", given="auto",
                    hint="start one with `ray start --head`, pass --address host:port, "
                    "or leave --address out for a local Ray",
                )
            address, source = found, "the raylet running here (for --address auto)"
    rest = address
    if "://" in address:
        scheme, rest = address.split("://", 1)
        if scheme != "ray":
            return None  # another Ray client scheme: its own module checks it
    host, sep, port_text = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    port = int(port_text) if port_text.isascii() and port_text.isdigit() and \
        len(port_text) <= 5 else -1
    if not sep or not host or not 0 < port < 65536:
        raise ConfigError("a Ray address is host:port", key_path=source, given=address,
                          expected="auto, host:port or ray://host:port with a port from 1 "
                          "to 65535", hint="e.g. --address 10.0.0.5:6379")
    return ProbeTarget(address, source, host, port)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection, name lookup included, within ``timeout`` seconds (else OSError)."""
    result: list[socket.socket | OSError] = []

    def work() -> None:
        try:
            result.append(socket.create_connection((host, port), timeout=timeout))
        except OSError as err:
            result.append(err)
        except ValueError as err:  # a host name no resolver takes (too long, bad IDNA)
            result.append(OSError(f"bad host name: {err}"))

    # getaddrinfo takes no timeout; a thread bounds it (left to finish on its own).
    thread = threading.Thread(target=work, daemon=True, name="rt3d-ray-probe")
    thread.start()
    thread.join(timeout)
    if not result:
        raise TimeoutError(f"no connection within {timeout:g} s")
    if isinstance(result[0], OSError):
        raise result[0]
    return result[0]


def _first_frame_type(conn: socket.socket, timeout: float) -> int | None:
    """Type of the first HTTP/2 frame the server sends after our preface; None: nothing."""
    conn.settimeout(timeout)
    conn.sendall(_PREFACE)
    header = b""
    deadline = time.monotonic() + timeout
    while len(header) < 9 and time.monotonic() < deadline:
        chunk = conn.recv(9 - len(header))
        if not chunk:
            break
        header += chunk
    return header[3] if len(header) >= 4 else None


def check_ray_address(address: str | None, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                      answer_timeout: float = ANSWER_TIMEOUT_S) -> ProbeTarget | None:
    """Refuse an address where no Ray answers, in at most the two timeouts (seconds).

    Args:
        address: ``--address`` (None: RAY_ADDRESS, else nothing to check).

    Returns:
        What was probed, or None when nothing was (an embedded Ray, another scheme).

    Raises:
        ConfigError: the address is malformed, ``auto`` finds nothing, the port refuses
            or does not answer, or a server that is not gRPC answers there.
    """
    target = resolve_address(address)
    if target is None:
        return None
    where = f"{target.host}:{target.port}"
    try:
        conn = _connect(target.host, target.port, connect_timeout)
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise ConfigError(f"no Ray cluster answers at {target.address} ({where}: {reason})",
                          key_path=target.source, given=target.address, hint=_HINT) from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return target  # a TLS handshake would come first; the TCP answer has to do
        try:
            frame = _first_frame_type(conn, answer_timeout)
        except OSError as err:
            frame, reason = None, err.strerror or str(err) or type(err).__name__
        else:
            reason = "it closed the connection" if frame is None else "it speaks no gRPC"
    if frame != _SETTINGS:
        raise ConfigError(
            f"something listens at {target.address} but it is not Ray ({where}: {reason})",
            key_path=target.source, given=target.address, hint=_HINT)
    return target
