"""PEARL's probabilistic task context: a permutation-invariant posterior over the latent task
variable z from a set of transitions (Rakelly et al. 2019, Section 4.1; oyster
rlkit/torch/sac/agent.py, `_product_of_gaussians`, `infer_posterior`, `compute_kl_div`).

An encoder maps each transition c_n = (s, a, r[, s']) to a Gaussian factor N(mu_n, sigma_n^2) over
z (its last layer gives mu and a softplus'd sigma^2, clamped at 1e-7 as oyster); the posterior is
their product

    q(z | c_1..N) = prod_n N(mu_n, sigma_n^2)
                  = N(eta1 / eta2, 1 / eta2),  eta1 = sum_n mu_n / sigma_n^2,  eta2 = sum_n 1 / sigma_n^2,

so it is invariant to the order of the transitions and is updated one transition at a time by
adding to the two natural-parameter sums (`ContextSums`): the adapted agent's state is these sums,
not the transitions. As oyster, the unit prior N(0, I) is not a factor of the product; it is the
posterior of an empty context, and the training loss holds the posterior near it through
KL(q || N(0, I)) (`kl_to_prior`). With a deterministic context (`probabilistic=False`, the paper's
ablation) z is the mean of the per-transition outputs, and the sums hold their total and count.

Single stream: one task's context; `vmap` for batches of tasks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

MIN_VARIANCE = 1e-7  # oyster clamps each factor's variance at this before the product


class Posterior(NamedTuple):
    """A diagonal Gaussian over z [L] (variance 0 for a deterministic context)."""

    mean: jax.Array
    var: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.sqrt(self.var) * jax.random.normal(key, self.mean.shape, self.mean.dtype)


class ContextSums(NamedTuple):
    """Running sums over the transitions seen: `eta1` = sum mu/sigma^2 and `eta2` = sum 1/sigma^2
    (probabilistic), or `eta1` = the sum of the outputs (deterministic); `count` transitions."""

    eta1: jax.Array  # [L]
    eta2: jax.Array  # [L]
    count: jax.Array  # float32 scalar


def features(obs: jax.Array, action: jax.Array, reward: jax.Array, next_obs: jax.Array | None) -> jax.Array:
    """One transition's encoder input: (s, a, r), or (s, a, r, s') when `next_obs` is given (oyster's
    `use_next_obs_in_context`, for families whose dynamics vary)."""
    parts = [jnp.ravel(obs), jnp.ravel(action).astype(jnp.float32), jnp.reshape(reward, (1,)).astype(jnp.float32)]
    if next_obs is not None:
        parts.append(jnp.ravel(next_obs))
    return jnp.concatenate(parts)


def factors(out: jax.Array, probabilistic: bool = True) -> tuple[jax.Array, jax.Array]:
    """(mu [..., L], sigma^2 [..., L]) of the encoder's output [..., 2L] (probabilistic: the second
    half through a softplus, clamped at MIN_VARIANCE), or (out [..., L], zeros) when deterministic."""
    if not probabilistic:
        return out, jnp.zeros_like(out)
    latent = out.shape[-1] // 2
    return out[..., :latent], jnp.maximum(jax.nn.softplus(out[..., latent:]), MIN_VARIANCE)


def empty_sums(latent: int) -> ContextSums:
    return ContextSums(jnp.zeros((latent,), jnp.float32), jnp.zeros((latent,), jnp.float32), jnp.float32(0.0))


def add_factors(sums: ContextSums, mu: jax.Array, var: jax.Array, mask: jax.Array | None = None,
                probabilistic: bool = True) -> ContextSums:
    """The sums with the factors [N, L] (rows where `mask` [N] is False left out) added."""
    weight = jnp.ones(mu.shape[:1], mu.dtype) if mask is None else jnp.asarray(mask, mu.dtype)
    w = weight[:, None]
    if probabilistic:
        return ContextSums(sums.eta1 + jnp.sum(w * mu / var, axis=0), sums.eta2 + jnp.sum(w / var, axis=0),
                           sums.count + jnp.sum(weight))
    return ContextSums(sums.eta1 + jnp.sum(w * mu, axis=0), sums.eta2, sums.count + jnp.sum(weight))


def posterior(sums: ContextSums, probabilistic: bool = True) -> Posterior:
    """q(z | context) from the running sums; the unit prior N(0, I) (probabilistic) or z = 0
    (deterministic) when no transition has been seen."""
    seen = sums.count > 0
    if probabilistic:
        eta2 = jnp.where(seen, sums.eta2, 1.0)
        return Posterior(jnp.where(seen, sums.eta1 / eta2, 0.0), jnp.where(seen, 1.0 / eta2, 1.0))
    mean = jnp.where(seen, sums.eta1 / jnp.maximum(sums.count, 1.0), 0.0)
    return Posterior(mean, jnp.zeros_like(mean))


def product_of_gaussians(mu: jax.Array, var: jax.Array, mask: jax.Array | None = None) -> Posterior:
    """The product of the factors N(mu_n, var_n) [N, L] (masked rows left out): the batch form of
    `posterior(add_factors(...))`."""
    latent = mu.shape[-1]
    return posterior(add_factors(empty_sums(latent), mu, var, mask))


def kl_to_prior(post: Posterior) -> jax.Array:
    """KL(N(mean, var) || N(0, I)), summed over the latent dimensions."""
    var = jnp.maximum(post.var, MIN_VARIANCE)
    return 0.5 * jnp.sum(var + post.mean**2 - 1.0 - jnp.log(var))
