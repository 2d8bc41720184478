"""`nets.squashed`: the tanh-squashed Gaussian's density against the change of variables and against
samples, its stability far in the tails, the head's clamp, and the off-policy MLP."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from metarlkit.nets import mlp as mlp_lib
from metarlkit.nets.squashed import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    TanhGaussian,
    init_mlp,
    log_tanh_jacobian,
    mlp,
    tanh_gaussian_head,
)

pytestmark = pytest.mark.usefixtures("fast_compile")


def change_of_variables(action, mean, log_std):
    """float64 reference: log N(atanh a; mean, std) + log |d atanh(a) / da|, summed over dims."""
    action, mean, std = (np.asarray(x, np.float64) for x in (action, mean, np.exp(log_std)))
    return np.sum(stats.norm(mean, std).logpdf(np.arctanh(action)) - np.log1p(-action**2), axis=-1)


def test_log_prob_is_the_gaussian_density_times_the_atanh_jacobian():
    dist = TanhGaussian(jnp.array([0.4, -1.2]), jnp.array([-0.3, 0.5]))
    actions = jnp.array([[0.0, 0.0], [0.5, -0.9], [-0.95, 0.99], [0.999, -0.3]])
    got = jax.vmap(dist.log_prob)(actions)
    np.testing.assert_allclose(got, change_of_variables(actions, dist.mean, dist.log_std), rtol=1e-5, atol=1e-4)


def test_density_integrates_to_one_and_matches_a_histogram_of_samples():
    dist = TanhGaussian(jnp.array([0.4]), jnp.array([-0.3]))
    edges = np.linspace(-1.0, 1.0, 21)
    # probability of each bin by integrating exp(log_prob) on a fine grid (trapezoids)
    grid = np.linspace(-1.0, 1.0, 20 * 400 + 1)[1:-1]
    density = np.exp(np.asarray(jax.vmap(dist.log_prob)(jnp.asarray(grid[:, None], jnp.float32))))
    cell = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    prob = np.diff(np.interp(edges, grid, cell))
    np.testing.assert_allclose(prob.sum(), 1.0, atol=2e-3)
    draws = np.asarray(jax.vmap(dist.sample)(jax.random.split(jax.random.PRNGKey(0), 40000)))[:, 0]
    assert np.all(np.abs(draws) <= 1.0)
    freq = np.histogram(draws, edges)[0] / draws.size
    np.testing.assert_allclose(freq, prob, atol=6e-3)


def test_sample_and_log_prob_agrees_with_sample_and_log_prob_of_the_action():
    dist = TanhGaussian(jnp.array([0.2, -0.6, 1.0]), jnp.array([-0.5, 0.0, -1.0]))
    keys = jax.random.split(jax.random.PRNGKey(1), 64)
    action, logp = jax.vmap(dist.sample_and_log_prob)(keys)
    np.testing.assert_array_equal(action, jax.vmap(dist.sample)(keys))  # same key, same action
    np.testing.assert_allclose(logp, jax.vmap(dist.log_prob)(action), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(logp, change_of_variables(action, dist.mean, dist.log_std), rtol=1e-4, atol=1e-3)


def test_log_prob_stays_exact_where_tanh_rounds_to_one():
    # tanh(12) is 1.0 in float32: log(1 - a^2) would be -inf, the stable form is exact.
    dist = TanhGaussian(jnp.array([12.0, -9.5]), jnp.array([-3.0, -3.0]))
    action, logp = dist.sample_and_log_prob(jax.random.PRNGKey(2))
    u = np.asarray(dist.sample_pre_tanh(jax.random.PRNGKey(2)), np.float64)
    # float64 reference, with -log(1 - tanh(u)^2) = 2 log cosh(u) = 2 logaddexp(u, -u) - 2 log 2
    want = np.sum(stats.norm([12.0, -9.5], math.exp(-3.0)).logpdf(u) + 2.0 * np.logaddexp(u, -u) - 2 * math.log(2))
    np.testing.assert_allclose(logp, want, rtol=1e-5)
    np.testing.assert_allclose(log_tanh_jacobian(jnp.array([0.0, 30.0, -30.0])),
                               [0.0, 2 * (math.log(2) - 30.0), 2 * (math.log(2) - 30.0)], rtol=1e-6)
    # a given action on the boundary of the box still has a finite density (clipped before atanh)
    assert np.all(np.isfinite(np.asarray(dist.log_prob(jnp.array([1.0, -1.0])))))
    assert np.all(np.isfinite(np.asarray(action)))


def test_mode_is_tanh_of_the_mean_and_the_median_of_samples():
    dist = TanhGaussian(jnp.array([0.7, -0.2]), jnp.array([-0.5, 0.3]))
    np.testing.assert_allclose(dist.mode(), np.tanh([0.7, -0.2]), rtol=1e-6)
    draws = jax.vmap(dist.sample)(jax.random.split(jax.random.PRNGKey(3), 20000))
    np.testing.assert_allclose(np.median(np.asarray(draws), axis=0), dist.mode(), atol=0.02)


def test_head_splits_mean_and_log_std_and_clamps_to_oysters_range():
    assert (LOG_STD_MIN, LOG_STD_MAX) == (-20.0, 2.0)
    out = jnp.array([0.5, -1.0, 5.0, -30.0])
    dist = tanh_gaussian_head(out)
    np.testing.assert_array_equal(dist.mean, [0.5, -1.0])
    np.testing.assert_array_equal(dist.log_std, [2.0, -20.0])
    # the clamp passes no gradient outside the range, and the identity inside it
    grad = jax.grad(lambda o: jnp.sum(tanh_gaussian_head(o).log_std))(jnp.array([0.0, 0.0, 5.0, -1.0]))
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.0, 1.0])
    batched = tanh_gaussian_head(jnp.zeros((3, 4)))
    assert batched.mean.shape == batched.log_std.shape == (3, 2)
    with pytest.raises(ValueError, match="even"):
        tanh_gaussian_head(jnp.zeros(3))


def test_init_mlp_follows_rlkit_and_mlp_applies_it():
    params = init_mlp(jax.random.PRNGKey(4), (3, 16, 8, 2), final_scale=1e-3)
    assert mlp_lib.num_layers(params) == 3
    assert params["w0"].shape == (3, 16) and params["w2"].shape == (8, 2)
    assert np.abs(np.asarray(params["w0"])).max() <= 1 / math.sqrt(3)
    assert np.abs(np.asarray(params["w1"])).max() <= 1 / math.sqrt(16)
    np.testing.assert_allclose(params["b0"], 0.1)
    np.testing.assert_allclose(params["b1"], 0.1)
    for name in ("w2", "b2"):
        assert 0 < np.abs(np.asarray(params[name])).max() <= 1e-3
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 3))
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = np.maximum(np.asarray(x) @ p["w0"] + p["b0"], 0)
    h = np.maximum(h @ p["w1"] + p["b1"], 0)
    np.testing.assert_allclose(mlp(params, x), h @ p["w2"] + p["b2"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mlp(params, x[0]), mlp(params, x)[0], rtol=1e-6)  # single stream too
    with pytest.raises(ValueError):
        init_mlp(jax.random.PRNGKey(0), (3,))
