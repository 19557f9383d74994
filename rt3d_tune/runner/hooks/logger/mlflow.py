"""MlflowLoggerHook: metrics, parameters and tags to an MLflow tracking store.

``mlflow`` (``pip install 'rt3d-tune[mlflow]'``, which brings ``mlflow-skinny``) is
imported at ``before_run``, so configs that do not use this hook never need it.
Metric names are mmcv's tags (``train/loss``, ``val/bev_mAP``, ``learning_rate``);
characters MLflow refuses in a name (``AR@100``) become ``_``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rt3d_tune.registry import HOOKS
from rt3d_tune.runner.hooks.logger.base import LoggerHook, import_backend

__all__ = ["MlflowLoggerHook", "flatten_params"]

_INVALID_NAME_CHARS = re.compile(r"[^/\w.\- :]")


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params -> ``{'optimizer.lr': '0.01'}``, values as strings (what MLflow stores)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
        else:
            flat[_INVALID_NAME_CHARS.sub("_", name)] = str(value)
    return flat


@HOOKS.register_module()
class MlflowLoggerHook(LoggerHook):
    """Log to MLflow: a run per training, metrics with the global iteration as step.

    Args:
        exp_name: experiment of the run this hook starts (created when missing);
            default MLflow's active one.
        tags: run tags.
        params: run parameters (nested dicts are flattened with dots), e.g. a trial's
            hyperparameters.
        log_model: log the trained model with ``mlflow.pytorch`` at the end of the run.
        tracking_uri: tracking store, e.g. ``sqlite:///mlflow.db`` or
            ``file:///path/mlruns`` (MLflow 3 wants ``MLFLOW_ALLOW_FILE_STORE=true`` for
            the latter); default MLflow's (``MLFLOW_TRACKING_URI``). Set for the run and
            restored at its end.
        run_name: name of the run this hook starts. If a run is already active (the
            caller started one), the hook logs into it and leaves it open.
        interval, ignore_last, reset_flag, by_epoch: as for :class:`LoggerHook`.

    Raises:
        ConfigError: (at ``before_run``) mlflow is not installed.
    """

    def __init__(
        self,
        exp_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        log_model: bool = False,
        tracking_uri: str | None = None,
        run_name: str | None = None,
        interval: int = 10,
        ignore_last: bool = True,
        reset_flag: bool = False,
        by_epoch: bool = True,
    ) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.exp_name = exp_name
        self.tags = dict(tags or {})
        self.params = dict(params or {})
        self.log_model = log_model
        self.tracking_uri = tracking_uri
        self.run_name = run_name
        self.mlflow: Any = None
        self._mlflow_pytorch: Any = None
        self._previous_uri: str | None = None
        self._owns_run = False

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        self.mlflow = import_backend("mlflow", type(self).__name__, "rt3d-tune[mlflow]")
        if self.log_model:
            self._mlflow_pytorch = import_backend(
                "mlflow.pytorch", type(self).__name__, "rt3d-tune[mlflow]"
            )
        if self.tracking_uri is not None:
            self._previous_uri = self.mlflow.get_tracking_uri()
            self.mlflow.set_tracking_uri(self.tracking_uri)
        if self.mlflow.active_run() is None:
            # the experiment is passed to the run rather than made the process-wide
            # active one: a worker process runs many trials one after the other
            self.mlflow.start_run(run_name=self.run_name, experiment_id=self._experiment_id())
            self._owns_run = True
        if self.tags:
            self.mlflow.set_tags({str(k): str(v) for k, v in self.tags.items()})
        if self.params:
            self.mlflow.log_params(flatten_params(self.params))

    def _experiment_id(self) -> str | None:
        if self.exp_name is None:
            return None
        # Trials of one search start side by side. MLflow's file store checks a name and
        # creates the experiment in two steps, so two trials could each create one named
        # like the search (seen: half the runs in a second 'mlf'), and a new store's
        # client writes its default experiment the same way (seen: "Yaml file
        # '.../mlruns/0/meta.yaml' exists"): one at a time, from the client on.
        with _file_store_lock(self.mlflow.get_tracking_uri()):
            client = self.mlflow.MlflowClient()
            experiment = client.get_experiment_by_name(self.exp_name)
            if experiment is not None:
                return str(experiment.experiment_id)
            try:
                return str(client.create_experiment(self.exp_name))
            except self.mlflow.exceptions.MlflowException:
                # a database store refused the duplicate: another process created it first
                experiment = client.get_experiment_by_name(self.exp_name)
                if experiment is None:
                    raise
                return str(experiment.experiment_id)

    def log(self, runner: Any) -> None:
        metrics = {
            _INVALID_NAME_CHARS.sub("_", tag): value
            for tag, value in self.get_loggable_tags(runner).items()
        }
        if metrics:
            self.mlflow.log_metrics(metrics, step=self.get_iter(runner))

    def after_run(self, runner: Any) -> None:
        if self.mlflow is None:
            return
        if self._mlflow_pytorch is not None:
            self._mlflow_pytorch.log_model(runner.model, "models")
        self._end("FINISHED")

    def close_after_error(self, runner: Any) -> None:
        if self.mlflow is not None:
            self._end("FAILED")

    def _end(self, status: str) -> None:
        if self._owns_run:
            self.mlflow.end_run(status=status)
            self._owns_run = False
        if self._previous_uri is not None:
            self.mlflow.set_tracking_uri(self._previous_uri)
            self._previous_uri = None


@contextlib.contextmanager
def _file_store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on the folder holding a file store (``file:`` URIs and plain
    paths) while the store is opened and an experiment looked up or created; other
    stores check names themselves. The lock is on that folder itself (flock of a
    directory), so the store's own folder is left for MLflow to create with its
    default experiment, and no lock file is left anywhere."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("", "file"):
        yield
        return
    parent = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else uri).parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
        yield
    finally:
        os.close(fd)
