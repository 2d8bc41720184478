"""The cores of black-box agents by name: recurrent cells and the causal transformer."""

from __future__ import annotations

from flax import nnx

from metarlkit.nets.recurrent import RecurrentCore
from metarlkit.nets.transformer import TransformerCore

CORES = ("gru", "lstm", "transformer")


def make_core(kind: str, in_features: int, hidden_size: int, *, layers: int = 2, heads: int = 4, context: int = 0,
              rngs: nnx.Rngs):
    """A core mapping (carry, x [in_features]) -> (carry, output [hidden_size]), with `initial_carry()`.

    `layers`, `heads` and `context` (steps kept) are the transformer's; the cells ignore them.
    """
    if kind not in CORES:
        raise ValueError(f"unknown core {kind!r}; choose one of {', '.join(CORES)}")
    if kind == "transformer":
        return TransformerCore(in_features, hidden_size, layers, heads, context, rngs=rngs)
    return RecurrentCore(kind, in_features, hidden_size, rngs=rngs)
