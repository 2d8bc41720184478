"""`rl.sac`: the losses against hand computations on linear networks, where gradients flow (the
encoder through the Q loss only), the Polyak average, and a one-step continuous bandit SAC solves."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from metarlkit.nets.squashed import init_mlp, mlp, tanh_gaussian_head
from metarlkit.rl import sac
from metarlkit.rl.replay import Transitions

pytestmark = pytest.mark.usefixtures("fast_compile")

DISCOUNT, REWARD_SCALE = 0.9, 5.0


# Linear single-stream networks: every loss is then a short numpy computation.
def q_linear(p, obs, action):
    return obs @ p["wo"] + action @ p["wa"] + p["b"]


def v_linear(p, obs):
    return obs @ p["w"] + p["b"]


def policy_linear(p, obs):
    return tanh_gaussian_head(obs @ p["w"] + p["b"])


@pytest.fixture(scope="module")
def setup():
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    q1 = {"wo": f32([0.5, -1.0, 0.3]), "wa": f32([2.0]), "b": f32(0.1)}
    q2 = {"wo": f32([-0.2, 0.4, 1.0]), "wa": f32([-1.0]), "b": f32(0.3)}
    v_target = {"w": f32([1.0, 0.5, -0.5]), "b": f32(-0.2)}
    v = {"w": f32([0.3, -0.3, 0.2]), "b": f32(0.05)}
    # log-std column: row 3's observation pushes it above 2, where the head clamps it
    policy = {"w": f32([[0.4, -0.5], [-0.3, 0.2], [0.6, 3.0]]), "b": f32([0.1, -0.4])}
    batch = Transitions(
        obs=f32([[0.1, 0.2, -0.3], [1.0, -0.5, 0.4], [-0.7, 0.3, 1.0]]),
        action=f32([[0.5], [-0.2], [0.9]]),
        reward=f32([1.0, -0.5, 0.25]),
        next_obs=f32([[0.3, -0.1, 0.2], [0.0, 0.4, -1.0], [0.5, 0.5, 0.5]]),
        terminated=jnp.array([False, True, False]),
    )
    return dict(q=(q1, q2), v_target=v_target, v=v, policy=policy, batch=batch, key=jax.random.PRNGKey(7))


def np_tree(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def reference_new_actions(setup):
    """float64: the policy's pre-tanh mean and clamped log-std, the draws `rl.sac` makes (row i
    with split(key, B)[i], as documented), log pi, and min(Q1, Q2) at the new actions."""
    p, obs = np_tree(setup["policy"]), np.asarray(setup["batch"].obs, np.float64)
    out = obs @ p["w"] + p["b"]
    mean, log_std = out[:, :1], np.clip(out[:, 1:], -20.0, 2.0)
    keys = jax.random.split(setup["key"], obs.shape[0])
    eps = np.stack([np.asarray(jax.random.normal(k, (1,))) for k in keys]).astype(np.float64)
    u = mean + np.exp(log_std) * eps
    action = np.tanh(u)
    log_pi = np.sum(stats.norm(mean, np.exp(log_std)).logpdf(u) - np.log1p(-action**2), axis=-1)
    qs = [obs @ q["wo"] + action @ q["wa"] + q["b"] for q in np_tree(setup["q"])]
    return mean, log_std, u, action, log_pi, np.minimum(*qs)


def test_q_target_golden():
    got = sac.q_target(jnp.array([1.0, 2.0]), jnp.array([False, True]), jnp.array([10.0, 10.0]),
                       discount=0.9, reward_scale=5.0)
    np.testing.assert_allclose(got, [5.0 + 9.0, 10.0])


def test_q_loss_equals_hand_computation(setup):
    b = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), setup["batch"])
    vt = np_tree(setup["v_target"])
    y = REWARD_SCALE * b.reward + (1 - b.terminated) * DISCOUNT * (b.next_obs @ vt["w"] + vt["b"])
    want = sum(np.mean((b.obs @ q["wo"] + b.action @ q["wa"] + q["b"] - y) ** 2) for q in np_tree(setup["q"]))
    loss, info = sac.q_loss(setup["q"], setup["v_target"], setup["batch"], q_apply=q_linear, v_apply=v_linear,
                            discount=DISCOUNT, reward_scale=REWARD_SCALE)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(info["q_target"], y.mean(), rtol=1e-5)


def test_q_loss_trains_an_encoder_through_obs_but_not_through_the_target(setup):
    # PEARL's z is concatenated to obs by the caller; its gradient comes from the Q loss.
    batch = setup["batch"]
    obs, z = batch.obs[:, :2], jnp.array([0.3])

    def loss_of(z, next_z):
        tiled = lambda o, zz: jnp.concatenate([o, jnp.broadcast_to(zz, (o.shape[0], 1))], axis=1)  # noqa: E731
        b = batch._replace(obs=tiled(obs, z), next_obs=tiled(batch.next_obs[:, :2], next_z))
        return sac.q_loss(setup["q"], setup["v_target"], b, q_apply=q_linear, v_apply=v_linear,
                          discount=DISCOUNT, reward_scale=REWARD_SCALE)[0]

    g_z, g_next = jax.grad(loss_of, argnums=(0, 1))(z, jnp.array([0.5]))
    step = 1e-2
    numeric = (loss_of(z + step, jnp.array([0.5])) - loss_of(z - step, jnp.array([0.5]))) / (2 * step)
    np.testing.assert_allclose(g_z, [numeric], rtol=2e-3)
    assert abs(float(g_z[0])) > 0.1
    np.testing.assert_array_equal(g_next, [0.0])


def test_v_loss_equals_hand_computation_and_trains_only_v(setup):
    _, _, _, _, log_pi, min_q = reference_new_actions(setup)
    v, obs = np_tree(setup["v"]), np.asarray(setup["batch"].obs, np.float64)
    want = np.mean((obs @ v["w"] + v["b"] - (min_q - log_pi)) ** 2)
    kwargs = dict(v_apply=v_linear, q_apply=q_linear, policy_apply=policy_linear)
    loss_fn = lambda v, q, pi, o: sac.v_loss(v, q, pi, o, setup["key"], **kwargs)[0]  # noqa: E731
    args = (setup["v"], setup["q"], setup["policy"], setup["batch"].obs)
    np.testing.assert_allclose(loss_fn(*args), want, rtol=1e-4)
    g_v, g_q, g_pi, g_obs = jax.grad(loss_fn, argnums=(0, 1, 2, 3))(*args)
    assert float(jnp.abs(g_v["w"]).sum()) > 0
    for g in (g_q, g_pi, g_obs):  # the target is fixed, and z is not trained by V (oyster's detach)
        assert all(float(jnp.abs(leaf).sum()) == 0 for leaf in jax.tree_util.tree_leaves(g))


def test_policy_loss_equals_hand_computation_with_min_q_and_oysters_regularisers(setup):
    mean, log_std, u, _, log_pi, min_q = reference_new_actions(setup)
    assert log_std.max() == 2.0  # the clamped log-std is the one regularised
    kwargs = dict(policy_apply=policy_linear, q_apply=q_linear)
    loss, info = sac.policy_loss(setup["policy"], setup["q"], setup["batch"].obs, setup["key"], **kwargs)
    base = np.mean(log_pi - min_q)
    want = base + 1e-3 * np.mean(mean**2) + 1e-3 * np.mean(log_std**2)
    np.testing.assert_allclose(loss, want, rtol=1e-4)
    np.testing.assert_allclose(info["min_q"], min_q.mean(), rtol=1e-4)
    loss, _ = sac.policy_loss(setup["policy"], setup["q"], setup["batch"].obs, setup["key"], mean_reg=0.1,
                              log_std_reg=0.0, pre_tanh_reg=0.5, **kwargs)
    np.testing.assert_allclose(loss, base + 0.1 * np.mean(mean**2) + 0.5 * np.mean(np.sum(u**2, -1)), rtol=1e-4)


def test_policy_loss_gradient_is_the_reparameterised_one_and_trains_only_the_policy(setup):
    kwargs = dict(policy_apply=policy_linear, q_apply=q_linear)

    def loss_fn(pi, q, obs):
        return sac.policy_loss(pi, q, obs, setup["key"], **kwargs)[0]

    g_pi, g_q, g_obs = jax.grad(loss_fn, argnums=(0, 1, 2))(setup["policy"], setup["q"], setup["batch"].obs)
    for g in (g_q, g_obs):
        assert all(float(jnp.abs(leaf).sum()) == 0 for leaf in jax.tree_util.tree_leaves(g))
    # the same key draws the same noise, so the loss is a smooth function of the mean's bias
    step = 1e-2

    def at(bias):
        pi = dict(setup["policy"], b=setup["policy"]["b"].at[0].set(bias))
        return loss_fn(pi, setup["q"], setup["batch"].obs)

    b0 = setup["policy"]["b"][0]
    numeric = (at(b0 + step) - at(b0 - step)) / (2 * step)
    np.testing.assert_allclose(g_pi["b"][0], numeric, rtol=5e-3)


def test_v_and_policy_losses_share_the_draw_of_one_key(setup):
    kw = dict(q_apply=q_linear, policy_apply=policy_linear)
    _, v_info = sac.v_loss(setup["v"], setup["q"], setup["policy"], setup["batch"].obs, setup["key"],
                           v_apply=v_linear, **kw)
    _, pi_info = sac.policy_loss(setup["policy"], setup["q"], setup["batch"].obs, setup["key"], **kw)
    np.testing.assert_allclose(v_info["log_pi"], pi_info["log_pi"], rtol=1e-6)
    _, other = sac.policy_loss(setup["policy"], setup["q"], setup["batch"].obs, jax.random.PRNGKey(8), **kw)
    assert abs(float(other["log_pi"]) - float(pi_info["log_pi"])) > 1e-3


def test_polyak_average():
    target = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(-1.0)}
    online = {"a": jnp.array([3.0, 0.0]), "b": jnp.array(1.0)}
    got = sac.polyak(target, online, 0.1)
    np.testing.assert_allclose(got["a"], [1.2, 1.8], rtol=1e-6)
    np.testing.assert_allclose(got["b"], -0.8, rtol=1e-6)
    np.testing.assert_allclose(sac.polyak(target, online, 1.0)["a"], online["a"])
    np.testing.assert_allclose(sac.polyak(target, online, 0.0)["b"], target["b"])


# --- probe: a one-step continuous bandit, reward -(a - 0.5)^2, learnt from a fixed batch ---------

class ProbeState(NamedTuple):
    q: Any
    v: Any
    v_target: Any
    policy: Any
    opt: Any


PROBE_SCALE = 50.0  # inverse temperature: the soft-optimal policy is sharp around 0.5
PROBE_OPT = optax.adam(3e-3)
PROBE_STEPS = 1500


def q_mlp(p, obs, action):
    return mlp(p, jnp.concatenate([obs, action]))[0]


def v_mlp(p, obs):
    return mlp(p, obs)[0]


def policy_mlp(p, obs):
    return tanh_gaussian_head(mlp(p, obs))


def run_probe(num_steps: int, seed: int = 0) -> ProbeState:
    key_data, key_q1, key_q2, key_v, key_pi, key_train = jax.random.split(jax.random.PRNGKey(seed), 6)
    n = 256
    action = jax.random.uniform(key_data, (n, 1), minval=-0.99, maxval=0.99)
    obs = jnp.ones((n, 1))
    batch = Transitions(obs, action, -((action[:, 0] - 0.5) ** 2), obs, jnp.ones((n,), bool))
    q = (init_mlp(key_q1, (2, 32, 32, 1)), init_mlp(key_q2, (2, 32, 32, 1)))
    v = init_mlp(key_v, (1, 32, 1))
    policy = init_mlp(key_pi, (1, 32, 2), final_scale=1e-3)
    opt = tuple(PROBE_OPT.init(p) for p in (q, v, policy))
    state = ProbeState(q, v, v, policy, opt)

    def update(state, key):
        # oyster's order: Q step, then V and policy from the updated critics with one draw
        opt_q, opt_v, opt_pi = state.opt
        g_q = jax.grad(lambda q: sac.q_loss(q, state.v_target, batch, q_apply=q_mlp, v_apply=v_mlp,
                                            discount=0.99, reward_scale=PROBE_SCALE)[0])(state.q)
        upd, opt_q = PROBE_OPT.update(g_q, opt_q)
        q = optax.apply_updates(state.q, upd)
        g_v = jax.grad(lambda v: sac.v_loss(v, q, state.policy, batch.obs, key, v_apply=v_mlp, q_apply=q_mlp,
                                            policy_apply=policy_mlp)[0])(state.v)
        upd, opt_v = PROBE_OPT.update(g_v, opt_v)
        v = optax.apply_updates(state.v, upd)
        g_pi = jax.grad(lambda pi: sac.policy_loss(pi, q, batch.obs, key, policy_apply=policy_mlp,
                                                   q_apply=q_mlp)[0])(state.policy)
        upd, opt_pi = PROBE_OPT.update(g_pi, opt_pi)
        policy = optax.apply_updates(state.policy, upd)
        return ProbeState(q, v, sac.polyak(state.v_target, v, 0.005), policy, (opt_q, opt_v, opt_pi)), None

    train = jax.jit(lambda state, key: jax.lax.scan(update, state, jax.random.split(key, num_steps))[0])
    return train(state, key_train)


@pytest.fixture(scope="module")
def probe():
    return run_probe(PROBE_STEPS)


def test_sac_solves_a_one_step_continuous_bandit(probe):
    dist = policy_mlp(probe.policy, jnp.ones((1,)))
    mode = float(dist.mode()[0])
    assert abs(mode - 0.5) < 0.05, mode
    draws = jax.vmap(dist.sample)(jax.random.split(jax.random.PRNGKey(1), 2000))[:, 0]
    assert float(jnp.mean(-((draws - 0.5) ** 2))) > -0.05  # uniform actions score -0.58, a = 0 scores -0.25
    # the critic learnt the scaled reward where the policy acts
    grid = jnp.array([[0.0], [0.5], [0.9]])
    q1 = jax.vmap(q_mlp, in_axes=(None, None, 0))(probe.q[0], jnp.ones((1,)), grid)
    np.testing.assert_allclose(q1, -PROBE_SCALE * (grid[:, 0] - 0.5) ** 2, atol=1.0)
