"""Config loading: formats, _base_, merge rules, _delete_, {{ }} variables, custom_imports."""

from __future__ import annotations

import copy
import pickle
import sys
import textwrap
from pathlib import Path

import pytest

from rt3d_tune import Config
from rt3d_tune.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# --- formats and access -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("c.py", "optimizer = dict(type='SGD', lr=0.02)\nworkflow = [('train', 1)]\n"),
        ("c.yaml", "optimizer: {type: SGD, lr: 0.02}\nworkflow: [[train, 1]]\n"),
        ("c.yml", "optimizer:\n  type: SGD\n  lr: 0.02\nworkflow:\n- [train, 1]\n"),
        ("c.json", '{"optimizer": {"type": "SGD", "lr": 0.02}, "workflow": [["train", 1]]}'),
    ],
)
def test_every_format_loads_with_attribute_and_item_access(
    tmp_path: Path, name: str, text: str
) -> None:
    cfg = Config.fromfile(write(tmp_path / name, text))
    assert cfg.optimizer.lr == cfg["optimizer"]["lr"] == 0.02
    assert cfg.optimizer.type == "SGD"
    assert list(cfg.workflow[0]) == ["train", 1]
    assert cfg.filename == str(tmp_path / name)
    assert "optimizer" in cfg and "lr_config" not in cfg
    assert cfg.get("lr_config", "absent") == "absent"
    assert list(cfg) == ["optimizer", "workflow"]


def test_py_config_keeps_only_values(tmp_path: Path) -> None:
    path = write(tmp_path / "c.py", """
        import math
        from collections import OrderedDict
        def helper():
            return 1
        class Thing:
            pass
        lr = math.sqrt(4) * 0.01
        _private = 1
        __dunder__ = 2
        """)
    assert Config.fromfile(path).to_dict() == {"lr": 0.02, "_private": 1}


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    cfg = Config.fromfile(write(tmp_path / "c.yaml", "lr: 1e-4\nname: '1e-4'\n"))
    assert cfg.lr == 1e-4 and cfg.name == "1e-4"


def test_nested_values_are_live_views_and_settable() -> None:
    cfg = Config(dict(optimizer=dict(type="SGD", lr=0.1), custom_hooks=[dict(type="A")]))
    cfg.optimizer.lr = 0.5
    cfg["optimizer"]["momentum"] = 0.9
    cfg.lr_config = dict(policy="step", step=[8, 11])
    assert cfg.to_dict()["optimizer"] == {"type": "SGD", "lr": 0.5, "momentum": 0.9}
    assert cfg.lr_config.step == [8, 11]
    assert cfg.custom_hooks[0].type == "A"
    assert not hasattr(cfg.optimizer, "betas")
    with pytest.raises(AttributeError, match="betas"):
        _ = cfg.optimizer.betas


def test_to_dict_is_plain_and_detached() -> None:
    source = dict(a=dict(b=[dict(c=1)], t=(1, 2)))
    cfg = Config(source)
    plain = cfg.to_dict()
    assert type(plain["a"]) is dict and type(plain["a"]["b"][0]) is dict
    assert plain["a"]["t"] == (1, 2)
    plain["a"]["b"][0]["c"] = 2
    source["a"]["b"][0]["c"] = 3
    assert cfg.a.b[0].c == 1


def test_nested_config_dicts_pickle_and_copy_on_their_own() -> None:
    section = Config(dict(optimizer=dict(lr=0.1, betas=(0.9, 0.99)))).optimizer
    for clone in (pickle.loads(pickle.dumps(section)), copy.deepcopy(section)):
        assert clone == section and clone.betas == (0.9, 0.99)
        clone.lr = 1.0
        assert section.lr == 0.1


def test_config_pickles_and_deep_copies() -> None:
    cfg = Config(dict(optimizer=dict(lr=0.1)), filename="x.py")
    for clone in (pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg), copy.copy(cfg)):
        assert clone == cfg and clone.filename == "x.py"
        clone.optimizer.lr = 1.0
        assert cfg.optimizer.lr == 0.1


