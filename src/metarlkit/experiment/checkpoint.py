"""Checkpoints of a whole train state: every leaf, written atomically, checked against a template.

The train state is any pytree of arrays (params, optimiser state, keys, counters, replay buffers).
It is saved as its flat list of leaves plus a metadata table (msgpack, `flax.serialization`) and a
sha256 checksum of both, and restored into the structure of a template (e.g.
`jax.eval_shape(init, keys)`): a damaged file and a changed config are clear errors rather than
silently wrong weights.

Replay buffers (`metarlkit.rl.replay.ReplayBuffer`, anywhere in the state) are stored cut to their
filled rows (`replay.filled`; the row counts in the metadata's `buffer_rows`) and padded back on
loading (`replay.restore`), so a checkpoint grows with the data collected, not with the buffers'
capacity.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import numpy as np
from flax import serialization

from metarlkit.utils import write_atomic

FORMAT = 2  # 2: a sha256 checksum over the arrays (format 1, without it, still loads)


class CheckpointError(ValueError):
    """The checkpoint does not match what the run expects."""


def checksum(leaves, meta: dict[str, Any]) -> str:
    """sha256 over every array's dtype, shape and bytes, and the metadata: a changed byte anywhere
    (a garbled block, a patched parameter) changes it."""
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for x in leaves:
        x = np.ascontiguousarray(x)
        digest.update(f"{x.dtype.str}{x.shape}".encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


def _is_buffer(node) -> bool:
    from metarlkit.rl.replay import ReplayBuffer

    return isinstance(node, ReplayBuffer)


def _map_buffers(fn, tree, *rest):
    """`fn` applied to every ReplayBuffer of `tree` (with the matching nodes of `rest`), in order;
    every other leaf is taken from the last tree given (`rest[-1]`, else `tree`)."""
    return jax.tree_util.tree_map(lambda node, *others: fn(node, *others) if _is_buffer(node) else (others or (node,))[-1],
                                  tree, *rest, is_leaf=_is_buffer)


def save(path, state: Any, meta: dict[str, Any]) -> None:
    from metarlkit.rl import replay

    rows: list[int] = []

    def cut(buffer):
        rows.append(replay.filled_rows(buffer))
        return replay.filled(buffer)

    state = _map_buffers(cut, state)
    if rows:
        meta = {**meta, "buffer_rows": rows}
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]
    blob = {"format": FORMAT, "meta": meta, "checksum": checksum(leaves, meta),
            "leaves": {str(i): x for i, x in enumerate(leaves)}}
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
    if not isinstance(blob, dict) or blob.get("format") not in (1, FORMAT) or not isinstance(blob.get("leaves"), dict):
        raise CheckpointError(f"checkpoint {path} is not a metarlkit checkpoint of format 1 or {FORMAT}; it may be damaged")
    stored = blob["leaves"]
    if blob["format"] >= 2:
        try:
            arrays = [np.asarray(stored[str(i)]) for i in range(len(stored))]
        except KeyError:
            raise CheckpointError(f"checkpoint {path} is damaged (its arrays are not numbered 0..n-1)") from None
        if checksum(arrays, blob.get("meta", {})) != blob.get("checksum"):
            raise CheckpointError(f"checkpoint {path} is damaged (checksum mismatch): its arrays or metadata "
                                  f"changed after it was written; restore it or start a new run")
    meta = blob.get("meta", {})
    cut = _stored_template(path, template, meta.get("buffer_rows", []))
    expected, treedef = jax.tree_util.tree_flatten(cut)
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
    state = jax.tree_util.tree_unflatten(treedef, leaves)
    if cut is not template:
        from metarlkit.rl import replay

        try:
            state = _map_buffers(replay.restore, template, state)
        except ValueError as err:
            raise CheckpointError(f"checkpoint {path}: {err}") from None
    return state, meta


def _stored_template(path, template, rows: list[int]):
    """The template of what `save` wrote: every replay buffer of `template` cut to its recorded rows."""
    buffers = [n for n in jax.tree_util.tree_leaves(template, is_leaf=_is_buffer) if _is_buffer(n)]
    if not buffers and not rows:
        return template
    if len(rows) != len(buffers):
        raise CheckpointError(f"checkpoint {path} holds {len(rows)} replay buffers, the run expects {len(buffers)}; "
                              f"the config or code changed since it was written")
    from metarlkit.rl import replay

    rows_iter = iter(rows)
    return _map_buffers(lambda buffer: replay.filled_like(buffer, int(next(rows_iter))), template)
