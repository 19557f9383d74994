"""Config text: reading .py/.yaml/.json source into a dict, and writing one back.

Reading happens after the ``{{ ... }}`` substitutions (see ``substitute_file_vars`` and
``mark_base_refs``). Writing produces literal-only Python (one ``name = value`` line
per top-level key, in insertion order), YAML or JSON; each loads back to an equal config.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rt3d_tune.config import yaml_io
from rt3d_tune.config.limits import MAX_NESTING
from rt3d_tune.errors import ConfigError

__all__ = [
    "FORMATS",
    "config_format",
    "dumps",
    "mark_base_refs",
    "parse_text",
    "substitute_file_vars",
]

FORMATS = {".py": "py", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_BASE_REF = re.compile(r"""(["']?)\{\{\s*_base_\.([\w.]+)\s*\}\}\1""")
_PY_WIDTH = 88


def config_format(path: str | Path) -> str:
    """'py', 'yaml' or 'json' from the file suffix.

    Raises:
        ConfigError: any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            "unsupported config file type",
            file=str(path),
            expected="a .py, .yaml, .yml or .json file",
            given=suffix or "(no suffix)",
        )
    return FORMATS[suffix]


def substitute_file_vars(text: str, path: Path) -> str:
    """Replace ``{{ fileDirname }}`` and its family with the values for ``path``."""
    values = {
        "fileDirname": str(path.parent),
        "fileBasename": path.name,
        "fileBasenameNoExtension": path.stem,
        "fileExtname": path.suffix,
    }
    for name, value in values.items():
        text = re.sub(r"\{\{\s*" + name + r"\s*\}\}", value.replace("\\", "/"), text)
    return text


def mark_base_refs(text: str) -> tuple[str, dict[str, str]]:
    """Replace each ``{{ _base_.a.b }}`` (quoted or not) with a unique string literal.

    Returns the new text and a map placeholder -> dotted path; the loader swaps the
    placeholders for the merged bases' values after parsing, so a value keeps its type.
    """
    refs: dict[str, str] = {}

    def repl(match: re.Match[str]) -> str:
        placeholder = f"__rt3d_base_ref_{len(refs)}_{match.group(2)}__"
        refs[placeholder] = match.group(2)
        return f'"{placeholder}"'

    return _BASE_REF.sub(repl, text), refs


def _is_config_value(name: str, value: Any) -> bool:
    if name.startswith("__") and name.endswith("__"):
        return False
    return not isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                                  type))


def _parse_py(text: str, path: Path) -> dict[str, Any]:
    try:
        code = compile(text, str(path), "exec")
    except SyntaxError as err:
        raise ConfigError(
            f"invalid Python at line {err.lineno}: {err.msg}", file=str(path),
            hint="a .py config is Python source; check that line",
        ) from err
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "__rt3d_config__"}
    try:
        exec(code, namespace)
    except ConfigError:
        raise
    except Exception as err:
        line = _traceback_line(err, str(path))
        raise ConfigError(
            f"executing the config failed{line}: {type(err).__name__}: {err}", file=str(path),
            hint="a .py config runs as Python; every name it uses must be defined in it",
        ) from err
    return {k: v for k, v in namespace.items() if _is_config_value(k, v)}


def _traceback_line(err: BaseException, filename: str) -> str:
    tb = err.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


def _parse_yaml(text: str, path: Path) -> Any:
    return yaml_io.load_yaml(text, file=str(path))


_DUPLICATE = object()  # marks a JSON object that repeated a key (its value: the key)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    obj: dict[Any, Any] = {}
    for key, value in pairs:
        if key in obj and _DUPLICATE not in obj:
            obj[_DUPLICATE] = key
        obj[key] = value
    return obj


def _child(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _check_json(value: Any, key_path: str, depth: int, path: Path) -> None:
    """Refuse a repeated key (json keeps the last silently) and nesting past MAX_NESTING."""
    if not isinstance(value, (dict, list)):
        return
    if depth >= MAX_NESTING:
        raise ConfigError(f"nested more than {MAX_NESTING} levels deep", key_path=key_path,
                          file=str(path))
    if isinstance(value, dict) and _DUPLICATE in value:
        key = value.pop(_DUPLICATE)
        raise ConfigError(f"duplicate key {key!r}", key_path=_child(key_path, key),
                          file=str(path), hint="JSON keeps only the last of them; remove one")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        _check_json(item, _child(key_path, key), depth + 1, path)


def _parse_json(text: str, path: Path) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}", file=str(path)
        ) from err
    except RecursionError:
        raise ConfigError(f"nested more than {MAX_NESTING} levels deep", file=str(path)) from None
    _check_json(data, "", 0, path)
    return data


def parse_text(text: str, fmt: str, path: Path) -> dict[str, Any]:
    """Parse config source of format ``fmt`` ('py', 'yaml', 'json') read from ``path``.

    Raises:
        ConfigError: a syntax error (with file and line), a failing .py config, an
            unsafe YAML tag, or a document that is not a mapping.
    """
    parsers = {"py": _parse_py, "yaml": _parse_yaml, "json": _parse_json}
    data = parsers[fmt](text, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "a config file must hold a mapping of keys to values at its top level",
            file=str(path), expected="a mapping", given=data,
        )
    return data


def _plain(value: Any, tuples: bool) -> Any:
    """Plain containers; tuples become lists unless ``tuples``."""
    if isinstance(value, Mapping):
        return {k: _plain(v, tuples) for k, v in value.items()}
    if isinstance(value, tuple) and tuples:
        return tuple(_plain(v, tuples) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, tuples) for v in value]
    return value


def _is_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _py_literal(value: Any, indent: int, key_path: str) -> str:
    """``value`` as a Python literal that ``ast.literal_eval`` reads back, wrapped over
    lines when it is wider than the page. Dicts are written ``{'k': v}``, not
    ``dict(k=v)``: a call is not a literal, and exported configs must be data only."""
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"  # literal_eval reads these as +-inf
    if isinstance(value, float) and math.isnan(value):
        return "float('nan')"  # the one value with no literal spelling
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, Mapping):
        for k in value:
            if not (k is None or isinstance(k, (bool, int, float, str))):
                raise ConfigError(
                    "a dict key cannot be written as a Python literal", key_path=key_path,
                    expected="str, int, float, bool or None keys", given=k,
                )
        items = [f"{k!r}: " + _py_literal(v, indent + 4, f"{key_path}.{k}")
                 for k, v in value.items()]
        opening, closing = "{", "}"
    elif isinstance(value, (list, tuple)):
        items = [_py_literal(v, indent + 4, f"{key_path}.{i}") for i, v in enumerate(value)]
        opening, closing = ("(", ")") if isinstance(value, tuple) else ("[", "]")
    else:
        raise ConfigError(
            "the value cannot be written as a literal",
            key_path=key_path,
            expected="dict, list, tuple, str, int, float, bool or None",
            given=value,
            hint="replace objects (classes, functions) by their registered names",
        )
    one_tuple = "," if isinstance(value, tuple) and len(value) == 1 else ""
    flat = opening + ", ".join(items) + one_tuple + closing
    if "\n" not in flat and indent + len(flat) <= _PY_WIDTH:
        return flat
    pad = " " * (indent + 4)
    return opening + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + closing


def _dumps_py(data: Mapping[str, Any]) -> str:
    for key in data:
        if not _is_name(key) or (key.startswith("__") and key.endswith("__")):
            raise ConfigError(
                "this top-level key cannot be a name in a .py config",
                key_path=str(key),
                expected="a Python identifier that is not a keyword or a dunder",
                given=key,
                hint="dump to .yaml or .json instead, or rename the key",
            )
    return "".join(f"{key} = {_py_literal(value, 0, key)}\n" for key, value in data.items())


def dumps(data: Mapping[str, Any], fmt: str) -> str:
    """Config text in format ``fmt``: 'py' (literal-only Python), 'yaml' or 'json'.

    Raises:
        ConfigError: an unknown format, or a value that is not a plain literal.
    """
    if fmt == "py":
        return _dumps_py(data)
    for key, value in data.items():
        _py_literal(value, 0, str(key))  # the same literal check, with key paths
    if fmt == "yaml":
        # allow_unicode=False: YAML reads some characters written raw (NEL, U+0085) as
        # line breaks; escaped, every string loads back exactly.
        return yaml.dump(_plain(data, tuples=False), Dumper=yaml_io.YamlDumper, sort_keys=False,
                         default_flow_style=False, allow_unicode=False, width=_PY_WIDTH)
    if fmt == "json":
        return json.dumps(_plain(data, tuples=False), indent=2, ensure_ascii=False) + "\n"
    raise ConfigError("unknown config format", expected="py, yaml or json", given=fmt)
