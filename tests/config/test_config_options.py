"""Command-line overrides: parsing ``--cfg-options`` and merging dotted key paths."""

from __future__ import annotations

import argparse
import re

import pytest

from rt3d_tune import Config
from rt3d_tune.config.options import DictAction, parse_cfg_options
from rt3d_tune.errors import ConfigError


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", 1),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e-4", 1e-4),
        ("-2.5E3", -2500.0),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("None", None),
        ("SGD", "SGD"),
        ("", ""),
        ("'123'", "123"),
        ('"true"', "true"),
        ("it's", "it's"),
        ("a,b", ["a", "b"]),
        ("[a,b]", ["a", "b"]),
        ("[8, 11]", [8, 11]),
        ("(10,1e-4)", (10, 1e-4)),
        ("(1,)", (1,)),
        ("[]", []),
        ("()", ()),
        ("[(1,2),(3,4)]", [(1, 2), (3, 4)]),
        ("[1,2],[3,4]", [[1, 2], [3, 4]]),
        ("[a,[b,(c,None)]]", ["a", ["b", ("c", None)]]),
        ("['x,y', z]", ["x,y", "z"]),
    ],
)
def test_values_parse(text: str, value: object) -> None:
    parsed = parse_cfg_options([f"key={text}"])["key"]
    assert parsed == value and type(parsed) is type(value)


def test_several_items_and_later_wins() -> None:
    assert parse_cfg_options(["a.b=1", "c.0.d=x", "a.b=2"]) == {"a.b": 2, "c.0.d": "x"}


@pytest.mark.parametrize(
    "item, message",
    [
        ("optimizer.lr", "needs '='"),
        ("=1", "dotted key"),
        ("a..b=1", "dotted key"),
        ("a.=1", "dotted key"),
        ("a=[1,2", "missing a closing ']'"),
        ("a=(1,2]", "unbalanced ']'"),
        ("a=1)", "unbalanced ')'"),
        ("a=1,,2", "empty element"),
        ("a='x", "missing a closing"),
    ],
)
def test_malformed_items_name_the_item_and_hint(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_cfg_options([item])
    assert info.value.given == item
    assert "KEY=VALUE" in info.value.hint


def test_dict_action_accumulates_and_reports_errors_as_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="prog")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    args = parser.parse_args(["--cfg-options", "a.b=1", "c=[1,2]", "--cfg-options", "d=x"])
    assert args.cfg_options == {"a.b": 1, "c": [1, 2], "d": "x"}
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--cfg-options", "a.b"])
    assert info.value.code == 2
    assert "needs '='" in capsys.readouterr().err


def base_cfg() -> Config:
    return Config(dict(
        optimizer=dict(type="SGD", lr=0.02, momentum=0.9),
        optimizer_config=dict(grad_clip=None),
        workflow=[("train", 1)],
        lr_config=dict(policy="cyclic", target_ratio=(10, 1e-4)),
        custom_hooks=[dict(type="A", priority="NORMAL")],
    ))


def test_merge_dotted_paths_through_dicts_lists_and_tuples() -> None:
    cfg = base_cfg()
    cfg.merge_from_dict(parse_cfg_options([
        "optimizer.lr=0.01", "workflow.0.1=2", "lr_config.target_ratio.0=5",
        "custom_hooks.0.priority=HIGHEST", "custom_hooks.-1.a=1", "runner.max_epochs=3",
        "optimizer_config.grad_clip.max_norm=35",
    ]))
    assert cfg.to_dict() == dict(
        optimizer=dict(type="SGD", lr=0.01, momentum=0.9),
        optimizer_config=dict(grad_clip=dict(max_norm=35)),
        workflow=[("train", 2)],
        lr_config=dict(policy="cyclic", target_ratio=(5, 1e-4)),
        custom_hooks=[dict(type="A", priority="HIGHEST", a=1)],
        runner=dict(max_epochs=3),
    )
    assert cfg.runner.max_epochs == 3


def test_merge_dict_values_merge_unless_delete() -> None:
    cfg = base_cfg()
    cfg.merge_from_dict({"optimizer": dict(lr=0.1)})
    assert cfg.optimizer.to_dict() == dict(type="SGD", lr=0.1, momentum=0.9)
    cfg.merge_from_dict({"optimizer": dict(_delete_=True, type="Adam", lr=1e-3)})
    assert cfg.optimizer.to_dict() == dict(type="Adam", lr=1e-3)
    cfg.merge_from_dict({"workflow": [("val", 1)]})
    assert cfg.workflow == [("val", 1)]


@pytest.mark.parametrize(
    "options, key_path, message",
    [
        ({"workflow.1.0": "val"}, "workflow.1", "out of range"),
        ({"custom_hooks.5": 1}, "custom_hooks.5", "out of range"),
        ({"workflow.first": 1}, "workflow.first", "must be an index"),
        ({"optimizer.0": 1}, "optimizer.0", "integer key indexes a list"),
        ({"optimizer.type.name": 1}, "optimizer.type", "has no keys"),
        ({"optimizer.lr": dict(a=1)}, "optimizer.lr", "not a dict"),
    ],
)
def test_merge_errors_name_the_key_path(options: dict, key_path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        base_cfg().merge_from_dict(options)
    assert info.value.key_path == key_path
