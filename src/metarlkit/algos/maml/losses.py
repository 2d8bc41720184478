"""MAML-RL's objectives: the inner policy-gradient step and the outer (meta) surrogate.

Shapes: one task's batch of episodes is [N, H] (N episodes of the family's horizon H; observations
[N, H, O], actions [N, H] or [N, H, D]); a `valid` mask marks steps before an episode's end. Every
mean over steps is `step_mean`, weighted by `weighting`: 'step' (every valid step of the batch
weighs the same: rllab, the MAML paper's code) or 'episode' (the mean over each episode's valid
steps, then over episodes: pytorch-maml-rl). They differ only when episodes end early, and there
'episode' hands an episode that ends after a few steps (2D navigation: one that reaches the goal)
the weight of a whole episode in those few steps.

ATTENTION: unlike RL2, MAML's episodes are the units of adaptation and each one is terminal: returns
and advantages stop at every episode's end. The inner step's data are fixed arrays; the meta-gradient
flows through the inner *gradient* (phi = theta - alpha * grad L_inner(theta)), which is why the
inner loss must be a function of the parameters whose second derivative means something (see
`inner_loss`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.algos.maml.config import WEIGHTINGS
from metarlkit.nets.mlp import mlp_policy
from metarlkit.rl.losses import normalize_advantages
from metarlkit.rl.optim import fit_linear_baseline, linear_baseline_features, linear_baseline_values
from metarlkit.rl.returns import discounted_returns, gae


class Episodes(NamedTuple):
    """A batch of episodes of one task, [N, H] (obs [N, H, O]; action [N, H] or [N, H, D])."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array  # zero where not valid
    valid: jax.Array  # bool


class Processed(NamedTuple):
    """Episodes with what the losses need from them; everything here is data (no gradient)."""

    episodes: Episodes
    advantage: jax.Array  # [N, H] GAE over the linear baseline, normalised over the valid steps
    baseline: jax.Array  # [N, H] the fitted baseline's values (DiCE)
    scale: jax.Array  # scalar, the advantages' standard deviation before normalising (DiCE)


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


def process(episodes: Episodes, gamma: float, gae_lambda: float) -> Processed:
    """Advantages of one task's episodes: a linear feature baseline fitted to their discounted
    returns (per task, as rllab / pytorch-maml-rl), GAE over it, normalised over the valid steps."""
    horizon = episodes.reward.shape[-1]
    returns = jax.vmap(lambda r, ok: discounted_returns(r, gamma, 0.0, ok))(episodes.reward, episodes.valid)
    features = jax.vmap(lambda o, ok: linear_baseline_features(o.reshape(horizon, -1), ok, horizon))(
        episodes.obs, episodes.valid)
    weights = fit_linear_baseline(features, returns, episodes.valid)
    values = jnp.where(episodes.valid, linear_baseline_values(weights, features), 0.0)
    adv, _ = jax.vmap(lambda r, v, ok: gae(r, v, gamma, gae_lambda, 0.0, ok))(episodes.reward, values, episodes.valid)
    mask = episodes.valid.astype(adv.dtype)
    count = jnp.maximum(mask.sum(), 1.0)
    mean = jnp.sum(adv * mask) / count
    scale = jnp.sqrt(jnp.sum(((adv - mean) * mask) ** 2) / count)
    adv = normalize_advantages(adv, episodes.valid)
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


def adapt(params, batches: Processed, lrs: tuple[float, ...], *, estimator: str, activation: str,
          gamma: float, weighting: str, first_order: bool):
    """phi after len(lrs) inner steps: phi_k = phi_{k-1} - lrs[k] * grad L_inner(phi_{k-1}; batch k).

    Args:
      params: theta.
      batches: Processed with a leading step axis [K, ...]: batch k was sampled with phi_{k-1}.
      lrs: the step size of each step (static).
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
        phi = jax.tree_util.tree_map(lambda p, g: p - lr * g, phi, grads)
    return phi


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
