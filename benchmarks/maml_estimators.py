"""Bias and variance of MAML's meta-gradient estimators (VPG, LVC, DiCE) against the exact one.

    .venv/bin/python benchmarks/maml_estimators.py [--samples 20000] [--batch 20] [--json FILE]

A problem small enough to enumerate: two steps, two actions, a constant observation, rewards
r_0[a_0] and r_1[a_0, a_1] (the second depends on the first action, so the cross-step terms of
the Hessian matter), undiscounted. The policy is a small tanh MLP with a softmax head (the
library's `nets.mlp`). With J(theta) the expected return per step,

  exact meta-gradient  g = d/dtheta J(theta + alpha grad J(theta))      (exact expectations)

and each estimator (the library's `losses.inner_loss` and `losses.surrogate`, with returns-to-go
as weights, no baseline, unit scale) samples `batch` pre-update episodes, takes the inner step,
samples `batch` episodes of the adapted policy and returns the gradient of the outer surrogate.
Over `samples` independent draws (vmapped): relative bias |mean(g_hat) - g| / |g| (with the
standard error of that mean, so an estimate below about 2 standard errors is unbiased within
the measurement) and variance E|g_hat - mean(g_hat)|^2 / |g|^2.
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from _report import finish

from metarlkit.algos.maml import losses
from metarlkit.nets.mlp import init_mlp_policy

ALPHA = 0.5
FIRST = jnp.array([0.3, 1.0])
SECOND = jnp.array([[1.0, -0.5], [0.2, 0.8]])
SEQUENCES = jnp.array(list(itertools.product((0, 1), repeat=2)))  # [4, 2]
OBS = jnp.ones((1, 2, 1))


def rewards(actions):
    return jnp.stack([FIRST[actions[..., 0]], SECOND[actions[..., 0], actions[..., 1]]], axis=-1)


def log_probs(params, actions):
    n = actions.shape[0]
    return losses.log_prob(losses.distribution(params, jnp.ones((n, 2, 1)), "tanh"), actions)


def expected_return(params):
    """J(theta): the expected return per step, enumerated over the four action sequences."""
    p = jnp.exp(jnp.sum(log_probs(params, SEQUENCES), axis=-1))
    return jnp.sum(p * jnp.sum(rewards(SEQUENCES), axis=-1)) / 2


def exact_meta_gradient(params):
    def meta_objective(theta):
        phi = jax.tree_util.tree_map(lambda t, g: t + ALPHA * g, theta, jax.grad(expected_return)(theta))
        return expected_return(phi)

    return jax.grad(meta_objective)(params)


def processed(actions):
    r = rewards(actions)
    to_go = jnp.stack([r[:, 0] + r[:, 1], r[:, 1]], axis=-1)
    ep = losses.Episodes(jnp.ones(actions.shape[:1] + (2, 1)), actions, r, jnp.ones(actions.shape, bool))
    return losses.Processed(ep, to_go, jnp.zeros_like(r), jnp.float32(1.0))


def sample_actions(params, key, batch):
    logits = losses.distribution(params, jnp.ones((1, 1)), "tanh").logits[0]
    return jax.random.categorical(key, logits, shape=(batch, 2))


def estimate(params, key, batch, estimator):
    """One sampled meta-gradient (the ascent direction, comparable with `exact_meta_gradient`)."""
    key_pre, key_post = jax.random.split(key)
    pre = processed(sample_actions(params, key_pre, batch))
    inner = jax.tree_util.tree_map(lambda x: x[None], pre)
    kw = {"estimator": estimator, "activation": "tanh", "gamma": 1.0, "weighting": "step", "first_order": False}
    phi = losses.adapt(params, inner, (ALPHA,), **kw)
    post = processed(sample_actions(jax.lax.stop_gradient(phi), key_post, batch))
    dist = jax.lax.stop_gradient(losses.distribution(phi, post.episodes.obs, "tanh"))
    data = losses.OuterData(inner, post, dist, losses.log_prob(dist, post.episodes.action))
    grad = jax.grad(lambda p: losses.surrogate(p, data, (ALPHA,), **kw)[0])(params)
    return jax.tree_util.tree_map(lambda g: -g, grad)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=20, help="episodes per inner and outer batch")
    parser.add_argument("--json")
    args = parser.parse_args()
    params = init_mlp_policy(jax.random.PRNGKey(4), 1, (3,), 2, continuous=False)
    params = jax.tree_util.tree_map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(5), x.shape), params)
    exact, unravel = jax.flatten_util.ravel_pytree(exact_meta_gradient(params))
    norm = float(jnp.linalg.norm(exact))
    keys = jax.random.split(jax.random.PRNGKey(0), args.samples)
    rows = []
    print(f"exact meta-gradient norm {norm:.4f}; {args.samples} draws of {args.batch} + {args.batch} episodes")
    print(f"{'estimator':9s} {'rel. bias':>10s} {'(s.e.)':>8s} {'rel. variance':>14s}")
    for estimator in ("vpg", "lvc", "dice"):
        draws = jax.jit(jax.vmap(lambda k: jax.flatten_util.ravel_pytree(estimate(params, k, args.batch, estimator))[0]))(keys)
        draws = np.asarray(draws, np.float64)
        mean = draws.mean(0)
        bias = np.linalg.norm(mean - np.asarray(exact)) / norm
        # standard error of |mean - exact| from the per-coordinate standard errors of the mean
        se = np.sqrt(np.sum(draws.var(0, ddof=1)) / args.samples) / norm
        variance = float(np.mean(np.sum((draws - mean) ** 2, axis=1))) / norm**2
        rows.append({"estimator": estimator, "relative_bias": round(float(bias), 4), "bias_se": round(float(se), 4),
                     "relative_variance": round(variance, 4)})
        print(f"{estimator:9s} {bias:10.4f} {se:8.4f} {variance:14.4f}")
    finish(rows, args.json, samples=args.samples, batch=args.batch, alpha=ALPHA)


if __name__ == "__main__":
    main()
