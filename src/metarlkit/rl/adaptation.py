"""Policy adaptation by policy-gradient steps, shared by gradient-based meta-RL (MAML-RL and its
variants, GMPS): batches of episodes, advantage processing, masked step means, batched
log-probabilities and KL, the inner policy-gradient estimators and the adaptation step itself.

Shapes: one task's batch of episodes is [N, H] (N episodes of the family's horizon H; observations
[N, H, O], actions [N, H] or [N, H, D]); a `valid` mask marks steps before an episode's end. Every
mean over steps is `step_mean`, weighted by `weighting`: 'step' (every valid step of the batch
weighs the same: rllab, the MAML paper's code) or 'episode' (the mean over each episode's valid
steps, then over episodes: pytorch-maml-rl). They differ only when episodes end early, and there
'episode' hands an episode that ends after a few steps (2D navigation: one that reaches the goal)
the weight of a whole episode in those few steps.

ATTENTION: the episodes here are the units of adaptation and each one is terminal: returns and
advantages stop at every episode's end (unlike RL2's trials). The adaptation step's data are fixed
arrays; a meta-gradient flows through the inner *gradient* (phi = theta - alpha * grad L(theta)),
which is why the inner loss must be a function of the parameters whose second derivative means
something (see `inner_loss`). The policy is a `nets.mlp` policy named by its activation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.nets.mlp import mlp_policy
from metarlkit.rl.optim import fit_linear_baseline, linear_baseline_features, linear_baseline_values
from metarlkit.rl.returns import discounted_returns, gae

WEIGHTINGS = ("step", "episode")
INNER_ESTIMATORS = ("vpg", "dice", "lvc")


class Episodes(NamedTuple):
    """A batch of episodes of one task, [N, H] (obs [N, H, O]; action [N, H] or [N, H, D])."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array  # zero where not valid
    valid: jax.Array  # bool


class Processed(NamedTuple):
    """Episodes with what the losses need from them; everything here is data (no gradient)."""

    episodes: Episodes
    advantage: jax.Array  # [N, H] GAE over the linear baseline, normalised under the weighting
    baseline: jax.Array  # [N, H] the fitted baseline's values (DiCE)
    scale: jax.Array  # scalar, the advantages' standard deviation (under the weighting) before normalising (DiCE)


def step_mean(x: jax.Array, valid: jax.Array, weighting: str) -> jax.Array:
    """The mean of per-step terms over the valid steps, [N, H] -> scalar: 'step' weighs every valid
    step the same; 'episode' takes each episode's mean over its valid steps, then the mean over
    episodes."""
    valid = valid.astype(x.dtype)
    if weighting == "step":
        return jnp.sum(x * valid) / jnp.maximum(jnp.sum(valid), 1.0)
    if weighting == "episode":
        per_episode = jnp.sum(x * valid, axis=-1) / jnp.maximum(jnp.sum(valid, axis=-1), 1.0)
        return jnp.mean(per_episode)
    raise ValueError(f"unknown weighting {weighting!r}; use one of {', '.join(WEIGHTINGS)}")


def process(episodes: Episodes, gamma: float, gae_lambda: float, weighting: str = "step") -> Processed:
    """Advantages of one task's episodes: a linear feature baseline fitted to their discounted
    returns (per task, as rllab / pytorch-maml-rl), GAE over it, normalised to mean 0 and standard
    deviation 1 under the losses' `weighting` (`step_mean`).

    'step' (rllab's `center_advantages`): the mean and variance over all valid steps. 'episode'
    (pytorch-maml-rl's `weighted_normalize` with episode lengths): the mean of the per-episode means,
    and the mean over episodes of each episode's mean square about it. Normalising under the loss's
    own weighting keeps the advantages centred where the loss averages them; centred over the steps
    instead, an episode that ends early (2D navigation's goal) keeps an offset that its full
    episode's weight multiplies into the gradient (benchmarks/maml_reference_step.py).
    """
    horizon = episodes.reward.shape[-1]
    returns = jax.vmap(lambda r, ok: discounted_returns(r, gamma, 0.0, ok))(episodes.reward, episodes.valid)
    features = jax.vmap(lambda o, ok: linear_baseline_features(o.reshape(horizon, -1), ok, horizon))(
        episodes.obs, episodes.valid)
    weights = fit_linear_baseline(features, returns, episodes.valid)
    values = jnp.where(episodes.valid, linear_baseline_values(weights, features), 0.0)
    adv, _ = jax.vmap(lambda r, v, ok: gae(r, v, gamma, gae_lambda, 0.0, ok))(episodes.reward, values, episodes.valid)
    mean = step_mean(adv, episodes.valid, weighting)
    scale = jnp.sqrt(step_mean((adv - mean) ** 2, episodes.valid, weighting))
    adv = jnp.where(episodes.valid, (adv - mean) / (scale + 1e-8), 0.0)
    return Processed(episodes, jax.lax.stop_gradient(adv), jax.lax.stop_gradient(values),
                     jax.lax.stop_gradient(scale))


