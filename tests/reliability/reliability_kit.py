"""Shared pieces of the reliability tests: a small faulty task, space files, the CLI driver,
CLI calls run one after another in a fresh interpreter with Ray forbidden, and the
listening sockets of a process tree (from /proc; psutil is not a dependency)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The shared test helpers live in tests/; subprocess drivers import this module alone.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

# Imported once tests/ is on the path; re-exported for the reliability tests.
write_space = importlib.import_module("space_files").write_space

REPO = HERE.parents[1]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"

# The `search` command as a user's shell runs it, in its own process.
SEARCH_DRIVER = """
import sys
from rt3d_tune import cli
cli.console_main(["search"] + sys.argv[1:])
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


def no_confirmation() -> dict[str, Any]:
    """``search`` settings that skip the confirmation runs, where the space knows them."""
    import importlib.util

    return {"confirm": False} if importlib.util.find_spec("rt3d_tune.space.sections") else {}


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


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``predicate`` every 0.1 s; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def reported(run_dir: Path, trial_id: str, fidelity: int) -> bool:
    """The driver recorded the trial's result at ``fidelity`` (its checkpoint is registered)."""
    return any(e.get("event") == "result" and e["trial_id"] == trial_id
               and e["result"].get("training_iteration") == fidelity for e in events(run_dir))


def held_trial(probe: Path) -> tuple[int, str, str] | None:
    """(pid, node id, trial id) of the trial TrialProbeHook holds, once it is written."""
    path = Path(f"{probe}.held")
    parts = path.read_text().split() if path.exists() else []
    return (int(parts[0]), parts[1], parts[2]) if len(parts) == 3 else None


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


# Runs ``cli.main(argv)`` for each case, one after another in this fresh interpreter, and
# records what each did: exit code, output, seconds, whether Ray was started (starting
# it fails on purpose unless the case allows it) and processes left behind.
CLI_CASES_SCRIPT = r"""
import contextlib, io, json, os, sys, time, traceback
sys.path.insert(0, sys.argv[2])
from reliability_kit import descendants
from rt3d_tune import cli
import rt3d_tune.search.ray_session as ray_session_module

real_ray_session = ray_session_module.ray_session

entered = []

@contextlib.contextmanager
def forbidden_ray_session(*args, **kwargs):
    entered.append(True)
    raise RuntimeError("Ray was started for a mistake known before starting it")
    yield

@contextlib.contextmanager
def counted_ray_session(*args, **kwargs):
    entered.append(True)
    with real_ray_session(*args, **kwargs) as remote:
        yield remote

def alive_children():
    found = []
    for pid in descendants(os.getpid())[1:]:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(pid)
    return found

results = []
for allow_ray, argv in json.loads(open(sys.argv[1]).read()):
    ray_session_module.ray_session = counted_ray_session if allow_ray else forbidden_ray_session
    entered.clear()
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as exit:  # argparse's own errors
            rc = exit.code
        except BaseException:  # recorded: the test fails on it
            rc = None
            traceback.print_exc()
    seconds = time.perf_counter() - started
    ray = sys.modules.get("ray")
    deadline = time.monotonic() + 20
    while alive_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    results.append({
        "argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue(), "seconds": seconds,
        "ray_started": bool(entered),
        "ray_initialized": bool(ray is not None and ray.is_initialized()),
        "children": alive_children(),
    })
print("RESULT " + json.dumps(results))
"""




def run_cases(folder: Path, cases: dict[str, list[str]], allow_ray: bool,
              env: dict[str, str] | None = None, timeout: float = 240) -> dict[str, Any]:
    """Run ``cli.main(argv)`` for each case in one fresh interpreter; name -> outcome."""
    argv_file = folder / "argv.json"
    argv_file.write_text(json.dumps([[allow_ray, argv] for argv in cases.values()]))
    proc = subprocess.run([sys.executable, "-c", CLI_CASES_SCRIPT, str(argv_file), str(HERE)],
                          check=False, cwd=folder, capture_output=True, text=True,
                          timeout=timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-5000:]
    return dict(zip(cases, json.loads(lines[-1][len("RESULT "):])))


def check_one_clear_message(res: dict[str, Any], several: bool = False) -> str:
    """rc 2, exactly one error message (with ``several``: one or more, one line each) that
    says what was expected, no traceback."""
    err = res["err"]
    assert res["rc"] == 2, res["out"] + err
    assert "Traceback" not in res["out"] + err
    assert err.count("error:") >= 1 if several else err.count("error:") == 1, err
    # What to write instead: expected/hint/close match, or where (YAML line and column).
    assert any(word in err for word in ("expected", "hint:", "did you mean", "line ",
                                        "is a mapping of", "usage:")), err
    return err
