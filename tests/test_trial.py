"""Trials: the valid mask of early-ending episodes, what the agent is fed, episode indices, fresh
adaptation state per trial, and the scan against a plain Python loop (equivalence test)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import baselines, run_trial, tasks
from metarlkit.agents import AdaptiveAgent, Transition
from metarlkit.tasks.base import StepInfo, TaskFamily
from metarlkit.trial import StepRecord, episode_keys

pytestmark = pytest.mark.usefixtures("fast_compile")

HORIZON = 6
EPISODES = 4


class CountdownState(NamedTuple):
    t: jax.Array  # int32 steps taken in this episode


@dataclasses.dataclass(frozen=True)
class EarlyEnd(TaskFamily):
    """Episodes end after `task["length"]` steps (1..HORIZON), a task-dependent point.

    The observation is [t]; the reward at step t (0-based) is t + 1, so a step the trial should
    have masked out shows up as a non-zero reward. Actions are any integer (the probe agent below
    writes its state into them).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = "test family"

    @property
    def num_actions(self):
        return 2**30

    @property
    def obs_shape(self):
        return (1,)

    @property
    def horizon(self):
        return HORIZON

    def sample_task(self, key):
        return {"length": jax.random.randint(key, (), 1, HORIZON + 1)}

    def reset(self, key, task):
        del key, task
        return jnp.zeros(1, jnp.float32), CountdownState(jnp.int32(0))

    def step(self, key, env_state, action, task):
        del key, action
        t = env_state.t + 1
        reward = t.astype(jnp.float32)
        # An end before the horizon is a true end (terminated); at the horizon, a time limit.
        info = StepInfo(expected_reward=reward, optimal_expected_reward=reward + 1.0,
                        terminated=(t >= task["length"]) & (task["length"] < HORIZON))
        return t.astype(jnp.float32)[None], CountdownState(t), reward, t >= task["length"], info

    def optimal_return(self, task):
        return jnp.float32(0.0)

    def oracle_action(self, task, obs, t):
        return jnp.int32(0)


class ProbeState(NamedTuple):
    count: jax.Array  # observe calls in the trial
    ends: jax.Array  # end_episode calls in the trial
    last: jax.Array  # the last episode_index end_episode received (-1 before any)
    num_episodes: jax.Array  # what init received


def encode(state: ProbeState, obs) -> jax.Array:
    """Everything the agent knows, in one integer action (decoded by `decode`)."""
    return (state.count + 100 * state.ends + 1_000 * (state.last + 1) + 10_000 * state.num_episodes
            + 100_000 * obs[0].astype(jnp.int32))


def decode(action: np.ndarray) -> dict[str, np.ndarray]:
    action = np.asarray(action)
    return {
        "count": action % 100,
        "ends": action // 100 % 10,
        "last": action // 1_000 % 10 - 1,
        "num_episodes": action // 10_000 % 10,
        "obs": action // 100_000,
    }


def probe_agent() -> AdaptiveAgent:
    def init(params, key, num_episodes):
        del params, key
        return ProbeState(jnp.int32(0), jnp.int32(0), jnp.int32(-1), jnp.int32(num_episodes))

    def act(params, state, obs, key):
        del params, key
        return encode(state, obs), state

    def observe(params, state, transition):
        del params
        # The agent must only be fed real steps: the reward of step t is t + 1 >= 1.
        fed_a_real_step = transition.reward >= 1.0
        return state._replace(count=state.count + fed_a_real_step.astype(jnp.int32))

    def end_episode(params, state, episode_index, key):
        del params, key
        return state._replace(ends=state.ends + 1, last=episode_index)

    return AdaptiveAgent(init, act, observe, end_episode)


LENGTHS = np.array([1, 3, HORIZON, 2], np.int32)


