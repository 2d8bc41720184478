"""`pendulum` against gymnasium's Pendulum-v1 (a test dependency): in float64 a 200-step rollout
under the same actions from the same state equals gymnasium's (its float64 state and rewards) to
1e-9; in float32, one step from
10,000 gymnasium states equals it to 1e-6. Plus the task distribution's role."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.tasks import distributions as D
from metarlkit.tasks.control import PendulumState

pytestmark = pytest.mark.usefixtures("fast_compile")


@pytest.fixture(scope="module")
def family():
    return tasks.make("pendulum")


def gym_pendulum(seed=0):
    env = gymnasium.make("Pendulum-v1").unwrapped
    env.reset(seed=seed)
    return env


def test_a_float64_rollout_equals_gymnasiums(family):
    env = gym_pendulum()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-2.5, 2.5, (200, 1))  # some outside the box: both clip
    start = env.state.copy()
    want_obs, want_reward = [], []
    for a in actions:
        _, reward, *_ = env.step(a)  # its observation is rounded to float32: compare its state
        th, thdot = env.state
        want_obs.append([np.cos(th), np.sin(th), thdot])
        want_reward.append(reward)
    with jax.enable_x64(True):
        task = {k: jnp.float64(v) for k, v in {"mass": 1.0, "length": 1.0, "damping": 0.0}.items()}

        def body(state, a):
            obs, state, reward, done, _ = family.step(None, state, a, task)
            return state, (obs, reward, done)

        state = PendulumState(jnp.float64(start[0]), jnp.float64(start[1]), jnp.int32(0))
        _, (obs, reward, done) = jax.lax.scan(body, state, jnp.asarray(actions, jnp.float64))
        assert obs.dtype == jnp.float64
    np.testing.assert_allclose(obs, np.asarray(want_obs), rtol=0, atol=1e-9)
    np.testing.assert_allclose(reward, np.asarray(want_reward), rtol=0, atol=1e-9)
    assert not np.any(done[:-1]) and done[-1]  # the 200-step time limit, as gymnasium's TimeLimit


def test_one_float32_step_from_10000_gymnasium_states_equals_it(family):
    env = gym_pendulum(seed=1)
    rng = np.random.default_rng(1)
    states = np.stack([rng.uniform(-np.pi, np.pi, 10_000), rng.uniform(-8, 8, 10_000)], axis=1)
    actions = rng.uniform(-2, 2, (10_000, 1))
    want_obs, want_reward = [], []
    for s, a in zip(states, actions):
        env.state = s.copy()
        obs, reward, *_ = env.step(a)
        want_obs.append(obs)
        want_reward.append(reward)
    task = family.nominal_task()
    step = jax.jit(jax.vmap(lambda s, a: family.step(None, PendulumState(s[0], s[1], jnp.int32(0)), a, task)[0:3:2]))
    obs, reward = step(jnp.float32(states), jnp.float32(actions))
    np.testing.assert_allclose(obs, np.asarray(want_obs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reward, np.asarray(want_reward), rtol=1e-6, atol=1e-5)


def test_tasks_come_from_a_distribution_that_moves_without_recompiling(family):
    sample = jax.jit(family.sample_task)
    nominal = D.TaskDistribution({"mass": D.uniform(1.0, 1.0), "length": D.uniform(1.0, 1.0),
                                  "damping": D.uniform(0.0, 0.0)})
    task = sample(jax.random.PRNGKey(0), nominal)
    assert {k: float(v) for k, v in task.items()} == {"mass": 1.0, "length": 1.0, "damping": 0.0}
    tasks_ = jax.vmap(family.sample_task)(jax.random.split(jax.random.PRNGKey(1), 2000))
    for name in ("mass", "length"):
        x = np.asarray(tasks_[name])
        assert x.min() >= 1 / 1.5 - 1e-5 and x.max() <= 1.5 + 1e-5 and x.std() > 0.1
    assert np.all(np.asarray(tasks_["damping"]) == 0.0)
    # heavier and longer poles respond less to the same torque
    light, heavy = ({"mass": jnp.float32(m), "length": jnp.float32(1.0), "damping": jnp.float32(0.0)} for m in (0.7, 1.5))
    state = PendulumState(jnp.float32(0.0), jnp.float32(0.0), jnp.int32(0))
    push = [float(family.step(None, state, jnp.float32([2.0]), t)[1].theta_dot) for t in (light, heavy)]
    assert push[0] > push[1] > 0


def test_every_episode_of_a_trial_runs_the_trials_task(family):
    """Auto-reset keeps the task: each recorded transition of a 3-episode trial is the family's
    step under that trial's task (a heavy, long pole), not under the nominal one."""
    from metarlkit import baselines
    from metarlkit.trial import run_trial

    agent = baselines.resolve("random", family, 3)
    task = {"mass": jnp.float32(1.5), "length": jnp.float32(1.5), "damping": jnp.float32(0.0)}
    rec = jax.jit(lambda t: run_trial(family, agent.agent, agent.params, t, jax.random.PRNGKey(0),
                                      jax.random.PRNGKey(1), 3, transitions=True))(task)
    obs, act, nxt = (np.asarray(x).reshape((-1,) + np.shape(x)[2:]) for x in (rec.obs, rec.action, rec.next_obs))

    def replay(o, a, t):
        state = PendulumState(jnp.arctan2(o[1], o[0]), o[2], jnp.int32(0))
        return family.step(None, state, a, t)[0]

    for t, close in ((task, True), (family.nominal_task(), False)):
        got = np.asarray(jax.jit(jax.vmap(lambda o, a: replay(o, a, t)))(obs, act))
        assert np.allclose(got, nxt, atol=1e-4) == close


# --- dynamics that change inside a trial ---------------------------------------------------------


