"""The planner (`metarlkit.planning`) on toy models, and the `mpc` reference agent through the evaluator."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import baselines, evaluate, tasks
from metarlkit.cli import main
from metarlkit.planning import ActionSpace, Model, PlannerConfig, make_planner, sequence_return
from metarlkit.specs import SpecError
from metarlkit.trial import run_trial

pytestmark = pytest.mark.usefixtures("fast_compile")

TARGET = 2.5  # the continuous toy's target position
CONTINUOUS = ActionSpace(box=((-1.0,), (1.0,)))
DISCRETE = ActionSpace(num_actions=3)  # steps of -1, 0, +1


def integrator(target: float, discrete: bool = False) -> Model:
    """x' = x + a (a in [-1, 1], or a - 1 for a discrete index a in {0, 1, 2}), reward -(x' - target)^2."""

    def dynamics(obs, action):
        move = (action - 1).astype(jnp.float32) if discrete else action
        return obs + move

    return Model(dynamics, lambda obs, action, next_obs: -((next_obs[0] - target) ** 2))


@functools.lru_cache(maxsize=None)
def compiled_planner(config: PlannerConfig, space: ActionSpace, target: float):
    planner = make_planner(config, space)
    model = integrator(target, discrete=not space.continuous)
    return planner, jax.jit(lambda state, obs, key: planner.plan(state, obs, key, model))


# --- the planner ---------------------------------------------------------------------------------


def test_sequence_return_discounts_and_stops_at_termination():
    # x' = x + a, reward x', terminal once x' >= 2: rewards 1, 2 (terminal, counted), 3 (not counted).
    model = Model(lambda x, a: x + a, lambda x, a, y: y[0], lambda x, a, y: y[0] >= 2.0)
    actions = jnp.ones((3, 1))
    assert float(sequence_return(model, jnp.zeros(1), actions)) == 3.0
    assert float(sequence_return(model, jnp.zeros(1), actions, discount=0.5)) == 1.0 + 0.5 * 2.0
    no_end = model._replace(terminated=None)
    assert float(sequence_return(no_end, jnp.zeros(1), actions)) == 6.0


@pytest.mark.parametrize("method", ["random", "cem"])
def test_planner_finds_the_optimum_with_continuous_actions(method):
    # From 0 toward 2.5 in steps of at most 1: the best 5-step plan is 1, 1, 0.5, 0, 0, with return
    # -(1.5^2 + 0.5^2) = -2.5, and its first action is the box's edge.
    config = PlannerConfig(method=method, horizon=5, candidates=1000 if method == "random" else 200,
                           iterations=6, elites=20)
    planner, plan = compiled_planner(config, CONTINUOUS, TARGET)
    action, sequence, value, _ = plan(planner.init(), jnp.zeros(1), jax.random.PRNGKey(0))
    assert sequence.shape == (5, 1) and action.shape == (1,)
    assert np.all(np.abs(sequence) <= 1.0)
    assert float(value) == pytest.approx(float(sequence_return(integrator(TARGET), jnp.zeros(1), sequence)))
    tolerance = 0.6 if method == "random" else 0.02
    assert -2.5 - tolerance <= float(value) <= -2.5 + 1e-5
    assert float(action[0]) > (0.5 if method == "random" else 0.95)


@pytest.mark.parametrize("method", ["random", "cem"])
def test_planner_finds_the_optimum_with_discrete_actions(method):
    # Steps of -1, 0, +1 from 0 toward 3: up three times, then stay; return -(2^2 + 1^2) = -5.
    # 3^5 = 243 sequences, one optimal: 1000 uniform draws miss it with probability 1.6%.
    config = PlannerConfig(method=method, horizon=5, candidates=1000 if method == "random" else 300,
                           iterations=4, elites=20)
    planner, plan = compiled_planner(config, DISCRETE, 3.0)
    action, sequence, value, _ = plan(planner.init(), jnp.zeros(1), jax.random.PRNGKey(1))
    assert action.dtype == jnp.int32 and action.shape == ()
    assert float(value) == -5.0
    np.testing.assert_array_equal(sequence, [2, 2, 2, 1, 1])


def test_cem_warm_start_is_the_best_sequence_shifted_by_one_step():
    config = PlannerConfig(method="cem", horizon=4, candidates=50, iterations=2, elites=5)
    planner, plan = compiled_planner(config, CONTINUOUS, TARGET)
    _, sequence, _, state = plan(planner.init(), jnp.zeros(1), jax.random.PRNGKey(2))
    np.testing.assert_allclose(state.mean, np.concatenate([sequence[1:], [[0.0]]]))  # then the box's centre
    # The next call evaluates that warm start, so (deterministic model) it never does worse than it.
    obs = jnp.zeros(1) + sequence[0]
    warm = float(sequence_return(integrator(TARGET), obs, state.mean))
    _, _, value, _ = plan(state, obs, jax.random.PRNGKey(3))
    assert float(value) >= warm - 1e-6

    config = PlannerConfig(method="cem", horizon=4, candidates=50, iterations=2, elites=5)
    planner, plan = compiled_planner(config, DISCRETE, 3.0)
    _, sequence, _, state = plan(planner.init(), jnp.zeros(1), jax.random.PRNGKey(2))
    expected = 0.5 * np.eye(3)[np.asarray(sequence[1:])] + 0.5 / 3
    np.testing.assert_allclose(state.mean, np.concatenate([expected, np.full((1, 3), 1 / 3)]), rtol=1e-6)


def test_random_shooting_carries_no_state():
    config = PlannerConfig(method="random", horizon=4, candidates=20)
    planner, plan = compiled_planner(config, CONTINUOUS, TARGET)
    state = planner.init()
    *_, after = plan(state, jnp.zeros(1), jax.random.PRNGKey(0))
    np.testing.assert_array_equal(after.mean, state.mean)


def test_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="method must be one of random, cem"):
        PlannerConfig(method="mppi")
    with pytest.raises(ValueError, match=r"elites \(30\) must be at most candidates \(20\)"):
        PlannerConfig(candidates=20, elites=30)


# --- the mpc agent -------------------------------------------------------------------------------

CHEAP = "mpc:horizon=5,candidates=50,iterations=3,elites=5"


def run(spec: str, task: str, episodes: int, num_tasks: int):
    family = tasks.from_spec(task)
    r = baselines.resolve(spec, family, episodes)
    return evaluate(r.agent, family, r.params, num_episodes=episodes, num_tasks=num_tasks, name=r.spec)


def test_knobs_are_fixed_defaults_not_tuned():
    r = baselines.resolve("mpc:method=random", tasks.from_spec("pendulum"), 1)
    assert r.tuning is None
    assert r.spec.startswith("mpc:method=random,horizon=")
    assert set(r.hyperparameters) == {"method", "horizon", "candidates", "iterations", "elites"}


def test_mpc_is_close_to_the_oracle_on_dense_navigation():
    mpc = run(CHEAP, "point-navigation:variant=dense", 2, 10)
    oracle = run("oracle", "point-navigation:variant=dense", 2, 10)
    gap = (mpc.total_reward - oracle.total_reward).mean() / 2  # per episode
    assert -0.3 < gap <= 1e-5, gap
    assert mpc.successes.mean() > 0.8


def test_mpc_beats_random_on_pendulum():
    mpc = run("mpc:horizon=15,candidates=30,iterations=2,elites=5", "pendulum", 1, 5)
    rand = run("random", "pendulum", 1, 5)
    assert mpc.total_reward.mean() > -400.0
    assert np.all(mpc.total_reward > rand.total_reward + 300.0), (mpc.total_reward, rand.total_reward)


def test_mpc_keeps_the_discrete_cartpole_up_far_longer_than_random():
    # the discrete planner on a family with early ends (terminated_fn stops a sequence's rewards)
    mpc = run("mpc:horizon=25,candidates=16,iterations=2,elites=4", "cartpole", 1, 2)
    rand = run("random", "cartpole", 1, 2)
    assert np.all(mpc.total_reward > 100) and np.all(rand.total_reward < 60), (mpc.total_reward, rand.total_reward)


def trial_steps(task: str, episodes: int):
    """Per step of one trial: the agent's trial-step counter, the mass it plans with, and validity."""
    family = tasks.from_spec(task)
    agent = baselines.prepare("mpc:horizon=2,candidates=4,iterations=1,elites=1", family, episodes).agent
    task_params = family.sample_task(jax.random.PRNGKey(3))

    def record(state, transition):
        current = family.task_at(state.task, state.step)
        return state.step, current.get("mass", jnp.float32(0.0))

    rec = jax.jit(lambda: run_trial(family, agent, {}, task_params, jax.random.PRNGKey(0),
                                    jax.random.PRNGKey(1), episodes, record))()
    return task_params, rec


