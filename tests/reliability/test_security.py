"""Safe defaults: the embedded Ray listens on loopback only with the dashboard off and
token authentication on; YAML cannot construct objects; exported configs are literals;
our checkpoints load with ``weights_only=True``; the README says what runs code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import HERE, REPO, write_base, write_space

from rt3d_tune import cli

# A search with the embedded Ray (no address), in its own process; while a trial is
# held mid-training, the sockets of every process below the driver are listed.
SEARCH_SCRIPT = r"""
import json, os, sys, threading, time
# As in a user's shell: nothing set for Ray beforehand (the test session sets this).
os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
sys.path.insert(0, sys.argv[4])
from reliability_kit import cmdline, descendants, listening_sockets
from rt3d_tune.space.space import load_space
from rt3d_tune.search.tuner import run_search

space_file, output, probe = sys.argv[1:4]
done = {}
def search():
    try:
        run_search(load_space(space_file), output=output, name="sec", status=False)
        done["ok"] = True
    except BaseException as err:
        done["error"] = repr(err)
thread = threading.Thread(target=search)
thread.start()
deadline = time.monotonic() + 180
while not os.path.exists(probe + ".held") and thread.is_alive() and time.monotonic() < deadline:
    time.sleep(0.1)
import ray
from ray._private.authentication.authentication_utils import is_token_auth_enabled
out = {"held": os.path.exists(probe + ".held"), "ray_up": ray.is_initialized(),
       "token_auth": is_token_auth_enabled()}
