"""The cores of black-box agents by name: recurrent cells and the causal transformer."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from metarlkit.nets.recurrent import RecurrentCore
from metarlkit.nets.transformer import TransformerCore

CORES = ("gru", "lstm", "transformer", "mlp")


class FeedForwardCore(nnx.Module):
    """A core without memory: tanh(W x + b) of the current step's input only. Its carry is an empty
    array, so an agent built on it is the memoryless ablation of the same agent (same inputs, same
    heads, same training)."""

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs):
        self.hidden_size = hidden_size
        self.linear = nnx.Linear(in_features, hidden_size, rngs=rngs)

    def initial_carry(self):
        return jnp.zeros((0,), jnp.float32)

    def __call__(self, carry, x):
        return carry, jnp.tanh(self.linear(x))


def make_core(kind: str, in_features: int, hidden_size: int, *, layers: int = 2, heads: int = 4, context: int = 0,
              rngs: nnx.Rngs):
    """A core mapping (carry, x [in_features]) -> (carry, output [hidden_size]), with `initial_carry()`.

    `layers`, `heads` and `context` (steps kept) are the transformer's; the cells ignore them.
    """
    if kind not in CORES:
        raise ValueError(f"unknown core {kind!r}; choose one of {', '.join(CORES)}")
    if kind == "mlp":
        return FeedForwardCore(in_features, hidden_size, rngs=rngs)
    if kind == "transformer":
        return TransformerCore(in_features, hidden_size, layers, heads, context, rngs=rngs)
    return RecurrentCore(kind, in_features, hidden_size, rngs=rngs)
