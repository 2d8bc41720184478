"""A causal transformer core with the recurrent cores' step interface, for black-box meta-RL.

The adaptation state of a recurrent core is a hidden vector; here it is the *context*: the keys
and values of every layer for the last `context` steps of the trial (a ring buffer), and the
number of steps seen. One call attends from the current step to that context, so the agent can
look up what happened the last time it was in this state -- the lookup a recurrent cell has to
learn to store and retrieve through its gates. Training re-runs the same step function under
`lax.scan` (the learner's unroll is shared with the recurrent cores), so the rollout and the
learner compute exactly the same thing.

There is no positional encoding: the step's input already says where an episode ended (the done
flag) and, with `time_input`, how far the trial has gone; causal masking gives the order.
Pre-layer-norm blocks (Xiong et al. 2020) as in GPT-2; a final layer norm on the output.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


class Context(NamedTuple):
    """The carry of a TransformerCore (one trial, no batch axis)."""

    keys: tuple  # per layer [heads, context, head_size] (heads first: the batch axis of attention)
    values: tuple  # per layer [heads, context, head_size]
    steps: jax.Array  # int32, steps written so far (the next one goes to slot steps % context)


class _Block(nnx.Module):
    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs):
        self.heads, self.head_size = heads, width // heads
        self.norm_attn = nnx.LayerNorm(width, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, rngs=rngs)
        self.proj = nnx.Linear(width, width, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(width, rngs=rngs)
        self.mlp_in = nnx.Linear(width, 4 * width, rngs=rngs)
        self.mlp_out = nnx.Linear(4 * width, width, rngs=rngs)

    def _qkv(self, x):
        q, k, v = jnp.split(self.qkv(self.norm_attn(x)), 3, axis=-1)
        shape = x.shape[:-1] + (self.heads, self.head_size)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _rest(self, x, attended):
        x = x + self.proj(attended.reshape(x.shape))
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm_mlp(x))))

    def __call__(self, x, keys, values, slot, filled):
        """One step: x [W]; keys/values [heads, C, head_size] of this layer; returns (x, keys, values)."""
        q, k, v = self._qkv(x)
        keys = jax.lax.dynamic_update_slice_in_dim(keys, k[:, None], slot, axis=1)
        values = jax.lax.dynamic_update_slice_in_dim(values, v[:, None], slot, axis=1)
        scores = jnp.einsum("hd,hcd->hc", q, keys) / math.sqrt(self.head_size)
        scores = jnp.where(jnp.arange(keys.shape[1]) < filled, scores, -jnp.inf)
        attended = jnp.einsum("hc,hcd->hd", jax.nn.softmax(scores, axis=-1), values)
        return self._rest(x, attended), keys, values

    def sequence(self, x, mask):
        """All steps at once: x [T, W]; mask [T, T] (query, key) -> x [T, W]."""
        q, k, v = self._qkv(x)
        scores = jnp.einsum("thd,shd->hts", q, k) / math.sqrt(self.head_size)
        scores = jnp.where(mask[None], scores, -jnp.inf)
        attended = jnp.einsum("hts,shd->thd", jax.nn.softmax(scores, axis=-1), v)
        return self._rest(x, attended)


class TransformerCore(nnx.Module):
    """Causal transformer over the steps of a trial, one step per call.

    Args:
      in_features: input size D.
      width: model width W (the output size); a multiple of `heads`.
      layers: transformer blocks.
      heads: attention heads per block.
      context: steps kept in the context; a longer trial attends to its last `context` steps.
      rngs: NNX random streams for initialisation.
    """

    def __init__(self, in_features: int, width: int, layers: int, heads: int, context: int, *, rngs: nnx.Rngs):
        for name, value in (("width", width), ("layers", layers), ("heads", heads), ("context", context)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"transformer {name} must be a whole number >= 1, got {value!r}")
        if width % heads:
            raise ValueError(f"transformer width ({width}) must be a multiple of heads ({heads})")
        self.width, self.layers, self.heads, self.context = width, layers, heads, context
        self.embed = nnx.Linear(in_features, width, rngs=rngs)
        self.blocks = nnx.List([_Block(width, heads, rngs=rngs) for _ in range(layers)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)

    def initial_carry(self) -> Context:
        """The context at the start of a trial: empty."""
        shape = (self.heads, self.context, self.width // self.heads)
        empty = tuple(jnp.zeros(shape, jnp.float32) for _ in range(self.layers))
        return Context(empty, empty, jnp.int32(0))

    def __call__(self, carry: Context, x: jax.Array):
        """One step. Returns (next context, output [W])."""
        slot = carry.steps % self.context
        filled = jnp.minimum(carry.steps + 1, self.context)
        h = self.embed(x)
        keys, values = [], []
        for block, k, v in zip(self.blocks, carry.keys, carry.values):
            h, k, v = block(h, k, v, slot, filled)
            keys.append(k)
            values.append(v)
        return Context(tuple(keys), tuple(values), carry.steps + 1), self.norm(h)

    def sequence(self, x: jax.Array, valid: jax.Array) -> jax.Array:
        """The outputs of a whole trial at once, equal to calling the core step by step from
        `initial_carry()` and keeping the carry of valid steps only (as rollouts do).

        Args:
          x: [T, D] inputs; valid: [T] bool (an invalid step is not written to the context).

        Returns:
          [T, W] outputs (those of invalid steps are finite and meaningless).
        """
        seen = jnp.cumsum(valid.astype(jnp.int32))  # valid steps up to and including t
        t = jnp.arange(x.shape[0])
        # Query t sees key s <= t when s was written and is among the last `context` written at t;
        # an invalid step also sees itself, so no row is empty.
        mask = (t[None, :] <= t[:, None]) & valid[None, :] & (seen[:, None] - seen[None, :] < self.context)
        mask = mask | (t[None, :] == t[:, None])
        h = self.embed(x)
        for block in self.blocks:
            h = block.sequence(h, mask)
        return self.norm(h)
