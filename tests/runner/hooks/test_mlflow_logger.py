"""MlflowLoggerHook: a local file store, read back with MLflow's own client."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hooks_testkit import FailAt, LineDataset, loader, make_runner

from rt3d_tune.errors import ConfigError
from rt3d_tune.runner.hooks.evaluation import EvalHook
from rt3d_tune.runner.hooks.logger import MlflowLoggerHook

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _allow_file_store(monkeypatch):
    # MLflow 3 refuses the file store (what mlflow-skinny can write) unless asked to
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


class AtDataset(LineDataset):
    """Metric names with characters MLflow refuses."""

    def evaluate(self, results, **kwargs):
        metrics = super().evaluate(results, **kwargs)
        return {"AR@100": metrics["bev_mAP"], **metrics}


def test_metrics_params_and_tags_read_back(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    hook = MlflowLoggerHook(
        exp_name="rt3d-tests",
        tracking_uri=uri,
        run_name="trial_0",
        params={"optimizer": {"lr": 0.05, "type": "SGD"}, "seed": 0},
        tags={"search": "demo"},
        interval=2,
    )
    hooks = [(EvalHook(loader(AtDataset(scores=[0.25, 0.75]))), "LOW"), (hook, "VERY_LOW")]
    runner = make_runner(tmp_path / "work", hooks)
    runner.run([loader()], [("train", 1)])
    assert mlflow.active_run() is None  # the hook ended the run it started
    assert mlflow.get_tracking_uri() != uri  # and restored the tracking URI

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rt3d-tests")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "trial_0"
    assert run.data.params == {"optimizer.lr": "0.05", "optimizer.type": "SGD", "seed": "0"}
    assert run.data.tags["search"] == "demo"

    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in loss] == [2, 4, 6, 8]
    val = client.get_metric_history(run.info.run_id, "val/bev_mAP")
    assert [(m.step, m.value) for m in val] == [(5, 0.25), (9, 0.75)]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val/AR_100")] == [
        0.25,
        0.75,
    ]
    assert {m.value for m in client.get_metric_history(run.info.run_id, "learning_rate")} == {0.05}
    assert {m.value for m in client.get_metric_history(run.info.run_id, "momentum")} == {0.9}


def test_a_failed_run_ends_its_mlflow_run_as_failed(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    hook = MlflowLoggerHook(exp_name="rt3d-fail", tracking_uri=uri, interval=2)
    runner = make_runner(tmp_path / "work", [(hook, "VERY_LOW"), (FailAt(5), "LOWEST")])
    with pytest.raises(RuntimeError, match="iteration 5"):
        runner.run([loader()], [("train", 1)])
    assert mlflow.active_run() is None and mlflow.get_tracking_uri() != uri
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("rt3d-fail").experiment_id])
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4]


def test_logs_into_an_active_run_and_leaves_it_open(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.MlflowClient().create_experiment("outer")
        with mlflow.start_run(run_name="outer", experiment_id=experiment_id) as outer:
            runner = make_runner(
                tmp_path / "work", [(MlflowLoggerHook(interval=4), "VERY_LOW")], length=1
            )
            runner.run([loader()], [("train", 1)])
            assert mlflow.active_run().info.run_id == outer.info.run_id
        history = mlflow.MlflowClient(uri).get_metric_history(outer.info.run_id, "train/loss")
        assert [m.step for m in history] == [4]
    finally:
        mlflow.set_tracking_uri(None)


def test_missing_mlflow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    runner = make_runner(tmp_path, [(MlflowLoggerHook(), "VERY_LOW")], length=1)
    with pytest.raises(ConfigError) as info:
        runner.run([loader()], [("train", 1)])
    assert "rt3d-tune[mlflow]" in info.value.format()


def _create_experiment(uri: str, barrier: Any) -> str | None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    hook = MlflowLoggerHook(exp_name="search")
    hook.mlflow = mlflow
    barrier.wait()  # every process looks the experiment up at once, as parallel trials do
    return hook._experiment_id()


def test_parallel_trials_share_one_experiment_in_a_file_store(tmp_path):
    import multiprocessing

    mlflow = pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(6)
        with context.Pool(6) as pool:
            ids = pool.starmap(_create_experiment, [(uri, barrier)] * 6)
    client = mlflow.MlflowClient(tracking_uri=uri)
    named = [e for e in client.search_experiments() if e.name == "search"]
    assert len(named) == 1 and set(ids) == {named[0].experiment_id}
    # the store's own default experiment was written once, whole (six processes opening
    # a new store at once used to race on it: "Yaml file '.../0/meta.yaml' exists")
    assert client.get_experiment("0").name == "Default"
