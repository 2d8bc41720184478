"""GAE and returns: golden values, scan == Python loop (across episode boundaries), masking."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit.rl import discounted_returns, gae


def gae_loop(r, v, discount, lam, bootstrap, valid):
    """Reference: a plain backward loop over the valid steps only."""
    T = len(r)
    adv = np.zeros(T)
    next_v, next_a = bootstrap, 0.0
    for t in reversed(range(T)):
        if not valid[t]:
            continue
        delta = r[t] + discount[t] * next_v - v[t]
        adv[t] = delta + discount[t] * lam * next_a
        next_v, next_a = v[t], adv[t]
    return adv


def test_gae_golden_values():
    r = jnp.array([1.0, 0.0, 2.0])
    v = jnp.array([0.5, 1.0, 1.5])
    adv, target = gae(r, v, 0.9, 0.5, bootstrap_value=2.0)
    # delta = [1 + .9*1 - .5, 0 + .9*1.5 - 1, 2 + .9*2 - 1.5] = [1.4, .35, 2.3]
    # A_2 = 2.3; A_1 = .35 + .45*2.3 = 1.385; A_0 = 1.4 + .45*1.385 = 2.02325
    np.testing.assert_allclose(adv, [2.02325, 1.385, 2.3], rtol=1e-6)
    np.testing.assert_allclose(target, np.asarray(adv) + np.asarray(v), rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.9, 1.0])
def test_gae_scan_equals_loop_across_episode_boundaries(lam):
    # One trial of 4 episodes of 5 steps; episodes 2 and 4 end early (steps after done invalid).
    # ATTENTION: the discount stays gamma at episode ends; only the trial end is terminal.
    rng = np.random.default_rng(0)
    T = 20
    valid = np.ones(T, bool)
    valid[7:10] = False
    valid[18:] = False
    r = rng.normal(size=T) * valid
    v = rng.normal(size=T)
    discount = np.full(T, 0.97)
    adv, target = gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(discount), lam, 0.0, jnp.asarray(valid))
    want = gae_loop(r, v, discount, lam, 0.0, valid)
    np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(target, np.where(valid, want + v, 0.0), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(adv)[~valid] == 0)


def test_episode_end_is_not_terminal():
    # A reward in the second episode of a trial must reach the first episode's advantages.
    r = jnp.array([0.0, 0.0, 0.0, 1.0])  # episodes of 2 steps: [0, 0] then [0, 1]
    v = jnp.zeros(4)
    adv, _ = gae(r, v, 0.5, 1.0)
    np.testing.assert_allclose(adv, [0.125, 0.25, 0.5, 1.0])


def test_discounted_returns_with_invalid_gap():
    r = jnp.array([1.0, 5.0, 1.0])
    valid = jnp.array([True, False, True])
    g = discounted_returns(r, 0.5, valid_t=valid)
    np.testing.assert_allclose(g, [1.5, 0.0, 1.0])


def test_gae_vmaps_over_trials():
    import jax

    rng = np.random.default_rng(1)
    r, v = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    adv, _ = jax.vmap(lambda a, b: gae(a, b, 0.9, 0.7))(jnp.asarray(r), jnp.asarray(v))
    for i in range(3):
        np.testing.assert_allclose(adv[i], gae_loop(r[i], v[i], np.full(6, 0.9), 0.7, 0.0, np.ones(6, bool)),
                                   rtol=1e-5, atol=1e-6)