def test_a_change_switches_the_parameters_at_its_trial_step_in_any_episode():
    """`change_at` (+ `change_spread`): each task holds a second parameter set and a change step
    uniform in [at, at + spread]; `task_at` gives the first set before it and the second from it,
    across episode boundaries (trial step e * horizon + t), and trials step under it."""
    from metarlkit import baselines
    from metarlkit.trial import run_trial

    family = tasks.from_spec("pendulum:change_at=250,change_spread=100")
    assert family.spec() == "pendulum:change_at=250,change_spread=100" and tasks.make("pendulum").spec() == "pendulum"
    drawn = jax.jit(jax.vmap(family.sample_task))(jax.random.split(jax.random.PRNGKey(0), 4000))
    steps = np.asarray(drawn["change_step"])
    assert steps.min() == 250 and steps.max() == 350 and len(np.unique(steps)) == 101
    assert not np.allclose(drawn["mass"], drawn["after"]["mass"])
    task = {"mass": jnp.float32(1.0), "length": jnp.float32(1.0), "damping": jnp.float32(0.0),
            "after": {"mass": jnp.float32(0.5), "length": jnp.float32(1.0), "damping": jnp.float32(0.0)},
            "change_step": jnp.int32(260)}
    assert float(family.task_at(task, 259)["mass"]) == 1.0 and float(family.task_at(task, 260)["mass"]) == 0.5
    agent = baselines.resolve("random", family, 2)
    rec = jax.jit(lambda t: run_trial(family, agent.agent, agent.params, t, jax.random.PRNGKey(0),
                                      jax.random.PRNGKey(1), 2, transitions=True))(task)
    obs, act, nxt = (np.asarray(x).reshape((-1,) + np.shape(x)[2:]) for x in (rec.obs, rec.action, rec.next_obs))

    def replay(o, a, mass):
        state = PendulumState(jnp.arctan2(o[1], o[0]), o[2], jnp.int32(0))
        return family.step(None, state, a, {**family.parameters(task), "mass": mass})[0]

    masses = np.where(np.arange(400) >= 260, 0.5, 1.0).astype(np.float32)  # episode 2 starts at step 200
    got = np.asarray(jax.jit(jax.vmap(replay))(obs, act, masses))
    np.testing.assert_allclose(got, nxt, atol=1e-5)
    wrong = np.asarray(jax.jit(jax.vmap(replay))(obs, act, np.ones(400, np.float32)))
    assert not np.allclose(wrong[260:], nxt[260:], atol=1e-4)


def test_change_options_are_checked():
    for spec, message in (("pendulum:change_spread=5", "change_spread needs change_at"),
                          ("pendulum:change_at=-1", "change_at must be")):
        with pytest.raises(ValueError, match=message):
            tasks.from_spec(spec)


def test_the_change_steps_are_reported_and_the_distribution_is_in_provenance_and_hash(monkeypatch):
    from metarlkit import baselines, evaluate
    from metarlkit.tasks.tasksets import task_set_hash

    family = tasks.from_spec("pendulum:change_at=100,change_spread=50")
    agent = baselines.resolve("random", family, 1)
    res = evaluate(agent.agent, family, agent.params, num_episodes=1, num_tasks=6, chunk_size=6)
    out = res.summary()
    want = np.asarray(tasks.task_set(family, "test", 6)["change_step"])
    assert out["change_steps"] == want.tolist() and all(100 <= s <= 150 for s in out["change_steps"])
    assert out["provenance"]["task_distribution"]["mass"] == {
        "kind": "log_uniform", "nominal": 1.0, "base": 1.5, "low": -1.0, "high": 1.0}
    assert "change_steps" not in evaluate(agent.agent, tasks.make("pendulum"), agent.params, num_episodes=1,
                                          num_tasks=6, chunk_size=6).summary()
    # the distribution is part of the task-set hash, beside the tasks it drew
    before = task_set_hash(tasks.make("pendulum"), "test", 4)
    wider = tasks.make("pendulum").default_distribution()
    wider = D.TaskDistribution({**wider.params, "damping": D.uniform(0.0, 0.0)})  # same values, other record
    monkeypatch.setattr(type(tasks.make("pendulum")), "default_distribution",
                        lambda self: D.TaskDistribution({**wider.params, "damping": D.uniform(0.0, 1e-30)}))
    assert task_set_hash(tasks.make("pendulum"), "test", 4) != before


def test_nominal_true_makes_every_task_the_nominal_one():
    family = tasks.from_spec("pendulum:nominal=true")
    drawn = tasks.task_set(family, "test", 5)
    for name, value in family.nominal_task().items():
        np.testing.assert_array_equal(drawn[name], np.full(5, float(value), np.float32))
    assert family.spec() == "pendulum:nominal=true" and tasks.from_spec(family.spec()) == family
    from metarlkit.tasks.tasksets import task_set_hash
    assert task_set_hash(family, "test", 5) != task_set_hash(tasks.make("pendulum"), "test", 5)


def test_spread_sets_the_log_uniform_range():
    for spec, factor in (("pendulum:spread=3", 1.5**3), ("pendulum:spread=0", 1.0), ("pendulum", 1.5)):
        mass = np.asarray(tasks.task_set(tasks.from_spec(spec), "test", 2000)["mass"])
        assert mass.min() >= 1 / factor - 1e-5 and mass.max() <= factor + 1e-5
        assert mass.max() > 0.9 * factor and mass.min() < 1.1 / factor
    assert tasks.from_spec("pendulum:spread=1").spec() == "pendulum"  # the default stays out of the spec
    with pytest.raises(ValueError, match="spread applies to pendulum and cartpole"):
        tasks.from_spec("point-robot-wind:spread=2")
