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
