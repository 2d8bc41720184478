"""EPOpt's source-distribution adaptation: move the source distribution toward a target model
from a few trajectories recorded on it (Rajeswaran et al. 2017, Section 3.2, "model adaptation").

The target's parameters are unknown; its trajectories record the physics state (the observation
of a family that declares `defines_model`, whose observation is the whole state). The update is
importance sampling from the current source distribution:

  1. draw M parameter sets theta_i from the source distribution;
  2. weight each by the likelihood of the target transitions under its simulated dynamics,
     log w_i = -sum_t ||dynamics_fn(s_t, a_t; theta_i) - s'_t||^2 / (2 noise^2), a Gaussian
     observation-noise model with standard deviation `noise` per coordinate;
  3. refit the source distribution to the theta_i under the normalised weights (each parameter's
     kind kept, its support kept inside the source's: `TaskDistribution.fit(keep_bounds=True)`).

The effective sample size 1 / sum w_i^2 says how many draws carried the fit: a handful means the
noise is small for the number of draws (or the target lies outside the source's support).

`adapt_state` is the algorithm's `adapt` hook: `metarlkit train epopt --init-from RUN --adapt-to
FILE` moves each seed's source distribution with it, then trains on from the run's policy.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.tasks.distributions import TaskDistribution


class Transitions(NamedTuple):
    """Target transitions, [T, ...]: (s, a, s') with a `valid` mask."""

    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    valid: jax.Array


def log_likelihoods(family, params: dict[str, jax.Array], target: Transitions, noise: float) -> jax.Array:
    """[M]: the log-likelihood of the target transitions under each of M parameter sets (dict of [M])."""

    def one(theta):
        predicted = jax.vmap(lambda s, a: family.dynamics_fn(s, a, theta))(target.obs, target.action)
        err = jnp.sum((predicted - target.next_obs) ** 2, axis=-1)
        return -0.5 * jnp.sum(jnp.where(target.valid, err, 0.0)) / noise**2

    return jax.vmap(one)(params)


def adapt_source(family, source: TaskDistribution, target: Transitions, key: jax.Array, *, samples: int = 1000,
                 noise: float = 0.01):
    """The source distribution refitted toward the target (module docstring).

    Returns:
      (new source TaskDistribution, info: `ess` (effective sample size), `log_likelihood` [M]).
    """
    draws = jax.vmap(source.sample)(jax.random.split(key, samples))
    loglik = log_likelihoods(family, draws, target, noise)
    weights = jax.nn.softmax(loglik)
    new = source.fit(draws, weights, keep_bounds=True)
    return new, {"ess": 1.0 / jnp.sum(weights**2), "log_likelihood": loglik}


def _means(dist: TaskDistribution) -> dict[str, float]:
    return {name: float(f"{float(v):.6g}") for name, v in sorted(dist.mean().items())}


def adapt_state(config, family, state, recording, key):
    """EPOpt's `Algorithm.adapt`: one seed's train state with its source distribution refitted toward
    the target recorded in `recording` (`adapt_source` with the config's `adapt_samples` and
    `adapt_noise`); the policy, key and iteration count are kept. Returns (state, info): the
    effective sample size, each parameter's source mean before and after, the new distribution."""
    if state.source is None:
        raise ValueError("this run trains on a fixed set of tasks, not a source distribution; there is nothing to adapt")
    if not getattr(family, "defines_model", False):
        raise ValueError(f"{family.name} does not define its dynamics (dynamics_fn); EPOpt adapts its source only on "
                         f"families that do (pendulum, cartpole, point-robot-wind)")
    obs, action, next_obs, valid = recording.flat()
    data = Transitions(jnp.asarray(obs), jnp.asarray(action), jnp.asarray(next_obs), jnp.asarray(valid))
    source = jax.tree_util.tree_map(jnp.asarray, state.source)
    new, stats = jax.jit(adapt_source, static_argnums=0, static_argnames=("samples",))(
        family, source, data, key, samples=config.adapt_samples, noise=config.adapt_noise)
    before, after = _means(source), _means(new)
    ess = float(stats["ess"])
    moved = ", ".join(f"{name} {before[name]:.4g} -> {after[name]:.4g}" for name in before if before[name] != after[name])
    info = {"ess": round(ess, 3), "mean_before": before, "mean_after": after, "distribution": new.describe(),
            "message": f"source adapted on {recording.num_transitions} target transitions: {moved or 'no change'} "
                       f"(effective draws {ess:.1f} of {config.adapt_samples})"}
    return state._replace(source=new), info
