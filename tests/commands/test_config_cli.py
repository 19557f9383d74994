"""``rt3d-tune config show``: the merged config, overrides, formats and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rt3d_tune import __version__, cli
from rt3d_tune.config import Config

SEED = Path(__file__).parents[1] / "data" / "seed_configs"

def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_show_prints_the_merged_config_as_python(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "config", "show", str(SEED / "grad_clip.py"))
    assert code == 0 and err == ""
    assert "optimizer_config = {'grad_clip': {'max_norm': 35, 'norm_type': 2}}\n" in out
    assert "_base_" not in out and "_delete_" not in out
    assert "runner = {'type': 'EpochBasedRunner', 'max_epochs': 12}\n" in out


def test_show_applies_cfg_options_in_every_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    options = ["--cfg-options", "optimizer.lr=0.01", "workflow.0.1=2", "lr_config.step=[8,11]"]
    outputs = {}
    for fmt in ("py", "yaml", "json"):
        code, out, _ = run_cli(capsys, "config", "show", str(SEED / "grad_clip.py"), *options,
                               "--format", fmt)
        assert code == 0
        outputs[fmt] = out
    (tmp_path / "shown.py").write_text(outputs["py"])
    shown = Config.fromfile(tmp_path / "shown.py").to_dict()
    assert shown["optimizer"]["lr"] == 0.01
    assert shown["workflow"] == [("train", 2)]
    assert shown["lr_config"]["step"] == [8, 11]
    expected = json.loads(json.dumps(shown))
    assert yaml.safe_load(outputs["yaml"]) == expected == json.loads(outputs["json"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["config", "show", "missing.py"], "config file not found"),
        (["config", "show", str(SEED / "grad_clip.py"), "--cfg-options", "workflow.3.0=val"],
         "workflow.3: list index out of range"),
    ],
)
def test_user_mistakes_exit_2_with_one_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert err.startswith("rt3d-tune config: error: ")


def test_malformed_override_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "config", "show", str(SEED / "grad_clip.py"),
                           "--cfg-options", "optimizer.lr")
    assert code == 2
    assert "needs '='" in err and "Traceback" not in err


def test_bad_yaml_exits_2_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1\n")
    code, _, err = run_cli(capsys, "config", "show", str(path))
    assert code == 2 and "invalid YAML" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "--debug", "config", "show", str(path))
    assert code == 2 and "Traceback" in err and "invalid YAML" in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and all(command in out for command in cli.COMMANDS)
    code, out, _ = run_cli(capsys, "config", "show", "--help")
    assert code == 0 and "--cfg-options" in out and "--format" in out
    code, _, err = run_cli(capsys, "config")
    assert code == 2 and "show" in err


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optimizer: {type: SGD, lr: 0.1}\n_base_: nowhere.py\n")
    result = subprocess.run([sys.executable, "-m", "rt3d_tune", "config", "show", str(path)],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 2
    assert "base config file not found" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the message and its hint
    result = subprocess.run([sys.executable, "-m", "rt3d_tune", "--help"],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0 and "config" in result.stdout
