"""Training algorithms, one folder each; `get(name)` finds one by name."""

from __future__ import annotations

ALGORITHMS = ("rl2", "maml")


def get(name: str):
    """The algorithm module `metarlkit.algos.<name>` (with `Config`, `make_train`, `make_agent`)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    import importlib

    return importlib.import_module(f"metarlkit.algos.{name}")
