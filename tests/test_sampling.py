"""The exact Gamma / Beta samplers of `metarlkit.baselines.sampling` against scipy.

Fixed seeds throughout; KS tests on 20k samples must give p > 1e-3 (a wrong sampler at this size
gives p ~ 1e-20 or less; a right one fails a fixed seed with probability 1e-3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from metarlkit.baselines import sampling

pytestmark = pytest.mark.usefixtures("fast_compile")

N = 20_000
GAMMA_SHAPES = (1.0, 1.5, 3.0, 50.0, 1000.0)
BETA_PARAMS = ((1.0, 1.0), (1.0, 5.0), (2.5, 7.0), (30.0, 3.0), (500.0, 700.0))


def raw_keys(n: int, seed: int) -> np.ndarray:
    """[n, 2] uint32 PRNG keys made in numpy (no compile, unlike `jax.random.split`)."""
    return np.random.default_rng(seed).integers(0, 2**32, (n, 2), dtype=np.uint32)


def _draw(key_gamma, key_beta):
    """[len(GAMMA_SHAPES), N] Gamma and [len(BETA_PARAMS), N] Beta samples in one program."""
    a = jnp.repeat(jnp.asarray(GAMMA_SHAPES, jnp.float32)[:, None], N, axis=1)
    beta_a, beta_b = (jnp.repeat(jnp.asarray(x, jnp.float32)[:, None], N, axis=1) for x in zip(*BETA_PARAMS))
    return sampling.gamma(key_gamma, a), sampling.beta(key_beta, beta_a, beta_b)


draw = jax.jit(_draw)
KEYS = np.array([[0, 1], [0, 2], [0, 7]], np.uint32)  # raw keys: PRNGKey(1), PRNGKey(2), PRNGKey(7)


@pytest.fixture(scope="module")
def samples():
    return tuple(np.asarray(x, np.float64) for x in draw(KEYS[0], KEYS[1]))


@pytest.fixture(scope="module")
def gamma_samples(samples):
    return samples[0]


@pytest.fixture(scope="module")
def beta_samples(samples):
    return samples[1]


@pytest.mark.parametrize("i", range(len(GAMMA_SHAPES)))
def test_gamma_matches_scipy(gamma_samples, i):
    a, x = GAMMA_SHAPES[i], gamma_samples[i]
    assert np.all(x > 0)
    assert stats.kstest(x, stats.gamma(a).cdf).pvalue > 1e-3
    # Moments: mean a, variance a (5 standard errors).
    np.testing.assert_allclose(x.mean(), a, atol=5 * np.sqrt(a / N))
    np.testing.assert_allclose(x.var(), a, rtol=5 * np.sqrt(2 / N) * np.sqrt(1 + 3 / a))


@pytest.mark.parametrize("i", range(len(BETA_PARAMS)))
def test_beta_matches_scipy(beta_samples, i):
    (a, b), x = BETA_PARAMS[i], beta_samples[i]
    assert np.all((x > 0) & (x < 1))
    assert stats.kstest(x, stats.beta(a, b).cdf).pvalue > 1e-3
    mean, var = stats.beta(a, b).stats()
    np.testing.assert_allclose(x.mean(), mean, atol=5 * np.sqrt(var / N))
    np.testing.assert_allclose(x.var(), var, rtol=0.05)


def test_shapes_dtypes_and_determinism(gamma_samples, beta_samples):
    assert gamma_samples.shape == beta_samples.shape == (5, N)
    again_gamma, again_beta = draw(KEYS[0], KEYS[1])
    assert again_gamma.dtype == again_beta.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(again_gamma, np.float64), gamma_samples)
    np.testing.assert_array_equal(np.asarray(again_beta, np.float64), beta_samples)
    other = np.asarray(draw(KEYS[2], KEYS[1])[0], np.float64)
    assert np.mean(other == gamma_samples) < 1e-3


def test_forced_rejections_under_vmap_stay_exact(monkeypatch):
    """Thinning every proposal with an independent coin (accept with probability 1/2) keeps a
    rejection sampler exact but rejects over half of every round: more rejections than the retry
    array holds, and runs of rejected retries, so the final full-array loop runs too. Under vmap
    over 2000 keys (as agents sample posteriors under vmap over tasks), with 64-element arrays and
    tiny 2-element ones (whose retry array holds every element), the samples must still be Gamma,
    and never a rejected proposal (marked NaN here)."""
    propose = sampling._propose

    def thinned(key, d, c):
        key, key_coin = jax.random.split(key)
        value, ok = propose(key, d, c)
        ok = ok & (jax.random.uniform(key_coin, d.shape) < 0.5)
        return jnp.where(ok, value, jnp.nan), ok  # a rejected proposal must never come out

    monkeypatch.setattr(sampling, "_propose", thinned)
    a = jnp.asarray([1.0] * 32 + [5.0] * 32, jnp.float32)

    def one(key):
        key_large, key_tiny = jax.random.split(key)
        return sampling.gamma(key_large, a), sampling.gamma(key_tiny, jnp.asarray([1.0, 2.0]))

    x, y = (np.asarray(v, np.float64) for v in jax.jit(jax.vmap(one))(raw_keys(2000, seed=5)))
    assert x.shape == (2000, 64) and y.shape == (2000, 2)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    assert stats.kstest(x[:, :32].ravel(), stats.gamma(1.0).cdf).pvalue > 1e-3
    assert stats.kstest(x[:, 32:].ravel(), stats.gamma(5.0).cdf).pvalue > 1e-3
    assert stats.kstest(y[:, 0], stats.gamma(1.0).cdf).pvalue > 1e-3
    assert stats.kstest(y[:, 1], stats.gamma(2.0).cdf).pvalue > 1e-3
    np.testing.assert_allclose(x[:, 32:].mean(), 5.0, atol=5 * np.sqrt(5 / 64_000))


@pytest.mark.parametrize("n,capacity,p", [(2000, 174, 0.05), (10, 8, 0.5), (100, 16, 0.3), (64, 64, 0.9), (33, 5, 1.0), (40, 8, 0.0)])
def test_compact_equals_nonzero(n, capacity, p):
    """`_compact` gives the first `capacity` True indices in order, padded with n (as nonzero)."""
    rng = np.random.default_rng(n)
    flags = rng.uniform(size=(20, n)) < p
    got = np.asarray(jax.jit(jax.vmap(lambda f: sampling._compact(f, capacity)))(flags))
    for row, f in zip(got, flags):
        want = np.nonzero(f)[0][:capacity]
        np.testing.assert_array_equal(row, np.concatenate([want, np.full(capacity - len(want), n)]))


def test_samples_do_not_depend_on_the_batch():
    """A task's draws depend on its key only: alone, in a batch, or in a nested vmap (as in a sweep
    over params around a vmap over tasks) it gets the same samples (up to float rounding)."""
    keys = raw_keys(16, seed=11)
    a = jnp.linspace(1.0, 3.0, 40)

    def one(key):
        return sampling.gamma(key, a)

    batched = np.asarray(jax.jit(jax.vmap(one))(keys))
    nested = np.asarray(jax.jit(jax.vmap(jax.vmap(one)))(keys.reshape(4, 4, 2))).reshape(16, -1)
    alone = np.stack([np.asarray(jax.jit(one)(k)) for k in keys[:3]])
    np.testing.assert_allclose(batched[:3], alone, rtol=1e-5)
    np.testing.assert_allclose(nested, batched, rtol=1e-5)
