"""A real two-node Ray cluster on 127.0.0.1 (docs/ARCHITECTURE.md, "Ray"): ``rt3d-tune search
--address`` runs trials on both worker nodes, and when the node of a running trial is
removed, that trial is rescheduled from its checkpoint and the search finishes.

The cluster has its own Ray, so it runs in a subprocess (a small script) and never
touches the session's Ray instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_fixtures import read_probe
from reliability_kit import json_log_lines, search_command, write_base, write_space

from rt3d_tune.results import recorder

pytestmark = [pytest.mark.ray, pytest.mark.cluster, pytest.mark.slow]

CLUSTER_SCRIPT = r"""
import json, os, subprocess, sys, time
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on 127.0.0.1
from ray.cluster_utils import Cluster

argv, probe, run_dir = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]

def reported(trial_id, fidelity):
    path = os.path.join(run_dir, "results.jsonl")
    if not os.path.exists(path):
        return False
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if (e.get("event") == "result" and e["trial_id"] == trial_id
                and e["result"].get("training_iteration") == fidelity):
            return True
    return False

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
cluster.wait_for_nodes()
out = {"workers": [w.node_id for w in workers], "address": cluster.address}
proc = subprocess.Popen(argv + ["--address", cluster.address], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
try:
    deadline = time.monotonic() + 180
    held = None
    while time.monotonic() < deadline and proc.poll() is None:
        parts = open(probe + ".held").read().split() if os.path.exists(probe + ".held") else []
        if len(parts) == 3 and reported(parts[2], 1):
            held = parts
            break
        time.sleep(0.1)
    if held is not None:
        time.sleep(0.5)
        node = next(w for w in workers if w.node_id == held[1])
        cluster.remove_node(node)
        out["removed"] = node.node_id
        out["held_trial"] = held[2]
    stdout, stderr = proc.communicate(timeout=300)
    out.update(rc=proc.returncode, stdout=stdout[-3000:], stderr=stderr[-5000:])
finally:
    if proc.poll() is None:
        proc.kill()
    cluster.shutdown()
print("RESULT " + json.dumps(out))
"""


def run_on_cluster(tmp_path: Path, script: str, *args: str) -> dict:
    """Run ``script`` (which starts the cluster and the search) in its own process
    group; what it printed after ``RESULT``."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stderr[-5000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_search_on_two_nodes_survives_losing_one(tmp_path: Path):
    probe = tmp_path / "probe.txt"
    base = write_base(tmp_path, max_epochs=3, probe=probe, hold_epoch=1, hold_s=90)
    space = write_space(tmp_path, "space", base, search={
        "algorithm": "random", "num_samples": 3, "seed": 0, "max_concurrent": 2,
        "baseline": False})
    run_dir = tmp_path / "runs" / "c"
    argv = search_command(space, tmp_path / "runs", "c", "--max-failures", "2")
    out = run_on_cluster(tmp_path, CLUSTER_SCRIPT, json.dumps(argv), str(probe), str(run_dir))
    assert out["address"].startswith("127.0.0.1:")
    assert "removed" in out, out
    assert out["rc"] == 0, out["stderr"]

    # Trials ran on both worker nodes (the head has no CPU for them).
    rows = read_probe(probe)
    assert {node for _, _, node, _ in rows} == set(out["workers"])

    # The held trial lost its node after epoch 1 and went on elsewhere from epoch 2.
    held = out["held_trial"]
    mine = [(epoch, node) for epoch, _, node, trial in rows if trial == held]
    assert [epoch for epoch, _ in mine] == [1, 2, 3]
    assert mine[0][1] == out["removed"] and mine[1][1] != out["removed"]
    val = [line["epoch"] for line in json_log_lines(run_dir / "trials" / held)
           if line["mode"] == "val"]
    assert val == [1, 2, 3]

    records = recorder.load_records(run_dir, finished=True)
    assert len(records) == 3
    assert {rec.status for rec in records.values()} == {recorder.TERMINATED}
    assert (run_dir / "best" / "best_config.py").is_file()


SPREAD_SCRIPT = r"""
import json, os, subprocess, sys
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on 127.0.0.1
from ray.cluster_utils import Cluster

argv = json.loads(sys.argv[1])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
cluster.wait_for_nodes()
out = {"workers": [w.node_id for w in workers], "address": cluster.address}
try:
    proc = subprocess.run(argv + ["--address", cluster.address], capture_output=True,
                          text=True, timeout=300)
    out.update(rc=proc.returncode, stdout=proc.stdout[-3000:], stderr=proc.stderr[-5000:])
finally:
    cluster.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_a_two_worker_trial_spread_over_two_nodes(tmp_path: Path):
    base = write_base(tmp_path, max_epochs=2)
    space = write_space(tmp_path, "spread", base, resources={
        "cpu": 1, "workers": 2, "placement": "spread"}, search={
        "algorithm": "random", "num_samples": 1, "seed": 0, "confirm": False,
        "baseline": False})
    run_dir = tmp_path / "runs" / "s"
    argv = search_command(space, tmp_path / "runs", "s")
    out = run_on_cluster(tmp_path, SPREAD_SCRIPT, json.dumps(argv))
    assert out["rc"] == 0, out["stderr"]

    # One worker on each node (the head has no CPU), and the trial finished.
    records = recorder.load_records(run_dir, finished=True)
    (rec,) = records.values()
    assert rec.status == recorder.TERMINATED and rec.fidelity == 2
    last = rec.results[max(rec.results)]
    assert sorted(last["worker_nodes"].split(",")) == sorted(out["workers"])
    # The run directory is complete on the driver's output.
    assert (run_dir / "best" / "best_config.py").is_file()
    assert (run_dir / "best" / "summary.json").is_file() and (run_dir / "report.html").is_file()
    trial_dir = run_dir / "trials" / rec.trial_id
    assert (trial_dir / "config.py").is_file()
    assert [line["epoch"] for line in json_log_lines(trial_dir) if line["mode"] == "val"] == [1, 2]