pids = descendants(os.getpid())
out["procs"] = {pid: cmdline(pid) for pid in pids}
out["listen"] = listening_sockets(pids)
open(probe + ".release", "w").close()
thread.join(timeout=240)
out["done"] = done
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def embedded_search(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small search on its own embedded Ray; what was listening, and the run dir."""
    folder = tmp_path_factory.mktemp("security")
    probe = folder / "probe.txt"
    base = write_base(folder, max_epochs=2, probe=probe, hold_epoch=1, hold_s=120)
    space = write_space(folder, "space", base)
    proc = subprocess.run(
        [sys.executable, "-c", SEARCH_SCRIPT, str(space), str(folder / "runs"), str(probe),
         str(HERE)],
        check=False, cwd=folder, capture_output=True, text=True, timeout=400,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-5000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["done"] == {"ok": True}, out["done"]
    out["run_dir"] = folder / "runs" / "sec"
    return out


@pytest.mark.ray
@pytest.mark.slow
def test_embedded_ray_listens_on_loopback_only(embedded_search):
    assert embedded_search["held"] and embedded_search["ray_up"]
    commands = " ".join(embedded_search["procs"].values())
    assert "gcs_server" in commands and "raylet" in commands  # Ray's processes were seen
    listen = embedded_search["listen"]
    assert len(listen) >= 2, listen  # the GCS and the raylet at least
    public = [(pid, addr, port, embedded_search["procs"][str(pid)][:120])
              for pid, addr, port in listen if addr not in ("127.0.0.1", "::1")]
    assert public == []
    # Every kind of server: the GCS, the raylet, the driver's and the workers' gRPC
    # servers, the runtime-env agent.
    owners = {embedded_search["procs"][str(pid)] for pid, _, _ in listen}
    for kind in ("gcs_server", "raylet", "RuntimeEnvAgent", "ray::"):
        assert any(kind in owner for owner in owners), (kind, owners)


@pytest.mark.ray
@pytest.mark.slow
def test_embedded_ray_has_no_dashboard_and_keeps_token_auth(embedded_search):
    commands = list(embedded_search["procs"].values())
    # With include_dashboard=False Ray keeps a minimal head process without its web UI.
    heads = [c for c in commands if "dashboard/dashboard.py" in c]
    assert all("--disable-frontend" in c and "--minimal" in c for c in heads), heads
    assert 8265 not in {port for _, _, port in embedded_search["listen"]}
    assert embedded_search["token_auth"] is True


def literal_value(node: ast.AST) -> Any:
    """A config value: a literal, or mmcv's ``dict(key=...)`` spelling of one, recursively.

    Every leaf goes through ``ast.literal_eval``; a call other than ``dict`` with keyword
    arguments, a name or any other expression raises ValueError.
    """
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args
                and all(k.arg is not None for k in node.keywords)):
            raise ValueError(f"not a literal: {ast.unparse(node)[:200]}")
        return {k.arg: literal_value(k.value) for k in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [literal_value(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {ast.literal_eval(k): literal_value(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def literal_assignments(source: str, name: str = "<config>") -> dict[str, Any]:
    """Every top-level ``NAME = value`` of a module, each value read by ``literal_value``.

    Raises AssertionError for any other statement (imports, calls, loops, ...) except a
    docstring, and ValueError for a value that is not a literal.
    """
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        assert isinstance(node, ast.Assign), f"{name}: {ast.unparse(node)[:200]}"
        assert all(isinstance(t, ast.Name) for t in node.targets), ast.unparse(node)[:200]
        value = literal_value(node.value)
        for target in node.targets:
            values[target.id] = value
    return values


def read_literals(path: Path) -> dict[str, Any]:
    return literal_assignments(path.read_text(encoding="utf-8"), path.name)


@pytest.mark.parametrize("source", [
    "x = __import__('os').system('true')", "import os", "x = y", "x = dict(a=open('f'))",
    "x = [1, (2, {'a': f()})]", "x = dict(**y)", "for i in []: pass", "x = 1 if y else 2",
])
def test_the_literal_check_refuses_code(source: str):
    with pytest.raises((AssertionError, ValueError)):
        literal_assignments(source)


def test_the_literal_check_reads_mmcv_style_values():
    source = '"""doc"""\nx = dict(a=[1, dict(b=(2.0, None))], c={"d": -1e-4})\n'
    assert literal_assignments(source) == {"x": {"a": [1, {"b": (2.0, None)}], "c": {"d": -1e-4}}}


@pytest.mark.ray
@pytest.mark.slow
def test_exported_configs_are_literals_only(embedded_search):
    best = embedded_search["run_dir"] / "best"
    config = read_literals(best / "best_config.py")
    assert config["model"]["type"] == "FaultyPointNet" and "optimizer" in config
    runtime = read_literals(best / "best_runtime.py")
    assert "_base_" in runtime and "optimizer" in runtime
    for other in sorted(best.glob("*.py")):  # best_mmengine.py and whatever comes later
        read_literals(other)
    for trial_config in (embedded_search["run_dir"] / "trials").glob("*/config.py"):
        read_literals(trial_config)


@pytest.mark.ray
@pytest.mark.slow
def test_search_checkpoints_load_with_weights_only(embedded_search):
    import torch

    run_dir = embedded_search["run_dir"]
    paths = sorted(run_dir.glob("trials/*/epoch_*.pth")) + sorted(run_dir.rglob("trial.pth"))
    assert any(p.name == "trial.pth" for p in paths) and any(p.name != "trial.pth" for p in paths)
    for path in paths:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert set(ckpt) >= {"meta", "state_dict"}


PYTHON_OBJECT = "!!python/object/apply:os.system ['touch {marker}']"


@pytest.mark.parametrize("where", ["config", "base_of_space"])
def test_yaml_python_tags_are_refused_and_never_run(tmp_path, capsys, where):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"optimizer:\n  type: SGD\n  lr: {PYTHON_OBJECT.format(marker=marker)}\n")
    if where == "config":
        argv = ["config", "show", str(config)]
    else:
        space = write_space(tmp_path, "space", config)
        argv = ["validate", str(space)]
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    assert "!!python" in err and "Traceback" not in out + err
    assert not marker.exists()


def test_readme_says_py_configs_and_custom_imports_run_code():
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert ("A `.py` config is Python: loading it runs its code, and so does every module "
            "named in `custom_imports`") in text
