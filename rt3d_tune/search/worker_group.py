"""Data-parallel ranks as Ray actors: for a trial (``resources.workers > 1``) and for
``rt3d-tune train --launcher ray``.

A data-parallel trial asks Tune for a placement group of one bundle per worker
(``trial_resources``: ``{CPU: cpu, GPU: gpu}`` each, PACK or SPREAD). Rank 0 is the
Tune trial itself (bundle 0): it reports and checkpoints through Tune exactly like a
one-worker trial. Ranks 1..N-1 are ``RankWorker`` actors in bundles 1..N-1, owned by
the trial's process: when Tune stops the trial (ASHA) or the trial fails, they die
with it and Tune frees the whole group. A rank that dies takes the collectives down
with it, the trial fails, and Tune retries it from its last checkpoint
(``--max-failures``).

Why not Ray Train's TorchTrainer inside the trial (docs/ARCHITECTURE.md, "Ray"): measured
here on Ray 2.60, each Train run cost ~17 s of start-up on 2 cores, its worker group
held its resources outside Tune's accounting (a second trial's workers timed out
waiting for CPUs after the first trial had finished), its placement-group cleaner
needs the dashboard's state API that the search keeps off, and its checkpoints bypass
Tune's (``tune.get_checkpoint``), on which retries and ``--resume`` rest.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["RankWorker", "WorkerGroup", "free_port", "trial_resources"]


def free_port() -> int:
    """A TCP port free on this node now (the process group's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def trial_resources(cpu: float, gpu: float, workers: int, placement: str) -> Any:
    """What Tune reserves for one trial: a dict for one worker, else a placement group
    of one ``{CPU, GPU}`` bundle per worker (``placement``: 'pack' or 'spread')."""
    if workers == 1:
        return {"cpu": cpu, "gpu": gpu}
    from ray import tune

    bundle = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    return tune.PlacementGroupFactory([dict(bundle) for _ in range(workers)],
                                      strategy=placement.upper())


class RankWorker:
    """One rank's process: runs a function; rank 0 of ``--launcher ray`` also picks the
    rendezvous."""

    def rendezvous(self) -> tuple[str, int]:
        """(IP, free port) on this actor's node, for rank 0 of ``--launcher ray``."""
        import ray

        return ray.util.get_node_ip_address(), free_port()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class WorkerGroup:
    """Actors for ranks ``first .. first + count - 1`` in bundles of a placement group.

    Args:
        count: the number of actors.
        cpu, gpu: what each actor holds (its bundle's resources).
        placement_group: the group whose bundles they go in (default: the caller's,
            a trial's); None outside any: plain actors.
        first_bundle: the bundle of the first actor (a trial's rank 0 holds bundle 0).
    """

    def __init__(self, count: int, cpu: float, gpu: float, placement_group: Any = None,
                 first_bundle: int = 0) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        actor = ray.remote(RankWorker)
        self.actors = []
        for i in range(count):
            options: dict[str, Any] = {"num_cpus": cpu, "num_gpus": gpu, "max_restarts": 0}
            if placement_group is not None:
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    placement_group=placement_group,
                    placement_group_bundle_index=first_bundle + i,
                )
            self.actors.append(actor.options(**options).remote())
        self.refs: list[Any] = []
        self.error: BaseException | None = None
        self.failed: int | None = None  # the index of the actor that failed first
        self._watch: threading.Thread | None = None

    def start(self, fn: Callable[..., Any], args: Sequence[Sequence[Any]]) -> None:
        """Run ``fn(*args[i])`` on actor i, and watch them: the first one to fail is kept
        in ``error`` and every actor is killed, so that no rank waits on a collective
        that will never complete."""
        self.refs = [a.run.remote(fn, *a_args) for a, a_args in zip(self.actors, args,
                                                                      strict=True)]
        self._watch = threading.Thread(target=self._watch_refs, daemon=True)
        self._watch.start()

    def _watch_refs(self) -> None:
        import ray

        pending = list(self.refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except BaseException as err:
                if self.error is None:
                    self.error, self.failed = err, self.refs.index(done[0])
                self.shutdown()
                return

    def first_failure(self, timeout: float) -> BaseException | None:
        """The first rank's failure, waiting up to ``timeout`` s for the watcher to see
        one: a rank's death reaches the others through a broken collective sooner than
        it reaches Ray, so a caller that just failed asks here for the cause."""
        if self._watch is not None:
            self._watch.join(timeout)
        return self.error

    def wait(self) -> list[Any]:
        """Every actor's return value; raises the first failure."""
        import ray

        try:
            return ray.get(self.refs)
        except BaseException:
            if self.error is not None:
                raise self.error from None
            raise

    def shutdown(self) -> None:
        """Kill every actor (their resources go back to the placement group)."""
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(actor, no_restart=True)
