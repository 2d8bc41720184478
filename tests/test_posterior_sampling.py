"""The `posterior-sampling` reference agent on the sparse point robot: the remaining goal set never
loses the true goal, a found goal is gone to straight in every later episode, success per episode
through the CLI, the two resampling modes, and the one-line refusal of other families."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import baselines, evaluate, tasks
from metarlkit.agents import Transition
from metarlkit.baselines import posterior_sampling as ps
from metarlkit.cli import main
from metarlkit.specs import SpecError
from metarlkit.tasks.navigation import PointState, oyster_goals

pytestmark = pytest.mark.usefixtures("fast_compile")

SPARSE = "point-navigation:variant=sparse"
EPISODES = 10
NUM_TASKS = 50  # one chunk of the evaluator: the CLI test and the fixture share its program


@pytest.fixture(scope="module")
def family():
    return tasks.from_spec(SPARSE)


@pytest.fixture(scope="module")
def result(family):
    r = baselines.resolve("posterior-sampling", family, EPISODES)
    return evaluate(r.agent, family, r.params, num_episodes=EPISODES, num_tasks=NUM_TASKS, name=r.spec)


def true_cell(goal: np.ndarray) -> np.ndarray:
    """Index of the grid cell holding each goal [..., 2] (cells are centred on the grid angles)."""
    angle = np.clip(np.arctan2(goal[..., 1], goal[..., 0]), 0.0, np.pi)
    return np.rint(angle / (np.pi / (ps.GRID_SIZE - 1))).astype(np.int64)


def test_the_true_goal_is_never_ruled_out(family):
    # 300 random goals, the two ends of the arc and PEARL's 100 goals, each observed at 60 random
    # steps through the family's own `step` (half of them starting near the goal, so both zero and
    # positive rewards occur), fed to `observe` one after another.
    num_random, steps = 300, 60
    angles = jax.random.uniform(jax.random.PRNGKey(0), (num_random,), minval=0.0, maxval=jnp.pi)
    goals = jnp.concatenate([
        jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1),
        jnp.asarray([[1.0, 0.0], [-1.0, 0.0]]),
        jnp.asarray(oyster_goals()),
    ]).astype(jnp.float32)
    agent = baselines.prepare("posterior-sampling", family, EPISODES).agent

    def one_goal(goal, key):
        task = {"goal": goal}

        def body(state, key):
            key_near, key_far, key_which, key_move = jax.random.split(key, 4)
            offset = jax.random.uniform(key_near, ()) * 0.3
            phase = jax.random.uniform(key_near, (), minval=0.0, maxval=2 * jnp.pi)
            near = goal + offset * jnp.stack([jnp.cos(phase), jnp.sin(phase)])
            far = jax.random.uniform(key_far, (2,), minval=jnp.array([-1.2, -0.3]), maxval=jnp.array([1.2, 1.3]))
            start = jnp.where(jax.random.bernoulli(key_which), near, far)
            action = jax.random.uniform(key_move, (2,), minval=-0.1, maxval=0.1)
            next_obs, _, reward, done, _ = family.step(None, PointState(start, jnp.int32(0)), action, task)
            state = agent.observe({}, state, Transition(start, action, reward, next_obs, done))
            return state, (state.alive, reward)

        state = agent.init({}, key, EPISODES)
        return jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    keys = jax.random.split(jax.random.PRNGKey(1), goals.shape[0])
    alive, rewards = jax.jit(jax.vmap(one_goal))(goals, keys)  # [N, T, G], [N, T]
    alive, rewards, goals = np.asarray(alive), np.asarray(rewards), np.asarray(goals)
    cell = true_cell(goals)
    assert alive[np.arange(len(goals)), :, cell].all()
    # Not vacuous: zero rewards rule cells out, and positive ones pin the goal down (every cell left
    # lies within 0.2 of a rewarded position, itself within 0.2 of the goal).
    assert (rewards > 0).any(1).mean() > 0.9 and (rewards == 0).any(1).all()
    assert alive[:, -1].sum(-1).max() < ps.GRID_SIZE // 2
    grid = np.asarray(ps.grid_goals())
    pinned = (rewards > 0).any(1)
    for goal, mask in zip(goals[pinned], alive[pinned, -1]):
        assert np.linalg.norm(grid[mask] - goal, axis=-1).max() <= 0.4 + 2 * ps.CELL_HALF_WIDTH


def test_a_found_goal_is_gone_to_straight_in_every_later_episode(result):
    success = result.successes.astype(bool)  # [task, episode]
    found = success.any(1)
    assert found.all()  # 10 episodes cover the arc on these 50 tasks
    first = success.argmax(1)
    later = np.arange(EPISODES)[None] > first[:, None]
    assert success[later].all()
    # Straight there: later episodes score (almost) the optimal return of the task.
    gap = (result.optimal_return[:, None] - result.returns)[later]
    assert np.median(gap) < 0.05 and gap.max() < 1.0, (np.median(gap), gap.max())


def test_success_per_episode_rises_through_the_cli(tmp_path, result):
    out = tmp_path / "ps.json"
    code = main(["evaluate", "--agent", "posterior-sampling", "--task", SPARSE, "--episodes", str(EPISODES),
                 "--num-tasks", str(NUM_TASKS), "--json", str(out)])
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["agent"] == "posterior-sampling:resample=step"
    success = np.array([e["mean"] for e in summary["per_episode_success"]])
    np.testing.assert_allclose(success, result.successes.mean(0))  # the CLI is the evaluator
    assert np.all(np.diff(success) >= 0)  # once found, a goal stays found
    assert success[0] < 0.6 and success[0] + 0.2 < success[2]
    assert success[5:].mean() >= 0.95, success


@pytest.mark.parametrize("mode", ps.RESAMPLE)
def test_a_ruled_out_goal_is_redrawn_at_once_only_with_resample_step(family, mode):
    agent = ps.posterior_sampling_agent(family, mode)
    alive = jnp.zeros(ps.GRID_SIZE, bool).at[100].set(True)
    state = ps.PosteriorSamplingState(alive, jnp.int32(300))  # following a ruled-out cell
    action, acted = agent.act({}, state, jnp.zeros(2), jax.random.PRNGKey(0))
    expected = 100 if mode == "step" else 300
    assert int(acted.target) == expected
    np.testing.assert_allclose(action, np.clip(np.asarray(ps.grid_goals())[expected], -0.1, 0.1), atol=1e-6)
    # A new episode always draws from the cells left.
    assert int(agent.end_episode({}, state, 0, jax.random.PRNGKey(1)).target) == 100


def test_runs_on_the_oyster_goals_and_refuses_other_families_in_one_line(capsys):
    assert baselines.get("posterior-sampling").supports(tasks.from_spec(SPARSE + ",goals=oyster")) is None
    with pytest.raises(SpecError) as err:
        baselines.prepare("posterior-sampling", tasks.from_spec("point-navigation:variant=dense"), EPISODES)
    assert str(err.value) == (
        "agent 'posterior-sampling' cannot run on point-navigation: it samples goals of the sparse point "
        "robot, not variant=dense; use variant=sparse (goals=random or goals=oyster)")
    code = main(["evaluate", "--agent", "posterior-sampling", "--task", "bernoulli-bandit", "--episodes", "2"])
    _, err_text = capsys.readouterr()
    assert code == 2
    assert err_text.splitlines() == [
        "metarlkit: error: agent 'posterior-sampling' cannot run on bernoulli-bandit: it samples goals of the "
        "sparse point robot; use it on point-navigation:variant=sparse (goals=random or goals=oyster)"
    ]
