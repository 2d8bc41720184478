"""Trials: K episodes of one task, the primitive shared by training and evaluation.

ATTENTION: the task is not the episode. An episode that ends starts a new episode of the *same*
task; only the trial boundary (a new call of `run_trial`) samples a new task and resets the agent's
adaptation state. Early-ending episodes fit fixed shapes with a `valid` mask: after `done` the
environment is frozen, rewards are zero and the agent is not fed.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent, Transition
from metarlkit.tasks.base import TaskFamily
from metarlkit.tasks.tasksets import split_tasks


class StepRecord(NamedTuple):
    """Per-step outputs of a trial, each [num_episodes, horizon] (actions [num_episodes, horizon,
    *family.action_shape]: vectors for families with continuous actions).

    The transition fields (`obs` .. `truncated`) are recorded only when a trial is asked for
    `transitions=True` (off-policy learners, model learners); otherwise they are None, so trials
    that do not need them (RL2's, evaluation's) hold no more memory than before. Like every field,
    they mean something only where `valid` (after an episode's end the environment is frozen and
    `terminated` and `truncated` are False).
    """

    action: jax.Array
    reward: jax.Array  # zero where not valid
    valid: jax.Array  # bool: the step happened (before or at the episode's done)
    expected_reward: jax.Array  # zero where not valid
    optimal_expected_reward: jax.Array  # zero where not valid
    extras: Any = None  # what `record(agent_state, transition)` returned at each step (training data)
    obs: jax.Array | None = None  # [..., *obs_shape] the observation the action was taken in
    next_obs: jax.Array | None = None  # the observation after it (the episode's last one included)
    terminated: jax.Array | None = None  # bool: the step reached a true end (no bootstrapping)
    truncated: jax.Array | None = None  # bool: the episode was cut by its time limit (bootstrap)
    success: jax.Array | None = None  # bool: the goal is reached at this step (families defining success)
    dense_reward: jax.Array | None = None  # the shaped reward beside a sparse one (with transitions, where reported)


def _select(pred, on_true, on_false):
    # A leaf the step left untouched is the same traced value on both sides: keep it as it is, so
    # it stays unbatched when episodes are vmapped (MAML's policy parameters, shared by a round's
    # episodes, would otherwise be copied per episode and every matmul become a batched matvec).
    return jax.tree_util.tree_map(lambda a, b: a if a is b else jnp.where(pred, a, b), on_true, on_false)


def episode_keys(env_key: jax.Array, episode: jax.Array):
    """(reset key, per-step base key) of an episode; step t uses fold_in(step_base, t)."""
    reset_key, step_base = jax.random.split(jax.random.fold_in(env_key, episode))
    return reset_key, step_base


def run_trial(
    family: TaskFamily,
    agent: AdaptiveAgent,
    params,
    task,
    env_key: jax.Array,
    agent_key: jax.Array,
    num_episodes: int,
    record: Callable[[Any, Transition], Any] | None = None,
    transitions: bool = False,
) -> StepRecord:
    """Runs one trial of `num_episodes` episodes of `task` (single task; `run_trials` for batches).

    Environment randomness comes from `env_key` keyed by (episode, step), agent randomness from
    `agent_key` keyed the same way, so the two are independent (common random numbers).

    `record`, when given, maps (the agent state right after `act`, the step's whole `Transition`)
    to a pytree stored per step in `StepRecord.extras` (a learner's inputs, log-probabilities and
    values): training rollouts and evaluation run this one function, so they cannot drift apart.
    `transitions=True` also stores each step's observation, next observation, `terminated` and
    `truncated` in the StepRecord.

    Returns:
      StepRecord with arrays of shape [num_episodes, family.horizon].
    """
    key_init, agent_key = jax.random.split(agent_key)
    if agent.task_aware:
        agent_state = agent.init(params, key_init, num_episodes, task)
    else:
        agent_state = agent.init(params, key_init, num_episodes)

    def play_episode(agent_state, episode):
        """One episode from `agent_state`: (the agent state at its end, records [horizon])."""
        reset_key, step_base = episode_keys(env_key, episode)
        agent_steps = jax.random.split(jax.random.fold_in(agent_key, episode))[0]
        obs, env_state = family.reset(reset_key, family.task_at(task, episode * family.horizon))

        def run_step(carry, t):
            agent_state, env_state, obs, alive = carry
            action, next_agent_state = agent.act(
                params, agent_state, obs, jax.random.fold_in(agent_steps, t)
            )
            acted_state = next_agent_state
            # The task in force at this trial step (dynamics that change inside a trial switch here).
            current = family.task_at(task, episode * family.horizon + t)
            next_obs, next_env_state, reward, done, info = family.step(
                jax.random.fold_in(step_base, t), env_state, action, current
            )
            terminated = jnp.asarray(info.terminated, bool) & done
            transition = Transition(obs, action, reward, next_obs, done, terminated, done & ~terminated)
            next_agent_state = agent.observe(params, next_agent_state, transition)
            full = {}
            if family.defines_success:
                full["success"] = jnp.asarray(info.success, bool) & alive
            if transitions:
                full.update(obs=obs, next_obs=next_obs, terminated=terminated & alive,
                            truncated=transition.truncated & alive)
                if family.reports_dense_reward:
                    full["dense_reward"] = jnp.where(alive, info.dense_reward, 0.0)
            step_record = StepRecord(
                action=action,
                reward=jnp.where(alive, reward, 0.0),
                valid=alive,
                expected_reward=jnp.where(alive, info.expected_reward, 0.0),
                optimal_expected_reward=jnp.where(alive, info.optimal_expected_reward, 0.0),
                extras=None if record is None else record(acted_state, transition),
                **full,
            )
            if family.ends_early:
                carry = (
                    _select(alive, next_agent_state, agent_state),
                    _select(alive, next_env_state, env_state),
                    jnp.where(alive, next_obs, obs),
                    alive & ~done,
                )
            else:  # every step of the episode is valid: nothing to freeze
                carry = (next_agent_state, next_env_state, next_obs, alive & ~done)
            return carry, step_record

        (agent_state, _, _, _), records = jax.lax.scan(
            run_step, (agent_state, env_state, obs, jnp.bool_(True)), jnp.arange(family.horizon)
        )
        return agent_state, records

    parallel = agent.parallel_episodes
    if parallel == 1:
        def run_episode(agent_state, episode):
            agent_state, records = play_episode(agent_state, episode)
            key_end = jax.random.split(jax.random.fold_in(agent_key, episode))[1]
            return agent.end_episode(params, agent_state, episode, key_end), records

        _, records = jax.lax.scan(run_episode, agent_state, jnp.arange(num_episodes))
        return records

    check_parallel_episodes(agent, num_episodes)

    rounds = num_episodes // parallel

    def run_round(agent_state, round_index):
        # Every episode of the round starts from the same state (a frozen policy); episode keys are
        # those of the same episodes played one after another.
        episodes = round_index * parallel + jnp.arange(parallel)
        states, records = jax.vmap(play_episode, in_axes=(None, 0))(agent_state, episodes)
        key_end = jax.random.fold_in(jax.random.fold_in(agent_key, num_episodes), round_index)
        # No adaptation after the last round (nothing would use it; MAML's is a gradient step).
        # round_index is the scan's counter, the same for every task, so under vmap this is a
        # real branch, not a select that computes both.
        agent_state = jax.lax.cond(
            round_index < rounds - 1,
            lambda s: agent.end_episode(params, s, round_index, key_end),
            lambda s: jax.tree_util.tree_map(lambda x: x[0], s),
            states,
        )
        return agent_state, records

    _, records = jax.lax.scan(run_round, agent_state, jnp.arange(rounds))
    return jax.tree_util.tree_map(lambda a: a.reshape((num_episodes,) + a.shape[2:]), records)


def run_trials(
    family: TaskFamily,
    agent: AdaptiveAgent,
    params,
    tasks,
    env_keys: jax.Array,
    agent_keys: jax.Array,
    num_episodes: int,
    record: Callable[[Any, Transition], Any] | None = None,
    transitions: bool = False,
) -> StepRecord:
    """One trial of each task of a batch (`tasks` and the keys with a leading axis [B]), all under
    the same `params`: the rollout path training and evaluation share (see `run_trial`).

    Returns:
      StepRecord with arrays of shape [B, num_episodes, family.horizon, ...].
    """

    def one(task, env_key, agent_key):
        return run_trial(family, agent, params, task, env_key, agent_key, num_episodes, record, transitions)

    return jax.vmap(one)(tasks, env_keys, agent_keys)


class TaskSource(NamedTuple):
    """Where training draws its tasks: fresh ones from the family's distribution, or a fixed set
    of training tasks (the first `num_fixed` tasks of the family's 'train' split, as PEARL's 100
    and GMPS's 40 goals). Hashable, so compiled programs can close over it."""

    family: TaskFamily
    num_fixed: int | None = None

    def sample_indices(self, key: jax.Array, n: int) -> jax.Array:
        """[n] indices into the fixed set: distinct while n <= num_fixed, uniform otherwise."""
        if self.num_fixed is None:
            raise ValueError("this task source draws from the distribution; it has no fixed set to index")
        return jax.random.choice(key, self.num_fixed, (n,), replace=n > self.num_fixed).astype(jnp.uint32)

    def tasks(self, indices: jax.Array):
        """The fixed set's tasks at `indices` (task i of the 'train' split, as `tasks.task_set`)."""
        return split_tasks(self.family, "train", indices)

    def sample(self, key: jax.Array, n: int):
        """n tasks, batched along a leading axis."""
        if self.num_fixed is None:
            return jax.vmap(self.family.sample_task)(jax.random.split(key, n))
        return self.tasks(self.sample_indices(key, n))


def rollout(
    source: TaskSource,
    agent: AdaptiveAgent,
    params,
    key: jax.Array,
    batch: int,
    num_episodes: int,
    record: Callable[[Any, Transition], Any] | None = None,
    transitions: bool = False,
):
    """A training batch: `batch` tasks drawn from `source`, one trial of each (`run_trials`).

    Returns:
      (tasks [batch, ...], StepRecord [batch, num_episodes, horizon, ...]).
    """
    key_tasks, key_env, key_agent = jax.random.split(key, 3)
    tasks = source.sample(key_tasks, batch)
    rec = run_trials(source.family, agent, params, tasks, jax.random.split(key_env, batch),
                     jax.random.split(key_agent, batch), num_episodes, record, transitions)
    return tasks, rec


def check_parallel_episodes(agent: AdaptiveAgent, num_episodes: int) -> None:
    """Raises a one-line ValueError unless a parallel agent's rounds fill the trial exactly."""
    if num_episodes % agent.parallel_episodes:
        raise ValueError(
            f"this agent plays its episodes in rounds of {agent.parallel_episodes}; give a number of "
            f"episodes that is a multiple of {agent.parallel_episodes} (got {num_episodes})"
        )
