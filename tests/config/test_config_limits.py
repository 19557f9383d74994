"""One YAML reader for configs and space files, with the same checks for both: duplicate
keys (with their key path), unknown tags, alias bombs, nesting; and the bounds on what a
config file makes the loader do (file size, ``_base_`` fan-out, list indices)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from rt3d_tune.config import Config, yaml_io
from rt3d_tune.config.limits import MAX_BASE_FILES, MAX_FILE_BYTES, MAX_NESTING, MAX_YAML_VALUES
from rt3d_tune.config.options import parse_cfg_options
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.space import load_space

PACKAGE = Path(__file__).resolve().parents[2] / "rt3d_tune"
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))


def test_no_module_but_yaml_io_parses_yaml():
    readers = re.compile(r"yaml\.(safe_)?load\(|yaml\.(compose|parse)\(|SafeLoader")
    found = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
             if path.name != "yaml_io.py" and readers.search(path.read_text(encoding="utf-8"))]
    assert found == []


def test_configs_and_space_files_go_through_the_one_reader(tmp_path, monkeypatch):
    seen: list[str] = []
    real = yaml_io.load_yaml

    def spy(text: str, *, file: str | None = None):
        seen.append(Path(str(file)).name)
        return real(text, file=file)

    monkeypatch.setattr(yaml_io, "load_yaml", spy)
    (tmp_path / "base.yaml").write_text("optimizer: {type: SGD, lr: 0.01}\nlr_config: {}\n")
    space = tmp_path / "space.yaml"
    space.write_text("base: base.yaml\nmetric: acc\nmode: max\n"
                     "space:\n  optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    load_space(space)
    assert seen == ["space.yaml", "base.yaml"]


def test_a_config_duplicate_key_is_an_error_with_its_key_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  type: SGD\n  lr: 0.01\nlr_config:\n  policy: step\n"
                    "optimizer:\n  lr: 0.02\n")
    with pytest.raises(ConfigError) as info:
        Config.fromfile(path)
    assert info.value.key_path == "optimizer"
    assert info.value.file == str(path)
    assert "duplicate key 'optimizer' at line 6 (first on line 1)" in info.value.message


@pytest.mark.parametrize("text, key_path", [
    ("optimizer:\n  type: SGD\n  lr: 0.01\n  lr: 0.1\n", "optimizer.lr"),
    ("workflow:\n  - {phase: train, n: 1, n: 2}\n", "workflow[0].n"),
    ("a: {1: x, 1.0: y}\n", "a.1.0"),  # one key to Python: the second would replace the first
])
def test_duplicate_keys_are_refused_wherever_they_are(tmp_path, text, key_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="duplicate key") as info:
        Config.fromfile(path)
    assert info.value.key_path == key_path


def test_a_json_config_duplicate_key_is_refused_with_its_key_path(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"optimizer": {"type": "SGD", "lr": 0.01, "lr": 0.1}}')
    with pytest.raises(ConfigError, match="duplicate key 'lr'") as info:
        Config.fromfile(path)
    assert info.value.key_path == "optimizer.lr"


def test_merge_keys_are_not_duplicates():
    data = yaml_io.load_yaml("base: &b {lr: 0.1, wd: 0.01}\nopt:\n  <<: *b\n  lr: 0.2\n")
    assert data["opt"] == {"lr": 0.2, "wd": 0.01}


def test_an_alias_bomb_is_refused_at_once_with_the_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        Config.fromfile(path)
    assert time.perf_counter() - started < 1.0
    assert re.search(r"holds 1,234,567,9\d\d values", info.value.message)  # what it would take
    assert f"more than the {MAX_YAML_VALUES:,}" in info.value.message
    assert info.value.key_path.startswith("a8")


def test_unknown_tags_are_refused_with_their_key_path(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "c.yaml"
    path.write_text(f"optimizer:\n  lr: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="only plain YAML is accepted") as info:
        Config.fromfile(path)
    assert info.value.key_path == "optimizer.lr" and not marker.exists()


def test_nesting_is_bounded_in_yaml_and_json(tmp_path):
    deep = "[" * (MAX_NESTING + 5) + "]" * (MAX_NESTING + 5)
    (tmp_path / "c.yaml").write_text(f"a: {deep}\n")
    (tmp_path / "c.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for name in ("c.yaml", "c.json"):
        with pytest.raises(ConfigError, match=f"nested more than {MAX_NESTING} levels"):
            Config.fromfile(tmp_path / name)


def test_an_oversized_config_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "c.py"
    path.write_text("x = 1\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(ConfigError, match="more than the 1,048,576"):
        Config.fromfile(path)


def test_base_chains_that_fan_out_are_bounded(tmp_path):
    # Each level names the next twice over: 2**10 loads from 21 small files.
    for level in range(10):
        for copy in ("a", "b"):
            (tmp_path / f"l{level}{copy}.py").write_text(
                f"_base_ = ['l{level + 1}a.py', 'l{level + 1}b.py']\n")
    for copy in ("a", "b"):
        (tmp_path / f"l10{copy}.py").write_text("")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=f"load more than {MAX_BASE_FILES} files") as info:
        Config.fromfile(tmp_path / "l0a.py")
    assert info.value.key_path == "_base_" and time.perf_counter() - started < 2.0


@pytest.mark.parametrize("bases", ["['']", "['a\\x00b.py']", "[1]"])
def test_base_entries_must_name_files(tmp_path, bases):
    path = tmp_path / "c.py"
    path.write_text(f"_base_ = {bases}\n")
    with pytest.raises(ConfigError, match="_base_ must name config files"):
        Config.fromfile(path)


def test_a_base_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "sub.py").mkdir()
    (tmp_path / "c.py").write_text("_base_ = 'sub.py'\n")
    with pytest.raises(ConfigError, match="the config file is a folder"):
        Config.fromfile(tmp_path / "c.py")


def test_huge_list_indices_are_out_of_range_not_a_crash():
    cfg = Config({"workflow": [("train", 1)]})
    with pytest.raises(ConfigError, match="list index out of range") as info:
        cfg.merge_from_dict({"workflow." + "9" * 5000 + ".1": 2})
    assert info.value.key_path.startswith("workflow.999")


def test_cfg_options_nesting_and_key_depth_are_bounded():
    with pytest.raises(ConfigError, match="nests brackets more than"):
        parse_cfg_options(["a=" + "[" * 5000 + "]" * 5000])
    with pytest.raises(ConfigError, match="parts"):
        parse_cfg_options([".".join(["a"] * 100) + "=1"])


@pytest.mark.parametrize("name", ["../hooks", "hooks/my_hooks", "a/b.py", ".hidden", "x-y"])
def test_custom_imports_name_modules_not_paths(name):
    cfg = Config({"custom_imports": {"imports": ["json", name]}})
    with pytest.raises(ConfigError, match="names modules, not files or paths") as info:
        cfg.import_custom_modules()
    assert info.value.key_path == "custom_imports.imports.1"
