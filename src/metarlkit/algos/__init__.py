"""Training algorithms, one folder each, each declared once as an `Algorithm` record.

`get(name)` finds a record, `names()` lists them, `register(record)` adds one (an algorithm written
outside this package registers itself the same way). The built-in algorithms are imported on
first use; each folder's `__init__` registers its record.
"""

from __future__ import annotations

import importlib

from metarlkit.algos.registry import (
    ACTION_SPACES,
    Algorithm,
    Curve,
    Phase,
    Train,
    register,
    single_phase,
    unregister,
)
from metarlkit.algos.registry import _REGISTRY

# One line per built-in algorithm folder (metarlkit.algos.<name> registers itself on import).
BUILTIN = ("rl2", "maml", "epopt", "pearl", "grbal", "gmps")

_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(f"metarlkit.algos.{module}")


def _ordered() -> list[str]:
    # built-ins in BUILTIN's order (whichever was imported first), then the others as registered
    return [n for n in BUILTIN if n in _REGISTRY] + [n for n in _REGISTRY if n not in BUILTIN]


def names() -> list[str]:
    """Registered algorithm names: the built-ins in BUILTIN's order, then others as registered."""
    _load_builtins()
    return _ordered()


def get(name: str) -> Algorithm:
    """The record of algorithm `name`; a one-line ValueError naming the registered ones otherwise."""
    from metarlkit.specs import closest

    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}{closest(name, _REGISTRY)}; "
                         f"registered: {', '.join(_ordered())}")
    return _REGISTRY[name]


__all__ = ["ACTION_SPACES", "BUILTIN", "Algorithm", "Curve", "Phase", "Train", "get", "names", "register",
           "single_phase", "unregister"]
