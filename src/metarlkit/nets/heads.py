"""Action distributions for policy heads: categorical (discrete) and diagonal Gaussian (continuous),
and `PolicyHead`, the linear head that produces either from features.

Each distribution is a NamedTuple of arrays (a pytree, so it passes through `vmap`/`scan`) with
`sample`, `log_prob`, `entropy` and `mode`. Single stream: a distribution over one action; `vmap`
for batches.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class Categorical(NamedTuple):
    """Categorical over `logits.shape[-1]` actions."""

    logits: jax.Array  # [A]

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(self.logits)[action]

    def entropy(self) -> jax.Array:
        logp = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(logp) * logp)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits)

    def kl(self, other: "Categorical") -> jax.Array:
        """KL(self || other)."""
        logp, logq = jax.nn.log_softmax(self.logits), jax.nn.log_softmax(other.logits)
        return jnp.sum(jnp.exp(logp) * (logp - logq))


class DiagGaussian(NamedTuple):
    """Gaussian with diagonal covariance over a [D] action."""

    mean: jax.Array  # [D]
    log_std: jax.Array  # [D]

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape)

    def log_prob(self, action: jax.Array) -> jax.Array:
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi))

    def entropy(self) -> jax.Array:
        return jnp.sum(self.log_std + 0.5 * math.log(2 * math.pi * math.e))

    def mode(self) -> jax.Array:
        return self.mean

    def kl(self, other: "DiagGaussian") -> jax.Array:
        """KL(self || other)."""
        var_ratio = jnp.exp(2 * (self.log_std - other.log_std))
        t = ((self.mean - other.mean) * jnp.exp(-other.log_std)) ** 2
        return 0.5 * jnp.sum(var_ratio + t - 1.0) - jnp.sum(self.log_std - other.log_std)


class PolicyHead(nnx.Module):
    """A linear policy head on features [H]: categorical logits, or a diagonal Gaussian whose mean is
    linear in the features and whose log standard deviation is a learnt, state-independent vector
    (Schulman et al. 2015; the usual head of MAML-RL and PPO on continuous control).

    Args:
      in_features: feature size H.
      num_actions: discrete actions, or the action dimension D when `continuous`.
      continuous: Gaussian instead of categorical.
      action_bounds: (low, high) of the action box (floats or [D] sequences), continuous only: the
        Gaussian is then expressed in units of the box, mean = centre + half-width x (linear
        output) and standard deviation = half-width x exp(log-std parameter), so an initial policy
        explores the box at its own scale rather than at unit scale (a point robot whose actions
        are clipped to [-0.1, 0.1] would otherwise start with a standard deviation 10x its
        range). None: unit scale.
      init_scale: scale of the orthogonal initial weights; a small scale starts near-uniform
        (categorical) or near the centre (Gaussian).
      init_log_std: initial value of the log-std parameter (continuous only).
    """

    def __init__(self, in_features: int, num_actions: int, *, continuous: bool = False,
                 action_bounds: tuple | None = None, init_scale: float = 0.01, init_log_std: float = 0.0,
                 rngs: nnx.Rngs):
        self.continuous = continuous
        self.linear = nnx.Linear(in_features, num_actions, kernel_init=nnx.initializers.orthogonal(init_scale),
                                 rngs=rngs)
        self.log_std = nnx.Param(jnp.full((num_actions,), init_log_std, jnp.float32)) if continuous else None
        low, high = action_bounds if action_bounds is not None else (-1.0, 1.0)
        low, high = (np.broadcast_to(np.asarray(b, np.float64), (num_actions,)) for b in (low, high))
        # Python floats (static, not parameters): fixed by the action space.
        self.centre = tuple(float(c) for c in (high + low) / 2)
        self.half_width = tuple(float(w) for w in (high - low) / 2)

    def __call__(self, h: jax.Array):
        """Features [H] (or [..., H]) -> Categorical or DiagGaussian (leaves [..., A])."""
        out = self.linear(h)
        if self.continuous:
            half_width = jnp.asarray(self.half_width, jnp.float32)
            mean = jnp.asarray(self.centre, jnp.float32) + half_width * out
            log_std = jnp.log(half_width) + self.log_std[...]
            # broadcast, so a batch of features [..., H] gives leaves of one batch shape (vmap-able)
            return DiagGaussian(mean, jnp.broadcast_to(log_std, mean.shape))
        return Categorical(out)
