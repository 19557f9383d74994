"""The baseline and the verdict end to end (PointNet task, the session's local Ray): the
base config runs as the first trial, is confirmed with the top config's seeds, and the
verdict leads the search's last line, summary.json and the report; the three outcomes
through ``rt3d-tune export`` of the run with its recorded values rewritten;
``confirm.length: full``; study.db and ``rt3d-tune report`` while a search runs."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import space_files
from driver_kit import ends, search_args

from rt3d_tune import cli
from rt3d_tune.config import Config
from rt3d_tune.results import recorder
from rt3d_tune.results.param_labels import format_number
from rt3d_tune.results.run_lock import lock_holder
from rt3d_tune.results.verdict import BETTER, OUTCOMES, WITHIN_NOISE, WORSE
from rt3d_tune.space.sampling import config_diff

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POINTNET = REPO / "configs" / "pointnet" / "pointnet_shapes.py"  # Adam lr 0.003, 6 epochs
SECTIONS = {
    "space": {"optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
    "search": {"algorithm": "tpe", "num_samples": 2, "seed": 0, "max_concurrent": 2,
               "confirm": {"top_k": 1, "seeds": 2}},
    "stop": {"max_epochs": 1},
}


@pytest.fixture(scope="module")
def searched(ray_local, tmp_path_factory):
    """(run dir, stdout) of `rt3d-tune search` with the baseline on."""
    tmp = tmp_path_factory.mktemp("verdict")
    space = space_files.write_space(tmp, "v", POINTNET, **SECTIONS)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["search", str(space), "--output", str(tmp / "runs"), "--name", "v"])
    assert code == 0, out.getvalue()
    return tmp / "runs" / "v", out.getvalue()


def test_the_baseline_runs_first_and_is_confirmed_with_the_same_seeds(searched):
    run_dir, out = searched
    search = recorder.load_records(run_dir, finished=True)
    assert len(search) == 3  # the 2 asked for and the baseline
    # one baseline (the searcher's first suggestion: test_baseline_searcher; with two
    # trials at once either may start first)
    assert [r.baseline for r in search.values()].count(True) == 1
    first = next(r for r in search.values() if r.baseline)
    assert first.params == {"optimizer.lr": 0.003}  # inside the space: told with its params
    base = Config.fromfile(str(POINTNET))
    ran = Config.fromfile(str(run_dir / "trials" / first.trial_id / "config.py"))
    assert sorted((path, new) for path, _, new in config_diff(base, ran)) == [
        ("runner.max_epochs", 1), ("seed", 0)]

    confirm = recorder.load_records(run_dir, finished=True, filename=recorder.CONFIRM_JSONL)
    seeds = {}
    for rec in confirm.values():
        seeds.setdefault((rec.confirm_of, rec.baseline), []).append(rec.seed)
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    assert {key: sorted(value) for key, value in seeds.items()} == {
        (summary["trial_id"], False): [1, 2], (first.trial_id, True): [1, 2]}
    assert summary["trial_id"] != first.trial_id  # the winner is never the baseline

    verdict = summary["verdict"]
    assert next(iter(summary)) == "verdict"
    assert verdict["seeds"] == [0, 1, 2]  # the search pair on the common seed and 2 new
    assert verdict["outcome"] in OUTCOMES and verdict["baseline_trial"] == first.trial_id
    by_seed = {r.seed: r.metric("accuracy") for r in confirm.values() if r.baseline}
    by_seed[0] = first.metric("accuracy")
    assert verdict["baseline"] == pytest.approx(sum(by_seed.values()) / 3)
    lines = out.strip().splitlines()
    assert lines[-1] == f"verdict: {verdict['text']}"  # the search's last line
    # the diff printed with 4 significant digits, as the report shows it
    lr_line = next(line for line in lines if line.strip().startswith("optimizer.lr:"))
    new = lr_line.split("->")[1].strip()
    assert len(re.sub(r"e.*|[-.]|^0+", "", new.replace("0.", "", 1)).lstrip("0")) <= 4, lr_line

    report = (run_dir / "report.html").read_text()
    assert report.index(verdict["text"].split(" (")[0][:40]) < report.index("Best:")

    storage = f"sqlite:///{run_dir / 'study.db'}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0],
                              storage=storage)
    marked = [t for t in study.trials if t.user_attrs.get("baseline")]
    assert len(marked) == 1 and marked[0].params == {"optimizer.lr": 0.003}


def _rewrite(run_dir: Path, filename: str, values: dict[tuple[str, int | None], float]) -> None:
    """Set the metric of every result of the runs keyed (confirm_of or trial id, seed)."""
    path = run_dir / filename
    starts = {}
    lines = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "start":
            starts[event["trial_id"]] = (event.get("confirm_of", event["trial_id"]),
                                         event.get("seed"))
        elif event["event"] == "result" and starts.get(event["trial_id"]) in values:
            event["result"]["accuracy"] = values[starts[event["trial_id"]]]
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("winner", "outcome", "words"), [
    ((0.71, 0.72, 0.73), BETTER, "beats your config by +0.2"),
    ((0.31, 0.32, 0.33), WORSE, "your config beats the search's best"),
    ((0.50, 0.56, 0.49), WITHIN_NOISE,
     "the search found nothing better than your config within noise"),
])
def test_each_outcome_in_the_cli_and_summary(searched, tmp_path, capsys, winner, outcome,
                                             words):
    run_dir = shutil.copytree(searched[0], tmp_path / "copy")
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    w, b = summary["trial_id"], summary["verdict"]["baseline_trial"]
    base = (0.51, 0.52, 0.53)
    _rewrite(run_dir, recorder.RESULTS_JSONL, {(w, None): winner[0], (b, None): base[0]})
    _rewrite(run_dir, recorder.CONFIRM_JSONL, {
        **{(w, seed): winner[seed] for seed in (1, 2)},
        **{(b, seed): base[seed] for seed in (1, 2)}})
    capsys.readouterr()
    assert cli.main(["export", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    verdict = json.loads((run_dir / "best" / "summary.json").read_text())["verdict"]
    assert verdict["outcome"] == outcome and words in verdict["text"]
    assert verdict["delta"] == pytest.approx(sum(winner) / 3 - sum(base) / 3)
    assert out[-1] == f"verdict: {verdict['text']}"
    assert "3 paired seeds" in out[-1]
    # the winner as a person names it: its key path and value at 4 significant digits
    name = f"optimizer.lr {format_number(summary['params']['optimizer.lr'])}"
    assert (verdict["text"].startswith(f"{name} beats") if outcome == BETTER
            else f"({name})" in verdict["text"])
    assert html.escape(verdict["text"]) in (run_dir / "report.html").read_text()


def test_confirm_length_full_trains_winner_and_baseline_at_the_base_length(ray_local,
                                                                           tmp_path):
    from rt3d_tune.search.tuner import run_search
    from rt3d_tune.space.space import load_space

    base = tmp_path / "two_epochs.py"
    base.write_text(f"_base_ = [{str(POINTNET)!r}]\nrunner = dict(max_epochs=2)\n")
    space = load_space(space_files.write_space(tmp_path, "full", base, **{
        **SECTIONS, "search": {"algorithm": "random", "num_samples": 1, "seed": 0,
                               "confirm": {"top_k": 1, "seeds": 1, "length": "full"}}}))
    result = run_search(space, output=tmp_path / "runs", name="full", status=False)
    search = recorder.load_records(result.run_dir, finished=True)
    confirm = recorder.load_records(result.run_dir, finished=True,
                                    filename=recorder.CONFIRM_JSONL)
    ipe = next(iter(search.values())).last_result["iters_per_epoch"]
    # the runner's iteration counter, as reported (one past the iterations trained)
    ran = sorted(r.last_result["iteration"] for r in search.values())
    assert ran[0] == ran[1] and ran[0] - ipe in (0, 1)  # one epoch, the trial budget
    assert len(confirm) == 2 and {r.baseline for r in confirm.values()} == {True, False}
    assert [r.last_result["iteration"] for r in confirm.values()] == [ran[0] + ipe] * 2
    assert [r.last_result["epoch"] for r in confirm.values()] == [2, 2]
    verdict = json.loads((result.run_dir / "best" / "summary.json").read_text())["verdict"]
    assert verdict["length"] == "full" and verdict["seeds"] == [1]  # no trial-length pair
    assert "at the base config's full length" in verdict["text"]


def test_study_db_and_report_while_the_search_runs(tmp_path):
    space = space_files.write_space(tmp_path, "live", POINTNET, **{
        **SECTIONS, "search": {"algorithm": "tpe", "num_samples": 5, "seed": 0,
                               "max_concurrent": 1, "confirm": {"top_k": 1, "seeds": 1}},
        "stop": {"max_epochs": 2}})
    run_dir = tmp_path / "runs" / "r"
    results = run_dir / recorder.RESULTS_JSONL
    search = subprocess.Popen(search_args(space, tmp_path / "runs"), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        storage = f"sqlite:///{run_dir / 'study.db'}"
        study = None
        # study.db is rewritten just after a trial's end is recorded: wait for 2 in it
        while (study is None or len(study.trials) < 2) and search.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
            if ends(results) >= 2 and (run_dir / "study.db").exists():
                study = optuna.load_study(study_name="r", storage=storage)
        assert search.poll() is None, "the search finished before it could be watched"
        assert study is not None and len(study.trials) >= 2
        ended = {t for t, r in recorder.load_records(run_dir).items()
                 if r.status != recorder.RUNNING}
        assert {t.user_attrs["ray_trial_id"] for t in study.trials} <= ended
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

        assert lock_holder(run_dir) is not None  # still searching
        report = subprocess.run([*search_args(space, tmp_path)[:2],
                                 "import sys; from rt3d_tune import cli; "
                                 "sys.exit(cli.main(sys.argv[1:]))", "report", str(run_dir)],
                                capture_output=True, text=True, timeout=120, check=False)
        assert report.returncode == 0, report.stderr[-2000:]
        assert "the run is not finished" in report.stdout
        assert "This run is not finished" in (run_dir / "report.html").read_text()
        out, err = search.communicate(timeout=300)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    assert search.returncode == 0, err[-3000:]  # the report took no lock from it
    assert out.strip().splitlines()[-1].startswith("verdict: ")
    final = optuna.load_study(study_name="r", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(final.trials) == 6