# --- _base_ and merging -------------------------------------------------------------------


def test_bases_merge_recursively_relative_to_the_naming_file(tmp_path: Path) -> None:
    write(tmp_path / "_base_" / "schedules" / "sched.py", """
        optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4)
        lr_config = dict(policy='step', step=[8, 11])
        """)
    write(tmp_path / "_base_" / "runtime.yaml", "workflow: [[train, 1]]\nlog_level: INFO\n")
    write(tmp_path / "_base_" / "mid.py", """
        _base_ = ['./schedules/sched.py', 'runtime.yaml']
        optimizer = dict(lr=0.01)
        """)
    path = write(tmp_path / "sub" / "child.py", """
        _base_ = '../_base_/mid.py'
        lr_config = dict(step=[20])
        log_level = 'DEBUG'
        """)
    cfg = Config.fromfile(path)
    assert cfg.to_dict() == {
        "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        "lr_config": {"policy": "step", "step": [20]},
        "workflow": [["train", 1]],
        "log_level": "DEBUG",
    }


def test_delete_replaces_the_inherited_dict_and_disappears(tmp_path: Path) -> None:
    write(tmp_path / "base.py", """
        optimizer_config = dict(grad_clip=None, cumulative_iters=4)
        lr_config = dict(policy='step', step=[8], nested=dict(a=1, b=2))
        """)
    path = write(tmp_path / "c.py", """
        _base_ = './base.py'
        optimizer_config = dict(_delete_=True, grad_clip=dict(max_norm=35, norm_type=2))
        lr_config = dict(nested=dict(_delete_=True, c=3))
        new = dict(_delete_=True, x=1)
        """)
    assert Config.fromfile(path).to_dict() == {
        "optimizer_config": {"grad_clip": {"max_norm": 35, "norm_type": 2}},
        "lr_config": {"policy": "step", "step": [8], "nested": {"c": 3}},
        "new": {"x": 1},
    }


def test_lists_and_tuples_are_replaced_not_merged(tmp_path: Path) -> None:
    write(tmp_path / "base.py", "workflow = [('train', 1), ('val', 1)]\nratio = (10, 1e-4)\n")
    path = write(tmp_path / "c.py", "_base_ = 'base.py'\nworkflow = [('train', 2)]\nratio = (5,)\n")
    assert Config.fromfile(path).to_dict() == {"workflow": [("train", 2)], "ratio": (5,)}


def test_dict_over_scalar_base_value_names_the_key(tmp_path: Path) -> None:
    write(tmp_path / "base.py", "optimizer_config = dict(grad_clip=None)\n")
    path = write(tmp_path / "c.py", """
        _base_ = 'base.py'
        optimizer_config = dict(grad_clip=dict(max_norm=3))
        """)
    with pytest.raises(ConfigError) as info:
        Config.fromfile(path)
    assert info.value.key_path == "optimizer_config.grad_clip"
    assert info.value.file == str(path)
    assert "_delete_=True" in info.value.hint


def test_sibling_bases_defining_the_same_key_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.py", "optimizer = dict(lr=1)\nx = 1\n")
    write(tmp_path / "b.yaml", "optimizer: {lr: 2}\n")
    path = write(tmp_path / "c.py", "_base_ = ['a.py', 'b.yaml']\n")
    with pytest.raises(ConfigError, match="two base files") as info:
        Config.fromfile(path)
    assert info.value.key_path == "optimizer"
    assert "a.py" in info.value.message and "b.yaml" in info.value.message


def test_base_cycle_names_the_files(tmp_path: Path) -> None:
    write(tmp_path / "a.py", "_base_ = 'b.py'\nx = 1\n")
    write(tmp_path / "b.py", "_base_ = 'sub/c.yaml'\n")
    write(tmp_path / "sub" / "c.yaml", "_base_: ../a.py\n")
    with pytest.raises(ConfigError, match="cycle") as info:
        Config.fromfile(tmp_path / "a.py")
    message = info.value.message
    assert message.index("a.py") < message.index("b.py") < message.index("c.yaml")
    assert message.rstrip().endswith("a.py")


