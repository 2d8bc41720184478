"""GrBAL's pieces: the inner step, the model's fit, window sampling, the planner on a learned
model, and MB+DE at step size 0."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metarlkit import evaluate, tasks
from metarlkit.algos.grbal import data as D
from metarlkit.algos.grbal import model as M
from metarlkit.algos.grbal.agent import make_agent
from metarlkit.planning import ActionSpace, Model, PlannerConfig, make_planner

pytestmark = pytest.mark.usefixtures("fast_compile")


def linear_model(key, obs_size=3, act_size=2):
    """A model with no hidden layer: the normalised change is x @ w0 + b0, x = [obs, act]."""
    return M.init_model(key, obs_size, act_size, ())


def test_one_inner_step_on_a_linear_model_is_the_closed_form_update():
    key_p, key_x, key_y = jax.random.split(jax.random.PRNGKey(0), 3)
    params = linear_model(key_p)
    params["b0"] = jnp.array([0.3, -0.2, 0.1])
    norm = M.identity_normalizer(3, 2)
    obs, act = jax.random.normal(key_x, (16, 3)), jax.random.normal(key_y, (16, 2))
    next_obs = obs + obs @ jnp.diag(jnp.array([0.5, -1.0, 2.0])) + act @ jnp.ones((2, 3))
    alpha = 0.05
    adapted = M.adapt(params, norm, obs, act, next_obs, None, alpha)

    x = np.concatenate([obs, act], axis=1).astype(np.float64)
    w, b = np.asarray(params["w0"], np.float64), np.asarray(params["b0"], np.float64)
    residual = x @ w + b - np.asarray(next_obs - obs, np.float64)  # d loss / d prediction = 2 r / (N O)
    scale = 2.0 / (x.shape[0] * w.shape[1])
    np.testing.assert_allclose(adapted["w0"], w - alpha * scale * x.T @ residual, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adapted["b0"], b - alpha * scale * residual.sum(axis=0), rtol=1e-5, atol=1e-6)
    # weights leave rows out: a zero-weight row changes nothing
    padded = M.adapt(params, norm, jnp.concatenate([obs, obs[:4] * 7]), jnp.concatenate([act, act[:4]]),
                     jnp.concatenate([next_obs, next_obs[:4] * 0]), jnp.arange(20) < 16, alpha)
    np.testing.assert_allclose(padded["w0"], adapted["w0"], rtol=1e-5, atol=1e-6)



def test_validation_watches_the_unadapted_or_the_adapted_loss():
    key_p, key_x = jax.random.split(jax.random.PRNGKey(3))
    params = linear_model(key_p)
    norm = M.identity_normalizer(3, 2)
    x = jax.random.normal(key_x, (8, 5))
    window = M.Window(x[:, :3], x[:, 3:], x[:, :3] + 0.5 * x[:, 3:4])
    plain = M.make_dynamics("mlp", 3, 2, (), "relu", 4, 0.1, True)
    adapted = M.make_dynamics("mlp", 3, 2, (), "relu", 4, 0.1, True, validate_adapted=True)
    np.testing.assert_allclose(plain.valid_loss(params, norm, window), M.plain_loss(params, norm, window), rtol=1e-6)
    np.testing.assert_allclose(adapted.valid_loss(params, norm, window), M.meta_loss(params, norm, window, 4, 0.1),
                               rtol=1e-6)
    assert not np.isclose(M.meta_loss(params, norm, window, 4, 0.1), M.plain_loss(params, norm, window))

def test_a_model_fitted_on_a_known_linear_system_predicts_it():
    key = jax.random.PRNGKey(1)
    a_mat = jnp.array([[0.9, 0.1], [-0.2, 0.95]])
    b_mat = jnp.array([[0.0], [0.1]])
    obs = jax.random.uniform(key, (2000, 2), minval=-2, maxval=2)
    act = jax.random.uniform(jax.random.fold_in(key, 1), (2000, 1), minval=-1, maxval=1)
    next_obs = obs @ a_mat.T + act @ b_mat.T
    norm = M.fit_normalizer(obs, act, next_obs, jnp.ones(2000, bool))
    params = M.init_model(jax.random.fold_in(key, 2), 2, 1, (32, 32))
    opt = optax.adam(3e-3)

    @jax.jit
    def steps(params, state):
        def one(carry, _):
            p, s = carry
            g = jax.grad(M.loss)(p, norm, obs, act, next_obs)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(one, (params, state), None, length=1500)[0]

    params, _ = steps(params, opt.init(params))
    test_obs = jax.random.uniform(jax.random.fold_in(key, 3), (200, 2), minval=-1.5, maxval=1.5)
    test_act = jax.random.uniform(jax.random.fold_in(key, 4), (200, 1), minval=-1, maxval=1)
    predicted = M.predict_next(params, norm, test_obs, test_act)
    truth = test_obs @ a_mat.T + test_act @ b_mat.T
    change = truth - test_obs
    assert float(jnp.sqrt(jnp.mean((predicted - truth) ** 2))) < 0.05 * float(jnp.sqrt(jnp.mean(change**2)))


def test_windows_never_cross_an_episode_boundary():
    capacity, horizon, span = 6, 20, 8
    data = D.empty(capacity, horizon, 2, 1)
    lengths = jnp.array([20, 5, 12, 8, 20])  # episode 1 is shorter than a window
    valid = jnp.arange(horizon)[None, :] < lengths[:, None]
    # observation = (episode id, step): a window's rows must be one episode, consecutive, valid
    obs = jnp.stack(jnp.broadcast_arrays(jnp.arange(5)[:, None] * 1.0, jnp.arange(horizon)[None, :] * 1.0), axis=-1)
    data = D.add(data, obs, jnp.zeros((5, horizon, 1)), obs + 1, valid, jnp.array([False, False, False, True, False]))
    assert int(data.count) == 5 and list(np.asarray(data.length[:5])) == [20, 5, 12, 8, 20]
    for validation, allowed in ((False, {0, 2, 4}), (True, {3})):
        windows, ok = D.sample_windows(data, jax.random.PRNGKey(2), 4000, span, validation)
        assert bool(ok)
        ep, step = np.asarray(windows.obs[..., 0]), np.asarray(windows.obs[..., 1])
        assert np.all(ep == ep[:, :1]), "a window mixes episodes"
        assert set(np.unique(ep[:, 0]).astype(int)) == allowed
        assert np.all(np.diff(step, axis=1) == 1), "a window's steps are not consecutive"
        assert np.all(step[:, -1] < np.asarray(lengths)[ep[:, 0].astype(int)]), "a window runs past the episode's end"
    # every start is used: a window may start at 0 and end at the episode's last valid step
    windows, _ = D.sample_windows(data, jax.random.PRNGKey(3), 4000, span, False)
    starts = np.asarray(windows.obs[:, 0, 1])
    assert starts.min() == 0 and set(starts[np.asarray(windows.obs[:, 0, 0]) == 2].astype(int)) == set(range(5))
    _, ok = D.sample_windows(data, jax.random.PRNGKey(4), 4, 21, False)
    assert not bool(ok)


def test_the_planner_finds_the_optimum_of_a_quadratic_problem_in_a_learned_linear_model():
    """One-step model s' = s + a (a linear 'learned' model set exactly) and reward -(s' - 0.3)^2:
    the best action from s = 0.1 is 0.2; random shooting over 2000 sequences lands within 0.02."""
    params = {"w0": jnp.array([[0.0], [1.0]]), "b0": jnp.zeros(1)}
    norm = M.identity_normalizer(1, 1)
    model = Model(dynamics=lambda o, a: M.predict_next(params, norm, o, a),
                  reward=lambda o, a, n: -jnp.sum((n - 0.3) ** 2))
    planner = make_planner(PlannerConfig(method="random", horizon=1, candidates=2000), ActionSpace(box=((-1.0,), (1.0,))))
    action, _, best, _ = planner.plan(planner.init(), jnp.array([0.1]), jax.random.PRNGKey(5), model)
    assert abs(float(action[0]) - 0.2) < 0.02 and float(best) > -4e-4
    # CEM on a longer horizon: reach 0.3 and stay (every step scores)
    cem = make_planner(PlannerConfig(method="cem", horizon=3, candidates=200, iterations=6, elites=20),
                       ActionSpace(box=((-0.15,), (0.15,))))
    action, _, _, _ = cem.plan(cem.init(), jnp.array([0.1]), jax.random.PRNGKey(6), model)
    assert abs(float(action[0]) - 0.15) < 0.03  # the box limits the first move toward 0.3


def test_mb_de_with_step_size_zero_acts_as_mb():
    family = tasks.from_spec("point-robot-wind")
    common = dict(task=family.spec(), obs_size=2, action_size=2, adapt_steps=4, activation="relu", method="random",
                  horizon=3, candidates=16, cem_iterations=1, elites=1, discount=1.0)
    params = {"model": M.init_model(jax.random.PRNGKey(0), 2, 2, (8,)), "norm": M.identity_normalizer(2, 2)}
    mb = make_agent(**common, step_size=0.01, online=False)
    zero = make_agent(**common, step_size=0.0, online=True)
    stepping = make_agent(**common, step_size=0.5, online=True)

    def returns(agent):
        return evaluate(agent, family, params, num_episodes=1, num_tasks=3).returns

    np.testing.assert_array_equal(returns(zero), returns(mb))
    assert not np.array_equal(returns(stepping), returns(mb))


def test_rebal_reads_the_task_from_the_window():
    """s' = s + c a with c = +1 or -1 per window: after meta-training, the recurrent model's loss on
    the last K given the first M is far below its loss with no context (c is unknowable then)."""
    m, k, n = 4, 4, 64
    dyn = M.make_dynamics("recurrent", 1, 1, (16,), "tanh", m, 0.0, True, core_size=8)
    norm = M.identity_normalizer(1, 1)

    def windows(key):
        key_c, key_s, key_a = jax.random.split(key, 3)
        c = jnp.where(jax.random.bernoulli(key_c, 0.5, (n, 1, 1)), 1.0, -1.0)
        obs = jax.random.normal(key_s, (n, m + k, 1))
        act = jax.random.uniform(key_a, (n, m + k, 1), minval=-1, maxval=1)
        return M.Window(obs, act, obs + c * act)

    opt = optax.adam(1e-2)

    def batch_loss(params, w):
        return jnp.mean(jax.vmap(lambda x: dyn.window_loss(params, norm, x))(w))

    @jax.jit
    def train(params):
        def one(carry, key):
            p, s = carry
            g = jax.grad(batch_loss)(p, windows(key))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        params, _ = jax.lax.scan(one, (params, opt.init(params)), jax.random.split(jax.random.PRNGKey(1), 600))[0]
        return params

    params = train(dyn.init(jax.random.PRNGKey(0)))
    test = windows(jax.random.PRNGKey(9))
    with_context = float(batch_loss(params, test))

    def blind(x):
        pred = dyn.predict_next(dyn.unadapted(params), norm, x.obs[m:], x.act[m:])
        return jnp.mean((pred - x.next_obs[m:]) ** 2)

    without = float(jnp.mean(jax.vmap(blind)(test)))
    assert with_context < 0.1 * without, (with_context, without)
    # rows of weight 0 are not read: padding the window changes nothing
    w = jax.tree_util.tree_map(lambda x: x[0, :m], test)
    padded = jax.tree_util.tree_map(lambda x: jnp.concatenate([x * 0 + 3.0, x]), w)
    a = dyn.adapt(params, norm, w.obs, w.act, w.next_obs, None)
    b = dyn.adapt(params, norm, padded.obs, padded.act, padded.next_obs, jnp.arange(2 * m) >= m)
    np.testing.assert_allclose(a["h"], b["h"], rtol=1e-6)


def test_rebal_trains_resumes_and_evaluates(tmp_path):
    from metarlkit import algos
    from metarlkit.experiment import load, train
    from metarlkit.experiment.config import build

    algo, family = algos.get("grbal"), tasks.from_spec("point-robot-wind")
    config = build(algo.config, {**algo.presets["tiny"], "model": "recurrent"})
    status = train(algo, config, family, 1, tmp_path / "r", progress=False, tensorboard=False)
    assert status["state"] == "complete"
    trained = load(tmp_path / "r")
    result = evaluate(trained.agent, family, trained.params, num_episodes=2, num_tasks=3)
    assert np.all(np.isfinite(result.returns))
