"""Does every node of the cluster see the run's storage? Checked before any trial runs.

A run kept on a local path (no ``--storage``, or a path) works on a cluster only when
that path is a disk every node mounts (NFS): trials write their folders there and Tune
keeps its checkpoints there. The driver writes a marker file into the run directory and
a zero-CPU task pinned to each live node reads it; a node that does not see it means the
path is this machine's own disk, and the search is refused in seconds, naming
``--storage``, instead of every trial failing at its first report.

``RunUploader`` keeps a run kept in a URI up to date in its storage while it runs.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ray.tune import Callback

from rt3d_tune.errors import ConfigError
from rt3d_tune.results.stored_run import upload_run
from rt3d_tune.storage import Storage

__all__ = ["RunUploader", "check_nodes_see"]

_NODE_CHECK_TIMEOUT_S = 60.0
MARKER_PREFIX = ".rt3d-node-check-"


def _reads(path: str, expected: str) -> bool:
    try:
        return Path(path).read_text(encoding="utf-8") == expected
    except OSError:
        return False


def check_nodes_see(run_dir: str | Path, key_path: str = "--storage") -> None:
    """Refuse a run directory that some live node of the joined cluster cannot read.

    Raises:
        ConfigError: naming the nodes that do not see it, with the hint to keep the run
            in object storage.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    here = ray.get_runtime_context().get_node_id()
    if all(node["NodeID"] == here for node in nodes):
        return
    token = uuid.uuid4().hex
    marker = Path(run_dir, MARKER_PREFIX + token)
    marker.write_text(token, encoding="utf-8")
    reader = ray.remote(num_cpus=0)(_reads)
    try:
        refs = {node["NodeManagerAddress"] + " " + node["NodeID"][:8]: reader.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote(str(marker.absolute()), token) for node in nodes}
        blind = [name for name, ref in refs.items()
                 if not ray.get(ref, timeout=_NODE_CHECK_TIMEOUT_S)]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise ConfigError(
            f"the run directory {Path(run_dir).absolute()} is on this machine's own disk: "
            f"{len(blind)} of the cluster's {len(nodes)} nodes cannot see it "
            f"({', '.join(sorted(blind))}), so their trials could not store anything",
            key_path=key_path, given=str(run_dir),
            hint="keep the run in storage every node reaches: --storage s3://bucket/prefix "
            "(or a shared NFS path)",
        )


class RunUploader(Callback):
    """Copies the driver's run files to the run's storage: at most every ``every_s``
    seconds as results come in, when a trial ends, and when the phase ends."""

    def __init__(self, run_dir: str | Path, storage: Storage, every_s: float = 10.0) -> None:
        self.run_dir = Path(run_dir)
        self.storage = storage
        self.every_s = every_s
        self._seen: dict[str, tuple[int, float]] = {}
        self._last = 0.0

    def sync(self) -> None:
        upload_run(self.run_dir, self.storage, self._seen)
        self._last = time.monotonic()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self.sync()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.sync()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.sync()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.sync()

