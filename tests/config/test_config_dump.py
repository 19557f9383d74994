"""Dumping configs: literal-only Python, YAML and JSON that load back to an equal config."""

from __future__ import annotations

import ast
import keyword
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rt3d_tune import Config
from rt3d_tune.errors import ConfigError

SEED = Path(__file__).parents[1] / "data" / "seed_configs"
SPECIAL = {"_base_", "_delete_", "custom_imports"}


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (True is not 1, a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def lists_for_tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: lists_for_tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [lists_for_tuples(v) for v in value]
    return value


names = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda k: k not in SPECIAL and not (k.startswith("__") and k.endswith("__"))
)
top_names = names.filter(lambda k: not keyword.iskeyword(k))
strings = st.text(
    alphabet=st.one_of(
        st.sampled_from("'\"\\\n\t #:{}[],-.e1"), st.characters(blacklist_categories=("Cs",))
    ),
    max_size=12,
) | st.sampled_from(
    ["1e5", "1e-4", "yes", "null", "true", "None", "0x1F", "12:30", "~", "it's", '"q"']
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-1.5e-7, 2e300, 1e16, -0.0, 0.1]),
    strings,
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(names, children, max_size=4),
    max_leaves=16,
)
configs = st.dictionaries(top_names, values, max_size=6)


def roundtrip(data: dict[str, Any], suffix: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"cfg{suffix}"
        Config(data).dump(path)
        return Config.fromfile(path).to_dict()


@settings(max_examples=100, deadline=None)
@given(configs)
def test_py_dump_loads_back_identical(data: dict[str, Any]) -> None:
    assert same(roundtrip(data, ".py"), data)


@settings(max_examples=60, deadline=None)
@given(configs)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_yaml_and_json_dumps_load_back_equal_with_tuples_as_lists(
    suffix: str, data: dict[str, Any]
) -> None:
    assert same(roundtrip(data, suffix), lists_for_tuples(data))


@pytest.mark.parametrize("name", sorted(p.name for p in SEED.glob("*.py")))
@pytest.mark.parametrize("suffix", [".py", ".yaml", ".json"])
def test_seed_configs_round_trip(name: str, suffix: str) -> None:
    data = Config.fromfile(SEED / name).to_dict()
    expected = data if suffix == ".py" else lists_for_tuples(data)
    assert same(roundtrip(data, suffix), expected)


def test_py_dump_is_pretty_and_literal_only() -> None:
    cfg = Config(dict(
        optimizer=dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001),
        lr_config=dict(policy="cyclic", target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4,
                       extra={"not-a-name": 1, "if": 2}),
        workflow=[("train", 1)],
        ratio=(0.5,),
    ))
    text = cfg.dumps("py")
    assert text == (
        "optimizer = {'type': 'SGD', 'lr': 0.02, 'momentum': 0.9, 'weight_decay': 0.0001}\n"
        "lr_config = {\n"
        "    'policy': 'cyclic',\n"
        "    'target_ratio': (10, 0.0001),\n"
        "    'cyclic_times': 1,\n"
        "    'step_ratio_up': 0.4,\n"
        "    'extra': {'not-a-name': 1, 'if': 2},\n"
        "}\n"
        "workflow = [('train', 1)]\n"
        "ratio = (0.5,)\n"
    )
    # Literals only: every value is data that ast.literal_eval reads back.
    module = ast.parse(text)
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in module.body}
    assert values == cfg.to_dict()
    assert cfg.pretty_text == cfg.dumps("py") == cfg.dump()


def test_long_one_item_tuple_wraps_and_loads_back(tmp_path: Path) -> None:
    data = {"hooks": (dict(type="TextLoggerHook", interval=50, by_epoch=True, ignore_last=True,
                           reset_flag=False),)}
    assert same(roundtrip(data, ".py"), data)
    assert "\n" in Config(data).dumps("py").strip()


def test_a_top_level_key_named_dict_still_loads(tmp_path: Path) -> None:
    data = {"dict": 1, "b": {"c": {"d": 2}}}
    cfg = Config(data)
    assert "dict(" not in cfg.dumps("py")
    cfg.dump(tmp_path / "c.py")
    assert Config.fromfile(tmp_path / "c.py").to_dict() == data


def test_non_literal_values_are_refused_with_their_key_path() -> None:
    with pytest.raises(ConfigError, match="literal") as info:
        Config(dict(optimizer=dict(type=int, lr=[0.1, object()]))).dumps("yaml")
    assert info.value.key_path == "optimizer.type"


def test_key_that_is_no_python_name_needs_yaml_or_json(tmp_path: Path) -> None:
    cfg = Config({"my-key": 1})
    with pytest.raises(ConfigError) as info:
        cfg.dumps("py")
    assert info.value.key_path == "my-key"
    cfg.dump(tmp_path / "c.yaml")
    assert Config.fromfile(tmp_path / "c.yaml").to_dict() == {"my-key": 1}


def test_dump_format_follows_the_suffix(tmp_path: Path) -> None:
    cfg = Config(dict(a=[1, 2]), filename="x.json")
    assert cfg.dump().startswith("{")
    cfg.dump(tmp_path / "c.yml")
    assert (tmp_path / "c.yml").read_text() == "a:\n- 1\n- 2\n"
    with pytest.raises(ConfigError, match="unsupported config file type"):
        cfg.dump(tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="unknown config format"):
        cfg.dumps("toml")
