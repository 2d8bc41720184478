"""PEARL's context posterior: the product of Gaussian factors, its running form, its KL to the
prior, and the encoder's invariance to the order of the context."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit.algos.pearl import context as C
from metarlkit.nets.squashed import init_mlp, mlp

pytestmark = pytest.mark.usefixtures("fast_compile")


def test_the_product_of_two_gaussians_is_the_closed_form():
    mu = jnp.array([[1.0, -2.0], [3.0, 0.5]])
    var = jnp.array([[1.0, 4.0], [3.0, 0.25]])
    post = C.product_of_gaussians(mu, var)
    # N(m1, v1) N(m2, v2) ~ N((m1 v2 + m2 v1) / (v1 + v2), v1 v2 / (v1 + v2))
    v1, v2, m1, m2 = var[0], var[1], mu[0], mu[1]
    np.testing.assert_allclose(post.var, v1 * v2 / (v1 + v2), rtol=1e-6)
    np.testing.assert_allclose(post.mean, (m1 * v2 + m2 * v1) / (v1 + v2), rtol=1e-6)


def test_the_running_sums_equal_the_batch_product_and_masked_rows_are_left_out():
    rng = np.random.default_rng(0)
    mu = jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)
    var = jnp.asarray(rng.uniform(0.1, 2.0, size=(7, 3)), jnp.float32)
    sums = C.empty_sums(3)
    for n in range(7):  # one transition at a time, as the adapted agent does
        sums = C.add_factors(sums, mu[n:n + 1], var[n:n + 1])
    batch = C.product_of_gaussians(mu, var)
    running = C.posterior(sums)
    np.testing.assert_allclose(running.mean, batch.mean, rtol=1e-5)
    np.testing.assert_allclose(running.var, batch.var, rtol=1e-5)
    mask = jnp.array([True, False, True, True, False, False, True])
    np.testing.assert_allclose(C.product_of_gaussians(mu, var, mask).mean,
                               C.product_of_gaussians(mu[np.asarray(mask)], var[np.asarray(mask)]).mean, rtol=1e-5)


def test_an_empty_context_is_the_prior_and_more_data_narrows_the_posterior():
    prior = C.posterior(C.empty_sums(2))
    np.testing.assert_array_equal(prior.mean, [0.0, 0.0])
    np.testing.assert_array_equal(prior.var, [1.0, 1.0])
    one = C.product_of_gaussians(jnp.ones((1, 2)), jnp.ones((1, 2)))
    ten = C.product_of_gaussians(jnp.ones((10, 2)), jnp.ones((10, 2)))
    np.testing.assert_allclose(ten.var, one.var / 10, rtol=1e-6)
    deterministic = C.posterior(C.add_factors(C.empty_sums(2), jnp.array([[1.0, 2.0], [3.0, 4.0]]),
                                              jnp.zeros((2, 2)), probabilistic=False), probabilistic=False)
    np.testing.assert_allclose(deterministic.mean, [2.0, 3.0])
    np.testing.assert_array_equal(deterministic.var, [0.0, 0.0])
    np.testing.assert_array_equal(C.posterior(C.empty_sums(2), probabilistic=False).mean, [0.0, 0.0])


@pytest.mark.parametrize("mean, var, expected", [
    ([0.0], [1.0], 0.0),
    ([1.0], [1.0], 0.5),
    ([0.0], [4.0], 0.5 * (4.0 - 1.0 - np.log(4.0))),
    ([1.0, -2.0], [0.25, 1.0], 0.5 * (0.25 + 1.0 - 1.0 - np.log(0.25)) + 0.5 * 4.0),
])
def test_kl_to_the_unit_prior_has_its_golden_values(mean, var, expected):
    assert float(C.kl_to_prior(C.Posterior(jnp.array(mean), jnp.array(var)))) == pytest.approx(expected, rel=1e-6)


def test_the_factors_split_the_encoder_output():
    out = jnp.array([0.5, -1.0, 0.0, -200.0])
    mu, var = C.factors(out)
    np.testing.assert_array_equal(mu, [0.5, -1.0])
    np.testing.assert_allclose(var, [np.log(2.0), C.MIN_VARIANCE], rtol=1e-6)  # softplus(0), clamped
    mu, var = C.factors(out, probabilistic=False)
    np.testing.assert_array_equal(mu, out)


def test_the_posterior_is_invariant_to_the_order_of_the_context():
    obs, act, rew, nxt = (jax.random.normal(k, s) for k, s in zip(jax.random.split(jax.random.PRNGKey(0), 4),
                                                                  [(16, 2), (16, 2), (16,), (16, 2)]))
    x = jax.vmap(C.features)(obs, act, rew, nxt)
    assert x.shape == (16, 7)
    params = init_mlp(jax.random.PRNGKey(1), (7, 32, 32, 6))

    def post(rows):
        mu, var = C.factors(jax.vmap(lambda r: mlp(params, r))(rows))
        return C.product_of_gaussians(mu, var)

    perm = jax.random.permutation(jax.random.PRNGKey(2), 16)
    a, b = post(x), post(x[perm])
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.var, b.var, rtol=1e-5)
    assert not np.allclose(post(x[:8]).mean, a.mean)  # the context matters
