"""MAML-RL's outer objectives: the meta-surrogate through the adaptation step, TRPO's exact
Gauss-Newton KL products, and the terms on theta itself (ProMP's KL penalty, E-MAML's exploration).

The inner step (`adapt`), its estimators and the episode processing are shared pieces in
`metarlkit.rl.adaptation`; shapes and weightings are documented there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

# The adaptation step and its pieces live in `rl.adaptation` (shared with other gradient-based
# algorithms); they are re-exported here, where MAML's objectives use them.
from metarlkit.rl.adaptation import (  # noqa: F401
    Episodes,
    Processed,
    adapt,
    distribution,
    inner_loss,
    kl_divergence,
    log_prob,
    process,
    step_mean,
)


class OuterData(NamedTuple):
    """One task's data for the outer objective."""

    inner: Processed  # [K, N, H] the inner steps' batches
    outer: Processed  # [N, H] episodes of the adapted policy
    old_dist: Any  # the adapted policy at the old theta on `outer` (constants), leaves [N, H, A]
    old_logp: jax.Array  # [N, H]


def surrogate(params, data: OuterData, lrs: tuple[float, ...], *, estimator: str, activation: str,
              gamma: float, weighting: str, first_order: bool, clip_eps: float | None = None) -> tuple[jax.Array, jax.Array]:
    """(loss, KL) of one task at theta = `params`: the outer loss on the adapted policy phi(theta).

    loss = -mean(ratio A) (TRPO's surrogate), or PPO's clipped -mean(min(ratio A, clip(ratio) A))
    when `clip_eps` is given, with ratio = pi_phi(a|s) / pi_phi_old(a|s) on the post-adaptation
    episodes; KL = mean KL(pi_phi_old || pi_phi) over the same steps.
    """
    phi = adapt(params, data.inner, lrs, estimator=estimator, activation=activation, gamma=gamma,
                weighting=weighting, first_order=first_order)
    ep = data.outer.episodes
    dist = distribution(phi, ep.obs, activation)
    ratio = jnp.exp(log_prob(dist, ep.action) - data.old_logp)
    adv = data.outer.advantage
    if clip_eps is None:
        objective = ratio * adv
    else:
        objective = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    kl = step_mean(kl_divergence(data.old_dist, dist), ep.valid, weighting)
    return -step_mean(objective, ep.valid, weighting), kl


def outer_gradient_and_fvp(params, data: OuterData, lrs: tuple[float, ...], *, estimator: str, activation: str,
                           gamma: float, weighting: str, first_order: bool):
    """TRPO's pieces at the old theta, over a batch of tasks (`data` with a leading task axis):
    (mean surrogate loss, its gradient, v -> the mean KL's Hessian times v, data). When
    `data.old_dist` is None the old adapted policy is taken from this computation (it is the
    policy at the old theta) and returned filled in `data`.

    The KL between the old and the new adapted policy depends on theta only through phi(theta),
    and at the old theta it is minimal in phi, so its Hessian is exactly J^T F J: J = dphi/dtheta
    (through the inner step), F the Hessian of the KL in the policy's outputs (per step: 1/sigma^2
    for a Gaussian's mean, 2 for its log-std; softmax's for logits), carried to phi by the policy's
    Jacobian. `jax.linearize` evaluates the inner step and the policy once; each product then
    runs only their linear maps and transposes, where differentiating the KL's gradient again
    would take third derivatives of the inner loss through every conjugate-gradient iteration.
    """
    def phis_of(thetas):  # one copy of theta per task: the linear map is block-diagonal in tasks
        return jax.vmap(lambda theta, inner: adapt(theta, inner, lrs, estimator=estimator, activation=activation,
                                                   gamma=gamma, weighting=weighting,
                                                   first_order=first_order))(thetas, data.inner)

    def outputs_of(phis):
        return jax.vmap(lambda phi, ep: distribution(phi, ep.obs, activation))(phis, data.outer.episodes)

    tasks = data.outer.advantage.shape[0]
    copies = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (tasks,) + x.shape), params)
    phis, lin_blocks = jax.linearize(phis_of, copies)
    if len(lrs) == 1:
        # One inner step: each task's J = I - alpha * (Hessian of its inner loss) is symmetric, so
        # J^T is J, and the forward linear map serves both ways (cheaper than its transpose).
        def adapt_t(u):
            return (jax.tree_util.tree_map(lambda x: jnp.sum(x, axis=0), lin_blocks(u)),)
    else:
        blocks_t = jax.linear_transpose(lin_blocks, copies)

        def adapt_t(u):
            return (jax.tree_util.tree_map(lambda x: jnp.sum(x, axis=0), blocks_t(u)[0]),)

    def lin_adapt(v):
        return lin_blocks(jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (tasks,) + x.shape), v))
    outputs, lin_outputs = jax.linearize(outputs_of, phis)
    outputs_t = jax.linear_transpose(lin_outputs, phis)
    valid = data.outer.episodes.valid
    if data.old_dist is None:  # the old adapted policy is this linearisation's primal
        old_dist = jax.lax.stop_gradient(outputs)
        old_logp = jax.vmap(lambda d, ep: log_prob(d, ep.action))(old_dist, data.outer.episodes)
        data = data._replace(old_dist=old_dist, old_logp=old_logp)

    def mean_kl(dist):
        return jnp.mean(jax.vmap(lambda old, new, ok: step_mean(kl_divergence(old, new), ok, weighting))(
            data.old_dist, dist, valid))

    def mean_loss(dist):
        def one(new, ep, adv, old_logp):
            ratio = jnp.exp(log_prob(new, ep.action) - old_logp)
            return -step_mean(ratio * adv, ep.valid, weighting)

        return jnp.mean(jax.vmap(one)(dist, data.outer.episodes, data.outer.advantage, data.old_logp))

    loss, dloss = jax.value_and_grad(mean_loss)(outputs)
    (grad,) = adapt_t(outputs_t(dloss)[0])
    _, kl_hvp = jax.linearize(jax.grad(mean_kl), outputs)

    def fvp(v):
        (out,) = adapt_t(outputs_t(kl_hvp(lin_outputs(lin_adapt(v))))[0])
        return out

    return loss, grad, fvp, data


