"""Checkpoints of a whole train state: every leaf, written atomically, checked against a template.

The train state is any pytree of arrays (params, optimiser state, keys, counters). It is saved as
its flat list of leaves plus a metadata table (msgpack, `flax.serialization`), and restored into
the structure of a template (e.g. `jax.eval_shape(init, keys)`) so a changed config is a clear
error rather than silently wrong weights.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import serialization

from metarlkit.utils import write_atomic

FORMAT = 1


class CheckpointError(ValueError):
    """The checkpoint does not match what the run expects."""


def save(path, state: Any, meta: dict[str, Any]) -> None:
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]
    blob = {"format": FORMAT, "meta": meta, "leaves": {str(i): x for i, x in enumerate(leaves)}}
    write_atomic(path, serialization.msgpack_serialize(blob))


def load(path, template: Any) -> tuple[Any, dict[str, Any]]:
    """(state in the template's structure, metadata). Raises CheckpointError on any mismatch."""
    try:
        with open(path, "rb") as f:
            blob = serialization.msgpack_restore(f.read())
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as err:  # msgpack raises several kinds on a damaged file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}); it may be damaged") from None
    if blob.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {blob.get('format')}, expected {FORMAT}")
    expected, treedef = jax.tree_util.tree_flatten(template)
    stored = blob["leaves"]
    if len(stored) != len(expected):
        raise CheckpointError(f"checkpoint {path} holds {len(stored)} arrays, the run expects {len(expected)}")
    leaves = []
    for i, want in enumerate(expected):
        got = np.asarray(stored[str(i)])
        if got.shape != tuple(want.shape) or got.dtype != np.dtype(want.dtype):
            raise CheckpointError(
                f"checkpoint {path} array {i} is {got.dtype}{list(got.shape)}, the run expects "
                f"{np.dtype(want.dtype)}{list(want.shape)}; the config or code changed since it was written"
            )
        leaves.append(got)
    return jax.tree_util.tree_unflatten(treedef, leaves), blob["meta"]
