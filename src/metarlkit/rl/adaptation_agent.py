"""The policy adapted by policy-gradient steps (MAML-RL's, and GMPS's) as an AdaptiveAgent: its
adaptation state is the policy's parameters.

The agent plays a trial in rounds of `trajectories` parallel episodes under a frozen policy
(`parallel_episodes`); at the end of each round it takes one inner policy-gradient step on that
round's episodes: round 0 is the meta-learnt theta, round k the policy after k steps. Training
rolls out with this same agent, so what is trained is what is evaluated, and every algorithm
that meta-learns such a policy is scored the same way.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent
from metarlkit.rl.adaptation import Episodes, gradient_step, inner_loss, process
from metarlkit.nets.mlp import env_action, mlp_policy


class MAMLState(NamedTuple):
    """Adaptation state of one trial (no batch axis; `end_episode` gets it stacked per episode)."""

    policy: Any  # the current policy parameters (theta, then phi_1, phi_2, ...)
    steps_done: jax.Array  # int32, inner steps taken
    obs: jax.Array  # [H, O] this episode's observations
    action: jax.Array  # [H] or [H, D]
    reward: jax.Array  # [H]
    valid: jax.Array  # [H] bool
    t: jax.Array  # int32, steps of this episode so far
    last_obs: jax.Array  # [O] the observation of the last `act` (the learner records it)
    last_action: jax.Array  # the policy's own action at the last `act` (before `env_action`)


def record(state: MAMLState, transition) -> tuple[jax.Array, jax.Array]:
    """What the learner records per step: (observation, the policy's own action, which differs
    from the transition's environment action when actions are normalised)."""
    del transition
    return state.last_obs, state.last_action


@functools.lru_cache(maxsize=64)
def make_agent(obs_size: int, num_actions: int, horizon: int, continuous: bool, activation: str,
               trajectories: int, inner_lrs: tuple[float, ...], inner_estimator: str, gamma: float,
               gae_lambda: float, action_bounds: tuple | None = None, weighting: str = "episode",
               normalize_actions: bool = False, learned_step_sizes: bool = False,
               adapted_std_scale: float = 1.0) -> AdaptiveAgent:
    """The MAML AdaptiveAgent; `params` is theta (a `nets.mlp` params dict), or with
    `learned_step_sizes` {"policy": theta, "step_sizes": per-parameter step sizes shaped like
    theta} (GMPS; every inner step then uses the learnt step sizes, and `inner_lrs` is unused).

    Args:
      num_actions: discrete actions, or the action dimension (continuous).
      trajectories: episodes per round (per inner step).
      inner_lrs: step size of inner step 1, 2, ...; steps after the last use the last.
      inner_estimator, gamma, gae_lambda: the inner step (see `rl.adaptation.inner_loss`, `rl.adaptation.process`).
      action_bounds: the family's action box (`TaskFamily.action_box`), None for discrete actions.
      normalize_actions: the policy acts in box units: its [-1, 1] is mapped onto `action_bounds`
        (`env_action`); False: the policy's action is the environment's.
      weighting: the inner loss's mean over steps (`rl.adaptation.step_mean`), and the weighting
        its advantages are normalised under (`rl.adaptation.process`); 'episode' for run
        directories saved before the option existed.
      adapted_std_scale: a Gaussian policy's standard deviation is multiplied by this once it has
        taken an inner step (the GMPS reference code samples its adapted policy with 1e-5 of
        theta's spread: explore before the step, act on it after); 1: the policy as it is.

    Cached, so every agent of one configuration shares compiled evaluation programs.
    """
    action_shape = (num_actions,) if continuous else ()
    action_dtype = jnp.float32 if continuous else jnp.int32
    lrs = jnp.asarray(inner_lrs, jnp.float32)
    grad_fn = jax.grad(lambda p, d: inner_loss(p, d, estimator=inner_estimator, activation=activation, gamma=gamma,
                                               weighting=weighting))

    def empty_buffer(policy, steps_done):
        return MAMLState(
            policy=policy,
            steps_done=steps_done,
            obs=jnp.zeros((horizon, obs_size), jnp.float32),
            action=jnp.zeros((horizon,) + action_shape, action_dtype),
            reward=jnp.zeros((horizon,), jnp.float32),
            valid=jnp.zeros((horizon,), bool),
            t=jnp.int32(0),
            last_obs=jnp.zeros((obs_size,), jnp.float32),
            last_action=jnp.zeros(action_shape, action_dtype),
        )

    def init(params, key, num_episodes):
        del key, num_episodes
        return empty_buffer(params["policy"] if learned_step_sizes else params, jnp.int32(0))

    def act(params, state, obs, key):
        del params
        obs = jnp.ravel(obs).astype(jnp.float32)
        dist = mlp_policy(state.policy, obs, activation)
        if continuous and adapted_std_scale != 1.0:
            dist = dist._replace(log_std=dist.log_std + jnp.where(state.steps_done > 0, math.log(adapted_std_scale), 0.0))
        action = dist.sample(key)
        return env_action(action, action_bounds, normalize_actions), state._replace(last_obs=obs, last_action=action.astype(action_dtype))

    def observe(params, state, transition):
        del params
        t = jnp.minimum(state.t, horizon - 1)
        return state._replace(
            obs=state.obs.at[t].set(jnp.ravel(transition.obs).astype(jnp.float32)),
            action=state.action.at[t].set(state.last_action),  # the policy's own, not the env's
            reward=state.reward.at[t].set(transition.reward.astype(jnp.float32)),
            valid=state.valid.at[t].set(True),
            t=state.t + 1,
        )

    def end_episode(params, states, round_index, key):
        """One inner step on the round's episodes (`states` stacked [P, ...])."""
        del round_index, key
        episodes = Episodes(states.obs, states.action, states.reward, states.valid)
        policy = jax.tree_util.tree_map(lambda x: x[0], states.policy)  # the same in every episode
        steps_done = states.steps_done[0]
        grads = grad_fn(policy, process(episodes, gamma, gae_lambda, weighting))
        lr = params["step_sizes"] if learned_step_sizes else lrs[jnp.minimum(steps_done, lrs.shape[0] - 1)]
        return empty_buffer(gradient_step(policy, grads, lr), steps_done + 1)

    return AdaptiveAgent(init=init, act=act, observe=observe, end_episode=end_episode,
                         parallel_episodes=trajectories)


def check_rounds(eval_trajectories: int, family, num_episodes: int) -> None:
    """Raises a one-line ValueError when an evaluation trial of `num_episodes` cannot be whole
    rounds of `eval_trajectories`."""
    family.check_episodes(num_episodes)
    if num_episodes % eval_trajectories:
        raise ValueError(f"evaluation trials of {num_episodes} episodes are not whole rounds of "
                         f"{eval_trajectories} (eval_trajectories); give --eval-trajectories a divisor "
                         f"of --episodes")
