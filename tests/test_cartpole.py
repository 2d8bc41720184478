"""`cartpole` against gymnasium's CartPole-v1 (a test dependency): in float64, 200 steps replaying
+-1 actions from the same state equal gymnasium's float64 state to 1e-9 (gymnasium keeps stepping
past its bounds, as the raw physics does here); in float32, one step from 10,000 states equals it
to 1e-6. Both variants (discrete pushes and continuous forces), the family contract on both and on
dynamics that change inside a trial (checkers shared with test_tasks), the model functions, the
frictions of the extension, and the task distribution's role."""

from __future__ import annotations

import math
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import FamilyContract, shared_contract

from metarlkit import tasks
from metarlkit.tasks import distributions as D
from metarlkit.tasks.cartpole import CartPoleState

pytestmark = pytest.mark.usefixtures("fast_compile")

NOMINAL = {"masscart": 1.0, "masspole": 0.1, "length": 0.5, "friction_cart": 0.0, "friction_pole": 0.0}
THETA_LIMIT = 12 * 2 * math.pi / 360
VARIANTS = ("discrete", "continuous")
CONTRACT_SPECS = ("cartpole", "cartpole:variant=continuous", "cartpole:change_at=250,change_spread=500")


def gym_cartpole(seed=0):
    env = gymnasium.make("CartPole-v1").unwrapped
    env.reset(seed=seed)
    return env


def as_task(dtype=jnp.float32, **changes):
    return {k: jnp.asarray(v, dtype) for k, v in {**NOMINAL, **changes}.items()}


def gym_fallen(q):
    q = np.asarray(q, np.float64)
    return (np.abs(q[..., 0]) > 2.4) | (np.abs(q[..., 2]) > THETA_LIMIT)


def forces(pushes, variant):
    """gymnasium's actions (0 left, 1 right) as the variant's actions: +-1 give the same forces."""
    if variant == "discrete":
        return np.asarray(pushes, np.int32)
    return (2.0 * np.asarray(pushes) - 1.0)[:, None].astype(np.float32)


# --- the family contract (the checkers, so their compiled programs, are shared with test_tasks) ---


@pytest.fixture(scope="module", params=CONTRACT_SPECS)
def contract(request):
    return shared_contract(tasks.from_spec(request.param))


@pytest.mark.parametrize("check", FamilyContract.CHECKS)
def test_family_contract(contract, check):
    getattr(contract, check)()


# --- equal to gymnasium ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_float64_rollout_equals_gymnasiums(variant):
    family = tasks.make("cartpole", variant=variant)
    env = gym_cartpole()
    rng = np.random.default_rng(0)
    pushes = rng.integers(0, 2, 200)  # gymnasium's actions: 0 left, 1 right
    start = env.state.copy()
    want = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping past termination: gymnasium warns, the physics goes on
        for a in pushes:
            env.step(int(a))
            want.append(env.state.copy())
    with jax.enable_x64(True):
        task = as_task(jnp.float64)

        def body(state, a):
            obs, state, reward, done, info = family.step(None, state, a, task)
            return state, (obs, reward, info.terminated)

        state = CartPoleState(jnp.asarray(start, jnp.float64), jnp.int32(0))
        _, (obs, reward, terminated) = jax.lax.scan(body, state, jnp.asarray(forces(pushes, variant)))
        assert obs.dtype == jnp.float64
    np.testing.assert_allclose(obs, np.asarray(want), rtol=0, atol=1e-9)
    assert np.all(np.asarray(reward) == 1.0)
    # terminated exactly where gymnasium's bounds say so
    fallen = gym_fallen(want)
    np.testing.assert_array_equal(np.asarray(terminated), fallen)
    assert fallen.any() and not fallen[0]  # the random pushes do topple it: both branches are compared


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_float32_step_from_10000_states_equals_gymnasiums(variant):
    family = tasks.make("cartpole", variant=variant)
    env = gym_cartpole(seed=1)
    rng = np.random.default_rng(1)
    states = rng.uniform([-2.4, -3, -0.2, -3], [2.4, 3, 0.2, 3], (10_000, 4))  # inside the bounds
    pushes = rng.integers(0, 2, 10_000)
    want, want_terminated = [], []
    for s, a in zip(states, pushes):
        env.state = s.copy()
        env.steps_beyond_terminated = None
        obs, reward, terminated, truncated, _ = env.step(int(a))  # float32 observation
        assert reward == 1.0 and not truncated
        want.append(obs)
        want_terminated.append(terminated)
    task = as_task()
    step = jax.jit(jax.vmap(lambda q, a: family.step(None, CartPoleState(q, jnp.int32(0)), a, task)))
    obs, _, reward, done, info = step(jnp.asarray(states, jnp.float32), jnp.asarray(forces(pushes, variant)))
    assert obs.dtype == jnp.float32
    want = np.asarray(want)
    np.testing.assert_allclose(np.asarray(obs), want, rtol=0, atol=1e-6)
    assert np.all(np.asarray(reward) == 1.0)
    # the bounds: the same verdict except where float32 rounding straddles them
    clear = (np.abs(np.abs(want[:, 0]) - 2.4) > 1e-5) & (np.abs(np.abs(want[:, 2]) - THETA_LIMIT) > 1e-5)
    np.testing.assert_array_equal(np.asarray(info.terminated)[clear], np.asarray(want_terminated)[clear])
    np.testing.assert_array_equal(np.asarray(done), np.asarray(info.terminated))  # t = 1: no time limit
    assert 0 < np.mean(want_terminated) < 0.5


