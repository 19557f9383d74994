"""Reporter: what a trial tells Tune, and the last report of every trial, for every backend.

Failure policy (``run_and_report``):
    * a non-finite loss (DivergenceError) ends the trial with one last report that
      carries the worst finite value of the metric and ``diverged: True``; the
      scheduler and the sampler see a bad trial and the search goes on;
    * a metric named in the space but missing from the first evaluation (or no
      evaluation at all) is a user mistake every trial would repeat: the trial reports
      ``fatal_error``, the search's stopper (``callbacks.FatalErrorStopper``) ends the
      whole search, which then raises ConfigError naming the metrics produced;
    * anything else a trial raises fails that trial only (retried ``max_failures``
      times); the search goes on.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.backends.base import DEFAULT_PROBE_RATIO
from rt3d_tune.errors import DivergenceError

__all__ = [
    "CHECKPOINT_FILE",
    "DIVERGED_MAGNITUDE",
    "METRICS_FILE",
    "FatalSearchError",
    "Reporter",
    "first_lr",
    "run_and_report",
    "worst_value",
]

CHECKPOINT_FILE = "trial.pth"
METRICS_FILE = "metrics.json"  # the report a checkpoint belongs to, beside it
# Optuna refuses inf; a diverged trial reports this magnitude with the worst sign.
DIVERGED_MAGNITUDE = 1.0e9


def worst_value(mode: str) -> float:
    """The finite value a diverged trial reports: worse than any real metric."""
    return -DIVERGED_MAGNITUDE if mode == "max" else DIVERGED_MAGNITUDE


class FatalSearchError(Exception):
    """A problem every trial would hit (reported, then the search stops)."""


class Reporter:
    """What a trial tells Tune, for every backend: each evaluation into a report (its
    metrics, which must hold the searched one; the progress; a cool-down probe's metric
    at a rung), sent with a checkpoint to resume from, and the trial's last report.

    A backend feeds it each evaluation (:meth:`report_evaluation`): the mmcv runner
    through ``backends.mmcv.report_hook.TuneReportHook``, mmengine's Runner through
    ``backends.mmengine.hooks.MMTuneReportHook``.

    Args:
        metric: the metric the search optimizes; it must be among the evaluation's.
        extra: constant entries added to every report (the trial's GPU ids, ...).
        report: ``report(metrics, checkpoint_dir)``, what sends a report (in a trial the
            trial body's delivery to ``tune.report``); tests pass their own.
        checkpoint: whether to attach a checkpoint to each report.
        checkpoint_final: whether the last report gets one too. Nothing resumes a
            finished trial, so it is skipped, except under PBT, where a finished trial
            can still be the donor another trial exploits.
        defer_final: keep the last report (one without a checkpoint) in
            ``pending_final`` instead of sending it: ``train_trial`` sends it once the
            runner has finished, marked ``done``.
        probe_epochs: fidelities at which the reported metric is a cool-down probe's
            (``rt3d_tune.backends.probe``); the plain one goes beside it as
            ``<metric>_plain`` and the probe's cost as ``probe_iters``.
        probe_ratio: the probe's length as a fraction of the iterations trained so far
            (the space's ``scheduler.probe_ratio`` default unless given).
    """

    def __init__(
        self,
        metric: str,
        extra: dict[str, Any] | None = None,
        report: Any = None,
        checkpoint: bool = True,
        checkpoint_final: bool = False,
        defer_final: bool = False,
        probe_epochs: frozenset[int] = frozenset(),
        probe_ratio: float = DEFAULT_PROBE_RATIO,
    ) -> None:
        self.metric = metric
        self.probe_epochs = probe_epochs
        self.probe_ratio = probe_ratio
        self.extra = dict(extra or {})
        self._report = report
        self.checkpoint = checkpoint
        self.checkpoint_final = checkpoint_final
        self.defer_final = defer_final
        self.pending_final: dict[str, Any] | None = None
        self.last_fidelity = 0
        self.last_metrics: dict[str, Any] | None = None
        self.reported = False  # in this run of the trial (a resumed one starts over)

    def report_evaluation(self, results: Mapping[str, Any], *, fidelity: int, final: bool,
                          epoch: int, iteration: int, iters_per_epoch: int, lr: float,
                          save: Callable[[str], Any], rank: int = 0,
                          probe: Callable[[], Any] | None = None) -> dict[str, Any]:
        """One evaluation of any backend, into the trial's report: its metrics (which
        must hold the searched one), the progress, the probe's at a rung; rank 0 sends
        it (:meth:`deliver`), other ranks keep it as ``last_metrics``.

        Args:
            results: the evaluation's metrics (tensors and numpy scalars are fine).
            fidelity: the Tune fidelity reached (the backend's ``fidelity_unit``).
            final: whether training ends with this evaluation.
            epoch, iteration: the progress (epochs; iterations done, 1-based).
            iters_per_epoch: the train loader's length.
            lr: the first param group's LR.
            save: ``save(folder)`` writes the checkpoint ``CHECKPOINT_FILE`` there.
            rank: the reporting rank.
            probe: runs the cool-down probe from here (a ``ProbeResult``); called when
                the report is a rung's (:meth:`probes_at`).

        Returns:
            The report.

        Raises:
            FatalSearchError: the searched metric is not among ``results``.
        """
        checked = self.check_metric(results)
        self.last_fidelity = fidelity
        metrics = {key: _plain(value) for key, value in checked.items()}
        metrics.update(
            epoch=int(epoch),
            iteration=int(iteration),
            iters_per_epoch=int(iters_per_epoch),
            lr=float(lr),
            training_iteration=fidelity,
            diverged=False,
            final=final,
            **self.extra,
        )
        if probe is not None and self.probes_at(fidelity, final):
            self.add_probe(metrics, probe())
        if rank:  # rank 0 alone reports and checkpoints
            self.last_metrics = metrics
            return metrics
        self.deliver(metrics, final, save)
        return metrics

    def probes_at(self, fidelity: int, final: bool) -> bool:
        """Whether the report at ``fidelity`` is a probe's (a rung, not the last report)."""
        return fidelity in self.probe_epochs and not final

    def add_probe(self, metrics: dict[str, Any], result: Any) -> None:
        """A probe's ``ProbeResult`` into a report: its cost (``probe_iters``,
        ``probe_s``) and its metric as the reported one (the plain one moves to
        ``<metric>_plain``); when the cool-down diverged, its error, and the plain metric
        stands."""
        metrics.update(probe_iters=result.iters, probe_s=result.seconds)
        if result.diverged:
            metrics["probe_error"] = result.error
        elif self.metric in result.metrics:
            metrics["probe"] = _plain(result.metrics[self.metric])
            metrics[f"{self.metric}_plain"] = metrics[self.metric]
            metrics[self.metric] = metrics["probe"]

    def check_metric(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """The evaluation's metrics, which must hold the searched one.

        Raises:
            FatalSearchError: the metric is not among them (every trial would fail so).
        """
        if self.metric not in results:
            produced = ", ".join(sorted(results)) or "none"
            raise FatalSearchError(
                f"the evaluation did not produce the metric {self.metric!r}; "
                f"it produced: {produced}"
            )
        return dict(results)

    def deliver(self, metrics: dict[str, Any], final: bool,
                save: Callable[[str], Any]) -> None:
        """Report ``metrics`` to Tune, with a checkpoint that ``save(folder)`` writes as
        ``CHECKPOINT_FILE`` there (none for the last report unless ``checkpoint_final``;
        the last one is kept in ``pending_final`` under ``defer_final``)."""
        self.last_metrics = metrics
        if final and self.defer_final and not (self.checkpoint and self.checkpoint_final):
            self.pending_final = metrics
            return
        if not self.checkpoint or (final and not self.checkpoint_final):
            # A driver restored before Tune saw the end reruns from the checkpoint before.
            self._send(metrics, None)
            return
        tmp = tempfile.mkdtemp(prefix="rt3d_ckpt_")
        try:
            save(tmp)
            Path(tmp, METRICS_FILE).write_text(json.dumps(metrics), encoding="utf-8")
            self._send(metrics, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _send(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.reported = True
        if self._report is None:
            raise RuntimeError("the Reporter was given no report function")
        self._report(metrics, checkpoint_dir)


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars -> Python numbers (results must be JSON-able)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError, RuntimeError):
            return value
    return value


def first_lr(lr: Any) -> float:
    """The first param group's LR: of ``runner.current_lr()`` (a list, or a dict of lists
    for several optimizers) or of mmengine's ``optim_wrapper.get_lr()`` (a dict of
    lists); the first optimizer that has groups, NaN when none has."""
    if isinstance(lr, Mapping):
        lr = next((values for values in lr.values() if values), [])
    return float(lr[0]) if lr else float("nan")


def run_and_report(run: Callable[[], Any], hook: Reporter, metric: str, mode: str,
                   extra: Mapping[str, Any], report: Callable[[dict[str, Any]], None],
                   no_evaluation_hint: str) -> None:
    """Train (``run()``) and send the trial's last report: its last evaluation marked
    done, a diverged trial's worst value, or the fatal error every trial would repeat.
    """
    try:
        run()
        if hook.last_metrics is None:
            raise FatalSearchError(f"no evaluation ran in the trial; {no_evaluation_hint}")
        if hook.pending_final is not None or not hook.last_metrics["final"] or not hook.reported:
            # The last evaluation goes out once the runner has finished (its loggers
            # closed, its files written), marked done: Tune ends the trial on it instead
            # of asking for one more result (one round trip less per trial). Also when
            # the schedule ended between two evaluations, or a resumed trial had nothing
            # left to run: its last evaluation again, marked as the end.
            report({**hook.last_metrics, "final": True, "done": True})
    except DivergenceError as err:
        # The loss is averaged over the ranks: every rank diverges at the same step.
        report(
            {
                metric: worst_value(mode),
                "diverged": True,
                "error": str(err),
                "epoch": err.epoch,
                "iteration": err.iteration + 1,
                "training_iteration": hook.last_fidelity + 1,
                "done": True,
                **extra,
            }
        )
    except FatalSearchError as err:
        report({metric: worst_value(mode), "fatal_error": str(err), "done": True})
