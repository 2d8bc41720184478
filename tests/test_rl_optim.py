"""TRPO pieces: conjugate gradient vs. numpy, the trust-region step on quadratic toys (vectorised line
search == sequential loop), and the linear feature baseline's ridge fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from metarlkit.rl import (
    conjugate_gradient,
    discounted_returns,
    fit_linear_baseline,
    linear_baseline_features,
    linear_baseline_values,
    trpo_step,
)

pytestmark = pytest.mark.usefixtures("fast_compile")


def random_spd(n, seed, low=0.5, high=2.0):
    """A symmetric matrix with eigenvalues spread evenly in [low, high]."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return (q * np.linspace(low, high, n)) @ q.T


# --- conjugate gradient -------------------------------------------------------------------------

def test_cg_solves_random_spd_system():
    a = random_spd(6, 0, 0.3, 3.0)
    b = np.random.default_rng(1).normal(size=6)
    x = conjugate_gradient(lambda v: jnp.asarray(a, jnp.float32) @ v, jnp.asarray(b, jnp.float32), 10)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-5, rtol=1e-5)


def test_cg_solves_pytree_rhs():
    a = random_spd(6, 2, 0.3, 3.0)
    rng = np.random.default_rng(3)
    b = {"w": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32), "b": jnp.asarray(rng.normal(size=2), jnp.float32)}
    flat_b, unravel = ravel_pytree(b)
    # The 6x6 matrix couples the two leaves, so a leaf-by-leaf bug shows.
    x = conjugate_gradient(lambda v: unravel(jnp.asarray(a, jnp.float32) @ ravel_pytree(v)[0]), b, 10)
    assert jax.tree_util.tree_structure(x) == jax.tree_util.tree_structure(b)
    np.testing.assert_allclose(ravel_pytree(x)[0], np.linalg.solve(a, np.asarray(flat_b)), atol=1e-5, rtol=1e-5)


def test_cg_zero_rhs_and_exact_convergence_give_no_nan():
    x = conjugate_gradient(lambda v: 3.0 * v, jnp.zeros(4), 10)
    np.testing.assert_array_equal(x, np.zeros(4))
    # A = 2I: the residual is exactly 0 after one iteration; nine more must not divide 0 by 0.
    b = jnp.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(conjugate_gradient(lambda v: 2.0 * v, b, 10), b / 2)


def test_cg_leaves_x_unchanged_below_residual_tol():
    a = jnp.asarray(random_spd(6, 4, 0.1, 5.0), jnp.float32)
    b = jnp.asarray(np.random.default_rng(5).normal(size=6), jnp.float32)
    matvec = lambda v: a @ v  # noqa: E731
    # Residual tolerance reached after a few iterations; more iterations must be exact no-ops.
    x_short = conjugate_gradient(matvec, b, 8, residual_tol=1e-4)
    x_long = conjugate_gradient(matvec, b, 40, residual_tol=1e-4)
    np.testing.assert_array_equal(x_short, x_long)
    r = np.asarray(b) - np.asarray(a) @ np.asarray(x_short)
    assert r @ r < 2e-4


# --- TRPO step ----------------------------------------------------------------------------------

N = 4
FISHER = random_spd(N, 10)
THETA0 = np.random.default_rng(11).normal(size=N)
G = np.random.default_rng(12).normal(size=N)


def quadratic_kl(theta):
    d = theta - jnp.asarray(THETA0, jnp.float32)
    return 0.5 * d @ jnp.asarray(FISHER, jnp.float32) @ d


def run_trpo(grad, surrogate_and_kl, max_kl, as_dict=False, **kwargs):
    """trpo_step under jit, on flat params or on the same params split into a dict."""
    theta0 = jnp.asarray(THETA0, jnp.float32)
    fisher = jnp.asarray(FISHER, jnp.float32)
    if not as_dict:
        fvp, params, objective, grad_tree = (lambda v: fisher @ v), theta0, surrogate_and_kl, grad
    else:
        split = lambda v: {"a": v[:1], "b": v[1:].reshape(1, N - 1)}  # noqa: E731
        flat = lambda t: ravel_pytree(t)[0]  # noqa: E731
        fvp = lambda v: split(fisher @ flat(v))  # noqa: E731
        params, grad_tree = split(theta0), split(jnp.asarray(grad, jnp.float32))
        objective = lambda t: surrogate_and_kl(flat(t))  # noqa: E731
    step = jax.jit(lambda p, g: trpo_step(p, g, fvp, objective, max_kl, **kwargs))
    new_params, info = step(params, jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), grad_tree))
    return np.asarray(ravel_pytree(new_params)[0]), {k: np.asarray(v) for k, v in info.items()}


