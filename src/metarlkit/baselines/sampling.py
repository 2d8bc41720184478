"""Fast exact Gamma and Beta sampling for shapes >= 1 (posterior parameters of conjugate models).

Marsaglia & Tsang, "A simple method for generating gamma variables" (2000): with d = a - 1/3 and
c = 1/sqrt(9d), propose v = (1 + c x)^3, x ~ N(0, 1), and accept when
log u < x^2/2 + d - d v + d log v, u ~ U(0, 1); the sample is d v. Acceptance is above 95% for
a >= 1.

A rejection loop over a whole array runs until its *last* element is accepted (5-6 rounds for
10^5 elements), so the work is a cascade that touches only what is still rejected:
  1. one proposal for every element;
  2. the (at most about 5%) rejected elements are gathered into an array of RETRY_FRACTION of the
     size (plus RETRY_EXTRA slots) and get RETRY_ROUNDS proposals each, at once;
  3. a loop catches anything left -- more rejections than stage 2 holds, or RETRY_ROUNDS + 1
     rejections in a row (probability below 0.05^5 per element) -- so the sampler stays exact.
Under `vmap` over tasks (how agents sample), a while loop whose condition is per task is carried
through every call at a cost close to the sampling itself, although it almost never iterates;
stage 3 therefore folds the mapped axes into the rows of one loop with a scalar condition
(`_finish`, a `custom_vmap`). Beta(a, b) is X / (X + Y) of two gammas drawn as one array.
Gathering the rejected elements (`_compact`) avoids `jnp.nonzero`, whose cumulative sum and
scatter cost more than the proposals themselves here (timings, and a comparison with
`jax.random.gamma` and `jax.random.beta`: benchmarks/README.md, `sampling_throughput.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import custom_batching

RETRY_FRACTION = 1 / 12  # capacity of stage 2 relative to the array (rejections: at most ~1/20)
RETRY_EXTRA = 8  # ... plus this many slots, so that small arrays hold every element
RETRY_ROUNDS = 4
COMPACT_BLOCK = 32


def _propose(key, d, c):
    """One Marsaglia-Tsang proposal per element of d (c = 1 / sqrt(9 d)): (value, accepted)."""
    key_x, key_u = jax.random.split(key)
    x = jax.random.normal(key_x, d.shape)
    u = jax.random.uniform(key_u, d.shape)
    v = (1.0 + c * x) ** 3
    safe_v = jnp.where(v > 0, v, 1.0)
    ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * safe_v + d * jnp.log(safe_v))
    return d * safe_v, ok


def _compact(flags: jax.Array, capacity: int) -> jax.Array:
    """Indices of the first `capacity` True entries of flags [n], in order; n fills the rest.

    `jnp.nonzero(size=...)` computes the same with a cumulative sum (an associative scan of
    about 2 log2(n) small ops on this backend) and a scatter; here the ranks inside blocks of
    COMPACT_BLOCK entries are one matrix product with a triangular matrix, and each slot finds
    its block and its place in the block by counting comparisons: dense ops that fuse.
    """
    n = flags.shape[0]
    blocks = jnp.pad(flags, (0, -n % COMPACT_BLOCK)).reshape(-1, COMPACT_BLOCK).astype(jnp.float32)
    inclusive = blocks @ jnp.triu(jnp.ones((COMPACT_BLOCK, COMPACT_BLOCK), jnp.float32))
    ends = jnp.cumsum(inclusive[:, -1])  # rank of each block's last True entry
    rank = jnp.arange(1, capacity + 1, dtype=jnp.float32)  # slot j holds the entry of rank j + 1
    block = jnp.sum(ends[None, :] < rank[:, None], axis=1)
    num_blocks = ends.shape[0]
    safe = jnp.minimum(block, num_blocks - 1)
    before = jnp.where(safe > 0, ends[jnp.maximum(safe - 1, 0)], 0.0)
    within = jnp.sum(inclusive[safe] < (rank - before)[:, None], axis=1)
    return jnp.where(block < num_blocks, safe * COMPACT_BLOCK + within, n).astype(jnp.int32)


def _retry(key, d, c, value, accepted, capacity, rounds):
    """Gives up to `capacity` rejected elements `rounds` proposals each; returns (value, accepted)."""
    idx = _compact(~accepted, capacity)
    d_some = jnp.broadcast_to(jnp.take(d, idx, mode="clip"), (rounds, capacity))
    c_some = jnp.broadcast_to(jnp.take(c, idx, mode="clip"), (rounds, capacity))
    proposals, ok = _propose(key, d_some, c_some)
    first_ok = jnp.argmax(ok, axis=0)
    picked = jnp.take_along_axis(proposals, first_ok[None], axis=0)[0]
    # Every real slot holds a rejected element (one whose proposals all fail stays rejected for
    # stage 3); fill slots carry the out-of-range index n and are dropped by the scatter.
    value = value.at[idx].set(picked, mode="drop")
    accepted = accepted.at[idx].set(jnp.any(ok, axis=0), mode="drop")
    return value, accepted


@custom_batching.custom_vmap
def _finish(keys, d, c, value, accepted):
    """Stage 3: proposes for every still-rejected element until all are accepted.

    Batch-native: row r of the [T, n] arrays has its own key keys[r] and row r's draws depend
    only on it, so a task's samples do not depend on which tasks share its batch.
    """

    def body(state):
        keys, value, accepted = state
        pairs = jax.vmap(jax.random.split)(keys)
        proposal, ok = jax.vmap(_propose)(pairs[:, 1], d, c)
        return pairs[:, 0], jnp.where(accepted, value, proposal), accepted | ok

    _, value, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[2]), body, (keys, value, accepted))
    return value


@_finish.def_vmap
def _finish_batched(axis_size, in_batched, *args):
    # Fold the mapped axis into the rows (recursively, for nested vmaps).
    args = [
        x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
        for x, batched in zip(args, in_batched)
    ]
    rows = [x.reshape(-1, *x.shape[2:]) for x in args]
    value = _finish(*rows)
    return value.reshape(args[3].shape), True


def gamma(key: jax.Array, shape_param: jax.Array) -> jax.Array:
    """Gamma(a, 1) samples for every element of `shape_param` (every element must be >= 1)."""
    a = jnp.asarray(shape_param, jnp.float32)
    flat = a.reshape(-1)
    n = flat.shape[0]
    d = flat - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    key_first, key_retry, key_loop = jax.random.split(key, 3)
    value, accepted = _propose(key_first, d, c)
    capacity = min(n, int(n * RETRY_FRACTION) + RETRY_EXTRA)
    value, accepted = _retry(key_retry, d, c, value, accepted, capacity, RETRY_ROUNDS)
    value = _finish(key_loop[None], d[None], c[None], value[None], accepted[None])[0]
    return value.reshape(a.shape)


def beta(key: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Beta(a, b) samples, elementwise, for a, b >= 1 (same shape), as X / (X + Y) of gammas."""
    xy = gamma(key, jnp.stack([a, b]))
    return xy[0] / (xy[0] + xy[1])
