"""The PEARL agent as an AdaptiveAgent: posterior sampling over the latent task variable z.

In a trial the agent acts with the tanh-Gaussian policy on [observation, z]. z comes from the unit
prior for the first `prior_episodes` episodes (a fresh draw each episode), then from the posterior
q(z | everything seen in the trial) (`context.posterior`), drawn again after every episode (oyster
rlkit/core/rl_algorithm.py, `collect_paths`: `infer_posterior` once `num_exp_traj_eval`
trajectories are in, after each trajectory) or, as an option, after every step. The posterior is
kept as running natural-parameter sums (`context.ContextSums`), updated in `observe` from the
encoder's factor of each transition, so the state stays small however long the trial.

At evaluation the policy acts deterministically (tanh of its mean) by default, as oyster's
`eval_deterministic`; the training collection uses the same agent with sampled actions and a
limit on which episodes feed the posterior (oyster's extra RL steps do not reach the encoder).
The encoder sees the environment's reward: on a sparse family, the sparse one.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent
from metarlkit.algos.pearl import context as C
from metarlkit.nets.mlp import env_action
from metarlkit.nets.squashed import mlp, tanh_gaussian_head


class PEARLState(NamedTuple):
    sums: C.ContextSums  # the posterior's running sums over the trial's context
    z: jax.Array  # [L] the latent the policy is conditioned on now
    episode: jax.Array  # int32: episodes finished in this trial
    key: jax.Array  # for the per-step posterior draws (observe gets no key)
    last_obs: jax.Array  # [O] the observation of the last `act`
    last_action: jax.Array  # [A] the policy's own action there, in [-1, 1] (before `env_action`)


def record(state: PEARLState, transition) -> tuple[jax.Array, jax.Array]:
    """What the learner records per step: (the latent used, the policy's own action in [-1, 1])."""
    del transition
    return state.z, state.last_action


def policy_dist(params, obs: jax.Array, z: jax.Array):
    """The policy's TanhGaussian at one observation [O] given z [L]."""
    return tanh_gaussian_head(mlp(params, jnp.concatenate([jnp.ravel(obs).astype(jnp.float32), z])))


def encode(params, obs, action, reward, next_obs, probabilistic: bool):
    """The encoder's factor (mu [L], sigma^2 [L]) of one transition (`next_obs` None: not fed)."""
    return C.factors(mlp(params, C.features(obs, action, reward, next_obs)), probabilistic)


@functools.lru_cache(maxsize=64)
def make_agent(obs_size: int, action_size: int, latent_size: int, probabilistic: bool = True,
               next_obs_in_context: bool = False, prior_episodes: int = 1, posterior_update: str = "episode",
               deterministic: bool = True, action_bounds: tuple | None = None,
               context_episodes: int | None = None) -> AdaptiveAgent:
    """The PEARL agent; `params` is {"policy": ..., "encoder": ...} (`nets.squashed.mlp` dicts).

    Args:
      prior_episodes: episodes with z from the prior before the posterior is used.
      posterior_update: 'episode' (draw z from the posterior after each episode) or 'step'.
      deterministic: act with tanh(mean) (evaluation) rather than a sample (training).
      action_bounds: the family's action box; the policy's [-1, 1] is mapped onto it.
      context_episodes: only the first this many episodes feed the posterior (None: all).
    """

    def from_posterior(sums, key):
        post = C.posterior(sums, probabilistic)
        return post.sample(key) if probabilistic else post.mean

    def prior_draw(key):
        if probabilistic:
            return jax.random.normal(key, (latent_size,), jnp.float32)
        return jnp.zeros((latent_size,), jnp.float32)

    def init(params, key, num_episodes):
        del params, num_episodes
        key_z, key = jax.random.split(key)
        return PEARLState(C.empty_sums(latent_size), prior_draw(key_z), jnp.int32(0), key,
                          jnp.zeros((obs_size,), jnp.float32), jnp.zeros((action_size,), jnp.float32))

    def act(params, state, obs, key):
        dist = policy_dist(params["policy"], obs, state.z)
        u = dist.mode() if deterministic else dist.sample(key)
        return (env_action(u, action_bounds, True),
                state._replace(last_obs=jnp.ravel(obs).astype(jnp.float32), last_action=u))

    def observe(params, state, transition):
        mu, var = encode(params["encoder"], transition.obs, state.last_action, transition.reward,
                         transition.next_obs if next_obs_in_context else None, probabilistic)
        counts = jnp.bool_(True) if context_episodes is None else state.episode < context_episodes
        sums = C.add_factors(state.sums, mu[None], var[None], counts[None], probabilistic)
        state = state._replace(sums=sums)
        if posterior_update == "step":
            key_z, key = jax.random.split(state.key)
            z = jnp.where(state.episode >= prior_episodes, from_posterior(sums, key_z), state.z)
            state = state._replace(z=z, key=key)
        return state

    def end_episode(params, state, episode_index, key):
        del params, episode_index
        episode = state.episode + 1
        z = jnp.where(episode >= prior_episodes, from_posterior(state.sums, key), prior_draw(key))
        return state._replace(z=z, episode=episode)

    return AdaptiveAgent(init=init, act=act, observe=observe, end_episode=end_episode)