@pytest.mark.parametrize("as_dict", [False, True])
def test_trpo_takes_the_full_natural_step_when_kl_is_quadratic(as_dict):
    max_kl = 0.01
    linear_loss = lambda t: (jnp.asarray(G, jnp.float32) @ t, quadratic_kl(t))  # noqa: E731
    new, info = run_trpo(G, linear_loss, max_kl, as_dict=as_dict)
    nat = np.linalg.solve(FISHER, G)
    want = THETA0 - np.sqrt(2 * max_kl / (G @ nat)) * nat  # the step whose quadratic KL is max_kl
    assert info["accepted"] and info["step_fraction"] == 1.0
    np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-5)
    assert info["kl"] <= max_kl
    np.testing.assert_allclose(info["kl"], max_kl, rtol=1e-3)
    assert info["loss_after"] < info["loss_before"]
    np.testing.assert_allclose(info["expected_improvement"], info["loss_before"] - info["loss_after"], rtol=1e-3)


def line_search_loop(theta0, g, fisher, objective, max_kl, damping, ratio, steps):
    """Reference: rllab's sequential backtracking, in float64 numpy."""
    s = np.linalg.solve(fisher + damping * np.eye(len(g)), -g)
    full = s * np.sqrt(2 * max_kl / (s @ (fisher + damping * np.eye(len(g))) @ s))
    loss0, _ = objective(theta0)
    for k in range(steps):
        theta = theta0 + ratio**k * full
        loss, kl = objective(theta)
        if loss < loss0 and kl <= max_kl:
            return ratio**k, theta
    return 0.0, theta0


# Loss overshoot: a sharp quadratic loss whose minimum lies well inside a big trust region.
TARGET = THETA0 - 0.05 * np.linalg.solve(FISHER, G)
SHARP = 20.0 * np.eye(N)
# KL overshoot: a quartic term the quadratic model misses, so the full step leaves the region.
QUARTIC = 5000.0


def overshoot_loss(t, xp):
    d = t - xp.asarray(TARGET, dtype=t.dtype)
    d0 = t - xp.asarray(THETA0, dtype=t.dtype)
    return 0.5 * d @ xp.asarray(SHARP, dtype=t.dtype) @ d, 0.5 * d0 @ xp.asarray(FISHER, dtype=t.dtype) @ d0


def quartic_kl(t, xp):
    d0 = t - xp.asarray(THETA0, dtype=t.dtype)
    kl = 0.5 * d0 @ xp.asarray(FISHER, dtype=t.dtype) @ d0 + QUARTIC * (d0 @ d0) ** 2
    return xp.asarray(G, dtype=t.dtype) @ t, kl


@pytest.mark.parametrize("sequential", [False, True], ids=["vmapped", "while-loop"])
@pytest.mark.parametrize("objective,max_kl", [(overshoot_loss, 0.05), (quartic_kl, 0.05)], ids=["loss", "kl"])
def test_trpo_line_search_matches_a_python_loop(objective, max_kl, sequential):
    kwargs = dict(damping=1e-3, backtrack_ratio=0.8, max_backtracks=15, sequential=sequential)
    grad = np.asarray(jax.grad(lambda t: objective(t, jnp)[0])(jnp.asarray(THETA0, jnp.float32)))
    want_fraction, want = line_search_loop(THETA0, grad.astype(np.float64), FISHER, lambda t: objective(t, np),
                                           max_kl, kwargs["damping"], kwargs["backtrack_ratio"],
                                           kwargs["max_backtracks"])
    assert 0 < want_fraction < 0.8  # the scenario does backtrack, twice or more
    new, info = run_trpo(grad, lambda t: objective(t, jnp), max_kl, cg_iterations=N + 2, **kwargs)
    assert info["accepted"]
    np.testing.assert_allclose(info["step_fraction"], want_fraction, rtol=1e-6)
    np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-5)
    assert info["kl"] <= max_kl and info["loss_after"] < info["loss_before"]


@pytest.mark.parametrize("sequential", [False, True], ids=["vmapped", "while-loop"])
def test_trpo_keeps_params_when_no_fraction_improves(sequential):
    # The gradient points the wrong way on purpose: every candidate increases the linear loss.
    linear_loss = lambda t: (jnp.asarray(G, jnp.float32) @ t, quadratic_kl(t))  # noqa: E731
    new, info = run_trpo(-G, linear_loss, 0.01, sequential=sequential)
    np.testing.assert_array_equal(new, np.asarray(THETA0, np.float32))
    assert not info["accepted"]
    assert info["step_fraction"] == 0 and info["kl"] == 0
    assert info["loss_after"] == info["loss_before"]


def test_trpo_zero_gradient_keeps_params_without_nan():
    linear_loss = lambda t: (jnp.asarray(G, jnp.float32) @ t, quadratic_kl(t))  # noqa: E731
    new, info = run_trpo(np.zeros(N), linear_loss, 0.01)
    np.testing.assert_array_equal(new, np.asarray(THETA0, np.float32))
    assert not info["accepted"]
    assert all(np.all(np.isfinite(v)) for v in info.values())


# --- linear feature baseline --------------------------------------------------------------------

