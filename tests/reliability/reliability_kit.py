"""Shared pieces of the reliability tests: a small faulty task, space files, the CLI driver,
and the listening sockets of a process tree (from /proc; psutil is not a dependency)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The shared test helpers live in tests/; subprocess drivers import this module alone.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from space_files import write_space  # noqa: E402, F401  (re-exported for the reliability tests)

REPO = HERE.parents[1]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"

# The `search` command as a user's shell runs it, in its own process.
SEARCH_DRIVER = """
import sys
from rt3d_tune import cli
sys.exit(cli.main(["search"] + sys.argv[1:]))
"""


def write_base(folder: Path, *, max_epochs: int = 3, probe: Path | None = None,
               hold_epoch: int = 0, hold_s: float = 0.0, **model: Any) -> Path:
    """A PointNet config of 4 train iterations per epoch using ``fault_fixtures``.

    The fixture module is copied beside the config so Ray workers import it through
    ``custom_imports`` exactly as a user's module. ``model`` adds FaultyPointNet args.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "fault_fixtures.py", folder / "fault_fixtures.py")
    model_cfg = {"type": "FaultyPointNet", "channels": [16, 32], "head_channels": 32, **model}
    hooks = []
    if probe is not None:
        hooks.append({"type": "TrialProbeHook", "probe_file": str(probe),
                      "hold_epoch": hold_epoch, "hold_s": hold_s, "priority": "LOWEST"})
    text = "\n".join([
        f"_base_ = {str(POINTNET)!r}",
        "custom_imports = dict(imports=['fault_fixtures'])",
        f"model = dict(_delete_=True, **{model_cfg!r})",
        "data = dict(samples_per_gpu=16, train=dict(num_samples=64), val=dict(num_samples=32))",
        "log_config = dict(interval=1)",
        f"custom_hooks = {hooks!r}",
        f"runner = dict(type='EpochBasedRunner', max_epochs={max_epochs})",
        "",
    ])
    path = folder / "fault_base.py"
    path.write_text(text, encoding="utf-8")
    return path


def search_command(space: Path, output: Path, name: str, *extra: str) -> list[str]:
    """argv running ``rt3d-tune search`` in a fresh interpreter."""
    return [sys.executable, "-c", SEARCH_DRIVER, str(space), "--output", str(output),
            "--name", name, *extra]


def events(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``results.jsonl`` (a line cut by a killed driver is skipped)."""
    path = run_dir / "results.jsonl"
    found = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def json_log_lines(trial_dir: Path) -> list[dict[str, Any]]:
    """Every line of every ``*.log.json`` of a trial (all attempts), in file order."""
    lines = []
    for path in sorted(trial_dir.glob("*.log.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "mode" in record:
                lines.append(record)
    return lines


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _hex_address(text: str) -> str:
    """'0100007F:1F90' (from /proc/net/tcp) -> '127.0.0.1'; tcp6 -> a compact IPv6 text."""
    import ipaddress

    host = text.split(":")[0]
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def listening_sockets(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state owned by ``pids``."""
    listen: dict[str, tuple[str, int]] = {}  # socket inode -> (address, port)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                port = int(fields[1].split(":")[1], 16)
                listen[fields[9]] = (_hex_address(fields[1]), port)
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = target[len("socket:["):-1]
                if inode in listen:
                    found.append((pid, *listen[inode]))
    return found


def cmdline(pid: int) -> str:
    """A process's command line ('' when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
