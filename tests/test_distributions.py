"""Task-parameter distributions (`tasks.distributions`): support, normalised densities against
scipy, weighted fits, zero-width points without NaN, and one compiled program for every setting."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from metarlkit.tasks import distributions as D

pytestmark = pytest.mark.usefixtures("fast_compile")

KINDS = {
    "uniform": (D.uniform(1.0, 3.0), (1.0, 3.0)),
    "log_uniform": (D.log_uniform(2.0, 1.5, -3.0, 3.0), (2.0 * 1.5**-3, 2.0 * 1.5**3)),
    "truncated_normal": (D.truncated_normal(1.0, 0.5, 0.5, 2.5), (0.5, 2.5)),
}


def draws(dist, n=20_000, seed=0):
    return np.asarray(jax.jit(jax.vmap(dist.sample))(jax.random.split(jax.random.PRNGKey(seed), n)))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_samples_stay_in_the_support_and_the_density_integrates_to_one(kind):
    dist, (low, high) = KINDS[kind]
    x = draws(dist)
    assert np.all((x >= low - 1e-5) & (x <= high + 1e-5))
    grid = np.linspace(low, high, 200_001)
    density = np.exp(np.asarray(jax.vmap(dist.log_prob)(jnp.asarray(grid, jnp.float32)), np.float64))
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=2e-3)
    outside = np.asarray(jax.vmap(dist.log_prob)(jnp.float32([low - 0.1, high + 0.1])))
    assert np.all(outside == -np.inf)
    # the empirical distribution agrees with the density (Kolmogorov-Smirnov against its CDF)
    cdf = np.cumsum(density) / density.sum()
    assert stats.kstest(x, lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3


def test_truncated_normal_density_is_scipys():
    dist = D.truncated_normal(1.0, 0.5, 0.5, 2.5)
    x = np.linspace(0.6, 2.4, 7)
    want = stats.truncnorm.logpdf(x, (0.5 - 1.0) / 0.5, (2.5 - 1.0) / 0.5, loc=1.0, scale=0.5)
    np.testing.assert_allclose(jax.vmap(dist.log_prob)(jnp.float32(x)), want, rtol=1e-5, atol=1e-5)


def test_log_uniform_is_rand_param_envs_style():
    x = draws(D.log_uniform(2.0))  # base 1.5, exponent in [-3, 3]
    exponent = np.log(x / 2.0) / np.log(1.5)
    assert exponent.min() >= -3 - 1e-4 and exponent.max() <= 3 + 1e-4
    assert np.mean(exponent) == pytest.approx(0.0, abs=0.05)


def test_choice_probabilities_and_fit():
    dist = D.choice([0.5, 1.0, 2.0], [0.2, 0.3, 0.5])
    x = draws(dist)
    freq = [np.mean(x == v) for v in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.015)
    np.testing.assert_allclose(np.exp(jax.vmap(dist.log_prob)(jnp.float32([0.5, 1.0, 2.0]))), [0.2, 0.3, 0.5],
                               rtol=1e-5)
    assert float(dist.log_prob(jnp.float32(0.7))) == -np.inf
    fitted = dist.fit(jnp.float32([0.5, 0.5, 2.0, 1.0]), jnp.float32([1.0, 1.0, 2.0, 0.0]))
    np.testing.assert_allclose(np.exp(fitted.logits) / np.exp(fitted.logits).sum(), [0.5, 0.0, 0.5], atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_weighted_fit_recovers_the_distribution_and_follows_the_weights(kind):
    dist, _ = KINDS[kind]
    x = jnp.float32(draws(dist, seed=1))
    same = dist.fit(x, jnp.ones_like(x))
    for got, want in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(dist)):
        np.testing.assert_allclose(got, want, rtol=0.03, atol=0.03)
    low_half = dist.fit(x, (x < jnp.median(x)).astype(jnp.float32))  # weight on the lower half only
    assert float(jnp.mean(draws(low_half, seed=2))) < float(jnp.median(x)) + 1e-3


@pytest.mark.parametrize("dist, point", [
    (D.uniform(1.5, 1.5), 1.5),
    (D.log_uniform(2.0, 1.5, 0.0, 0.0), 2.0),
    (D.truncated_normal(1.2, 0.0, 0.5, 2.5), 1.2),
])
def test_a_zero_width_distribution_is_its_nominal_point_without_nan(dist, point):
    x = draws(dist, n=16)
    np.testing.assert_allclose(x, point, rtol=1e-6)
    assert float(dist.log_prob(jnp.float32(point))) == 0.0
    assert float(dist.log_prob(jnp.float32(point + 0.5))) == -np.inf
    grads = jax.grad(lambda d: d.log_prob(jnp.float32(point)))(dist)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_a_task_distribution_is_a_pytree_moved_without_recompiling():
    traces = []

    @jax.jit
    def sample(dist, key):
        traces.append(1)
        return dist.sample(key)

    nominal = D.TaskDistribution({"mass": D.uniform(1.0, 1.0), "length": D.log_uniform(1.0, 1.5, 0.0, 0.0)})
    wide = D.TaskDistribution({"mass": D.uniform(0.5, 2.0), "length": D.log_uniform(1.0, 1.5, -1.0, 1.0)})
    first = sample(nominal, jax.random.PRNGKey(0))
    assert {k: float(v) for k, v in first.items()} == {"mass": 1.0, "length": 1.0}
    second = sample(wide, jax.random.PRNGKey(0))
    assert len(traces) == 1 and float(second["mass"]) != 1.0
    logp = wide.log_prob(second)
    assert np.isfinite(float(logp))
    batch = jax.vmap(wide.sample)(jax.random.split(jax.random.PRNGKey(1), 1000))
    refit = wide.fit(batch, jnp.ones(1000))
    np.testing.assert_allclose(refit.params["mass"].low, 0.5, atol=0.08)


def test_fix_replaces_the_named_parameters_by_points():
    dist = D.TaskDistribution({"mass": D.log_uniform(1.0, 1.5, -1.0, 1.0), "length": D.uniform(0.5, 2.0)})
    fixed = dist.fix(mass=2.5)
    draws = jax.vmap(fixed.sample)(jax.random.split(jax.random.PRNGKey(0), 64))
    assert np.all(np.asarray(draws["mass"]) == np.float32(2.5))
    np.testing.assert_array_equal(draws["length"], jax.vmap(dist.sample)(jax.random.split(jax.random.PRNGKey(0), 64))["length"])
    with pytest.raises(ValueError, match="no parameter 'weight'; the parameters: length, mass"):
        dist.fix(weight=1.0)
