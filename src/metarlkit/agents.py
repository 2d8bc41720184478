"""The AdaptiveAgent contract shared by learned and classic agents.

An agent is four pure functions. Its adaptation state (counts, posteriors, a recurrent hidden
state, adapted parameters) lives in `agent_state`, a pytree threaded through a trial:

  init(params, key, num_episodes) -> agent_state
  act(params, agent_state, obs, key) -> (action, agent_state)
  observe(params, agent_state, transition) -> agent_state
  end_episode(params, agent_state, episode_index, key) -> agent_state

`params` holds trained weights and hyperparameters as a pytree of arrays, so a sweep over a
hyperparameter is a `vmap` over params rather than a recompile per value. `episode_index` comes
from the trial's outer scan: it is the same for every task in a batch, so schedules on it stay
cheap under `vmap`. A `task_aware` agent (the oracle) is given the task as a fourth argument of
`init`; no other agent sees it.

An agent with `parallel_episodes = P > 1` (MAML's batch of trajectories per inner step) plays the
trial's episodes in rounds of P at once under a frozen policy: every episode of a round starts
from the same agent state, and `end_episode` then receives the round's P final agent states
stacked on a leading axis (with the round's index as `episode_index`) and returns one state. A
trial's episode count must be a multiple of P; results stay per episode, in round order.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax


class Transition(NamedTuple):
    """One step as an agent observes it (single task, no batch axis).

    `done` ends the episode (either way); `terminated` marks a true end (nothing follows: no
    bootstrapping) and `truncated` the episode's time limit (the state still has a value), so
    done = terminated | truncated. Trials always fill all three.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    done: jax.Array
    terminated: jax.Array = False
    truncated: jax.Array = False


class AdaptiveAgent(NamedTuple):
    """Four pure functions; see the module docstring for their signatures."""

    init: Callable[..., Any]
    act: Callable[..., Any]
    observe: Callable[..., Any]
    end_episode: Callable[..., Any]
    task_aware: bool = False
    parallel_episodes: int = 1


def no_end_episode(params, agent_state, episode_index, key):
    """`end_episode` for agents whose state does not change at episode boundaries."""
    del params, episode_index, key
    return agent_state
