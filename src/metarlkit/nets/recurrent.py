"""Recurrent cores (GRU, LSTM) behind one interface, for black-box meta-RL agents.

A core maps (carry, input [D]) -> (carry, output [H]); `initial_carry()` is the state at a trial
boundary. Cores are Flax NNX modules: algorithms split them into (graphdef, params) once and call
them through pure functions, so params stay a plain pytree for `jax.grad`, `vmap` over seeds and
checkpoints.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

CELLS = ("gru", "lstm")


class RecurrentCore(nnx.Module):
    """A GRU (Cho et al. 2014; the RL2 paper's core) or LSTM (Wang et al. 2016) cell.

    Args:
      kind: 'gru' or 'lstm'.
      in_features: input size D.
      hidden_size: hidden size H (the output size; an LSTM's carry is (c, h), each [H]).
      rngs: NNX random streams for initialisation.
    """

    def __init__(self, kind: str, in_features: int, hidden_size: int, *, rngs: nnx.Rngs):
        if kind not in CELLS:
            raise ValueError(f"unknown recurrent core {kind!r}; choose one of {', '.join(CELLS)}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError(f"hidden size must be a whole number >= 1, got {hidden_size!r}")
        self.kind = kind
        self.hidden_size = hidden_size
        cell = nnx.GRUCell if kind == "gru" else nnx.OptimizedLSTMCell
        self.cell = cell(in_features, hidden_size, rngs=rngs)

    def initial_carry(self):
        """The carry at the start of a trial: zeros."""
        h = jnp.zeros((self.hidden_size,), jnp.float32)
        return h if self.kind == "gru" else (h, h)

    def __call__(self, carry, x: jax.Array):
        """One step. Returns (next carry, output [H])."""
        return self.cell(carry, x)
