"""Action distributions: log-probabilities, entropies and KLs against closed forms and scipy."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from metarlkit.nets import Categorical, DiagGaussian
from metarlkit.rl import losses


def test_categorical_matches_closed_form():
    logits = jnp.array([0.0, 1.0, -1.0])
    p = np.exp(logits) / np.exp(logits).sum()
    d = Categorical(logits)
    np.testing.assert_allclose(d.log_prob(1), math.log(p[1]), rtol=1e-6)
    np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(), rtol=1e-6)
    q = Categorical(jnp.zeros(3))
    np.testing.assert_allclose(d.kl(q), (p * np.log(p / (1 / 3))).sum(), rtol=1e-5)
    assert int(d.mode()) == 1
    draws = jax.vmap(d.sample)(jax.random.split(jax.random.PRNGKey(0), 20000))
    np.testing.assert_allclose(np.bincount(np.asarray(draws), minlength=3) / 20000, p, atol=0.015)


def test_gaussian_matches_scipy():
    mean, log_std = jnp.array([0.5, -1.0]), jnp.array([0.0, -0.7])
    d = DiagGaussian(mean, log_std)
    a = jnp.array([0.2, -0.4])
    want = stats.norm(mean, np.exp(log_std)).logpdf(a).sum()
    np.testing.assert_allclose(d.log_prob(a), want, rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), stats.norm(mean, np.exp(log_std)).entropy().sum(), rtol=1e-5)
    other = DiagGaussian(jnp.zeros(2), jnp.zeros(2))
    s1, s2 = np.exp(log_std), 1.0
    want_kl = (np.log(s2 / s1) + (s1**2 + np.asarray(mean) ** 2) / (2 * s2**2) - 0.5).sum()
    np.testing.assert_allclose(d.kl(other), want_kl, rtol=1e-5)
    draws = jax.vmap(d.sample)(jax.random.split(jax.random.PRNGKey(1), 20000))
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(draws.std(0), np.exp(log_std), atol=0.03)


def test_ppo_loss_is_policy_gradient_at_ratio_one():
    # At the behaviour policy (ratio 1) the clipped surrogate's gradient is the A2C gradient.
    logp = jnp.array([-1.0, -0.5, -2.0])
    adv = jnp.array([1.0, -2.0, 0.5])
    mask = jnp.array([True, True, False])
    g_ppo = jax.grad(lambda lp: losses.ppo_clip_loss(lp, jax.lax.stop_gradient(lp), adv, mask, 0.2)[0])(logp)
    g_pg = jax.grad(lambda lp: losses.policy_gradient_loss(lp, adv, mask))(logp)
    np.testing.assert_allclose(g_ppo, g_pg, rtol=1e-6)
    np.testing.assert_allclose(g_pg, [-0.5, 1.0, 0.0])


def test_ppo_clip_stops_gradient_outside_the_trust_region():
    old = jnp.zeros(2)
    new = jnp.log(jnp.array([1.5, 0.5]))  # ratios 1.5 (A>0, clipped) and 0.5 (A<0, clipped)
    adv = jnp.array([1.0, -1.0])
    g = jax.grad(lambda lp: losses.ppo_clip_loss(lp, old, adv, jnp.ones(2, bool), 0.2)[0])(new)
    np.testing.assert_allclose(g, [0.0, 0.0])


def test_normalize_advantages_ignores_masked_entries():
    adv = jnp.array([1.0, 3.0, 100.0])
    out = losses.normalize_advantages(adv, jnp.array([True, True, False]))
    np.testing.assert_allclose(out, [-1.0, 1.0, 0.0], rtol=1e-5)


def test_policy_head_gives_categorical_or_state_independent_gaussian():
    from flax import nnx

    from metarlkit.nets import PolicyHead

    h = jnp.array([1.0, -2.0, 0.5])
    discrete = PolicyHead(3, 4, rngs=nnx.Rngs(0))
    d = discrete(h)
    assert isinstance(d, Categorical) and d.logits.shape == (4,)
    assert float(jnp.max(jnp.abs(d.logits))) < 0.1  # small initial weights: near-uniform
    gaussian = PolicyHead(3, 2, continuous=True, init_log_std=-0.5, rngs=nnx.Rngs(0))
    g = gaussian(h)
    assert isinstance(g, DiagGaussian) and g.mean.shape == (2,)
    np.testing.assert_array_equal(g.log_std, [-0.5, -0.5])
    np.testing.assert_array_equal(gaussian(-3 * h).log_std, g.log_std)  # the same in every state
    # the log std is a parameter: its gradient flows
    graphdef, params = nnx.split(gaussian)
    grads = jax.grad(lambda p: nnx.merge(graphdef, p)(h).log_prob(jnp.array([0.3, -0.1])))(params)
    assert float(jnp.abs(grads["log_std"][...]).sum()) > 0


def test_gaussian_head_works_in_units_of_the_action_box():
    from flax import nnx

    from metarlkit.nets import PolicyHead

    head = PolicyHead(3, 2, continuous=True, action_bounds=((0.0, -0.1), (2.0, 0.1)), rngs=nnx.Rngs(0))
    g = head(jnp.zeros(3))  # zero features: the bias (0) alone, so the mean is the box's centre
    np.testing.assert_allclose(g.mean, [1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(np.exp(g.log_std), [1.0, 0.1], rtol=1e-6)  # the half-widths
    graphdef, params = nnx.split(head)
    assert set(params.keys()) == {"linear", "log_std"}  # the box is not a parameter
