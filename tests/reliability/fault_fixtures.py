"""Fault injection for the reliability tests, registered through ``custom_imports``.

* ``FaultyPointNet``: the quick task's PointNet, whose training loss turns NaN or inf,
  or whose ``train_step`` raises, from a given train iteration on.
* ``TrialProbeHook``: after each train epoch's last iteration appends ``epoch pid
  node_id work_dir`` to a shared file; the first trial of the search to finish
  ``hold_epoch`` (only that one, only once) writes ``<probe_file>.held`` and waits up
  to ``hold_s`` seconds (or until ``<probe_file>.release`` exists), so that a test can
  kill its worker, remove its node or look at the running processes while it is known
  to be mid-training with a checkpoint reported.

The test copies this file next to the base config it writes, so Ray workers import it
the way a user's module is imported (``custom_imports`` searches the config's folder).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rt3d_tune.registry import HOOKS, MODELS
from rt3d_tune.runner.hook import Hook
from rt3d_tune.tasks.pointnet import PointNetClassifier

FAULTS = ("none", "nan", "inf", "raise")


@MODELS.register_module()
class FaultyPointNet(PointNetClassifier):
    """PointNet with an injected fault from train iteration ``fault_iter`` (0-based) on.

    Args:
        fault: 'none', 'nan' or 'inf' (the loss becomes that value), or 'raise'
            (``train_step`` raises RuntimeError).
        fault_iter: the first faulty train iteration of this process's model, 0-based.
        **kwargs: PointNetClassifier's arguments.
    """

    def __init__(self, fault: str = "none", fault_iter: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        self.fault = fault
        self.fault_iter = int(fault_iter)
        self.train_calls = 0

    def train_step(self, data_batch: Any, optimizer: Any = None, **kwargs: Any) -> dict[str, Any]:
        outputs = super().train_step(data_batch, optimizer, **kwargs)
        step = self.train_calls
        self.train_calls += 1
        if self.fault == "none" or step < self.fault_iter:
            return outputs
        if self.fault == "raise":
            raise RuntimeError(f"injected model failure at train iteration {step}")
        bad = float(self.fault)
        outputs["loss"] = outputs["loss"] * bad
        outputs["log_vars"] = {**outputs["log_vars"], "loss": bad}
        return outputs


def _node_id() -> str:
    """The Ray node this process runs on ('-' outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "-"


@HOOKS.register_module()
class TrialProbeHook(Hook):
    """Records where each train epoch ran, and holds one trial once after ``hold_epoch``.

    Args:
        probe_file: the shared file the lines go to (one line per finished epoch).
        hold_epoch: after this epoch (1-based) the first attempt of a trial waits; 0: never.
        hold_s: the longest wait, seconds.
    """

    def __init__(self, probe_file: str, hold_epoch: int = 0, hold_s: float = 0.0) -> None:
        self.probe_file = probe_file
        self.hold_epoch = int(hold_epoch)
        self.hold_s = float(hold_s)

    def after_train_iter(self, runner: Any) -> None:
        # The line is written when the epoch's last iteration has trained, before any
        # after_train_epoch hook: a data-parallel rank 1 writes it before the evaluation's
        # collective, so before rank 0 can report the epoch (and Tune end the trial).
        if not self.end_of_epoch(runner):
            return
        line = f"{runner.epoch + 1} {os.getpid()} {_node_id()} {runner.work_dir}\n"
        with open(self.probe_file, "a", encoding="utf-8") as fh:
            fh.write(line)

    def after_train_epoch(self, runner: Any) -> None:
        epoch = runner.epoch + 1
        if epoch != self.hold_epoch:
            return
        try:
            with open(f"{self.probe_file}.held", "x", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {_node_id()} {Path(runner.work_dir).name}\n")
        except FileExistsError:
            return  # another trial (or this one before its retry) was held already
        release = Path(f"{self.probe_file}.release")
        deadline = time.monotonic() + self.hold_s
        while time.monotonic() < deadline and not release.exists():
            time.sleep(0.1)


def read_probe(path: str | os.PathLike[str]) -> list[tuple[int, int, str, str]]:
    """The probe file's lines as (epoch, pid, node_id, trial work_dir name)."""
    rows = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4:
            rows.append((int(parts[0]), int(parts[1]), parts[2], Path(parts[3]).name))
    return rows