def test_self_base_is_a_cycle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cycle"):
        Config.fromfile(write(tmp_path / "a.py", "_base_ = './a.py'\n"))


def test_missing_base_file_names_the_naming_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.py", "_base_ = ['../nowhere/sched.py']\n")
    with pytest.raises(ConfigError, match="base config file not found") as info:
        Config.fromfile(path)
    assert info.value.file == str(path) and info.value.key_path == "_base_"
    assert "nowhere" in info.value.message


def test_missing_config_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Config.fromfile(tmp_path / "none.py")
    with pytest.raises(ConfigError, match="unsupported config file type"):
        Config.fromfile(write(tmp_path / "c.toml", "a = 1\n"))


def test_base_must_name_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Config.fromfile(write(tmp_path / "c.py", "_base_ = [1]\n"))
    assert info.value.key_path == "_base_"


# --- parse errors -------------------------------------------------------------------------


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "optimizer:\n  type: SGD\n  lr: [0.1\nrunner: x\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+") as info:
        Config.fromfile(path)
    assert info.value.file == str(path)


def test_python_tags_in_yaml_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "x: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="only plain YAML is accepted"):
        Config.fromfile(path)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        Config.fromfile(write(tmp_path / "c.yaml", "- 1\n- 2\n"))


def test_bad_json_and_bad_python_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid JSON at line 2"):
        Config.fromfile(write(tmp_path / "c.json", '{"a": 1,\n "b": }\n'))
    with pytest.raises(ConfigError, match="invalid Python at line 2"):
        Config.fromfile(write(tmp_path / "c.py", "a = 1\nb = dict(\n"))
    with pytest.raises(ConfigError, match="line 2: NameError"):
        Config.fromfile(write(tmp_path / "d.py", "a = 1\nb = a_value\n"))


def test_empty_yaml_is_an_empty_config(tmp_path: Path) -> None:
    assert Config.fromfile(write(tmp_path / "c.yaml", "# nothing\n")).to_dict() == {}


# --- {{ }} substitution -------------------------------------------------------------------


def test_file_variables_are_substituted(tmp_path: Path) -> None:
    path = write(tmp_path / "my_cfg.py", """
        work_dir = './work_dirs/{{ fileBasenameNoExtension }}'
        here = '{{fileDirname}}'
        names = ['{{ fileBasename }}', '{{ fileExtname }}']
        """)
    cfg = Config.fromfile(path)
    assert cfg.work_dir == "./work_dirs/my_cfg"
    assert cfg.here == str(tmp_path).replace("\\", "/")
    assert cfg.names == ["my_cfg.py", ".py"]


@pytest.mark.parametrize("ext", ["py", "yaml", "json"])
def test_base_references_keep_their_type(tmp_path: Path, ext: str) -> None:
    write(tmp_path / "base.py", """
        optimizer = dict(lr=0.02)
        workflow = [('train', 1)]
        step = [8, 11]
        """)
    texts = {
        "py": "_base_ = 'base.py'\nlr = {{ _base_.optimizer.lr }}\n"
              "wf = '{{ _base_.workflow }}'\ns = dict(x={{_base_.step.1}})\n",
        "yaml": "_base_: base.py\nlr: {{ _base_.optimizer.lr }}\nwf: '{{ _base_.workflow }}'\n"
                "s: {x: {{_base_.step.1}}}\n",
        "json": '{"_base_": "base.py", "lr": {{ _base_.optimizer.lr }}, '
                '"wf": "{{ _base_.workflow }}", "s": {"x": {{_base_.step.1}}}}',
    }
    cfg = Config.fromfile(write(tmp_path / f"c.{ext}", texts[ext]))
    assert cfg.lr == 0.02 and cfg.s.x == 11
    assert cfg.wf == [("train", 1)]


