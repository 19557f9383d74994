"""report.html, its PNG plots, study.db and best_mmengine.py from a small real search over
a space with branches; the report names parameters as people do."""

from __future__ import annotations

import builtins
import csv
import json
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rt3d_tune.results import recorder
from rt3d_tune.results.param_labels import ParamLabels, format_number, short_value
from rt3d_tune.results.report import PLOTS, best_so_far
from rt3d_tune.space.domains import Choice, Int, LogUniform, Uniform

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"
SPACE = {
    "optimizer": {"choice": [
        {"type": "SGD", "lr": {"loguniform": [1.0e-3, 1.0e-1]},
         "momentum": {"uniform": [0.8, 0.95]}},
        {"type": "AdamW", "lr": {"loguniform": [1.0e-4, 1.0e-2]},
         "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]}},
    ]},
    "lr_config": {"choice": [
        {"policy": "CosineAnnealing", "min_lr_ratio": 0.01},
        {"policy": "step", "step": [1], "gamma": 0.1},
    ]},
}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's signature and IHDR chunk; fails on anything else."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.endswith(b"IEND\xaeB`\x82"), f"{path.name} is truncated"
    return width, height


@pytest.fixture(scope="module")
def run_dir(ray_local, tmp_path_factory) -> Path:
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    tmp = tmp_path_factory.mktemp("report")
    space_file = tmp / "space.yaml"
    space_file.write_text(
        yaml.safe_dump(
            {
                "base": str(POINTNET),
                "metric": "accuracy",
                "mode": "max",
                "space": SPACE,
                "search": {"algorithm": "random", "num_samples": 6, "seed": 3, "max_concurrent": 2},
                "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
                "resources": {"cpu": 1},
                "stop": {"max_epochs": 2},
            }
        )
    )
    result = run_search(load_space(space_file), output=tmp / "runs", name="rep", status=False)
    return result.run_dir


@pytest.mark.ray
@pytest.mark.slow
def test_report_plots_are_real_pngs_referenced_by_the_html(run_dir):
    html = (run_dir / "report.html").read_text()
    for name in PLOTS.values():
        path = run_dir / name
        width, height = png_size(path)
        assert 400 <= width <= 3000 and 200 <= height <= 3000, (name, width, height)
        assert f"src='{name}'" in html


@pytest.mark.ray
@pytest.mark.slow
def test_report_names_branches_by_what_they_are(run_dir):
    html = (run_dir / "report.html").read_text()
    # the run sampled a parameter inside a second branch; the CSV keeps its exact name
    with open(run_dir / "results.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert any("@1." in column for column in header), header
    # ... which the report never shows, nor JSON, nor _delete_
    for raw in ("@choice", "@0.", "@1.", "&quot;", "_delete_", "{&#x27;optimizer"):
        assert raw not in html, raw
    assert re.search(r"optimizer=(SGD|AdamW)\n(SGD|AdamW)\.lr=", html)
    assert re.search(r"lr_config=(CosineAnnealing|step)", html)
    table = html[html.index("Parameter importance"):]
    assert re.search(r"<td>optimizer</td><td>[01]\.\d{3}</td>", table)
    assert re.search(r"<td>lr_config</td><td>[01]\.\d{3}</td>", table)
    # numbers with at most 4 significant digits
    shown = re.findall(r"\.lr=([0-9.e+-]+)", html)
    assert shown and all(v == format_number(float(v)) for v in shown), shown


@pytest.mark.ray
@pytest.mark.slow
def test_report_diffs_are_key_old_new_lines_as_the_cli_prints(run_dir):
    html = (run_dir / "report.html").read_text()
    top = html[html.index("trials</h2>"):]
    assert "changes against the base config" in top
    # the base is Adam with lr 0.003 and a cosine schedule
    assert re.search(r"optimizer\.lr: 0\.003 -&gt; \d\.\d+(e-\d\d)?\n", top)
    assert "runner.max_epochs: 6 -&gt; 2" in top
    if "lr_config=step" in top:
        assert "lr_config.policy: &#x27;CosineAnnealing&#x27; -&gt; &#x27;step&#x27;" in top
        assert "lr_config.min_lr_ratio: 0.01 -&gt; &lt;absent&gt;" in top


@pytest.mark.ray
@pytest.mark.slow
def test_exact_names_and_values_stay_in_results_csv_and_summary(run_dir):
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    assert "optimizer@choice" in summary["params"]
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lrs = [row[c] for row in rows for c in row if c.endswith(".lr") and row[c]]
    assert any(len(lr.replace(".", "").lstrip("0")) > 10 for lr in lrs), lrs


@pytest.mark.ray
@pytest.mark.slow
def test_study_reloads_from_sqlite_with_every_trial(run_dir):
    import optuna

    storage = f"sqlite:///{run_dir / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert len(study.trials) == 6
    assert {t.state for t in study.trials} <= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    assert all({"optimizer@choice", "lr_config@choice"} <= set(t.params) for t in study.trials)
    records = recorder.load_records(run_dir, finished=True)
    # The baseline trial is in the study only when the searcher was told of it (its base
    # config inside the space); this base's optimizer is not one of the space's.
    told = {r.trial_id: r for r in records.values() if not r.baseline}
    assert len(told) == len(study.trials)
    values = [r.metric("accuracy") for r in told.values() if r.metric("accuracy") is not None]
    assert study.best_value == pytest.approx(max(values))


@pytest.mark.ray
@pytest.mark.slow
def test_best_mmengine_loads_in_mmengine(run_dir):
    from mmengine.config import Config as MMConfig

    cfg = MMConfig.fromfile(str(run_dir / "best" / "best_mmengine.py"))
    best = MMConfig.fromfile(str(run_dir / "best" / "best_config.py"))
    assert cfg.optim_wrapper.optimizer.lr == best.optimizer.lr
    assert cfg.train_cfg.max_epochs == best.runner.max_epochs
    html = (run_dir / "report.html").read_text()
    assert "best/best_mmengine.py holds the same runtime" in html


@pytest.mark.ray
@pytest.mark.slow
def test_report_without_matplotlib_says_how_to_install(run_dir, monkeypatch):
    from rt3d_tune.results.export import load_context
    from rt3d_tune.results.report import write_report

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    paths = write_report(load_context(run_dir))
    html = paths["report"].read_text()
    assert "pip install 'rt3d-tune[plot]'" in html
    assert "<img" not in html and "Top " in html


def _record(trial_id: str, start: float, metrics: list[float], status: str) -> recorder.TrialRecord:
    rec = recorder.TrialRecord(trial_id, start=start, status=status)
    for i, value in enumerate(metrics, start=1):
        rec.results[i] = {"accuracy": value, "training_iteration": i, "timestamp": start + i}
    return rec


def test_best_so_far_counts_trial_epochs_in_time_order():
    records = {
        "a": _record("a", 0.0, [0.2, 0.5, 0.4], recorder.TERMINATED),
        "b": _record("b", 0.5, [0.3], recorder.EARLY_STOPPED),
    }
    rows = best_so_far(records, "accuracy", "max")
    # reports happen at a:1, b:1.5, a:2, a:3
    assert [r["trial_epochs"] for r in rows] == [1, 2, 3, 4]
    assert [r["best"] for r in rows] == [0.2, 0.3, 0.5, 0.5]
    assert [r["wall_s"] for r in rows] == [1.0, 1.5, 2.0, 3.0]
    assert [r["best"] for r in best_so_far(records, "accuracy", "min")] == [0.2, 0.2, 0.2, 0.2]


# --- readable parameter names, without Ray -------------------------------------------
def _space(**params) -> SimpleNamespace:
    """What ParamLabels reads of a SearchSpace: (key path, parsed domain) in file order."""
    return SimpleNamespace(params=tuple(params.items()))


SPACE_DOMAINS = _space(
    optimizer=Choice(({"type": "SGD", "lr": LogUniform(1e-3, 1e-1),
                       "momentum": Uniform(0.8, 0.95)},
                      {"type": "AdamW", "lr": LogUniform(1e-4, 1e-2)})),
    lr_config=Choice(({"policy": "cyclic", "target_ratio": [10, 1e-4]},
                      {"policy": "step", "step": [3], "warmup_iters": Int(10, 50)})),
    optimizer_config=Choice(({"grad_clip": None},
                             {"grad_clip": {"max_norm": Uniform(5, 35), "norm_type": 2}})),
    **{"evaluation.interval": Choice((1, 2)), "data.samples_per_gpu": Int(8, 64)},
)


def test_a_branch_shows_by_its_type_or_policy():
    labels = ParamLabels(SPACE_DOMAINS)
    assert labels.name("optimizer@choice") == "optimizer"
    assert labels.value("optimizer@choice", 1) == "AdamW"
    assert labels.name("optimizer@1.lr") == "AdamW.lr"
    assert labels.name("optimizer@0.momentum") == "SGD.momentum"
    assert labels.value("lr_config@choice", 0) == "cyclic"
    assert labels.name("lr_config@1.warmup_iters") == "step.warmup_iters"
    assert labels.options("optimizer@choice") == ["SGD", "AdamW"]


def test_a_branch_with_neither_shows_as_itself_when_short_else_by_index():
    labels = ParamLabels(SPACE_DOMAINS)
    assert labels.value("optimizer_config@choice", 0) == "{grad_clip: None}"
    assert labels.value("optimizer_config@choice", 1) == "#1"
    name = labels.name("optimizer_config@1.grad_clip.max_norm")
    assert name == "optimizer_config#1.grad_clip.max_norm"


def test_plain_parameters_keep_their_key_path_and_values_show_four_digits():
    labels = ParamLabels(SPACE_DOMAINS)
    assert labels.name("evaluation.interval") == "evaluation.interval"
    assert labels.value("evaluation.interval", 2) == "2"
    assert labels.value("optimizer@1.lr", 0.0005375425624632302) == "0.0005375"
    assert labels.value("data.samples_per_gpu", 32) == "32"
    params = {"lr_config@choice": 0, "optimizer@1.lr": 0.0005375425624632302,
              "optimizer@choice": 1, "evaluation.interval": 1}
    assert labels.pairs(params) == ["optimizer=AdamW", "AdamW.lr=0.0005375",
                                    "lr_config=cyclic", "evaluation.interval=1"]


def test_branches_that_share_a_type_are_told_apart():
    same = _space(optimizer=Choice(({"type": "SGD", "lr": LogUniform(1e-3, 1e-1)},
                                    {"type": "SGD", "lr": LogUniform(1e-2, 1.0),
                                     "nesterov": True})))
    labels = ParamLabels(same)
    assert labels.name("optimizer@1.lr") == "SGD#1.lr"
    assert labels.value("optimizer@choice", 0) == "SGD#0"
    two = _space(**{"optimizer": Choice(({"type": "SGD", "lr": LogUniform(1e-3, 1e-1)},)),
                    "model.head": Choice(({"type": "SGD", "lr": LogUniform(1e-3, 1e-1)},))})
    labels = ParamLabels.for_params(two, ["optimizer@0.lr", "model.head@0.lr"])
    assert labels.name("optimizer@0.lr") == "optimizer[SGD].lr"
    assert labels.name("model.head@0.lr") == "model.head[SGD].lr"


def test_without_the_space_branches_show_by_index():
    labels = ParamLabels(None)
    assert labels.name("optimizer@1.lr") == "optimizer#1.lr"
    assert labels.value("optimizer@choice", 1) == "#1"
    assert labels.value("optimizer@1.lr", 0.012345678) == "0.01235"


def test_values_read_like_python_without_the_noise():
    assert format_number(35.0) == "35"
    assert format_number(1234567.0) == "1.235e+06"
    assert short_value({"max_norm": 35.123456, "norm_type": 2}) == "{max_norm: 35.12, norm_type: 2}"
    assert short_value((0.95, 0.999)) == "(0.95, 0.999)"


def test_optuna_few_trial_warnings_name_parameters_readably():
    from rt3d_tune.results.report import _importance_warnings

    messages = [f"Some regimes for parameter `{p}` have less than 2 trials. The importance of "
                "the parameter may be inaccurate." for p in ("optimizer@1.lr", "optimizer@0.lr")]
    text = _importance_warnings(messages, ParamLabels(SPACE_DOMAINS))
    assert text == ("few trials back the values of SGD.lr, AdamW.lr (some of their ranges hold "
                    "fewer than 2 trials)")
