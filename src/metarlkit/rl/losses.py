"""Policy and value losses over masked batches of steps (any shape; `mask` marks valid steps)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `x` over the entries where `mask` is true (0 when none is)."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def normalize_advantages(adv: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Advantages shifted and scaled to mean 0, std 1 over the valid entries (0 elsewhere)."""
    mean = masked_mean(adv, mask)
    std = jnp.sqrt(masked_mean((adv - mean) ** 2, mask))
    return jnp.where(mask, (adv - mean) / (std + eps), 0.0)


def ppo_clip_loss(logp: jax.Array, old_logp: jax.Array, adv: jax.Array, mask: jax.Array,
                  clip_eps: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), negated to be minimised.

    Args:
      logp, old_logp, adv, mask: same-shaped arrays of log pi(a|h) under the current and the
        behaviour policy, advantages, and valid-step mask.
      clip_eps: epsilon of the clipped ratio.

    Returns:
      (loss, {"approx_kl", "clip_fraction"}).
    """
    log_ratio = logp - old_logp
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    stats = {
        # (r - 1) - log r: the low-variance, non-negative estimator of KL(old || new).
        "approx_kl": masked_mean((ratio - 1) - log_ratio, mask),
        "clip_fraction": masked_mean((jnp.abs(ratio - 1) > clip_eps).astype(adv.dtype), mask),
    }
    return -masked_mean(surrogate, mask), stats


def policy_gradient_loss(logp: jax.Array, adv: jax.Array, mask: jax.Array) -> jax.Array:
    """The REINFORCE / A2C surrogate -E[log pi(a|h) * A] (advantages are not differentiated)."""
    return -masked_mean(logp * jax.lax.stop_gradient(adv), mask)


def value_loss(value: jax.Array, target: jax.Array, mask: jax.Array,
               old_value: jax.Array | None = None, clip_eps: float | None = None) -> jax.Array:
    """0.5 * squared error to the target; with `old_value` and `clip_eps`, PPO's clipped form."""
    err = (value - target) ** 2
    if old_value is not None and clip_eps is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        err = jnp.maximum(err, (clipped - target) ** 2)
    return 0.5 * masked_mean(err, mask)
