"""The trained RL2 policy as an AdaptiveAgent: its adaptation state is the core's state (a recurrent
hidden state, or a transformer's context of the trial's steps).

ATTENTION: the core's state is reset only in `init`, i.e. at a trial boundary. Episode ends inside
a trial reach the network as the done flag of the next input; `end_episode` changes nothing.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent, no_end_episode
from metarlkit.algos.rl2.networks import NetworkShape, encode, input_size, network_def


class RL2State(NamedTuple):
    """Adaptation state of one trial (no batch axis)."""

    carry: Any  # the core's state: [H] (GRU), ([H], [H]) (LSTM) or the context (transformer)
    prev_obs: jax.Array  # [obs_size] the observation the previous action was taken in (zeros at first)
    prev_action: jax.Array  # int32, -1 before the first step; or [D] float32, zeros (continuous)
    prev_reward: jax.Array  # float32
    prev_done: jax.Array  # float32, 1 when the previous step ended an episode
    step: jax.Array  # int32, steps taken in this trial
    trial_steps: jax.Array  # int32, steps in the whole trial (episodes x horizon)
    # What the last `act` saw and produced; the learner records these per step.
    x: jax.Array  # [D] network input
    logp: jax.Array  # log pi(action | history)
    value: jax.Array  # value estimate


class StepData(NamedTuple):
    """Per-step training record taken from the state after `act`."""

    x: jax.Array
    logp: jax.Array
    value: jax.Array


def record(state: RL2State, transition) -> StepData:
    """The learner's per-step record: what the network saw and said (the rest is in StepRecord)."""
    del transition
    return StepData(state.x, state.logp, state.value)


@functools.lru_cache(maxsize=64)
def make_agent(obs_size: int, num_actions: int, horizon: int, core: str, hidden_size: int,
               time_input: bool, prev_obs_input: bool = False, embed_size: int = 0,
               action_bounds: tuple | None = None, head_size: int = 0, layers: int = 2, heads: int = 4,
               context: int = 0) -> AdaptiveAgent:
    """The RL2 AdaptiveAgent for a network shape; `params` is the network's params pytree.

    Args:
      num_actions: discrete actions, or the action dimension when `action_bounds` is given.
      action_bounds: None for discrete actions (categorical head); (low, high) of a continuous
        family's action box (floats or tuples) for a diagonal-Gaussian head. The Gaussian's sample
        is the action (the family clips it); the agent's previous-action input is the action
        clipped to the box, i.e. the move the environment made.
      embed_size, head_size, layers, heads, context: see `NetworkShape`.

    Cached, so every agent of one shape is the same object and shares compiled evaluation programs.
    """
    continuous = action_bounds is not None
    d = input_size(obs_size, num_actions, time_input, prev_obs_input)
    shape = NetworkShape(d, num_actions, core, hidden_size, embed_size, head_size, action_bounds, layers, heads, context)
    net = network_def(shape)
    apply, initial_carry = net.apply, net.initial_carry
    if continuous:
        low, high = (jnp.asarray(b, jnp.float32) for b in action_bounds)
        no_action = jnp.zeros((num_actions,), jnp.float32)

        def as_input(action):
            return jnp.clip(action.astype(jnp.float32), low, high)
    else:
        no_action = jnp.int32(-1)

        def as_input(action):
            return action.astype(jnp.int32)

    def init(params, key, num_episodes):
        del params, key
        return RL2State(
            carry=initial_carry(),
            prev_obs=jnp.zeros((obs_size,), jnp.float32),
            prev_action=no_action,
            prev_reward=jnp.float32(0.0),
            prev_done=jnp.float32(0.0),
            step=jnp.int32(0),
            trial_steps=jnp.int32(num_episodes * horizon),
            x=jnp.zeros((d,), jnp.float32),
            logp=jnp.float32(0.0),
            value=jnp.float32(0.0),
        )

    def act(params, state, obs, key):
        frac = state.step.astype(jnp.float32) / state.trial_steps.astype(jnp.float32)
        x = encode(obs, state.prev_obs, state.prev_action, state.prev_reward, state.prev_done, frac, num_actions,
                   time_input, prev_obs_input, continuous)
        carry, dist, value = apply(params, state.carry, x)
        action = dist.sample(key)
        return action, state._replace(carry=carry, x=x, logp=dist.log_prob(action), value=value)

    def observe(params, state, transition):
        del params
        return state._replace(
            prev_obs=jnp.ravel(transition.obs).astype(jnp.float32),
            prev_action=as_input(transition.action),
            prev_reward=transition.reward.astype(jnp.float32),
            prev_done=transition.done.astype(jnp.float32),
            step=state.step + 1,
        )

    return AdaptiveAgent(init=init, act=act, observe=observe, end_episode=no_end_episode)