@pytest.fixture(scope="module")
def early_records():
    """One compiled, vmapped trial of the probe agent on four tasks of different lengths."""
    family, agent = EarlyEnd(), probe_agent()

    def trial(task, env_key, agent_key):
        return run_trial(family, agent, None, task, env_key, agent_key, EPISODES)

    keys = jax.random.split(jax.random.PRNGKey(0), 2 * len(LENGTHS)).reshape(2, len(LENGTHS), 2)
    records = jax.jit(jax.vmap(trial))({"length": jnp.asarray(LENGTHS)}, keys[0], keys[1])
    return jax.tree_util.tree_map(np.asarray, records)


def test_valid_mask_follows_task_dependent_done(early_records):
    rec = early_records
    assert rec.valid.shape == (len(LENGTHS), EPISODES, HORIZON)
    expected = np.arange(HORIZON)[None, None, :] < LENGTHS[:, None, None]
    np.testing.assert_array_equal(rec.valid, np.broadcast_to(expected, rec.valid.shape))


def test_masked_steps_have_zero_rewards(early_records):
    rec = early_records
    step_reward = np.arange(1, HORIZON + 1, dtype=np.float32)
    np.testing.assert_array_equal(rec.reward, np.where(rec.valid, step_reward, 0.0))
    np.testing.assert_array_equal(rec.expected_reward, rec.reward)
    np.testing.assert_array_equal(rec.optimal_expected_reward, np.where(rec.valid, step_reward + 1, 0.0))
    assert rec.reward.dtype == np.float32


def test_agent_is_fed_only_valid_steps(early_records):
    """The observe count before step (e, t) equals the valid steps before it in the trial; it
    does not move after done, and it carries over episodes (adaptation state persists)."""
    rec = early_records
    seen = decode(rec.action)["count"]
    valid = rec.valid.reshape(len(LENGTHS), -1)
    before = np.cumsum(valid, axis=1) - valid  # valid steps strictly before each step
    np.testing.assert_array_equal(seen.reshape(len(LENGTHS), -1), before)
    # e.g. a task of length 3: counts 0 1 2 3 3 3 | 3 4 5 6 6 6 | ...
    np.testing.assert_array_equal(seen[1, :2], [[0, 1, 2, 3, 3, 3], [3, 4, 5, 6, 6, 6]])


def test_environment_freezes_after_done(early_records):
    """After done the agent keeps seeing the terminal observation: the env state does not move."""
    obs = decode(early_records.action)["obs"]
    t = np.arange(HORIZON)[None, None, :]
    np.testing.assert_array_equal(obs, np.broadcast_to(np.minimum(t, LENGTHS[:, None, None]), obs.shape))


def test_end_episode_gets_episode_indices_in_order(early_records):
    decoded = decode(early_records.action)
    episode = np.arange(EPISODES)[None, :, None]
    np.testing.assert_array_equal(decoded["ends"], np.broadcast_to(episode, decoded["ends"].shape))
    np.testing.assert_array_equal(decoded["last"], np.broadcast_to(episode - 1, decoded["last"].shape))
    assert np.all(decoded["num_episodes"] == EPISODES)


def test_each_trial_starts_fresh(early_records):
    """Every trial (every task of the batch, every call) starts from `init`: the first action of
    the trial reports no observes and no episode ends."""
    first = decode(early_records.action[:, 0, 0])
    assert np.all(first["count"] == 0) and np.all(first["ends"] == 0) and np.all(first["last"] == -1)


# --- equivalence: the scan against a plain Python loop ---------------------------------------------


