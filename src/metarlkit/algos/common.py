"""Pieces every algorithm's training shares: chunking a budget and training seeds at once."""

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


def seeded_init(init):
    """jit(vmap(init)): train states of several seeds from keys [S, 2]."""
    return jax.jit(jax.vmap(init))


def seeded_chunk(run_chunk):
    """`run_chunk` over a leading seed axis, jitted: (states, n) -> (states, metrics [n, S]).

    It donates its input state, and `n` is static (one compile per chunk length).
    """
    def chunk(state, num):
        state, metrics = jax.vmap(lambda s: run_chunk(s, num))(state)
        return state, jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1), metrics)

    return jax.jit(chunk, static_argnums=1, donate_argnums=0)


def seeded(train):
    """(seeded init, seeded run_chunk) of a one-phase `Train` (benchmarks, tests)."""
    if len(train.phases) != 1:
        raise ValueError(f"seeded() takes a one-phase Train; this one has {len(train.phases)} phases")
    return seeded_init(train.init), seeded_chunk(train.phases[0].run_chunk)
