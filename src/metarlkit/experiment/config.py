"""Config dataclasses as command-line options and files: field docstrings, overrides, validation."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import textwrap
import tomllib
from typing import Any


@functools.lru_cache(maxsize=32)
def field_docs(cls) -> dict[str, str]:
    """The docstring written under each field of a dataclass (`name: type = default` then a string)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def read_file(path: str) -> dict[str, Any]:
    """A JSON or TOML config file as {field: value} (dashes in names become underscores).

    A run directory's `run.json` is accepted too: its `config` table is used.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f) if path.endswith(".toml") else json.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {path!r} not found; check the path") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        kind = "TOML" if path.endswith(".toml") else "JSON"
        raise ValueError(f"config file {path!r} is not valid {kind}: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "algorithm_name" in data:
        data = data["config"]
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must hold a table/object of option names")
    return {k.replace("-", "_"): v for k, v in data.items()}


def build(cls, *layers: dict[str, Any], source: str = "config"):
    """`cls(**merged layers)`, later layers winning; unknown names and bad values raise SpecError."""
    from metarlkit.specs import build_options

    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return build_options(cls, merged, source)


def to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def options_table(cls) -> str:
    """A Markdown table of a config dataclass: option (as a command-line flag), default, meaning.

    The docs' options tables are this function's output (`metarlkit algorithms --markdown`), so
    they cannot drift from the code.
    """
    from metarlkit.specs import limits_of

    docs, limits = field_docs(cls), limits_of(cls)
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = docs.get(f.name, "").replace("|", "\\|")
        if f.name in limits:
            text += f" (at most {limits[f.name]:,})"
        lines.append(f"| `--{f.name.replace('_', '-')}` | `{default!r}` | {text} |")
    return "\n".join(lines)
