"""Returns and generalised advantage estimation (Schulman et al. 2016) over one stream of steps.

Single stream ([T] arrays, time-major); `vmap` over trials at the call site. Steps where `valid_t`
is False (after an early episode end, padded to a fixed shape by the trial) are skipped: they get
zero advantage and the recursion passes over them to the next valid step.

ATTENTION (meta-RL): in a trial of several episodes, an episode end is *not* terminal. The agent
sees the done flag as an input and its hidden state carries on into the next episode of the same
task, so returns, GAE and value bootstrapping run across episode boundaries; only the end of the
trial is terminal. Pass `discount_t = gamma` at episode ends (not 0) and `bootstrap_value = 0` for
a trial that ends with the stream. Per-episode RL code zeroes the discount at every done, which
silently teaches an RL2 agent that nothing after this episode matters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    reward_t: jax.Array,
    value_t: jax.Array,
    discount_t: jax.Array,
    lambda_: float | jax.Array,
    bootstrap_value: float | jax.Array = 0.0,
    valid_t: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and their value targets.

    With v' the value of the next valid step (or `bootstrap_value` after the last):
      delta_t = r_t + discount_t * v' - v_t
      A_t     = delta_t + discount_t * lambda * A'     (A' the next valid step's advantage)

    Args:
      reward_t: [T] rewards.
      value_t: [T] value estimates of the states at t.
      discount_t: [T] discount applied to what follows step t (0 where t is terminal).
      lambda_: GAE lambda (scalar).
      bootstrap_value: value of the state after the last step (0 when the stream ends terminally).
      valid_t: optional [T] bool; invalid steps are skipped.

    Returns:
      (advantage_t [T], target_t [T] = advantage_t + value_t), both zero where not valid.
    """
    if valid_t is None:
        valid_t = jnp.ones_like(reward_t, bool)
    discount_t = jnp.broadcast_to(discount_t, reward_t.shape)

    def step(carry, inputs):
        next_value, next_adv = carry
        r, v, d, ok = inputs
        delta = r + d * next_value - v
        adv = delta + d * lambda_ * next_adv
        carry = (jnp.where(ok, v, next_value), jnp.where(ok, adv, next_adv))
        return carry, jnp.where(ok, adv, 0.0)

    init = (jnp.asarray(bootstrap_value, value_t.dtype), jnp.zeros((), value_t.dtype))
    _, adv = jax.lax.scan(step, init, (reward_t, value_t, discount_t, valid_t), reverse=True)
    return adv, jnp.where(valid_t, adv + value_t, 0.0)


def discounted_returns(
    reward_t: jax.Array,
    discount_t: jax.Array,
    bootstrap_value: float | jax.Array = 0.0,
    valid_t: jax.Array | None = None,
) -> jax.Array:
    """G_t = r_t + discount_t * G_{next valid step}; [T] -> [T], zero where not valid."""
    zeros = jnp.zeros_like(reward_t)
    _, target = gae(reward_t, zeros, discount_t, 1.0, bootstrap_value, valid_t)
    return target