def test_base_reference_inside_a_string_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "base.py", "name = 'pillar'\n")
    path = write(tmp_path / "c.py", "_base_ = 'base.py'\nwork_dir = 'runs/{{ _base_.name }}'\n")
    with pytest.raises(ConfigError, match="whole value"):
        Config.fromfile(path)


def test_unknown_base_reference_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "base.py", "optimizer = dict(lr=0.02)\n")
    path = write(tmp_path / "c.py", "_base_ = 'base.py'\nlr = {{ _base_.optimizer.momentum }}\n")
    with pytest.raises(ConfigError) as info:
        Config.fromfile(path)
    assert info.value.key_path == "_base_.optimizer.momentum"


# --- custom_imports -----------------------------------------------------------------------


@pytest.fixture
def clean_modules():
    """Forget the modules a test imports from its tmp folder."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("rt3d_test_"):
            del sys.modules[name]


def test_custom_import_relative_to_the_config_folder(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "cfgs" / "rt3d_test_hooks.py", "LOADED = True\n")
    write(tmp_path / "cfgs" / "rt3d_test_pkg" / "__init__.py", "")
    write(tmp_path / "cfgs" / "rt3d_test_pkg" / "mod.py", "LOADED = True\n")
    path = write(tmp_path / "cfgs" / "c.py", """
        custom_imports = dict(imports=['rt3d_test_hooks', 'rt3d_test_pkg.mod'],
                              allow_failed_imports=False)
        """)
    cfg = Config.fromfile(path)
    assert sys.modules["rt3d_test_hooks"].LOADED and sys.modules["rt3d_test_pkg.mod"].LOADED
    assert cfg.custom_imports.imports == ["rt3d_test_hooks", "rt3d_test_pkg.mod"]
    assert str(tmp_path / "cfgs") not in sys.path


def test_custom_import_from_a_base_file_folder(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "base" / "rt3d_test_base_mod.py", "LOADED = True\n")
    write(tmp_path / "base" / "b.py", "custom_imports = dict(imports='rt3d_test_base_mod')\n")
    Config.fromfile(write(tmp_path / "c.py", "_base_ = 'base/b.py'\n"))
    assert sys.modules["rt3d_test_base_mod"].LOADED


def test_custom_import_on_sys_path() -> None:
    cfg = Config(dict(custom_imports=dict(imports=["json.decoder"])))
    assert cfg.import_custom_modules() == ["json.decoder"]


def test_failing_custom_import_names_module_and_error(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "rt3d_test_broken.py", "import not_a_module_anywhere\n")
    path = write(tmp_path / "c.py", "custom_imports = dict(imports=['rt3d_test_broken'])\n")
    with pytest.raises(ConfigError) as info:
        Config.fromfile(path)
    assert "rt3d_test_broken" in info.value.message
    assert "not_a_module_anywhere" in info.value.message
    assert info.value.key_path == "custom_imports.imports"
    assert Config.fromfile(path, import_custom_modules=False).custom_imports.imports == [
        "rt3d_test_broken"
    ]


def test_allow_failed_imports_warns_and_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "c.py", """
        custom_imports = dict(imports=['rt3d_test_missing', 'json'], allow_failed_imports=True)
        x = 1
        """)
    with pytest.warns(UserWarning, match="rt3d_test_missing"):
        cfg = Config.fromfile(path)
    assert cfg.x == 1


@pytest.mark.parametrize(
    "value, key_path",
    [
        (["a"], "custom_imports"),
        (dict(imports=[1]), "custom_imports.imports"),
        (dict(imports="json", allow_failed_imports="yes"), "custom_imports.allow_failed_imports"),
        (dict(modules=["json"]), "custom_imports"),
    ],
)
def test_malformed_custom_imports(value: object, key_path: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(dict(custom_imports=value)).import_custom_modules()
    assert info.value.key_path == key_path
