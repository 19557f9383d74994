"""A Ray cluster as users run one, for the storage tests: ``ray start`` nodes whose
worker nodes do not share the driver's disk, and an S3 server.

Run as a script under ``unshare -n`` (``run_scenario``): the whole scenario (the S3
server, the head, the worker nodes, the driver) lives in a network namespace of its
own where only loopback exists, so a multi-node ``ray start``, which binds the
machine's outward address on a normal host, can only use 127.0.0.1 and no packet
leaves the namespace. The head has no CPUs, so every trial runs on a worker node; each
worker node runs in a private mount namespace (``unshare -m``) with an empty tmpfs over
the driver's output folder, as a second machine's disk would be.

Scenarios (``python cluster_storage_kit.py SCENARIO ARGS_JSON``) print ``RESULT <json>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from reliability_kit import (  # noqa: E402
    SEARCH_DRIVER,
    descendants,
    held_trial,
    reported,
    write_base,
    write_space,
)
from s3_server import free_port, free_ports, start_s3_server  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
NAMESPACES_OK = "namespaces-ok"


def namespaces_work() -> str | None:
    """None when ``unshare -n`` and ``unshare -m`` with a tmpfs work here; else why not."""
    probe = ("ip link set lo up && mkdir -p /tmp/.rt3d-ns && "
             "unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /tmp/.rt3d-ns' && "
             f"echo {NAMESPACES_OK}")
    try:
        out = subprocess.run(["unshare", "-n", "sh", "-c", probe], capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare cannot run: {err}"
    if NAMESPACES_OK not in out.stdout:
        return f"namespaces are not allowed here: {out.stderr.strip()[-300:]}"
    return None


def run_scenario(scenario: str, args: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run a scenario of this file in a new network namespace; what it printed."""
    proc = subprocess.Popen(
        ["unshare", "-n", sys.executable, str(Path(__file__)), scenario, json.dumps(args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, (stdout[-3000:], stderr[-6000:])
    return json.loads(lines[-1][len("RESULT "):])


class Cluster:
    """A head (0 CPUs) and worker nodes started with ``ray start --block``."""

    def __init__(self, root: Path, hidden: Path, env: dict[str, str]) -> None:
        self.root = root
        self.hidden = hidden  # the folder worker nodes do not see (a tmpfs over it)
        self.env = env
        # Ray's unix sockets live under the temp dir: keep its path short.
        self.temp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str], private_disk: bool) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - lives with the node
        listen, grpc, metrics, runtime_env = free_ports(4)  # four different ones
        common = [
            "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
            "--temp-dir", str(self.temp / name),
            "--dashboard-agent-listen-port", str(listen),
            "--dashboard-agent-grpc-port", str(grpc),
            "--metrics-export-port", str(metrics),
            "--runtime-env-agent-port", str(runtime_env),
        ]
        command = [RAY, "start", *argv, *common]
        if private_disk:
            inner = (f"mount -t tmpfs tmpfs {self.hidden} && exec "
                     + " ".join(f"'{a}'" for a in command))
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]
        self.nodes[name] = subprocess.Popen(command, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start_head(self) -> None:
        self._start("head", ["--head", "--port", str(self.port), "--num-cpus", "0",
                             "--include-dashboard", "false"], False)
        self.wait_nodes(1)

    def add_worker(self, name: str, cpus: int) -> None:
        self._start(name, ["--address", self.address, "--num-cpus", str(cpus)], True)
        self.wait_nodes(len(self.nodes))

    def wait_nodes(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            dead = [name for name, node in self.nodes.items() if node.poll() is not None]
            if dead:
                logs = {name: (self.root / f"{name}.log").read_text()[-3000:] for name in dead}
                raise RuntimeError(f"nodes ended at their start: {logs}")
            out = subprocess.run(
                [sys.executable, "-c", ALIVE_NODES, self.address], env=self.env,
                capture_output=True, text=True, timeout=60, check=False)
            nodes = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 \
                and out.stdout.strip() else []
            if len(nodes) >= count:
                return nodes
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} nodes did not come up: {out.stderr[-3000:]}")
            time.sleep(1)

    def kill_node(self, name: str) -> None:
        """SIGKILL a node and every process it started (its raylet, agents, trial
        workers): the whole process tree below it, and whatever names its temp dir."""
        process = self.nodes.pop(name)
        marker = str(self.temp / name).encode()
        doomed = set(descendants(process.pid))
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if marker in Path("/proc", entry, "cmdline").read_bytes():
                        doomed.add(int(entry))
        for pid in doomed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        process.wait()

    def shutdown(self) -> None:
        for name in list(self.nodes):
            self.kill_node(name)
        shutil.rmtree(self.temp, ignore_errors=True)


ALIVE_NODES = """
import json, logging, sys, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
print(json.dumps([n["NodeID"] for n in ray.nodes() if n["Alive"]]))
"""


def run_cli(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> dict:
    """``rt3d-tune ARGV`` as a user's shell runs it; its exit code, output and seconds."""
    started = time.monotonic()
    driver = SEARCH_DRIVER if argv[0] == "search" else (
        "import sys\nfrom rt3d_tune import cli\ncli.console_main(sys.argv[1:])\n")
    args = argv[1:] if argv[0] == "search" else argv
    proc = subprocess.run([sys.executable, "-c", driver, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return {"rc": proc.returncode, "out": proc.stdout[-4000:], "err": proc.stderr[-6000:],
            "seconds": time.monotonic() - started}


def stored_files(server: Any, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=server.key_id, aws_secret_access_key=server.secret)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=server.bucket,
                                                               Prefix=prefix + "/"):
        keys += [obj["Key"][len(prefix) + 1:] for obj in page.get("Contents", [])]
    return sorted(keys)


def stored_text(server: Any, key: str) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=server.key_id, aws_secret_access_key=server.secret)
    return s3.get_object(Bucket=server.bucket, Key=key)["Body"].read().decode()


def _setup(root: Path) -> tuple[Any, dict[str, str], Path]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = start_s3_server(root / "moto.log")
    hidden = root / "driver_disk"
    hidden.mkdir()
    env = {**os.environ, **server.env()}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # as on a user's cluster
    # Token authentication, as Ray turns it on for a new cluster: the cluster's token in
    # the home folder every node and the driver share here, the mode said explicitly.
    env.update(HOME=str(root / "home"), RAY_AUTH_MODE="token")
    (root / "home").mkdir()
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True, timeout=120)
    return server, env, hidden


def _space(root: Path, probe: Path, *, hold_epoch: int = 0, samples: int = 3,
           concurrent: int = 2, max_epochs: int = 3) -> Path:
    base = write_base(root / "project", max_epochs=max_epochs, probe=probe,
                      hold_epoch=hold_epoch, hold_s=120)
    return write_space(root / "project", "space", base, search={
        "algorithm": "random", "num_samples": samples, "seed": 0,
        "max_concurrent": concurrent, "confirm": False})


@contextlib.contextmanager
def running_cluster(root: Path, workers: dict[str, int]) -> Iterator[tuple[Any, dict, Path,
                                                                            Cluster]]:
    """(S3 server, the variables of every process, the folder worker nodes cannot see,
    the cluster) with a head and ``workers`` (name -> CPUs); all stopped afterwards."""
    server, env, hidden = _setup(root)
    cluster = Cluster(root, hidden, env)
    try:
        cluster.start_head()
        for name, cpus in workers.items():
            cluster.add_worker(name, cpus)
        yield server, env, hidden, cluster
    finally:
        cluster.shutdown()
        server.stop()


def start_driver(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """``rt3d-tune search`` started in the background, in its own process group."""
    return subprocess.Popen([sys.executable, "-c", SEARCH_DRIVER, *argv[1:]], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_while_running(driver: subprocess.Popen, ready: Callable[[], bool],
                       timeout: float = 300) -> bool:
    """Poll ``ready`` until it holds, the driver ends or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        if ready():
            return True
        time.sleep(0.3)
    return False


def stored_run(server: Any, prefix: str) -> dict[str, Any]:
    """A stored run's file list, its results and its trials' JSON logs."""
    stored = stored_files(server, prefix)
    return {"stored": stored, "results": _stored_or_empty(server, f"{prefix}/results.jsonl"),
            "logs": {key: stored_text(server, f"{prefix}/{key}") for key in stored
                     if key.startswith("trials/") and key.endswith(".log.json")}}


def scenario_search(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Without --storage: refused; with s3: finishes; export from another folder."""
    out: dict[str, Any] = {}
    with running_cluster(root, {}) as (server, env, hidden, cluster):
        out["head"] = cluster.wait_nodes(1)[0]
        cluster.add_worker("w1", 2)
        out["nodes"] = cluster.wait_nodes(2)
        probe = root / "probe.txt"  # outside the hidden folder: every node sees it
        space = _space(root, probe)
        base = ["search", str(space), "--address", cluster.address, "--output", str(hidden)]
        out["local"] = run_cli([*base, "--name", "local"], env, root)
        out["local_left"] = sorted(p.name for p in hidden.iterdir())
        uri = server.uri("cluster")
        out["s3"] = run_cli([*base, "--storage", uri, "--name", "s3run"], env, root)
        out["probe"] = probe.read_text() if probe.exists() else ""
        out["stored"] = stored_files(server, "cluster/s3run")
        elsewhere = root / "laptop"
        elsewhere.mkdir()
        out["export"] = run_cli(["export", f"{uri}/s3run"], env, elsewhere)
        exported = elsewhere / "runs" / "s3run" / "best" / "best_config.py"
        out["exported"] = exported.read_text() if exported.exists() else None
        driver_best = hidden / "s3run" / "best" / "best_config.py"
        out["driver_best"] = driver_best.read_text() if driver_best.exists() else None
        out["report"] = run_cli(["report", f"{uri}/s3run", "--output", "copies"], env, elsewhere)
        out["report_local"] = (elsewhere / "copies" / "s3run" / "report.html").is_file()
        # A data-parallel trial (2 ranks on the worker's 2 CPUs) kept in the same storage.
        base = write_base(root / "dp", max_epochs=2)
        dp_space = write_space(root / "dp", "dp", base, resources={"cpu": 1, "workers": 2},
                               search={"algorithm": "random", "num_samples": 1, "seed": 0,
                                       "baseline": False, "confirm": False})
        out["dp"] = run_cli(["search", str(dp_space), "--address", cluster.address,
                             "--output", str(hidden), "--storage", uri, "--name", "dp"],
                            env, root)
        out.update({f"dp_{key}": value for key, value in stored_run(server, "cluster/dp").items()})
    return out


def scenario_resume(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """The driver SIGKILLed mid-search; --resume from another folder with no copy."""
    out: dict[str, Any] = {}
    with running_cluster(root, {"w1": 2}) as (server, env, hidden, cluster):
        probe = root / "probe.txt"
        space = _space(root, probe, hold_epoch=1, samples=3)
        uri = server.uri("resumed")
        driver = start_driver(["search", str(space), "--address", cluster.address, "--output",
                               str(hidden), "--storage", uri, "--name", "r"], env, root)
        wait_while_running(driver, lambda: bool(held_trial(probe)) and '"event": "result"' in
                           _stored_or_empty(server, "resumed/r/results.jsonl"))
        out["held"] = held_trial(probe)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        out["killed_results"] = _stored_or_empty(server, "resumed/r/results.jsonl")
        Path(f"{probe}.release").touch()
        laptop = root / "laptop"
        laptop.mkdir()
        out["resume"] = run_cli(["search", str(space), "--address", cluster.address,
                                 "--storage", uri, "--name", "r", "--resume"], env, laptop)
        out.update(stored_run(server, "resumed/r"))
    return out


def scenario_node_loss(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """The worker node of a running trial is killed; the trial goes on on another node
    from its checkpoint in the storage."""
    out: dict[str, Any] = {}
    with running_cluster(root, {"w1": 1, "w2": 1}) as (server, env, hidden, cluster):
        node_names = _node_names(cluster, env)
        probe = root / "probe.txt"
        space = _space(root, probe, hold_epoch=1, samples=2, concurrent=2)
        driver = start_driver(["search", str(space), "--address", cluster.address, "--output",
                               str(hidden), "--storage", server.uri("lost"), "--name", "n",
                               "--max-failures", "2"], env, root)
        held = None

        def held_and_reported() -> bool:
            nonlocal held
            held = held_trial(probe)
            return bool(held) and reported(hidden / "n", held[2], 1)

        wait_while_running(driver, held_and_reported)
        out["held"] = held
        if held:
            out["removed"] = held[1]
            cluster.kill_node(node_names[held[1]])
            cluster.add_worker("w3", 1)  # a new machine joins, as an autoscaler's would
        stdout, stderr = driver.communicate(timeout=600)
        out["search"] = {"rc": driver.returncode, "out": stdout[-3000:], "err": stderr[-6000:]}
        out["probe"] = probe.read_text() if probe.exists() else ""
        out.update(stored_run(server, "lost/n"))
    return out


NODE_OF_TEMP_DIR = """
import json, logging, sys, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
print(json.dumps({n["NodeID"]: n.get("ObjectStoreSocketName", "") for n in ray.nodes()
                  if n["Alive"]}))
"""


def _node_names(cluster: Cluster, env: dict[str, str]) -> dict[str, str]:
    """Ray node id -> our node name (from the node's socket path under its temp dir)."""
    out = subprocess.run([sys.executable, "-c", NODE_OF_TEMP_DIR, cluster.address], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    sockets = json.loads(out.stdout.strip().splitlines()[-1])
    names = {}
    for node_id, socket_path in sockets.items():
        for name in cluster.nodes:
            if str(cluster.temp / name) in socket_path:
                names[node_id] = name
    return names


def _stored_or_empty(server: Any, key: str) -> str:
    try:
        return stored_text(server, key)
    except Exception:
        return ""


def scenario_token(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """``search --address`` to a cluster with token authentication, from drivers that
    have no token, a wrong one, or no token and no auth mode set."""
    out: dict[str, Any] = {}
    with running_cluster(root, {}) as (_, env, hidden, cluster):
        space = _space(root, root / "probe.txt")
        argv = ["search", str(space), "--address", cluster.address, "--output", str(hidden)]
        stranger = root / "stranger"
        stranger.mkdir()
        drivers = {
            "missing": {**env, "HOME": str(stranger)},
            "wrong": {**env, "HOME": str(stranger), "RAY_AUTH_TOKEN": "f" * 64},
            "no_mode": {**{k: v for k, v in env.items() if k != "RAY_AUTH_MODE"},
                        "HOME": str(stranger)},
        }
        for name, driver_env in drivers.items():
            out[name] = run_cli([*argv, "--name", name], driver_env, root, timeout=240)
        out["left"] = sorted(p.name for p in hidden.iterdir())
    return out


SCENARIOS = {"search": scenario_search, "resume": scenario_resume,
             "node_loss": scenario_node_loss, "token": scenario_token}


if __name__ == "__main__":
    scenario, arguments = sys.argv[1], json.loads(sys.argv[2])
    workdir = Path(arguments["root"])
    result = SCENARIOS[scenario](workdir, arguments)
    print("RESULT " + json.dumps(result, default=str))