class PreUpdate(NamedTuple):
    """The pre-update episodes of a meta-batch (round 0, sampled with the old theta) and what the
    outer terms on theta itself need: ProMP's KL penalty and E-MAML's exploration term."""

    episodes: Episodes  # [M, N, H]
    old_dist: Any  # the policy at the old theta on these steps (constants), leaves [M, N, H, A]
    old_logp: jax.Array  # [M, N, H]
    task_advantage: jax.Array  # [M] the task's mean post-adaptation return, normalised over the batch


def pre_update(params, episodes: Episodes, post_returns: jax.Array, activation: str) -> PreUpdate:
    """PreUpdate at the old theta = `params`; `post_returns` [M] the tasks' mean adapted returns."""
    dist = jax.lax.stop_gradient(distribution(params, episodes.obs, activation))
    logp = jax.vmap(log_prob)(dist, episodes.action)
    centred = post_returns - jnp.mean(post_returns)
    adv = centred / (jnp.std(post_returns) + 1e-8)
    return PreUpdate(episodes, dist, logp, jax.lax.stop_gradient(adv))


def pre_update_terms(params, pre: PreUpdate, activation: str, weighting: str) -> tuple[jax.Array, jax.Array]:
    """(KL, exploration loss) on the pre-update episodes, as functions of theta = `params`:

      KL = mean over tasks of mean KL(pi_old_theta || pi_theta)             (ProMP's penalty)
      exploration = -mean over tasks of A_task * mean(pi_theta / pi_old_theta)  (E-MAML)

    The exploration loss's gradient at the old theta is -E[A_task * grad log pi_theta] over the
    pre-update steps (`step_mean`s, as every loss here): the credit the pre-update sampling
    distribution gets for the return after adaptation, which MAML's meta-gradient leaves out.
    """
    ep = pre.episodes
    dist = distribution(params, ep.obs, activation)
    kl = jnp.mean(jax.vmap(lambda o, n, ok: step_mean(kl_divergence(o, n), ok, weighting))(pre.old_dist, dist, ep.valid))
    ratio = jnp.exp(jax.vmap(log_prob)(dist, ep.action) - pre.old_logp)
    per_task = jax.vmap(lambda r, ok: step_mean(r, ok, weighting))(ratio, ep.valid)
    return kl, -jnp.mean(pre.task_advantage * per_task)


def adapt_kl_penalty(eta: jax.Array, kl: jax.Array, target: float) -> jax.Array:
    """ProMP's adaptive KL-penalty weight (as PPO's adaptive-KL variant): halve eta when the
    measured KL is below target / 1.5, double it when above 1.5 target, else keep it."""
    return jnp.where(kl < target / 1.5, eta / 2, jnp.where(kl > target * 1.5, eta * 2, eta))