def test_episode_ends_when_the_pole_falls_or_at_500_steps():
    family = tasks.make("cartpole")
    task = as_task()
    tilted = CartPoleState(jnp.float32([0.0, 0.0, 0.2, 0.5]), jnp.int32(3))
    _, _, reward, done, info = family.step(None, tilted, jnp.int32(1), task)
    assert bool(done) and bool(info.terminated) and float(reward) == 1.0  # the falling step pays 1
    assert float(info.expected_reward) == 1.0 and math.isnan(float(info.optimal_expected_reward))
    upright = CartPoleState(jnp.zeros(4, jnp.float32), jnp.int32(499))
    _, state, _, done, info = family.step(None, upright, jnp.int32(1), task)
    assert bool(done) and not bool(info.terminated) and int(state.t) == 500  # the time limit truncates
    assert family.horizon == 500 and family.num_actions == 2 and family.ends_early and family.obs_shape == (4,)
    assert family.defines_model and not family.defines_optimum and not family.defines_pseudo_regret
    cont = tasks.from_spec("cartpole:variant=continuous")
    assert cont.continuous and cont.action_size == 1 and cont.action_bounds == (-1.0, 1.0)
    assert cont.describe_actions() == "continuous, R^1 in [-1, 1]" and family.describe_actions() == "2 discrete"
    # a continuous action outside the box pushes with the full force, no more
    pushed = [cont.step(None, upright, jnp.float32([a]), task)[0] for a in (1.0, 5.0, 0.5)]
    np.testing.assert_array_equal(pushed[0], pushed[1])
    assert float(pushed[2][1]) == pytest.approx(float(pushed[0][1]) / 2, rel=1e-5)
    with pytest.raises(tasks.ActionSpaceError):
        family.action_size  # noqa: B018
    with pytest.raises(ValueError, match="variant must be one of discrete, continuous"):
        tasks.from_spec("cartpole:variant=analog")


def test_episodes_start_uniform_in_the_small_box():
    family = tasks.make("cartpole")
    obs, state = jax.jit(jax.vmap(family.reset, in_axes=(0, None)))(
        jax.random.split(jax.random.PRNGKey(3), 4000), as_task())
    obs = np.asarray(obs)
    assert obs.dtype == np.float32 and obs.shape == (4000, 4)
    np.testing.assert_array_equal(obs, np.asarray(state.q))
    assert np.all(np.asarray(state.t) == 0) and state.t.dtype == jnp.int32
    assert obs.min() >= -0.05 and obs.max() <= 0.05
    np.testing.assert_allclose(obs.std(0), 0.1 / np.sqrt(12), rtol=0.05)  # uniform, each coordinate


