"""Each search trial logs under its own MLflow / W&B run, with the trial's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from space_files import write_space

from rt3d_tune.backends.mmcv.trial_loggers import tag_trial_loggers
from rt3d_tune.results import recorder
from rt3d_tune.runner.hooks.logger import MlflowLoggerHook, WandbLoggerHook
from rt3d_tune.runner.hooks.timer import IterTimerHook

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"


def test_hooks_get_trial_names_and_params_but_user_settings_win():
    mlflow_hook = MlflowLoggerHook(params={"optimizer.lr": "user"}, tags={"team": "3d"})
    named = MlflowLoggerHook(exp_name="mine", run_name="kept")
    wandb_hook = WandbLoggerHook(init_kwargs={"project": "p", "config": {"seed": 1}})
    params = {"optimizer.lr": 0.01, "optimizer@choice": 1}
    count = tag_trial_loggers(
        [IterTimerHook(), mlflow_hook, named, wandb_hook],
        trial_id="t1",
        search_name="s",
        params=params,
    )
    assert count == 3
    assert (mlflow_hook.run_name, mlflow_hook.exp_name) == ("t1", "s")
    assert mlflow_hook.params == {"optimizer.lr": "user", "optimizer@choice": 1}
    assert mlflow_hook.tags == {"team": "3d", "rt3d_tune.search": "s", "rt3d_tune.trial_id": "t1"}
    assert (named.run_name, named.exp_name) == ("kept", "mine")
    assert wandb_hook.init_kwargs == {
        "project": "p",
        "name": "t1",
        "group": "s",
        "config": {"seed": 1, **params},
    }


@pytest.mark.ray
@pytest.mark.slow
def test_search_trials_log_to_their_own_mlflow_runs(ray_local, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    uri = (tmp_path / "mlruns").as_uri()
    base = tmp_path / "base.py"
    base.write_text(
        f"_base_ = {str(POINTNET)!r}\n"
        "log_config = dict(interval=5, hooks=[dict(type='TextLoggerHook'),\n"
        f"    dict(type='MlflowLoggerHook', tracking_uri={uri!r})])\n"
    )
    space_file = write_space(tmp_path, "space", base, stop={"max_epochs": 1})
    result = run_search(load_space(space_file), output=tmp_path / "runs", name="mlf", status=False)

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlf")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    confirm = recorder.load_records(result.run_dir, filename=recorder.CONFIRM_JSONL)
    assert confirm and set(runs) == set(result.records) | set(confirm)
    for trial_id, record in confirm.items():  # confirmation runs say what they confirm
        assert runs.pop(trial_id).data.tags["rt3d_tune.confirm_of"] == record.confirm_of
    for trial_id, run in runs.items():
        record = result.records[trial_id]
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(
            record.params["optimizer.lr"]
        )
        assert run.data.tags["rt3d_tune.trial_id"] == trial_id
        (val,) = client.get_metric_history(run.info.run_id, "val/accuracy")
        assert val.value == pytest.approx(record.metric("accuracy"))
