"""`cartpole` against gymnasium's CartPole-v1 (a test dependency): in float64, 200 steps replaying
+-1 actions from the same state equal gymnasium's float64 state to 1e-9 (gymnasium keeps stepping
past its bounds, as the raw physics does here); in float32, one step from 10,000 states equals it
to 1e-6. Both variants (discrete pushes and continuous forces), the frictions of the extension, and
the task distribution's role. The family contract runs on both variants in test_tasks."""

from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.tasks import distributions as D
from metarlkit.tasks.cartpole import CartPoleState

pytestmark = pytest.mark.usefixtures("fast_compile")

NOMINAL = {"masscart": 1.0, "masspole": 0.1, "length": 0.5, "friction_cart": 0.0, "friction_pole": 0.0}


def gym_cartpole(seed=0):
    env = gymnasium.make("CartPole-v1").unwrapped
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize("variant", ["discrete", "continuous"])
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
    actions = pushes if variant == "discrete" else (2.0 * pushes - 1.0)[:, None]  # +-1: the same forces
    with jax.enable_x64(True):
        task = {k: jnp.float64(v) for k, v in NOMINAL.items()}

        def body(state, a):
            obs, state, reward, done, info = family.step(None, state, a, task)
            return state, (obs, reward, info.terminated)

        state = CartPoleState(jnp.asarray(start, jnp.float64), jnp.int32(0))
        _, (obs, reward, terminated) = jax.lax.scan(body, state, jnp.asarray(actions))
        assert obs.dtype == jnp.float64
    np.testing.assert_allclose(obs, np.asarray(want), rtol=0, atol=1e-9)
    assert np.all(np.asarray(reward) == 1.0)
    # terminated exactly where gymnasium's bounds say so
    w = np.asarray(want)
    gym_fallen = (np.abs(w[:, 0]) > 2.4) | (np.abs(w[:, 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(np.asarray(terminated), gym_fallen)
    assert gym_fallen.any()  # the random pushes do topple it: both branches are compared


def test_one_float32_step_from_10000_states_equals_gymnasiums():
    family = tasks.make("cartpole")
    env = gym_cartpole(seed=1)
    rng = np.random.default_rng(1)
    states = rng.uniform([-2.4, -3, -0.2, -3], [2.4, 3, 0.2, 3], (10_000, 4))
    pushes = rng.integers(0, 2, 10_000)
    want = []
    for s, a in zip(states, pushes):
        env.state = s.copy()
        env.steps_beyond_terminated = None
        want.append(env.step(int(a))[0])  # float32 observation
    task = {k: jnp.float32(v) for k, v in NOMINAL.items()}
    got = jax.jit(jax.vmap(lambda q, a: family.step(None, CartPoleState(q, jnp.int32(0)), a, task)[0]))(
        jnp.asarray(states, jnp.float32), jnp.asarray(pushes, jnp.int32))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-6)


def test_episode_ends_when_the_pole_falls_or_at_500_steps():
    family = tasks.make("cartpole")
    task = {k: jnp.float32(v) for k, v in NOMINAL.items()}
    tilted = CartPoleState(jnp.float32([0.0, 0.0, 0.2, 0.5]), jnp.int32(3))
    _, _, reward, done, info = family.step(None, tilted, jnp.int32(1), task)
    assert bool(done) and bool(info.terminated) and float(reward) == 1.0  # the falling step pays 1
    upright = CartPoleState(jnp.zeros(4, jnp.float32), jnp.int32(499))
    _, _, _, done, info = family.step(None, upright, jnp.int32(1), task)
    assert bool(done) and not bool(info.terminated)  # the time limit truncates
    assert family.horizon == 500 and family.num_actions == 2 and family.ends_early
    cont = tasks.from_spec("cartpole:variant=continuous")
    assert cont.continuous and cont.action_size == 1 and cont.action_bounds == (-1.0, 1.0)
    # a continuous action outside the box pushes with the full force, no more
    pushed = [cont.step(None, upright, jnp.float32([a]), task)[0] for a in (1.0, 5.0, 0.5)]
    np.testing.assert_array_equal(pushed[0], pushed[1])
    assert float(pushed[2][1]) == pytest.approx(float(pushed[0][1]) / 2, rel=1e-5)
    with pytest.raises(tasks.ActionSpaceError):
        family.action_size  # noqa: B018
    with pytest.raises(ValueError, match="variant must be one of discrete, continuous"):
        tasks.from_spec("cartpole:variant=analog")


def test_parameters_come_from_the_distribution_and_act_as_physics_says():
    family = tasks.make("cartpole")
    nominal = D.TaskDistribution({k: D.uniform(v, v) for k, v in NOMINAL.items()})
    task = jax.jit(family.sample_task)(jax.random.PRNGKey(0), nominal)
    assert {k: float(v) for k, v in task.items()} == pytest.approx(NOMINAL)
    assert tasks.task_set(tasks.from_spec("cartpole:nominal=true"), "test", 3)["masspole"].tolist() == \
        pytest.approx([0.1] * 3)
    drawn = jax.jit(jax.vmap(family.sample_task))(jax.random.split(jax.random.PRNGKey(1), 2000))
    for name in ("masscart", "masspole", "length"):
        x = np.asarray(drawn[name]) / NOMINAL[name]
        assert x.min() >= 1 / 1.5 - 1e-5 and x.max() <= 1.5 + 1e-5 and x.std() > 0.1
    assert np.all(np.asarray(drawn["friction_cart"]) == 0) and np.all(np.asarray(drawn["friction_pole"]) == 0)

    def push(**changes):
        t = {k: jnp.float32(v) for k, v in {**NOMINAL, **changes}.items()}
        state = CartPoleState(jnp.float32([0.0, 1.0, 0.05, 0.5]), jnp.int32(0))
        return np.asarray(family.step(None, state, jnp.int32(1), t)[0])

    base = push()
    assert push(masscart=2.0)[1] < base[1]  # a heavier cart accelerates less under the same push
    assert push(friction_cart=1.0)[1] < base[1]  # cart friction opposes the motion (x_dot > 0)
    assert push(friction_pole=0.01)[3] < base[3]  # pole friction opposes its rotation (theta_dot > 0)
    assert push(length=1.0)[3] != pytest.approx(base[3])