# --- the model functions ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_functions_agree_with_the_step_on_random_transitions(variant):
    """dynamics_fn, reward_fn and terminated_fn equal the step's next observation, reward and
    terminated on random states (both sides of the bounds), actions (continuous: in and outside the
    box) and tasks with frictions."""
    family = tasks.make("cartpole", variant=variant)
    n = 2000
    rng = np.random.default_rng(2)
    states = rng.uniform([-3, -3, -0.3, -3], [3, 3, 0.3, 3], (n, 4)).astype(np.float32)
    pushes = rng.integers(0, 2, n)
    actions = pushes.astype(np.int32) if variant == "discrete" else rng.uniform(-2, 2, (n, 1)).astype(np.float32)
    rough = D.TaskDistribution({**family.distribution().params, "friction_cart": D.uniform(0.0, 0.5),
                                "friction_pole": D.uniform(0.0, 0.01)})

    def one(key, q, a):
        task = family.sample_task(key, rough)
        obs, state, reward, done, info = family.step(None, CartPoleState(q, jnp.int32(7)), a, task)
        model = (family.dynamics_fn(q, a, task), family.reward_fn(q, a, obs, task),
                 family.terminated_fn(q, a, obs, task))
        return (obs, reward, done, info.terminated), model

    keys = jax.random.split(jax.random.PRNGKey(4), n)
    (obs, reward, done, terminated), (model_obs, model_reward, model_terminated) = jax.tree_util.tree_map(
        np.asarray, jax.jit(jax.vmap(one))(keys, states, actions))
    np.testing.assert_allclose(model_obs, obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model_reward, reward)
    assert np.all(reward == 1.0) and model_reward.dtype == np.float32
    np.testing.assert_array_equal(model_terminated, terminated)
    np.testing.assert_array_equal(terminated, gym_fallen(obs))
    np.testing.assert_array_equal(done, terminated)  # t = 8 < 500
    assert 0.2 < terminated.mean() < 0.8


# --- the task distribution and the parameters ------------------------------------------------------


def test_parameters_come_from_the_distribution():
    family = tasks.make("cartpole")
    nominal = D.TaskDistribution({k: D.uniform(v, v) for k, v in NOMINAL.items()})
    task = jax.jit(family.sample_task)(jax.random.PRNGKey(0), nominal)
    assert {k: float(v) for k, v in task.items()} == pytest.approx(NOMINAL)
    assert {k: float(v) for k, v in family.nominal_task().items()} == pytest.approx(NOMINAL)
    assert tasks.task_set(tasks.from_spec("cartpole:nominal=true"), "test", 3)["masspole"].tolist() == \
        pytest.approx([0.1] * 3)
    drawn = jax.jit(jax.vmap(family.sample_task))(jax.random.split(jax.random.PRNGKey(1), 2000))
    assert set(drawn) == set(NOMINAL)
    for name in ("masscart", "masspole", "length"):
        x = np.asarray(drawn[name]) / NOMINAL[name]
        assert x.min() >= 1 / 1.5 - 1e-5 and x.max() <= 1.5 + 1e-5 and x.std() > 0.1
        assert abs(np.mean(np.log(x) / np.log(1.5))) < 0.05  # log-uniform: the exponent centred on 0
    assert np.all(np.asarray(drawn["friction_cart"]) == 0) and np.all(np.asarray(drawn["friction_pole"]) == 0)
    assert family.default_distribution().describe()["masspole"] == {
        "kind": "log_uniform", "nominal": pytest.approx(0.1), "base": 1.5, "low": -1.0, "high": 1.0}


@pytest.fixture(scope="module")
def one_step():
    """One step of the continuous variant (force = 10 x action) from a state, under a task."""
    family = tasks.make("cartpole", variant="continuous")
    step = jax.jit(lambda q, a, task: family.step(None, CartPoleState(q, jnp.int32(0)), a, task)[0])

    def run(q, push=0.0, **changes):
        return np.asarray(step(jnp.float32(q), jnp.float32([push]), as_task(**changes)), np.float64)

    return run


def test_each_parameter_acts_as_the_physics_says(one_step):
    g, tau = 9.8, 0.02
    # Free fall from 0.1 rad at rest, no push: theta_acc = g sin(theta) / (l (4/3 - m_p cos^2 / M)),
    # and the cart recoils: x_acc = -m_p l theta_acc cos(theta) / M.
    theta = 0.1
    falls = {}
    for m_c, m_p, length in ((1.0, 0.1, 0.5), (1.0, 0.15, 0.5), (0.67, 0.1, 0.5), (1.0, 0.1, 0.75), (1.0, 0.1, 0.33)):
        q = one_step([0.0, 0.0, theta, 0.0], masscart=m_c, masspole=m_p, length=length)
        total = m_c + m_p
        theta_acc = g * math.sin(theta) / (length * (4 / 3 - m_p * math.cos(theta) ** 2 / total))
        x_acc = -m_p * length * theta_acc * math.cos(theta) / total
        assert q[3] == pytest.approx(tau * theta_acc, rel=1e-5) and q[1] == pytest.approx(tau * x_acc, rel=1e-5)
        np.testing.assert_allclose(q[[0, 2]], [0.0, theta], atol=1e-7)  # Euler: positions move next step
        falls[(m_c, m_p, length)] = q
    base = falls[(1.0, 0.1, 0.5)]
    assert falls[(1.0, 0.1, 0.75)][3] < base[3] < falls[(1.0, 0.1, 0.33)][3]  # a longer pole falls slower
    assert falls[(1.0, 0.15, 0.5)][3] > base[3]  # a heavier pole (on the same cart) falls faster
    assert falls[(1.0, 0.15, 0.5)][1] < base[1] < 0  # ... and throws the cart back harder
    assert falls[(0.67, 0.1, 0.5)][3] > base[3]  # so does a lighter cart
    # Under the same push from rest, upright: a heavier cart or pole accelerates less.
    rest = [0.0, 0.0, 0.0, 0.0]
    pushed = one_step(rest, 1.0)
    assert pushed[1] > 0 and pushed[3] < 0  # the cart moves right, the pole tips left
    assert one_step(rest, 1.0, masscart=1.5)[1] < pushed[1] and one_step(rest, 1.0, masspole=0.15)[1] < pushed[1]