def reference_trial(family, agent, params, task, env_key, agent_key, num_episodes) -> StepRecord:
    """run_trial written as a Python loop over episodes and steps, every function jitted alone.

    It restates the documented keying: the agent's init key and per-episode keys come from
    `agent_key` split once; episode e resets with, and steps t with fold_in(., t) of, the two
    halves of split(fold_in(env_key, e)) (`trial.episode_keys`); the agent's step keys are
    fold_in(., t) of the first half of split(fold_in(agent_key, e)) and its end-of-episode key
    the second half.
    """
    init, act, observe, end_episode = (jax.jit(f, static_argnums=s) for f, s in (
        (agent.init, (2,)), (agent.act, ()), (agent.observe, ()), (agent.end_episode, ())))
    reset, step = jax.jit(family.reset), jax.jit(family.step)
    key_init, agent_key = jax.random.split(agent_key)
    state = init(params, key_init, num_episodes)
    rows = []
    for e in range(num_episodes):
        reset_key, step_base = episode_keys(env_key, e)
        agent_steps, key_end = jax.random.split(jax.random.fold_in(agent_key, e))
        obs, env_state = reset(reset_key, task)
        alive = True
        for t in range(family.horizon):
            action, next_state = act(params, state, obs, jax.random.fold_in(agent_steps, t))
            if not alive:  # masked step: the agent acts (its choice is recorded) but nothing moves
                rows.append((action, 0.0, False, 0.0, 0.0, None, obs, obs, False, False))
                continue
            next_obs, env_state, reward, done, info = step(jax.random.fold_in(step_base, t), env_state, action, task)
            terminated = bool(done) and bool(info.terminated)
            truncated = bool(done) and not terminated
            state = observe(params, next_state, Transition(obs, action, reward, next_obs, done, terminated, truncated))
            rows.append((action, reward, True, info.expected_reward, info.optimal_expected_reward, None, obs, next_obs,
                         terminated, truncated))
            obs, alive = next_obs, not bool(done)
        state = end_episode(params, state, e, key_end)
    columns = [None if c[0] is None else np.asarray(c).reshape((num_episodes, family.horizon) + np.shape(c[0]))
               for c in zip(*rows)]
    return StepRecord(*columns)


def assert_records_equal(got: StepRecord, want: StepRecord):
    """Every recorded field equal; the transition fields (when recorded) on valid steps only."""
    valid = np.asarray(want.valid)
    for name in (f for f in StepRecord._fields if f != "extras"):
        value = getattr(got, name)
        if value is None:
            continue
        value, expected = np.asarray(value), np.asarray(getattr(want, name))
        if name in ("obs", "next_obs", "terminated", "truncated"):
            value, expected = value[valid], expected[valid]
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=name)


def test_scan_equals_python_loop_early_end():
    family, agent = EarlyEnd(), probe_agent()
    task = {"length": jnp.int32(3)}
    keys = jax.random.split(jax.random.PRNGKey(4))
    want = reference_trial(family, agent, None, task, keys[0], keys[1], 3)
    got = jax.jit(lambda task, k0, k1: run_trial(family, agent, None, task, k0, k1, 3, transitions=True))(
        task, keys[0], keys[1])
    assert_records_equal(got, want)
    assert got.obs is not None and np.asarray(got.terminated).any()


@pytest.mark.parametrize("length", [3, HORIZON])
def test_full_transitions_split_true_ends_from_time_limits(length):
    """With `transitions=True` a trial records (s, a, r, s', terminated, truncated) per step, the
    episode's last next observation included; `record` sees the same whole transition. An episode
    ending before the horizon here is terminated, one reaching it truncated."""
    family, agent = EarlyEnd(), probe_agent()

    def trial(task, k0, k1):
        return run_trial(family, agent, None, task, k0, k1, 2, record=lambda state, tr: tr, transitions=True)

    keys = jax.random.split(jax.random.PRNGKey(5))
    rec = jax.tree_util.tree_map(np.asarray, jax.jit(trial)({"length": jnp.int32(length)}, keys[0], keys[1]))
    valid = rec.valid
    assert valid.sum() == 2 * length
    np.testing.assert_array_equal(rec.obs[valid][:, 0], np.tile(np.arange(length), 2))
    np.testing.assert_array_equal(rec.next_obs[valid][:, 0], np.tile(np.arange(1, length + 1), 2))
    last = np.zeros_like(valid)
    last[:, length - 1] = True
    np.testing.assert_array_equal(rec.terminated, last & (length < HORIZON))
    np.testing.assert_array_equal(rec.truncated, last & (length == HORIZON))
    seen = rec.extras  # the Transition `record` was given
    for name in ("obs", "next_obs", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(seen, name)[valid], getattr(rec, name)[valid], err_msg=name)
    np.testing.assert_array_equal(seen.done[valid], last[valid])
    np.testing.assert_array_equal(seen.reward[valid], rec.reward[valid])


