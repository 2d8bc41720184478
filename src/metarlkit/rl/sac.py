"""Soft actor-critic losses as PEARL trains its actor-critic (Rakelly et al. 2019; reference code
katerakelly/oyster, rlkit/torch/sac/sac.py, `PEARLSoftActorCritic._take_step`).

This is the first SAC (Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep
Reinforcement Learning with a Stochastic Actor"): twin Q networks, a state-value network V and a
Polyak-averaged target V, with the temperature fixed at 1 and the rewards scaled instead
(`reward_scale`, oyster's default 5: a larger scale is a smaller entropy bonus). Per transition:

    Q target   y = reward_scale * r + (1 - terminated) * discount * V_target(s')
    Q loss       mean (Q1(s, a) - y)^2 + mean (Q2(s, a) - y)^2                     (no 1/2)
    V target     min(Q1, Q2)(s, a~) - log pi(a~ | s),   a~ ~ pi(. | s)             (no 1/2)
    policy loss  mean [log pi(a~ | s) - min(Q1, Q2)(s, a~)]
                 + 1e-3 mean(pre-tanh mean^2) + 1e-3 mean(log_std^2)

Where this follows oyster (the file at commit 393cdd52): the scaled-reward Q target and the two
critics' summed squared errors at lines 214-219; the minimum of the two critics on the policy's
new actions at 169-173 and 226; the V target and its squared error at 229-230; the policy loss
with the minimum, not the first critic, at 238-242; the regularisers at 244-251 with the weights
of lines 27-29 (mean 1e-3, log-std 1e-3, pre-activation 0); the target update at 175-176, after
the V step (line 234), with `soft_target_tau` (1e-2 in the class, 0.005 in configs/default.py).

The networks are arguments, single-stream: `q_apply(params, obs [O], action [A]) -> scalar`,
`v_apply(params, obs [O]) -> scalar`, `policy_apply(params, obs [O]) -> nets.squashed.TanhGaussian`
(a [1] output is read as a scalar). The losses `vmap` them over a batch [B]; a caller with tasks
[T, B] vmaps the losses over T and averages (equal B: the same mean as oyster's flattened batch).

PEARL conditions Q, V and the policy on the task's latent z by concatenating it to the
observation, so `obs` and `next_obs` here are the caller's [obs, z]. oyster trains the encoder
with the Q loss (and its KL term) only: `q_loss` lets gradients flow into `batch.obs` (so
`jax.grad` through the caller's encoder works), while its target V on `next_obs`, and everything
in `v_loss` and `policy_loss` that depends on `obs`, is cut from the gradient (oyster's
`task_z.detach()` at lines 170-171 and 199 and in agent.py's `forward`). `policy_loss` also cuts
the critics' parameters: in oyster the policy loss's gradients on Q are zeroed before the critics'
next step. Each loss therefore differentiates only its own network (plus the encoder through
`q_loss`), and a caller may sum them under one `jax.grad`.

oyster's order within a step, for a caller who wants it exactly: the Q step (target V of before
the step), then V and policy losses with the *updated* critics and one draw of new actions (pass
the same `key` to `v_loss` and `policy_loss`), the V step, the target update, the policy step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from metarlkit.nets.squashed import TanhGaussian, mlp, tanh_gaussian_head

Params = Any  # a pytree of arrays


def q_target(r_t: jax.Array, terminated_t: jax.Array, v_tp1: jax.Array, *, discount: float,
             reward_scale: float) -> jax.Array:
    """The soft Q target reward_scale * r + (1 - terminated) * discount * V_target(s') (same shapes).

    `terminated_t` is a true end (the trial's `terminated`): a step cut by the time limit is not
    terminated and bootstraps."""
    return reward_scale * r_t + (1.0 - terminated_t.astype(r_t.dtype)) * discount * v_tp1


def _scalar_per_row(values: jax.Array, batch_size: int) -> jax.Array:
    return jnp.reshape(values, (batch_size,))  # [B] or [B, 1] -> [B]; anything else is an error


def _q_values(q_apply: Callable, q_params, obs: jax.Array, action: jax.Array) -> jax.Array:
    """[num_critics, B] values of every critic in `q_params` (a sequence of parameter pytrees)."""
    batch = obs.shape[0]
    return jnp.stack([_scalar_per_row(jax.vmap(q_apply, in_axes=(None, 0, 0))(p, obs, action), batch)
                      for p in q_params])


def _policy_samples(policy_apply: Callable, policy_params: Params, obs: jax.Array, key: jax.Array):
    """(distribution with leaves [B, D], pre-tanh draws u [B, D], actions [B, D], log pi [B]).

    Row i draws with `jax.random.split(key, B)[i]`: the same key gives the same actions."""
    dist = jax.vmap(policy_apply, in_axes=(None, 0))(policy_params, obs)
    keys = jax.random.split(key, obs.shape[0])
    u = jax.vmap(TanhGaussian.sample_pre_tanh)(dist, keys)
    log_pi = jax.vmap(TanhGaussian.log_prob_pre_tanh)(dist, u)
    return dist, u, jnp.tanh(u), log_pi


def q_loss(q_params, v_target_params: Params, batch, *, q_apply: Callable, v_apply: Callable,
           discount: float, reward_scale: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The twin critics' loss, sum over critics of mean (Q_k(s, a) - y)^2 (oyster lines 214-219).

    Args:
      q_params: the critics' parameters, a sequence (q1_params, q2_params).
      v_target_params: the target V network's parameters (not differentiated).
      batch: transitions with `obs` [B, O], `action` [B, A], `reward` [B], `next_obs` [B, O] and
        `terminated` [B] (a `rl.replay.Transitions`, with z already in `obs` and `next_obs` for
        PEARL; the reward is the dense one where a family reports both). Gradients flow into
        `batch.obs` (the encoder's path), not into `batch.next_obs`.
      q_apply, v_apply: single-stream networks (module docstring).
      discount: gamma.
      reward_scale: the rewards' scale (the inverse temperature).

    Returns:
      (loss, {"q1": mean Q1(s, a), "q_target": mean y}).
    """
    batch_size = batch.obs.shape[0]
    v_tp1 = _scalar_per_row(jax.vmap(v_apply, in_axes=(None, 0))(v_target_params, batch.next_obs), batch_size)
    target = jax.lax.stop_gradient(
        q_target(batch.reward, batch.terminated, v_tp1, discount=discount, reward_scale=reward_scale))
    q = _q_values(q_apply, q_params, batch.obs, batch.action)  # [K, B]
    loss = jnp.sum(jnp.mean((q - target) ** 2, axis=-1))
    return loss, {"q1": jnp.mean(q[0]), "q_target": jnp.mean(target)}


def v_loss(v_params: Params, q_params, policy_params: Params, obs: jax.Array, key: jax.Array, *,
           v_apply: Callable, q_apply: Callable, policy_apply: Callable) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The state-value loss mean (V(s) - [min_k Q_k(s, a~) - log pi(a~ | s)])^2, a~ ~ pi(. | s)
    reparameterised (oyster lines 226-230); only `v_params` is differentiated.

    Args:
      v_params, q_params, policy_params: the V network's, the critics' (a sequence) and the
        policy's parameters.
      obs: [B, O] observations (with z for PEARL).
      key: draws the new actions (row i with `jax.random.split(key, B)[i]`; pass the key of the
        same step's `policy_loss` to use oyster's single draw).

    Returns:
      (loss, {"v": mean V(s), "v_target": mean target, "log_pi": mean log pi(a~ | s)}).
    """
    obs = jax.lax.stop_gradient(obs)
    _, _, action, log_pi = _policy_samples(policy_apply, policy_params, obs, key)
    min_q = jnp.min(_q_values(q_apply, q_params, obs, action), axis=0)
    target = jax.lax.stop_gradient(min_q - log_pi)
    v = _scalar_per_row(jax.vmap(v_apply, in_axes=(None, 0))(v_params, obs), obs.shape[0])
    loss = jnp.mean((v - target) ** 2)
    return loss, {"v": jnp.mean(v), "v_target": jnp.mean(target), "log_pi": jnp.mean(log_pi)}


def policy_loss(policy_params: Params, q_params, obs: jax.Array, key: jax.Array, *, policy_apply: Callable,
                q_apply: Callable, mean_reg: float = 1e-3, log_std_reg: float = 1e-3,
                pre_tanh_reg: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The policy's loss mean [log pi(a~ | s) - min_k Q_k(s, a~)] with a~ = tanh(mean + std * eps)
    (the reparameterised gradient through dQ/da), plus oyster's regularisers (lines 238-251):

        mean_reg * mean(pre-tanh mean^2) + log_std_reg * mean(log_std^2)
        + pre_tanh_reg * mean over rows of sum_i u_i^2

    (means over rows and action dimensions; `log_std` is the clamped one; u the pre-tanh draw).
    oyster takes the minimum of the two critics here, not Q1. Only `policy_params` is
    differentiated: neither the critics nor `obs` (so not z) receive gradients.

    Args:
      policy_params, q_params: the policy's and the critics' (a sequence) parameters.
      obs: [B, O] observations (with z for PEARL).
      key: draws the new actions (as in `v_loss`).
      mean_reg, log_std_reg, pre_tanh_reg: oyster's `policy_mean_reg_weight`,
        `policy_std_reg_weight` and `policy_pre_activation_weight`.

    Returns:
      (loss, {"log_pi", "min_q": means over the batch, "mean_reg_loss", "log_std_reg_loss":
      the two regularisers' weighted values}).
    """
    obs = jax.lax.stop_gradient(obs)
    q_params = jax.lax.stop_gradient(q_params)
    dist, u, action, log_pi = _policy_samples(policy_apply, policy_params, obs, key)
    min_q = jnp.min(_q_values(q_apply, q_params, obs, action), axis=0)
    mean_reg_loss = mean_reg * jnp.mean(dist.mean**2)
    log_std_reg_loss = log_std_reg * jnp.mean(dist.log_std**2)
    pre_tanh_reg_loss = pre_tanh_reg * jnp.mean(jnp.sum(u**2, axis=-1))
    loss = jnp.mean(log_pi - min_q) + mean_reg_loss + log_std_reg_loss + pre_tanh_reg_loss
    stats = {"log_pi": jnp.mean(log_pi), "min_q": jnp.mean(min_q), "mean_reg_loss": mean_reg_loss,
             "log_std_reg_loss": log_std_reg_loss}
    return loss, stats


def polyak(target: Params, online: Params, tau: float) -> Params:
    """The Polyak average (1 - tau) * target + tau * online, leaf by leaf (oyster's
    `soft_update_from_to`, applied to the target V after each V step)."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def mlp_q(params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
    """A Q network as oyster's: an MLP (`nets.squashed.mlp`) over [obs, action], one output."""
    return mlp(params, jnp.concatenate([obs, action]))[0]


def mlp_v(params: Params, obs: jax.Array) -> jax.Array:
    """A state-value network: an MLP over obs, one output."""
    return mlp(params, obs)[0]


def mlp_policy(params: Params, obs: jax.Array) -> TanhGaussian:
    """A tanh-Gaussian policy: an MLP over obs whose 2D outputs are the pre-tanh mean and log-std."""
    return tanh_gaussian_head(mlp(params, obs))
