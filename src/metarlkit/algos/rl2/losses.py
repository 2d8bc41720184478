"""RL2 losses: the policy is unrolled over whole trials (`Network.unroll`) and scored with PPO or A2C."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from metarlkit.rl import losses as rl_losses


class Batch(NamedTuple):
    """Training data of a batch of whole trials, each [B, T] (x: [B, T, D])."""

    x: jax.Array  # network inputs
    action: jax.Array
    old_logp: jax.Array  # log pi_old(a|h) recorded during the rollout
    old_value: jax.Array
    advantage: jax.Array
    target: jax.Array  # value targets (advantage + old value)
    valid: jax.Array  # bool


def loss_fn(params, batch: Batch, entropy_coef, *, unroll: Callable, algorithm: str, clip_eps: float,
            value_coef: float, normalize: bool):
    """Loss of a minibatch of trials. Returns (loss, stats).

    ppo: clipped surrogate (Schulman et al. 2017) + value_coef * value loss - entropy bonus.
    a2c: policy gradient -log pi * A (Mnih et al. 2016; Wang et al. 2016) + value loss - entropy.
    """
    dist, value = jax.vmap(lambda x, v: unroll(params, x, v))(batch.x, batch.valid)
    logp = jax.vmap(jax.vmap(lambda d, a: d.log_prob(a)))(dist, batch.action)
    entropy = rl_losses.masked_mean(jax.vmap(jax.vmap(lambda d: d.entropy()))(dist), batch.valid)
    adv = batch.advantage
    if normalize:
        adv = rl_losses.normalize_advantages(adv, batch.valid)
    stats: dict[str, jax.Array] = {}
    if algorithm == "ppo":
        pg, stats = rl_losses.ppo_clip_loss(logp, batch.old_logp, adv, batch.valid, clip_eps)
    else:
        pg = rl_losses.policy_gradient_loss(logp, adv, batch.valid)
    vf = rl_losses.value_loss(value, batch.target, batch.valid)
    loss = pg + value_coef * vf - entropy_coef * entropy
    stats = {**stats, "policy_loss": pg, "value_loss": vf, "entropy": entropy, "loss": loss}
    return loss, stats