def test_the_frictions_change_the_dynamics_and_vanish_at_zero(one_step):
    moving = [0.1, 1.0, 0.05, 0.5]  # the cart moves right, the pole turns right
    base = one_step(moving, 1.0)
    np.testing.assert_array_equal(one_step(moving, 1.0, friction_cart=0.0, friction_pole=0.0), base)
    # Cart friction opposes the cart's motion (whichever way it moves) and, through the cart, tips
    # the pole forward; pole friction slows the pole's turn.
    with_cart = one_step(moving, 1.0, friction_cart=1.0)
    assert with_cart[1] < base[1] and with_cart[3] > base[3]
    backwards = [0.1, -1.0, 0.05, 0.5]
    assert one_step(backwards, 1.0, friction_cart=1.0)[1] > one_step(backwards, 1.0)[1]
    with_pole = one_step(moving, 1.0, friction_pole=0.01)
    assert with_pole[3] < base[3]
    # Barto, Sutton & Anderson (1983), their equations as written.
    g, tau, m_c, m_p, length, mu_c, mu_p = 9.8, 0.02, 1.0, 0.1, 0.5, 0.3, 0.005
    x, x_dot, theta, theta_dot = moving
    force, total = 10.0, m_c + m_p
    theta_acc = (g * math.sin(theta) + math.cos(theta) * (-force - m_p * length * theta_dot**2 * math.sin(theta)
                                                           + mu_c * np.sign(x_dot)) / total
                 - mu_p * theta_dot / (m_p * length)) / (length * (4 / 3 - m_p * math.cos(theta) ** 2 / total))
    x_acc = (force + m_p * length * (theta_dot**2 * math.sin(theta) - theta_acc * math.cos(theta))
             - mu_c * np.sign(x_dot)) / total
    want = [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc]
    np.testing.assert_allclose(one_step(moving, 1.0, friction_cart=mu_c, friction_pole=mu_p), want, rtol=1e-5)


def test_every_episode_of_a_trial_runs_the_trials_task():
    """Auto-reset keeps the task (the contract's own check skips a random start state): in a
    16-episode trial of random pushes, every episode starts anew in the small box, falls before the
    time limit, and steps under the trial's task (a light cart, heavy long pole), not the nominal one."""
    family = tasks.make("cartpole")
    c = shared_contract(family)  # its compiled trial (the contract tests compile it)
    task = {k: np.float32(v) for k, v in {**NOMINAL, "masscart": 0.7, "masspole": 0.15, "length": 0.7}.items()}
    rec = c.trial(task, c.params(c.random_script(40)))
    v = rec.valid
    assert np.all(v[:, 0]) and np.all(v.sum(1) < family.horizon)
    assert np.all(rec.terminated.sum(1) == 1) and not rec.truncated.any()
    starts = rec.obs[:, 0]
    assert np.all(np.abs(starts) <= 0.05) and len({s.tobytes() for s in starts}) == len(starts)
    replay = jax.jit(jax.vmap(family.dynamics_fn, in_axes=(0, 0, None)))
    obs, action = rec.obs.reshape(-1, 4), rec.action.reshape(-1)
    for t, close in ((task, True), (as_task(), False)):
        got = np.asarray(replay(obs, action, {k: jnp.float32(x) for k, x in t.items()}))
        assert np.allclose(got[v.reshape(-1)], rec.next_obs[v], rtol=1e-5, atol=1e-5) == close
