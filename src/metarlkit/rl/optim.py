"""Optimisation pieces of TRPO-style algorithms: conjugate gradient, the trust-region step, and the
linear feature baseline.

Everything is a pure function, jit- and vmap-friendly; parameters and vectors may be any pytree of
arrays (the same structure throughout one call). Loop lengths (`iterations`, `max_backtracks`) are
static Python ints.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den, 0 where den is 0 (no NaN in the value or in its gradient)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


class _CGState(NamedTuple):
    x: PyTree  # current solution
    r: PyTree  # residual b - A x
    p: PyTree  # search direction
    rdotr: jax.Array  # scalar, r . r


def conjugate_gradient(matvec: Callable[[PyTree], PyTree], b: PyTree, iterations: int,
                       residual_tol: float = 1e-10, return_residual: bool = False):
    """Solves A x = b for a symmetric positive-definite A known only through `matvec`.

    Hestenes-Stiefel conjugate gradient from x = 0, as TRPO uses it to get the natural-gradient
    direction F^-1 g without forming F (Schulman et al. 2015, Appendix C). Runs exactly
    `iterations` iterations (`lax.fori_loop`, so `matvec` is traced once); once the squared residual
    norm r . r is below `residual_tol` (or p . A p is not positive, i.e. A is not positive-definite
    along p) the remaining iterations leave x unchanged. Divisions are guarded, so b = 0 or a
    residual that reaches exactly 0 gives no NaN.

    Args:
      matvec: v -> A v, pytree in, pytree out (same structure as `b`).
      b: right-hand side, a pytree of arrays.
      iterations: number of CG iterations (static); n iterations solve an n-dimensional system
        exactly in exact arithmetic.
      residual_tol: stop once r . r falls below this.
      return_residual: also return the final residual r = b - A x (kept by the recursion, so
        A x = b - r costs no further product).

    Returns:
      x, the same structure as `b` (and r when `return_residual`).
    """

    def body(_, s: _CGState) -> _CGState:
        ap = matvec(s.p)
        p_ap = optax.tree.vdot(s.p, ap)
        active = (s.rdotr >= residual_tol) & (p_ap > 0)
        alpha = jnp.where(active, _safe_div(s.rdotr, p_ap), 0.0)
        x = optax.tree.add_scale(s.x, alpha, s.p)
        r = optax.tree.add_scale(s.r, -alpha, ap)
        new_rdotr = optax.tree.vdot(r, r)
        beta = _safe_div(new_rdotr, s.rdotr)
        p = optax.tree.where(active, optax.tree.add_scale(r, beta, s.p), s.p)
        return _CGState(x, r, p, jnp.where(active, new_rdotr, s.rdotr))

    init = _CGState(optax.tree.zeros_like(b), b, b, optax.tree.vdot(b, b))
    final = jax.lax.fori_loop(0, iterations, body, init)
    return (final.x, final.r) if return_residual else final.x


def trpo_step(
    params: PyTree,
    grad: PyTree,
    fvp: Callable[[PyTree], PyTree],
    surrogate_and_kl: Callable[[PyTree], tuple[jax.Array, jax.Array]],
    max_kl: float | jax.Array,
    cg_iterations: int = 10,
    damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    residual_tol: float = 1e-10,
    loss_before: jax.Array | None = None,
    sequential: bool = False,
) -> tuple[PyTree, dict[str, jax.Array]]:
    """One TRPO update: natural-gradient step in a KL trust region, then a backtracking line search.

    Schulman et al. 2015 (TRPO), Section 6 and Appendix C, on a loss L to MINIMISE (the negated
    surrogate, as every loss in `metarlkit.rl`):
      s          = CG solve of (F + damping I) s = -grad
      full step  = s * sqrt(2 max_kl / s.(F + damping I)s)   (the quadratic model's KL is max_kl)
      candidates = params + backtrack_ratio**k * full step,  k = 0 .. max_backtracks - 1
    and the largest fraction whose loss is below the loss at `params` and whose KL is <= max_kl is
    accepted; if none is, `params` come back unchanged. Unlike rllab / pytorch-maml-rl, which try the
    fractions one after another, all candidates (and `params` itself, for the loss before) are
    evaluated at once with one `jax.vmap` of `surrogate_and_kl`: more compute, no sequential loop.
    A non-positive or non-finite s.(F + damping I)s (e.g. grad = 0) returns `params` unaccepted.

    Args:
      params: current parameters (pytree).
      grad: gradient of the loss at `params` (same structure).
      fvp: v -> F v, the Fisher (Hessian of the mean KL at `params`) times a vector. `trpo_step`
        adds `damping * v` itself; pass `damping=0.0` if `fvp` already includes it (pytorch-maml-rl
        adds it inside its Hessian-vector product).
      surrogate_and_kl: params -> (loss, kl), both scalars; kl is the mean KL(old policy || policy
        under params). It is vmapped over the candidate parameters.
      max_kl: trust-region radius (the TRPO delta).
      cg_iterations: conjugate-gradient iterations (static).
      damping: added to the diagonal of F for the CG solve and the step length.
      backtrack_ratio: factor by which each candidate fraction shrinks.
      max_backtracks: number of candidate fractions (static).
      residual_tol: CG stopping tolerance on the squared residual.
      loss_before: the loss at `params`, when the caller has it (saves one evaluation).
      sequential: try the fractions one after another in a `lax.while_loop`, stopping at the first
        acceptable one (rllab's order): the same result, and on a CPU, where one candidate's
        evaluation already fills the cores, usually one or two evaluations instead of all.

    Returns:
      (new_params, info) with info scalars: `accepted` (bool), `step_fraction` (0 if none
      accepted), `kl` (of the accepted params, 0 if none), `loss_before`, `loss_after` (equal to
      `loss_before` if none accepted), `expected_improvement` (-grad . full step, the first-order
      loss decrease predicted for fraction 1; 0 if the step was rejected before the line search).
    """

    def damped_fvp(v):
        return optax.tree.add_scale(fvp(v), damping, v)

    neg_grad = optax.tree.scale(-1.0, grad)
    s, residual = conjugate_gradient(damped_fvp, neg_grad, cg_iterations, residual_tol, return_residual=True)
    # s.(F + damping I)s without another product: CG's residual gives (F + damping I)s = -grad - r.
    shs = optax.tree.vdot(s, optax.tree.sub(neg_grad, residual))
    step_ok = jnp.isfinite(shs) & (shs > 0)
    step_size = jnp.where(step_ok, jnp.sqrt(2.0 * max_kl / jnp.where(step_ok, shs, 1.0)), 0.0)
    # A NaN s times a zero step size is still NaN: zero the whole step when it is rejected.
    full_step = optax.tree.where(step_ok, optax.tree.scale(step_size, s), optax.tree.zeros_like(s))

    fractions = backtrack_ratio ** jnp.arange(max_backtracks, dtype=shs.dtype)

    def candidate(f):
        return surrogate_and_kl(optax.tree.add_scale(params, f, full_step))

    def acceptable(loss, kl, before):
        return step_ok & (loss < before) & (kl <= max_kl) & jnp.isfinite(loss) & jnp.isfinite(kl)

    if sequential:
        if loss_before is None:
            loss_before = surrogate_and_kl(params)[0]

        def cond(carry):
            k, found, _, _ = carry
            return (k < max_backtracks) & ~found & step_ok

        def body(carry):
            k, _, _, _ = carry
            loss, kl = candidate(fractions[k])
            found = acceptable(loss, kl, loss_before)
            return k + jnp.where(found, 0, 1), found, loss, kl

        zero = jnp.zeros((), shs.dtype)
        best, accepted, best_loss, best_kl = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.bool_(False), zero, zero))
        best = jnp.minimum(best, max_backtracks - 1)
    else:
        # Fraction 0 (params themselves) rides along in the same vmap and gives the loss before.
        losses, kls = jax.vmap(candidate)(jnp.concatenate([jnp.zeros((1,), fractions.dtype), fractions]))
        if loss_before is None:
            loss_before = losses[0]
        losses, kls = losses[1:], kls[1:]
        ok = acceptable(losses, kls, loss_before)
        accepted = jnp.any(ok)
        best = jnp.argmax(ok)  # fractions decrease, so the first acceptable one is the largest
        best_loss, best_kl = losses[best], kls[best]
    fraction = jnp.where(accepted, fractions[best], 0.0)
    new_params = optax.tree.add_scale(params, fraction, full_step)
    new_params = optax.tree.where(accepted, new_params, params)  # exactly params when rejected
    info = {
        "accepted": accepted,
        "step_fraction": fraction,
        "kl": jnp.where(accepted, best_kl, 0.0),
        "loss_before": loss_before,
        "loss_after": jnp.where(accepted, best_loss, loss_before),
        "expected_improvement": -optax.tree.vdot(grad, full_step),
    }
    return new_params, info


def linear_baseline_features(obs_t: jax.Array, valid_t: jax.Array, horizon: int | None = None,
                             time_scale: float = 100.0) -> jax.Array:
    """Features of the linear state-value baseline of rllab / garage / pytorch-maml-rl.

    Per step: concat(o, o**2, al, al**2, al**3, 1) with al = t / time_scale, t the step index
    within the episode (0 at obs_t[0]); rllab and pytorch-maml-rl use time_scale = 100 whatever the
    horizon. Invalid steps get all-zero features, so they predict 0 and add nothing to a fit.
    Single stream holding one episode; `vmap` over episodes.

    Args:
      obs_t: [T, O] observations (flatten image-like observations first).
      valid_t: [T] bool, valid steps.
      horizon: if given, checked to equal T (catches a batch reshaped the wrong way).
      time_scale: divisor of the step index in the time features.

    Returns:
      [T, 2 * O + 4] features.
    """
    T = obs_t.shape[0]
    if horizon is not None and horizon != T:
        raise ValueError(f"obs_t has {T} steps but horizon is {horizon}; expected obs_t of shape [horizon, O]")
    obs_t = obs_t.reshape(T, -1)
    al = (jnp.arange(T, dtype=obs_t.dtype) / time_scale)[:, None]
    features = jnp.concatenate([obs_t, obs_t**2, al, al**2, al**3, jnp.ones_like(al)], axis=-1)
    return jnp.where(valid_t[:, None], features, 0.0)


def fit_linear_baseline(features: jax.Array, returns: jax.Array, valid: jax.Array,
                        reg_coeff: float = 1e-5) -> jax.Array:
    """Ridge least-squares weights of the linear baseline over all valid steps of a batch.

    Solves (X^T X + reg I) w = X^T y over the valid steps (rllab's LinearFeatureBaseline, fitted
    per task on that task's own episodes) by least squares through an SVD, as rllab's `lstsq`:
    directions of X^T X whose singular values are below float precision are dropped rather than
    inverted. They occur in practice: a policy that runs in a straight line at full speed makes
    its positions exact multiples of the time feature, the normal equations are singular, and a
    plain solve returns inf/NaN weights (and NaN advantages) at any of rllab's ridge values.
    Like rllab, a non-finite solution is retried with reg * 10, up to 5 regularisations (solved
    at once, vmapped; the first finite one is kept); if none is finite the baseline is 0.

    Args:
      features: [..., T, F] features from `linear_baseline_features`.
      returns: [..., T] per-episode discounted returns-to-go, e.g.
        `jax.vmap(lambda r, ok: discounted_returns(r, gamma, 0.0, ok))(reward, valid)`.
      valid: [..., T] bool; invalid steps are left out whatever their features and returns.
      reg_coeff: the first ridge coefficient.

    Returns:
      [F] weights.
    """
    n_features = features.shape[-1]
    valid = valid.reshape(-1)
    x = jnp.where(valid[:, None], features.reshape(-1, n_features), 0.0)
    y = jnp.where(valid, returns.reshape(-1), 0.0)
    xtx, xty = x.T @ x, x.T @ y
    eye = jnp.eye(n_features, dtype=xtx.dtype)
    regs = reg_coeff * 10.0 ** jnp.arange(5, dtype=xtx.dtype)
    weights = jax.vmap(lambda reg: jnp.linalg.lstsq(xtx + reg * eye, xty)[0])(regs)  # [5, F]
    finite = jnp.all(jnp.isfinite(weights), axis=-1)
    return jnp.where(jnp.any(finite), weights[jnp.argmax(finite)], 0.0)


def linear_baseline_values(weights: jax.Array, features: jax.Array) -> jax.Array:
    """Baseline values features . weights: [..., T, F], [F] -> [..., T] (0 at invalid steps)."""
    return features @ weights
