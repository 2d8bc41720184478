"""Pieces every algorithm's `make_train` shares: chunking a budget and training seeds at once."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def chunking(total_steps: int, checkpoint_steps: int, steps_per_update: int) -> tuple[int, int]:
    """(updates per chunk, total updates): chunks of about `checkpoint_steps`, all the same length.

    The budget is rounded up to whole chunks (by less than one chunk) so a run compiles one chunk
    program, not a second one for a shorter last chunk.
    """
    wanted = max(1, math.ceil(total_steps / steps_per_update))
    target = max(1, round(checkpoint_steps / steps_per_update))
    chunks = math.ceil(wanted / target)
    per_chunk = math.ceil(wanted / chunks)
    return per_chunk, chunks * per_chunk


def seeded(train):
    """(init, run_chunk) of a `make_train` result over a leading seed axis: init(keys [S, 2]) and
    run_chunk(states, n), jitted.

    `run_chunk` returns metrics [n, S], donates its input state, and `n` is static (one compile
    per chunk length).
    """
    init = jax.jit(jax.vmap(train.init))

    def chunk(state, num):
        state, metrics = jax.vmap(lambda s: train.run_chunk(s, num))(state)
        return state, jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1), metrics)

    return init, jax.jit(chunk, static_argnums=1, donate_argnums=0)