def distribution(params, obs: jax.Array, activation: str):
    """The policy at every step: leaves [N, H, A]."""
    return mlp_policy(params, obs, activation)


def log_prob(dist, action: jax.Array) -> jax.Array:
    """log pi(a) per step of a batched distribution: [N, H]."""
    n, h = action.shape[:2]
    flat = jax.tree_util.tree_map(lambda x: x.reshape((n * h,) + x.shape[2:]), dist)
    logp = jax.vmap(lambda d, a: d.log_prob(a))(flat, action.reshape((n * h,) + action.shape[2:]))
    return logp.reshape(n, h)


def kl_divergence(p, q) -> jax.Array:
    """KL(p || q) per step of two batched distributions: [N, H]."""
    shape = jax.tree_util.tree_leaves(p)[0].shape[:2]
    flat = lambda d: jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), d)  # noqa: E731
    return jax.vmap(lambda a, b: a.kl(b))(flat(p), flat(q)).reshape(shape)


def _magic_box(x: jax.Array) -> jax.Array:
    """DiCE's operator: 1 in value, d/dx = itself (Foerster et al. 2018)."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def inner_loss(params, data: Processed, *, estimator: str, activation: str, gamma: float, weighting: str) -> jax.Array:
    """The loss whose gradient is the inner policy-gradient step.

    All three have the same first derivative in expectation (the policy gradient); they differ in
    the second derivative, i.e. in the meta-gradient through the inner step:
      vpg:  -mean(log pi(a|s) A)                  MAML's REINFORCE loss; its Hessian ignores how the
                                                  pre-update policy's sampling depends on theta;
      lvc:  -mean(pi(a|s) / stop(pi(a|s)) A)      ProMP's low-variance curvature estimator (Rothfuss
                                                  et al. 2018, eq. 7): adds the per-step score outer
                                                  products, drops the cross-step terms;
      dice: -mean_episodes sum_t gamma^t [box(sum_{t'<=t} log pi_t') r_t + (1 - box(log pi_t)) b_t] / s
                                                  DiCE (Foerster et al. 2018) with its baseline: every
                                                  derivative unbiased; r and b divided by the
                                                  advantages' scale s so one step size fits all three.
    """
    ep = data.episodes
    dist = distribution(params, ep.obs, activation)
    logp = log_prob(dist, ep.action)
    if estimator == "vpg":
        return -step_mean(logp * data.advantage, ep.valid, weighting)
    if estimator == "lvc":
        return -step_mean(_magic_box(logp) * data.advantage, ep.valid, weighting)
    if estimator == "dice":
        mask = ep.valid.astype(logp.dtype)
        logp = logp * mask
        discount = gamma ** jnp.arange(logp.shape[-1], dtype=logp.dtype)
        scale = jnp.maximum(data.scale, 1e-8)
        terms = discount * (_magic_box(jnp.cumsum(logp, axis=-1)) * ep.reward
                            + (1.0 - _magic_box(logp)) * data.baseline) / scale
        return -step_mean(terms, ep.valid, weighting)
    raise ValueError(f"unknown inner estimator {estimator!r}")


def gradient_step(params, grads, lr):
    """params - lr * grads, where `lr` is one step size (a number or a scalar array) or a pytree of
    per-parameter step sizes shaped like `params` (learnt step sizes, as Meta-SGD and GMPS)."""
    if isinstance(lr, dict):
        return jax.tree_util.tree_map(lambda p, g, a: p - a * g, params, grads, lr)
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)


def adapt(params, batches: Processed, lrs: tuple, *, estimator: str, activation: str,
          gamma: float, weighting: str, first_order: bool):
    """phi after len(lrs) inner steps: phi_k = phi_{k-1} - lrs[k] * grad L_inner(phi_{k-1}; batch k).

    Args:
      params: theta.
      batches: Processed with a leading step axis [K, ...]: batch k was sampled with phi_{k-1}.
      lrs: the step size of each step: numbers (static), or per-parameter step sizes
        (`gradient_step`).
      first_order: treat each inner gradient as a constant (first-order MAML): the meta-gradient
        is then the outer gradient at phi, carried back to theta unchanged.
    """
    grad_fn = jax.grad(lambda p, d: inner_loss(p, d, estimator=estimator, activation=activation, gamma=gamma,
                                               weighting=weighting))
    phi = params
    for k, lr in enumerate(lrs):
        batch = jax.tree_util.tree_map(lambda x: x[k], batches)
        grads = grad_fn(phi, batch)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        phi = gradient_step(phi, grads, lr)
    return phi
