"""GrBAL's aggregated data: whole episodes as fixed-size device arrays, and windows cut from them.

Every collected episode is kept (the reference aggregates all iterations' data: its `fit`
concatenates each iteration's paths to `_dataset_train` / `_dataset_test`), in slots of one
episode [capacity, horizon, ...] with its number of valid steps (an episode that ended early keeps
a valid prefix). Each episode is held out for validation or not when it is added (the reference's
`train_test_split` over paths). A window is M + K consecutive transitions of ONE episode (the
reference's `_get_batch`: a path, then a start at least M + K steps before its end), so windows
never cross an episode boundary; episodes shorter than a window are never drawn.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.algos.grbal.model import Window


class Episodes(NamedTuple):
    obs: jax.Array  # [capacity, horizon, O]
    act: jax.Array  # [capacity, horizon, A]
    next_obs: jax.Array  # [capacity, horizon, O]
    length: jax.Array  # int32 [capacity]: valid steps (0: an empty slot)
    validation: jax.Array  # bool [capacity]: held out for the validation loss
    count: jax.Array  # int32: slots filled (in order)


def empty(capacity: int, horizon: int, obs_size: int, act_size: int) -> Episodes:
    z = jnp.zeros
    return Episodes(z((capacity, horizon, obs_size), jnp.float32), z((capacity, horizon, act_size), jnp.float32),
                    z((capacity, horizon, obs_size), jnp.float32), z((capacity,), jnp.int32), z((capacity,), bool),
                    jnp.int32(0))


def add(data: Episodes, obs, act, next_obs, valid, held_out) -> Episodes:
    """The data with n episodes ([n, horizon, ...], `valid` [n, horizon] a prefix of each) appended,
    those where `held_out` [n] for validation. The caller sizes `capacity` so that every episode of
    the run fits (slots past it are dropped)."""
    n = obs.shape[0]
    idx = data.count + jnp.arange(n)

    def put(store, new):
        return store.at[idx].set(new.astype(store.dtype), mode="drop")

    return Episodes(put(data.obs, obs), put(data.act, act), put(data.next_obs, next_obs),
                    put(data.length, jnp.sum(valid, axis=1)), put(data.validation, held_out),
                    jnp.minimum(data.count + n, data.obs.shape[0]).astype(jnp.int32))


def eligible(data: Episodes, span: int, validation: bool) -> jax.Array:
    """[capacity] bool: filled episodes of the chosen part that hold a whole window of `span`."""
    filled = jnp.arange(data.length.shape[0]) < data.count
    return filled & (data.length >= span) & (data.validation == validation)


def sample_windows(data: Episodes, key: jax.Array, n: int, span: int, validation: bool = False):
    """(`n` windows of `span` consecutive transitions [n, span, ...], whether any episode could
    give one): an episode uniformly among the eligible ones, then a start uniformly among those
    that keep the window inside its valid steps."""
    key_ep, key_start = jax.random.split(key)
    ok = eligible(data, span, validation)
    episode = jax.random.categorical(key_ep, jnp.where(ok, 0.0, -jnp.inf), shape=(n,))
    episode = jnp.where(jnp.any(ok), episode, 0)
    room = jnp.maximum(data.length[episode] - span + 1, 1)
    start = jnp.floor(jax.random.uniform(key_start, (n,)) * room).astype(jnp.int32)
    steps = start[:, None] + jnp.arange(span)[None, :]

    def cut(x):
        return x[episode[:, None], steps]

    return Window(cut(data.obs), cut(data.act), cut(data.next_obs)), jnp.any(ok)


def transitions(data: Episodes, validation: bool | None = None):
    """(obs, act, next_obs [capacity * horizon, ...], weight [capacity * horizon]): every valid
    transition (of the chosen part; None: all), flattened, for statistics."""
    cap, horizon = data.length.shape[0], data.obs.shape[1]
    filled = jnp.arange(cap) < data.count
    keep = filled if validation is None else filled & (data.validation == validation)
    weight = (jnp.arange(horizon)[None, :] < data.length[:, None]) & keep[:, None]

    def flat(x):
        return x.reshape((cap * horizon,) + x.shape[2:])

    return flat(data.obs), flat(data.act), flat(data.next_obs), flat(weight)


def num_transitions(data: Episodes, validation: bool) -> jax.Array:
    """Valid transitions in the chosen part (int32)."""
    filled = jnp.arange(data.length.shape[0]) < data.count
    return jnp.sum(jnp.where(filled & (data.validation == validation), data.length, 0)).astype(jnp.int32)
