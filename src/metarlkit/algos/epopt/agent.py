"""The EPOpt policy as an AdaptiveAgent: a feed-forward policy with no adaptation at all.

EPOpt's robustness comes from training, not from adapting at test time: the agent acts from the
current observation with the same policy in every episode of a trial. Its state keeps only what
the learner records (the last observation and the policy's own action).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent, no_end_episode
from metarlkit.nets.mlp import env_action, mlp_policy


class PolicyState(NamedTuple):
    last_obs: jax.Array  # [O] the observation of the last `act`
    last_action: jax.Array  # the policy's own action there (before `env_action`)


def record(state: PolicyState, transition) -> tuple[jax.Array, jax.Array]:
    """What the learner records per step: (observation, the policy's own action)."""
    del transition
    return state.last_obs, state.last_action


@functools.lru_cache(maxsize=64)
def make_agent(obs_size: int, num_actions: int, continuous: bool, activation: str,
               action_bounds: tuple | None = None, normalize_actions: bool = False) -> AdaptiveAgent:
    """The robust policy; `params` is a `nets.mlp` params dict.

    Args:
      num_actions: discrete actions, or the action dimension (continuous).
      action_bounds: the family's action box (`TaskFamily.action_box`), None for discrete actions.
      normalize_actions: the policy acts in [-1, 1] per coordinate, mapped onto `action_bounds`.
    """
    action_shape = (num_actions,) if continuous else ()
    action_dtype = jnp.float32 if continuous else jnp.int32

    def init(params, key, num_episodes):
        del params, key, num_episodes
        return PolicyState(jnp.zeros((obs_size,), jnp.float32), jnp.zeros(action_shape, action_dtype))

    def act(params, state, obs, key):
        del state
        obs = jnp.ravel(obs).astype(jnp.float32)
        action = mlp_policy(params, obs, activation).sample(key)
        return env_action(action, action_bounds, normalize_actions), PolicyState(obs, action.astype(action_dtype))

    def observe(params, state, transition):
        del params, transition
        return state

    return AdaptiveAgent(init=init, act=act, observe=observe, end_episode=no_end_episode)
