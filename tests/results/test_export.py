"""Export from a recorded run directory (no Ray): best files, summary, results.csv."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest
import yaml

from rt3d_tune.config import Config
from rt3d_tune.errors import ConfigError
from rt3d_tune.results import recorder
from rt3d_tune.results.export import export_run, runtime_diff, write_run_info
from rt3d_tune.search.status import format_status

BASE = {
    "model": {"type": "Toy", "width": 8},
    "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
    "lr_config": {"policy": "step", "step": [8, 11]},
    "runner": {"type": "EpochBasedRunner", "max_epochs": 12},
}



def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts."""
    return list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))

def trial_config(**changes: object) -> dict:
    cfg = json.loads(json.dumps(BASE))
    cfg.update(changes)
    return cfg


def write_run(run_dir: Path) -> None:
    """Four trials: finished, stopped early, diverged, and one still running (interrupted)."""
    (run_dir / "trials").mkdir(parents=True)
    base_path = run_dir / "base_config.py"
    Config(BASE).dump(str(base_path))
    write_run_info(run_dir, {"metric": "acc", "mode": "max", "base_path": str(base_path),
                             "seed": 3, "algorithm": "tpe", "scheduler": {"type": "asha"}})
    lr = {"loguniform": [1.0e-4, 10.0]}
    (run_dir / "space.yaml").write_text(yaml.safe_dump({
        "base": "base_config.py", "metric": "acc", "mode": "max",
        "space": {"optimizer": {"choice": [
            {"type": "SGD", "lr": lr, "momentum": 0.9, "weight_decay": 1.0e-4},
            {"type": "AdamW", "lr": lr, "weight_decay": 0.05}]}},
        "search": {"algorithm": "tpe", "num_samples": 4, "seed": 3},
    }))
    log = run_dir / recorder.RESULTS_JSONL
    adam = {"type": "AdamW", "lr": 0.002, "weight_decay": 0.05}
    trials = {
        "t1": ({"optimizer@choice": 1, "optimizer@1.lr": 0.002}, [0.5, 0.8, 0.9], True, None,
               trial_config(optimizer=adam, seed=7)),
        "t2": ({"optimizer@choice": 0, "optimizer@0.lr": 0.1}, [0.4], False, None,
               trial_config(optimizer={**BASE["optimizer"], "lr": 0.1}, seed=8)),
        "t3": ({"optimizer@choice": 0, "optimizer@0.lr": 9.0}, [0.3], False, True,
               trial_config(optimizer={**BASE["optimizer"], "lr": 9.0}, seed=9)),
        "t4": ({"optimizer@choice": 0, "optimizer@0.lr": 0.02}, [0.95], False, None,
               trial_config(seed=10)),
    }
    for tid, (params, accs, final, diverged, cfg) in trials.items():
        (run_dir / "trials" / tid).mkdir()
        Config(cfg).dump(str(run_dir / "trials" / tid / "config.py"))
        recorder.append_event(log, {"event": "start", "trial_id": tid, "params": params,
                                    "time": 100.0})
        for epoch, acc in enumerate(accs, start=1):
            result = {"acc": acc, "training_iteration": epoch, "time_total_s": epoch * 2.0,
                      "final": final and epoch == len(accs)}
            recorder.append_event(log, {"event": "result", "trial_id": tid, "result": result})
        if diverged:
            recorder.append_event(log, {"event": "result", "trial_id": tid, "result": {
                "acc": -1e9, "diverged": True, "training_iteration": 2, "time_total_s": 3.0}})
        if tid != "t4":
            last = {"final": final, "diverged": bool(diverged)}
            recorder.append_event(log, {"event": "end", "trial_id": tid,
                                        "status": recorder.classify(last), "time": 110.0})


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_run(run)
    return run


def test_results_csv_has_one_row_per_trial_with_status_and_curve(run_dir: Path):
    paths = export_run(run_dir)
    rows = read_rows(paths["results_csv"])
    assert [r["trial_id"] for r in rows] == ["t1", "t2", "t3", "t4"]
    assert [r["status"] for r in rows] == ["TERMINATED", "EARLY_STOPPED", "DIVERGED",
                                           "INTERRUPTED"]
    assert [rows[0][f"acc@{e}"] for e in (1, 2, 3)] == ["0.5", "0.8", "0.9"]
    assert rows[2]["acc"] == ""  # a diverged trial has no usable metric
    assert json.loads(rows[0]["param:optimizer@1.lr"]) == 0.002
    assert rows[1]["param:optimizer@1.lr"] == ""