def test_scan_equals_python_loop_egreedy_bandit():
    """A stochastic agent on a stochastic multi-pull bandit: agent and environment keys must be
    threaded exactly as documented for every action and reward to match."""
    family = tasks.from_spec("bernoulli-bandit:arms=3,pulls=3")
    resolved = baselines.resolve("egreedy:epsilon=0.5", family, 3)
    task = family.sample_task(jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2))
    want = reference_trial(family, resolved.agent, resolved.params, task, keys[0], keys[1], 3)
    got = jax.jit(lambda p, task, k0, k1: run_trial(family, resolved.agent, p, task, k0, k1, 3))(
        resolved.params, task, keys[0], keys[1])
    assert_records_equal(got, want)
    assert len(np.unique(want.action)) > 1 and 0 < want.reward.sum() < want.reward.size


# --- agents that play rounds of parallel episodes ---------------------------------------------------


def parallel_probe_agent(parallel: int) -> AdaptiveAgent:
    """The probe agent playing rounds of `parallel` episodes; `end_episode` merges the round's
    stacked states by adding their observe counts."""
    probe = probe_agent()

    def end_episode(params, states, round_index, key):
        del params, key
        assert states.count.shape == (parallel,)  # stacked, one state per episode of the round
        return ProbeState(jnp.sum(states.count), states.ends[0] + 1, round_index, states.num_episodes[0])

    return probe._replace(end_episode=end_episode, parallel_episodes=parallel)


def test_parallel_rounds_start_from_one_state_and_merge():
    family, agent = EarlyEnd(), parallel_probe_agent(2)
    task = {"length": jnp.int32(3)}
    keys = jax.random.split(jax.random.PRNGKey(5))
    rec = jax.jit(lambda task, k0, k1: run_trial(family, agent, None, task, k0, k1, EPISODES))(task, keys[0], keys[1])
    decoded = decode(rec.action)
    assert rec.valid.shape == (EPISODES, HORIZON)
    # round 0 (episodes 0, 1) both start from init; round 1 (episodes 2, 3) from the merged state
    np.testing.assert_array_equal(decoded["count"][:, 0], [0, 0, 6, 6])
    np.testing.assert_array_equal(decoded["ends"][:, 0], [0, 0, 1, 1])
    np.testing.assert_array_equal(decoded["last"][:, 0], [-1, -1, 0, 0])
    np.testing.assert_array_equal(decoded["count"][0], [0, 1, 2, 3, 3, 3])


def test_parallel_episodes_see_the_same_draws_as_sequential_ones():
    """A frozen stochastic policy gives the same actions and rewards whether its episodes are
    played one after another or in rounds (common random numbers across agents)."""
    family = tasks.from_spec("bernoulli-bandit:arms=3,pulls=4")
    resolved = baselines.resolve("random", family, 6)
    first = lambda p, s, i, k: jax.tree_util.tree_map(lambda x: x[0], s)  # noqa: E731
    parallel = resolved.agent._replace(end_episode=first, parallel_episodes=3)
    task = family.sample_task(jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2))
    runs = [jax.jit(lambda p, task, k0, k1, a=a: run_trial(family, a, p, task, k0, k1, 6, transitions=True))(
        resolved.params, task, keys[0], keys[1]) for a in (resolved.agent, parallel)]
    assert_records_equal(runs[1], jax.tree_util.tree_map(np.asarray, runs[0]))  # transitions included
    assert runs[1].next_obs.shape == (6, 4) + family.obs_shape
    assert len(np.unique(np.asarray(runs[0].action))) > 1


def test_parallel_agent_needs_whole_rounds():
    agent = parallel_probe_agent(3)
    with pytest.raises(ValueError, match="multiple of 3"):
        run_trial(EarlyEnd(), agent, None, {"length": jnp.int32(2)}, jax.random.PRNGKey(0), jax.random.PRNGKey(1), 4)