def test_linear_baseline_features_layout():
    obs = jnp.array([[1.0, -2.0], [3.0, 0.5], [0.0, 4.0], [7.0, 7.0]])
    valid = jnp.array([True, True, True, False])
    f = linear_baseline_features(obs, valid, horizon=4)
    assert f.shape == (4, 2 * 2 + 4)
    # step 2: (o, o**2, t/100, (t/100)**2, (t/100)**3, 1)
    np.testing.assert_allclose(f[2], [0.0, 4.0, 0.0, 16.0, 0.02, 4e-4, 8e-6, 1.0], rtol=1e-6)
    np.testing.assert_allclose(f[0], [1.0, -2.0, 1.0, 4.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(f[3], np.zeros(8))  # invalid step
    with pytest.raises(ValueError, match="horizon"):
        linear_baseline_features(obs, valid, horizon=5)


def episode_batch(seed, horizon=100, obs_dim=3):
    """4 episodes, two of them ended early (steps after the end invalid)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(4, horizon, obs_dim)).astype(np.float32)
    lengths = np.array([horizon, 3 * horizon // 5, horizon // 4, horizon])
    valid = np.arange(horizon)[None] < lengths[:, None]
    return jnp.asarray(obs), jnp.asarray(valid)


def test_fit_recovers_returns_linear_in_the_features():
    # A horizon of 100 steps: over a few steps, t/100, its square and cube are nearly collinear and
    # the ridge term visibly shrinks them (3e-4 error at 12 steps), as it does in rllab.
    obs, valid = episode_batch(0)
    features = jax.vmap(linear_baseline_features)(obs, valid)
    w_true = jnp.asarray(np.random.default_rng(1).normal(size=features.shape[-1]), jnp.float32)
    returns = features @ w_true
    weights = jax.jit(fit_linear_baseline)(features, returns, valid)
    values = linear_baseline_values(weights, features)
    assert values.shape == returns.shape
    np.testing.assert_allclose(values, returns, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(values)[~np.asarray(valid)], 0.0)


def test_fit_leaves_out_invalid_steps():
    rng = np.random.default_rng(2)
    _, valid = episode_batch(2)
    # Features nonzero at invalid steps too, so only the `valid` mask can keep those steps out.
    features = rng.normal(size=valid.shape + (5,)).astype(np.float32)
    returns = rng.normal(size=valid.shape).astype(np.float32)
    returns_bad = np.where(valid, returns, 1e6).astype(np.float32)
    weights = fit_linear_baseline(jnp.asarray(features), jnp.asarray(returns_bad), valid, reg_coeff=1e-5)
    x, y = features[np.asarray(valid)].astype(np.float64), returns[np.asarray(valid)].astype(np.float64)
    want = np.linalg.solve(x.T @ x + 1e-5 * np.eye(5), x.T @ y)
    np.testing.assert_allclose(weights, want, rtol=1e-4, atol=1e-5)


def test_fit_survives_positions_collinear_with_time():
    """The case met in a MAML run on point navigation: an adapted policy ran straight at full
    speed in all 20 episodes (position = 0.1 (t + 1) per coordinate), so the features are exactly
    collinear and every one of rllab's five ridge solves is inf/NaN in float32. The
    least-squares fit stays finite and fits the returns as well as float64 least squares."""
    t = jnp.arange(100, dtype=jnp.float32)
    position = jnp.stack([0.1 * (t + 1), -0.1 * (t + 1)], axis=-1)
    obs = jnp.concatenate([jnp.zeros((1, 2)), position[:-1]])[None].repeat(20, axis=0)  # [20, 100, 2]
    reward = -jnp.linalg.norm(position - jnp.array([0.007, -0.185]), axis=-1)[None].repeat(20, axis=0)
    valid = jnp.ones((20, 100), bool)
    returns = jax.vmap(lambda r, ok: discounted_returns(r, 0.99, 0.0, ok))(reward, valid)
    features = jax.vmap(lambda o, ok: linear_baseline_features(o, ok, 100))(obs, valid)
    x = features.reshape(-1, features.shape[-1])
    xtx, xty = x.T @ x, x.T @ returns.reshape(-1)
    for reg in 1e-5 * 10.0 ** np.arange(5):  # the plain normal-equation solves all fail
        assert not np.all(np.isfinite(np.asarray(jnp.linalg.solve(xtx + reg * jnp.eye(x.shape[1]), xty))))
    weights = fit_linear_baseline(features, returns, valid)
    assert np.all(np.isfinite(np.asarray(weights)))
    y = np.asarray(returns, np.float64).reshape(-1)
    x64 = np.asarray(x, np.float64)
    best = np.linalg.lstsq(x64, y, rcond=None)[0]
    ours = np.mean((np.asarray(linear_baseline_values(weights, features), np.float64).reshape(-1) - y) ** 2)
    assert ours <= np.mean((x64 @ best - y) ** 2) + 1e-3 * np.mean(y**2)


def test_cg_residual_gives_the_product_without_another_matvec():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(6, 6))
    a = jnp.asarray(m @ m.T + 6 * np.eye(6), jnp.float32)
    b = jnp.asarray(rng.normal(size=6), jnp.float32)
    x, r = conjugate_gradient(lambda v: a @ v, b, 3, return_residual=True)  # stopped early: r != 0
    assert float(jnp.linalg.norm(r)) > 1e-3
    np.testing.assert_allclose(b - r, a @ x, rtol=1e-4, atol=1e-4)