def test_best_is_the_best_finished_or_stopped_trial(run_dir: Path):
    """t4 (0.95) never ended but reported; diverged t3 never wins."""
    export_run(run_dir)
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    assert summary["trial_id"] == "t4" and summary["best_value"] == 0.95
    assert summary["trials"] == {"TERMINATED": 1, "EARLY_STOPPED": 1, "DIVERGED": 1,
                                 "INTERRUPTED": 1}
    assert summary["compute"]["trial_epochs"] == 3 + 1 + 2 + 1
    assert summary["seed"] == 10 and summary["search_seed"] == 3  # the winner trained with 10
    assert set(summary["versions"]) >= {"torch", "ray", "optuna"}


def _literal(node: ast.AST) -> object:
    """ast.literal_eval, plus the ``dict(key=literal)`` spelling the config dumper uses."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        assert not node.args
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {ast.literal_eval(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _assignments(path: Path) -> dict[str, object]:
    """Every top-level assignment of a config file, evaluated without running code."""
    tree = ast.parse(path.read_text())
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    return {node.targets[0].id: _literal(node.value) for node in tree.body}


def test_best_files_are_literal_and_load_to_the_trial_config(run_dir: Path):
    # Make the winner the branch-switching trial: the runtime file needs _delete_.
    (run_dir / "trials" / "t4").rename(run_dir / "t4_gone")
    lines = (run_dir / recorder.RESULTS_JSONL).read_text().splitlines()
    (run_dir / recorder.RESULTS_JSONL).write_text(
        "\n".join(line for line in lines if '"t4"' not in line) + "\n")
    paths = export_run(run_dir)
    trial = Config.fromfile(str(run_dir / "trials" / "t1" / "config.py"))
    best = Config.fromfile(str(paths["best_config"]))
    assert best == trial
    _assignments(paths["best_config"])  # every value is a literal
    runtime = _assignments(paths["best_runtime"])
    assert set(runtime) == {"_base_", "optimizer", "seed"}
    assert runtime["optimizer"]["_delete_"] is True
    assert Config.fromfile(str(paths["best_runtime"])) == trial


def test_study_db_holds_every_trial_with_its_branch_distributions(run_dir: Path):
    import optuna

    paths = export_run(run_dir)
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{paths['study']}")
    by_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert sorted(by_id) == ["t1", "t2", "t3", "t4"]
    assert by_id["t1"].state == optuna.trial.TrialState.COMPLETE and by_id["t1"].value == 0.9
    assert by_id["t1"].intermediate_values == {1: 0.5, 2: 0.8, 3: 0.9}
    assert set(by_id["t1"].distributions) == {"optimizer@choice", "optimizer@1.lr"}
    assert by_id["t3"].state == optuna.trial.TrialState.FAIL  # diverged
    assert by_id["t3"].user_attrs["status"] == "DIVERGED"
    assert by_id["t4"].state == optuna.trial.TrialState.FAIL  # interrupted
    export_run(run_dir)  # a second export rewrites, never duplicates
    again = optuna.load_study(study_name="run", storage=f"sqlite:///{paths['study']}")
    assert len(again.trials) == 4


@pytest.mark.parametrize("path", ["bulk", "unchecked_optuna", "changed_tables"])
def test_study_file_reads_back_equal_to_the_study_in_memory(tmp_path: Path, monkeypatch, path):
    """study.db is written in bulk through Optuna's private table models on the Optuna
    releases that was checked on, else through the public add_trials (forced here: another
    release, or tables that changed); either way optuna.load_study reads back the same
    trials, field for field."""
    import math

    import optuna

    from rt3d_tune._compat import checked_release
    from rt3d_tune.results import _optuna_rows
    from rt3d_tune.results.study import write_study

    installed = optuna.__version__
    inserted: list[bool] = []  # what the bulk path returned, per write
    real_insert = _optuna_rows.insert_trials

    def recorded_insert(*args):
        inserted.append(real_insert(*args))
        return inserted[-1]

    monkeypatch.setattr(_optuna_rows, "insert_trials", recorded_insert)
    if path == "unchecked_optuna":
        monkeypatch.setattr(optuna, "__version__", "99.0.0")
    elif path == "changed_tables":
        def changed_tables(*args):
            raise AttributeError("'TrialModel' has no attribute 'number'")

        monkeypatch.setattr(_optuna_rows, "_table_rows", changed_tables)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for i in range(7):
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.suggest_categorical("opt", ["SGD", "AdamW", None])
        trial.suggest_int("steps", 1, 9, step=2)
        trial.set_user_attr("status", ["TERMINATED", "ERROR"][i % 2])
        study._storage.set_trial_system_attr(trial._trial_id, "note", {"i": i})
        for step, value in enumerate([0.1 * i, math.inf, math.nan, -math.inf][: i % 5]):
            trial.report(value, step + 1)
        if i == 3:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif i == 4:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, [0.5 * i, math.inf, -math.inf][i % 3])
    db = write_study(tmp_path, study, "bulk")
    loaded = optuna.load_study(study_name="bulk", storage=f"sqlite:///{db}").trials

    def fields(t: optuna.trial.FrozenTrial) -> tuple:
        inter = {k: "nan" if math.isnan(v) else v for k, v in t.intermediate_values.items()}
        return (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs,
                t.system_attrs, inter, t.datetime_start, t.datetime_complete)

    assert [fields(t) for t in loaded] == [fields(t) for t in study.trials]
    assert [t._trial_id for t in loaded] == list(range(1, 8))
    # The path the installed release should take: bulk only where it was checked.
    assert inserted == [path == "bulk" and checked_release(installed, _optuna_rows.CHECKED_OPTUNA)]


def test_export_refuses_a_directory_that_is_not_a_run(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a search run directory"):
        export_run(tmp_path)


def test_runtime_diff_keeps_only_changes_and_deletes_replaced_subtrees():
    base = {"a": {"x": 1, "y": 2}, "b": {"p": 1, "q": {"r": 1, "s": 2}}, "c": 3}
    trial = {"a": {"z": 5}, "b": {"p": 1, "q": {"r": 7, "s": 2}}, "c": 3, "d": [1]}
    assert runtime_diff(base, trial) == {"a": {"_delete_": True, "z": 5},
                                         "b": {"q": {"r": 7}}, "d": [1]}


def test_status_line_counts_and_best():
    text = format_status({"TERMINATED": 2, "EARLY_STOPPED": 3, "DIVERGED": 1}, 2, 10, "acc",
                         (0.912345, "t7"), 75)
    assert text.startswith("[search 1m15s] 6/10 done, 2 running, 2 finished, 3 stopped early")
    assert "1 diverged" in text and "errored" not in text
    assert text.endswith("best acc 0.9123 (t7)")


def test_export_command_prints_the_written_files(run_dir: Path, capsys):
    import argparse

    from rt3d_tune.commands import export as export_command

    assert export_command.run(argparse.Namespace(run_dir=str(run_dir))) == 0
    out = capsys.readouterr().out
    for name in ("best_config", "best_runtime", "summary", "results_csv", "study"):
        assert f"{name}: " in out
    assert (run_dir / "best" / "best_config.py").exists()


def test_trials_cut_by_the_time_budget_end_as_stopped_not_interrupted(run_dir: Path):
    assert recorder.close_unfinished(run_dir, recorder.EARLY_STOPPED, "budget") == 1
    records = recorder.load_records(run_dir, finished=True)
    assert records["t4"].status == recorder.EARLY_STOPPED and records["t4"].error == "budget"
    assert recorder.close_unfinished(run_dir, recorder.EARLY_STOPPED, "budget") == 0


def test_status_best_is_the_best_latest_value_as_export_chooses(tmp_path: Path):
    import io
    from types import SimpleNamespace

    from rt3d_tune.search.status import StatusLine

    status = StatusLine("acc", "max", tmp_path, total=2, stream=io.StringIO())
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    status.on_trial_result(0, [], a, {"acc": 0.66})
    status.on_trial_result(0, [], b, {"acc": 0.41})
    assert status.best == (0.66, "a")
    status.on_trial_result(0, [], a, {"acc": 0.45})  # a lost its early peak
    status.on_trial_result(0, [], b, {"acc": 0.52})
    assert status.best == (0.52, "b")
    status.on_trial_result(0, [], b, {"acc": -1e9, "diverged": True})  # b is out
    assert status.best == (0.45, "a")