def test_mpc_plans_with_the_parameters_after_a_change():
    task, rec = trial_steps("pendulum:change_at=100", 2)
    steps, mass = (np.asarray(x).reshape(-1) for x in rec.extras)
    np.testing.assert_array_equal(steps, np.arange(400))
    change = int(task["change_step"])
    assert change == 100 and float(task["after"]["mass"]) != float(task["mass"])
    np.testing.assert_allclose(mass[:change], float(task["mass"]))
    np.testing.assert_allclose(mass[change:], float(task["after"]["mass"]))


def test_mpc_counts_trial_steps_across_early_episode_ends():
    _, rec = trial_steps("point-navigation:variant=dense", 2)
    steps, valid = np.asarray(rec.extras[0]), np.asarray(rec.valid)
    assert not valid[0].all()  # the first episode ended early in the goal zone
    np.testing.assert_array_equal(steps[1][valid[1]], 100 + np.arange(valid[1].sum()))


def test_mpc_rejects_families_without_a_model(capsys):
    with pytest.raises(SpecError) as err:
        baselines.prepare("mpc", tasks.from_spec("bernoulli-bandit"), 3)
    assert str(err.value) == ("agent 'mpc' cannot run on bernoulli-bandit: bernoulli-bandit declares no model "
                              "of its dynamics (defines_model); mpc plans in the true model")
    code = main(["evaluate", "--agent", "mpc", "--task", "tabular-mdp", "--episodes", "2"])
    _, err_text = capsys.readouterr()
    assert code == 2
    assert err_text.splitlines() == [
        "metarlkit: error: agent 'mpc' cannot run on tabular-mdp: tabular-mdp declares no model of its "
        "dynamics (defines_model); mpc plans in the true model"
    ]


@pytest.mark.parametrize("spec, fragment", [
    ("mpc:method=mppi", "mpc option 'method' must be one of random, cem, got 'mppi'"),
    ("mpc:candidates=5", "agent 'mpc': elites (10) must be at most candidates (5)"),
    ("mpc:horizon=0", "mpc option 'horizon' must be in [1, 1000], got 0"),
])
def test_mpc_rejects_bad_knobs_with_one_line(spec, fragment):
    with pytest.raises(SpecError) as err:
        baselines.prepare(spec, tasks.from_spec("pendulum"), 1)
    assert fragment in str(err.value) and "\n" not in str(err.value)
