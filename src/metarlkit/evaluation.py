"""The meta-test protocol: one evaluator for every agent, learned or classic.

An AdaptiveAgent runs one trial on each task of a fixed, seeded task set (compiled, `vmap`ped over
tasks, in chunks of tasks so memory stays bounded). Environment draws come from the split's
environment keys and agent draws from `seed`, so every agent sees the same draws on the same task
(common random numbers) and paired differences between agents have small errors.

Metrics (per task, then mean and 95% half-width over tasks; `ci95` always means the half-width
t_{0.975, M-1} * s / sqrt(M)):
  per_episode_return[e]  realised return of episode e;
  total_reward           sum of realised returns over the trial;
  expected_total_reward  sum over steps of the expected reward of the action taken (bandits, MDPs);
  regret                 sum over episodes of (optimal expected return - realised return), where
                         the family declares an optimum;
  pseudo_regret          sum over steps of (optimal expected reward - expected reward of the
                         chosen action), where the family defines per-step optima (bandits);
  per_episode_success[e] fraction of tasks whose episode e reached its goal (goal families);
  change_steps           per task, the trial step at which its dynamics changed (families with
                         `change_at`);
  return_percentiles     the 10th, 50th and 90th percentiles of total reward over tasks, and
  cvar                   the mean total reward of the worst 10% of tasks (what robust policies
                         are judged by), each with a 95% bootstrap interval [low, high] over tasks;
  not_defined            the metrics above the family does not define, each with the reason;
  return_after_steps[k]  for agents that play rounds of parallel episodes with an adaptation step
                         after each (MAML): the mean episode return of round k;
  per_step_reward[e][t]  when asked (`per_step=True`): the reward at step t of episode e, over the
                         tasks where that step is valid (an episode that ended earlier has no
                         reward there, not a reward of 0); undefined where no task has it valid.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import threading
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.agents import AdaptiveAgent
from metarlkit.tasks.base import ActionSpaceError, TaskFamily
from metarlkit.tasks.tasksets import (
    ENV_SEED,
    SPLIT_IDS,
    TASK_SET_SEED,
    check_split,
    distribution_of,
    env_keys,
    split_tasks,
    task_keys,
    task_set_hash,
)
from metarlkit.trial import check_parallel_episodes, run_trials

MAX_STEPS_PER_CHUNK = 2**22  # tasks x episodes x steps x sweep points held in memory at once
DEFAULT_CHUNK = 50  # tasks per compiled call; the usual set sizes are whole numbers of chunks


def mean_ci(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% half-width (Student t) over `axis`; the half-width is nan for one sample."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    half = stats.t.ppf(0.975, n - 1) * x.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, half


PERCENTILES = (10, 50, 90)  # of per-task total reward, reported with bootstrap intervals
CVAR_ALPHA = 0.1  # `cvar`: the mean total reward of the worst 10% of tasks
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 20170306  # fixed: the same result gives the same intervals


def cvar(x: np.ndarray, alpha: float = CVAR_ALPHA, axis: int = -1) -> np.ndarray:
    """Mean of the worst ceil(alpha * M) of M values along `axis` (ties broken by sorting; the
    conditional value at risk of the lower tail)."""
    x = np.sort(np.asarray(x, np.float64), axis=axis)
    k = max(1, math.ceil(alpha * x.shape[axis] - 1e-9))
    return np.take(x, np.arange(k), axis=axis).mean(axis=axis)


def robustness(total: np.ndarray) -> dict[str, Any]:
    """What robustness users read from per-task totals [M]: the 10th, 50th and 90th percentiles
    and the CVaR (mean of the worst 10% of tasks), each with a 95% bootstrap percentile interval
    over tasks ([low, high]: bounds, unlike the half-widths `ci95` elsewhere)."""
    x = np.asarray(total, np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = x[rng.integers(0, len(x), (BOOTSTRAP_DRAWS, len(x)))]

    def interval(values):
        low, high = np.percentile(values, [2.5, 97.5])
        return [_num(low), _num(high)] if len(x) > 1 else [None, None]

    percentiles = {str(q): {"value": _num(np.percentile(x, q)), "ci95": interval(np.percentile(draws, q, axis=1))}
                   for q in PERCENTILES}
    return {"return_percentiles": percentiles,
            "cvar": {"alpha": CVAR_ALPHA, "value": _num(cvar(x)), "ci95": interval(cvar(draws, axis=1))}}


def _stat(x: np.ndarray) -> dict[str, float | None]:
    mean, half = mean_ci(x)
    return {"mean": _num(mean), "ci95": _num(half)}


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


class StepReward(NamedTuple):
    """The reward at each step of each episode over tasks, each [episode, step]: `count` tasks
    where the step is valid (the episode had not ended before it), the mean reward over them, and
    its 95% half-width (`ci95` as every metric's, with count - 1 degrees of freedom). `mean` is nan
    where no task has the step valid, `ci95` where fewer than two do."""

    count: np.ndarray
    mean: np.ndarray
    ci95: np.ndarray

    def to_json(self) -> list[list[dict[str, float | None] | None]]:
        """A list per episode of a list per step of {"mean", "ci95"}; null where no task has the step."""
        return [[None if n == 0 else {"mean": _num(m), "ci95": _num(h)} for n, m, h in zip(*row)]
                for row in zip(self.count, self.mean, self.ci95)]


def _step_moments(weight, rec):
    """(count, mean, sum of squared deviations from the mean) of the reward at each step of each
    episode over a chunk's valid steps, each [episode, step]; padded tasks have weight 0."""
    w = weight[:, None, None] * rec.valid
    count = w.sum(0)
    mean = (w * rec.reward).sum(0) / jnp.maximum(count, 1.0)
    return count, mean, (w * (rec.reward - mean) ** 2).sum(0)


def _aligned_moments(weight, rec, change_step, trial_steps: int):
    """`_step_moments` of the reward at each trial step relative to each task's change of
    dynamics, [1, 2 T] (T trial steps): position p holds trial step change_step + p - T."""
    rewards = rec.reward.reshape(rec.reward.shape[0], -1)
    valid = rec.valid.reshape(rec.valid.shape[0], -1) * weight[:, None]
    pos = jnp.arange(trial_steps)[None, :] - change_step[:, None] + trial_steps

    pos = jnp.where(pos < 0, 2 * trial_steps, pos)  # a change after the trial: those steps are dropped

    def place(x, p):
        return jnp.zeros((2 * trial_steps,), jnp.float32).at[p].set(x.astype(jnp.float32), mode="drop")

    w = jax.vmap(place)(valid, pos)
    r = jax.vmap(place)(rewards, pos)
    count = w.sum(0)
    mean = (w * r).sum(0) / jnp.maximum(count, 1.0)
    return count[None], mean[None], (w * (r - mean) ** 2).sum(0)[None]


def _merge_moments(a, b):
    """The moments of two groups of tasks together (Chan et al.'s pairwise update, in float64)."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, (np.asarray(x, np.float64) for x in b)
    n = n_a + n_b
    share = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)
    delta = mean_b - mean_a
    return n, mean_a + delta * share, m2_a + m2_b + delta**2 * n_a * share


def step_reward(moments) -> StepReward:
    """StepReward from merged (count, mean, sum of squared deviations)."""
    from scipy import stats

    count, mean, m2 = (np.asarray(x, np.float64) for x in moments)
    mean = np.where(count > 0, mean, np.nan)
    several = count > 1
    dof = np.where(several, count - 1, 1)
    half = stats.t.ppf(0.975, dof) * np.sqrt(np.maximum(m2, 0) / dof / np.maximum(count, 1))
    return StepReward(count.astype(np.int64), mean, np.where(several, half, np.nan))


@dataclasses.dataclass
class EvalResult:
    """Per-task outcomes of one agent on one task set, and their summaries.

    Arrays are numpy, indexed [task] or [task, episode]; `action_counts` is summed over tasks,
    [episode, step, action] (the action axis is empty for families with continuous actions).
    """

    family: TaskFamily
    agent_name: str
    hyperparameters: dict[str, Any]
    split: str
    seed: int
    num_episodes: int
    returns: np.ndarray
    expected_returns: np.ndarray
    optimal_expected: np.ndarray
    optimal_return: np.ndarray
    action_counts: np.ndarray
    wall_time_s: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    first_task: int = 0  # index in the split of the first task (0: the set is a prefix)
    successes: np.ndarray | None = None  # [task, episode] 1.0 where the episode reached its goal
    change_steps: np.ndarray | None = None  # [task] trial step of the dynamics change (families that change)
    distribution: Any = None  # the TaskDistribution tasks were drawn from, when not the family's default
    per_step_reward: StepReward | None = None  # [episode, step] reward over tasks (`evaluate(per_step=True)`)
    aligned_reward: StepReward | None = None  # [1, 2 T] per-step reward relative to the change (per_step, families that change)
    range_reward: np.ndarray | None = None  # [task, episode] mean reward over `step_range` (NaN: no valid step)
    step_range: tuple[int, int] | None = None

    @property
    def num_tasks(self) -> int:
        return self.returns.shape[0]

    @property
    def total_reward(self) -> np.ndarray:
        return self.returns.sum(axis=1)

    @property
    def expected_total_reward(self) -> np.ndarray:
        return self.expected_returns.sum(axis=1)

    @property
    def regret(self) -> np.ndarray | None:
        if not self.family.defines_optimum:
            return None
        return self.num_episodes * self.optimal_return - self.total_reward

    def not_defined(self) -> dict[str, str]:
        """The metrics this family does not define, each with the reason (reported in outputs)."""
        out = {}
        if not self.family.defines_optimum:
            out["regret"] = f"{self.family.name} declares no optimal return"
        if not self.family.defines_pseudo_regret:
            out["pseudo_regret"] = f"{self.family.name} declares no per-step optimal expected reward"
        if not self.family.defines_success:
            out["per_episode_success"] = f"{self.family.name} declares no goal"
        return out

    @property
    def pseudo_regret(self) -> np.ndarray | None:
        if not self.family.defines_pseudo_regret:
            return None
        return (self.optimal_expected - self.expected_returns).sum(axis=1)

    def summary(self, provenance: bool = True) -> dict[str, Any]:
        """The JSON object of `metarlkit evaluate --json`."""
        out: dict[str, Any] = {
            "task": self.family.spec(),
            "agent": self.agent_name,
            "hyperparameters": self.hyperparameters,
            "split": self.split,
            "num_tasks": self.num_tasks,
            "episodes": self.num_episodes,
            "total_reward": _stat(self.total_reward),
            "expected_total_reward": _stat(self.expected_total_reward),
            "regret": None if self.regret is None else _stat(self.regret),
            "pseudo_regret": None if self.pseudo_regret is None else _stat(self.pseudo_regret),
            "optimal_total_reward": (_stat(self.num_episodes * self.optimal_return)
                                     if self.family.defines_optimum else None),
            "per_episode_return": [
                {"mean": _num(m), "ci95": _num(h)} for m, h in zip(*mean_ci(self.returns))
            ],
            **robustness(self.total_reward),
        }
        if self.successes is not None:
            out["per_episode_success"] = [
                {"mean": _num(m), "ci95": _num(h)} for m, h in zip(*mean_ci(self.successes))
            ]
        if self.per_step_reward is not None:
            out["per_step_reward"] = self.per_step_reward.to_json()
        if self.aligned_reward is not None:
            trial = self.aligned_reward.count.shape[1] // 2
            seen = np.flatnonzero(self.aligned_reward.count[0] > 0)
            lo, hi = (int(seen[0]), int(seen[-1]) + 1) if seen.size else (trial, trial)
            cells = self.aligned_reward.to_json()[0][lo:hi]
            out["per_step_reward_after_change"] = {"first_step": lo - trial, "steps": cells}
        if self.range_reward is not None:
            per_episode = []
            for column in self.range_reward.T:
                finite = column[np.isfinite(column)]
                m, h = mean_ci(finite) if finite.size else (np.nan, np.nan)
                per_episode.append({"mean": _num(m), "ci95": _num(h), "tasks": int(finite.size)})
            out["step_range_reward"] = {"steps": list(self.step_range), "per_episode": per_episode}
        if self.change_steps is not None:
            # the trial step at which each task's dynamics changed (step t of episode e: e * horizon + t)
            out["change_steps"] = [int(x) for x in self.change_steps]
        if self.not_defined():
            out["not_defined"] = self.not_defined()
        out.update(self.extra)
        if provenance:
            out["provenance"] = self.provenance()
        return out

    def action_frequencies(self) -> np.ndarray:
        """[episode, step, action]: fraction of the tasks' valid steps at (episode, step) taking each action.

        Raises ActionSpaceError (one line) for families with continuous actions.
        """
        check_action_frequencies(self.family)
        counts = np.asarray(self.action_counts, np.float64)
        total = counts.sum(-1, keepdims=True)
        return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)

    def task_set_hash(self) -> str:
        """The task set's hash; with a replaced distribution, over the spec, split, size and that
        distribution (which, with the tasks' keys, fixes every task)."""
        if self.distribution is None:
            return task_set_hash(self.family, self.split, self.num_tasks, self.first_task)
        import hashlib
        import json

        text = json.dumps([self.family.spec(), self.family.version, self.split, self.first_task, self.num_tasks,
                           self.distribution.describe()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def task_distribution(self) -> dict | None:
        """The distribution the tasks came from, as JSON (None for families without one)."""
        if self.distribution is not None:
            return {**self.distribution.describe(), "replaces_default": True}
        return distribution_of(self.family)

    def provenance(self) -> dict[str, Any]:
        from metarlkit.utils import software_provenance

        return {
            **software_provenance(),
            "task_family_version": self.family.version,
            "task_set_seed": TASK_SET_SEED,
            "env_seed": ENV_SEED,
            "agent_seed": self.seed,
            "split": self.split,
            "first_task": self.first_task,
            "task_set_hash": self.task_set_hash(),
            **({"task_distribution": dist} if (dist := self.task_distribution()) is not None else {}),
            "hyperparameters": self.hyperparameters,
            "wall_time_s": round(self.wall_time_s, 3),
        }


def check_action_frequencies(family: TaskFamily) -> None:
    """Raises a one-line ActionSpaceError when `family` has no discrete actions to count."""
    if family.continuous:
        raise ActionSpaceError(
            f"action frequencies need discrete actions; {family.name} has continuous actions"
        )


@functools.lru_cache(maxsize=256)
def _compiled(family: TaskFamily, agent: AdaptiveAgent, num_episodes: int, sweep: bool, with_dist: bool = False,
              per_step: bool = False, step_range: tuple[int, int] | None = None):
    """jit(vmap over tasks [, vmap over params]) of one trial, reduced to per-episode sums (and,
    with `per_step`, to the chunk's moments of the reward at every step: `_step_moments`).

    The compiled function takes task *indices*: task parameters, environment keys and agent keys
    are derived inside it, so a chunk of tasks costs one call and no host-side work. With
    `with_dist`, it also takes a task distribution (an argument: one program serves every
    distribution of the same structure) and draws task i from it with task i's key.
    """
    # Continuous actions are not counted (an empty action axis keeps one code path).
    num_actions = 0 if family.continuous else family.num_actions
    steps = num_episodes * family.horizon

    def summarise(task, rec):
        counts = jnp.zeros((steps, num_actions), jnp.float32)
        if num_actions:
            counts = counts.at[jnp.arange(steps), rec.action.reshape(-1)].add(rec.valid.reshape(-1))
        out = {
            "returns": rec.reward.sum(-1),
            "expected_returns": rec.expected_reward.sum(-1),
            "optimal_expected": rec.optimal_expected_reward.sum(-1),
            "optimal_return": family.optimal_return(task) if family.defines_optimum else jnp.float32(jnp.nan),
            "action_counts": counts.reshape(num_episodes, family.horizon, num_actions),
        }
        if family.defines_success:
            out["successes"] = jnp.any(rec.success, axis=-1).astype(jnp.float32)
        if getattr(family, "changes", False):
            out["change_steps"] = task["change_step"]
        if step_range is not None:
            t = jnp.arange(family.horizon)
            inside = rec.valid & (t >= step_range[0]) & (t < step_range[1])
            n = inside.sum(-1)
            out["range_reward"] = jnp.where(n > 0, jnp.where(inside, rec.reward, 0.0).sum(-1) / jnp.maximum(n, 1),
                                            jnp.nan)
        return out

    def batch(params, indices, split_id, seed, weight, dist=None):
        if with_dist:
            tasks = jax.vmap(lambda k: family.sample_task(k, dist))(task_keys(split_id, indices))
        else:
            tasks = split_tasks(family, split_id, indices)
        agent_keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(indices)
        rec = run_trials(family, agent, params, tasks, env_keys(split_id, indices), agent_keys, num_episodes)
        out = jax.vmap(summarise)(tasks, rec)
        out["action_counts"] = jnp.einsum("m,m...->...", weight, out["action_counts"])
        if per_step:
            out["step_reward"] = _step_moments(weight, rec)
            if getattr(family, "changes", False):
                out["step_reward_aligned"] = _aligned_moments(weight, rec, tasks["change_step"],
                                                              num_episodes * family.horizon)
        return out

    if sweep:
        batch = jax.vmap(batch, in_axes=(0, None, None, None, None, None))
    return jax.jit(batch)


def evaluate(
    agent: AdaptiveAgent,
    family: TaskFamily,
    params: Any = None,
    *,
    num_episodes: int,
    num_tasks: int,
    split: str = "test",
    seed: int = 0,
    name: str = "agent",
    hyperparameters: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    first_task: int = 0,
    distribution: Any = None,
    per_step: bool = False,
    step_range: tuple[int, int] | None = None,
) -> EvalResult:
    """Runs `agent` on the first `num_tasks` tasks of `split`, one trial of `num_episodes` each.

    Args:
      agent: any AdaptiveAgent (classic baseline, trained agent, or user-written).
      family: the task family.
      params: the agent's params pytree (weights and hyperparameters); None if it needs none.
      num_episodes: episodes per trial.
      num_tasks: size of the task set (a prefix of the split).
      split: 'test' (default), 'validation' or 'train'.
      seed: the agent's randomness; the tasks and environment draws are fixed by family and split.
      name: the agent's spec, recorded in outputs.
      hyperparameters: recorded in outputs.
      chunk_size: tasks per compiled call (default: `default_chunk`).
      first_task: start at this task of the split instead of task 0; task i gets the same draws
        (and so the same result) whatever the set it is evaluated in.
      distribution: families with physical parameters only: draw task i from this
        `TaskDistribution` (with task i's key) instead of the family's default one: `metarlkit
        sweep` fixes one parameter this way. Recorded in the result's provenance; one compiled
        program serves every distribution of the same kinds.
      per_step: also keep the reward at every step of every episode, over the tasks where that step
        is valid (`EvalResult.per_step_reward`, JSON `per_step_reward`); on families whose dynamics
        change inside a trial, also at every trial step relative to each task's change
        (`EvalResult.aligned_reward`, JSON `per_step_reward_after_change`: `first_step` is the
        offset of the first entry, negative before the change). Each chunk of tasks is
        reduced to its moments inside the compiled program, so memory does not grow with the set.
      step_range: (start, stop): also keep, per task and episode, the mean reward over the valid
        steps start <= t < stop of the episode (`EvalResult.range_reward` [task, episode], NaN
        where none is valid; JSON `step_range_reward`): per-task numbers, so agents can be
        compared task by task over a stretch of steps (after a change of dynamics, say).

    Returns:
      EvalResult.
    """
    start = time.perf_counter()
    out, counts = _evaluate_many(
        agent, family, params, num_episodes, num_tasks, split, seed, chunk_size, None, first_task, distribution,
        per_step, None if step_range is None else (int(step_range[0]), int(step_range[1])),
    )
    wall = time.perf_counter() - start
    extra = {}
    if agent.parallel_episodes > 1:
        extra = round_summary(out["returns"], agent.parallel_episodes)
    return EvalResult(
        family=family,
        agent_name=name,
        hyperparameters=dict(hyperparameters or {}),
        split=split,
        seed=seed,
        num_episodes=num_episodes,
        returns=out["returns"],
        expected_returns=out["expected_returns"],
        optimal_expected=out["optimal_expected"],
        optimal_return=out["optimal_return"],
        action_counts=counts,
        wall_time_s=wall,
        extra=extra,
        first_task=first_task,
        successes=out.get("successes"),
        change_steps=out.get("change_steps"),
        distribution=distribution,
        per_step_reward=step_reward(out["step_reward"]) if per_step else None,
        aligned_reward=step_reward(out["step_reward_aligned"]) if "step_reward_aligned" in out else None,
        range_reward=out.get("range_reward"),
        step_range=None if step_range is None else (int(step_range[0]), int(step_range[1])),
    )


def check_step_range(step_range, family: TaskFamily) -> None:
    """ValueError (one line) unless 0 <= start < stop <= the family's horizon."""
    start, stop = step_range
    if not (isinstance(start, (int, np.integer)) and isinstance(stop, (int, np.integer))
            and 0 <= start < stop <= family.horizon):
        raise ValueError(f"a step range is START:STOP with 0 <= START < STOP <= {family.horizon} (the episode's "
                         f"steps), got {start}:{stop}")


def round_summary(returns: np.ndarray, parallel: int) -> dict[str, Any]:
    """For an agent playing rounds of `parallel` episodes (an adaptation step after each, as MAML):
    the mean return of an episode in round k, i.e. after k adaptation steps (mean and 95%
    half-width over tasks of the per-task mean over the round's episodes)."""
    per_round = returns.reshape(returns.shape[0], -1, parallel).mean(-1)
    return {
        "parallel_episodes": parallel,
        "return_after_steps": [{"mean": _num(m), "ci95": _num(h)} for m, h in zip(*mean_ci(per_round))],
    }


def evaluate_sweep(
    agent: AdaptiveAgent,
    family: TaskFamily,
    params_batch: Any,
    *,
    num_episodes: int,
    num_tasks: int,
    split: str = "validation",
    seed: int = 0,
    chunk_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Evaluates a batch of params (leading axis G) in one compiled program.

    Returns per-task arrays with a leading sweep axis: `returns` and `expected_returns` [G, M, E],
    `optimal_expected` [G, M, E], `optimal_return` [G, M].
    """
    size = jax.tree_util.tree_leaves(params_batch)[0].shape[0]
    out, _ = _evaluate_many(
        agent, family, params_batch, num_episodes, num_tasks, split, seed, chunk_size, size
    )
    return out


def default_chunk(steps_per_task: int) -> int:
    """Tasks per compiled call: DEFAULT_CHUNK, fewer when that would exceed MAX_STEPS_PER_CHUNK steps.

    The chunk does not depend on the number of tasks (a smaller set is padded), so tuning on a few
    hundred validation tasks and evaluating on a thousand test tasks share one compiled program:
    compiling costs more than running a padded chunk for every classic agent here.
    """
    return max(1, min(DEFAULT_CHUNK, MAX_STEPS_PER_CHUNK // steps_per_task))


# Compiled programs, one per (family, agent, trial length, sweep, chunk, params signature). A
# program can be compiled ahead of use on a worker thread (`compile_in_background`), so that
# compiling the next agent's program overlaps running this one: XLA compiles on one core.
_EXECUTABLES: dict[Any, concurrent.futures.Future] = {}
_EXECUTABLES_LOCK = threading.Lock()
_COMPILER: concurrent.futures.ThreadPoolExecutor | None = None
COMPILE_THREADS = 2


def _signature(tree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(jax.typeof(x) for x in leaves)


def _chunk_args(chunk: int):
    """Arguments of one compiled call after params: task indices, split id, agent seed, weights."""
    return np.zeros(chunk, np.uint32), np.int32(0), np.int32(0), np.ones(chunk, np.float32)


def _executable(family, agent, num_episodes, sweep, params, chunk, dist=None, per_step=False, step_range=None):
    """The compiled program for these arguments: compiled here, or awaited if already in flight."""
    key = (family, agent, num_episodes, sweep, chunk, _signature(params), _signature(dist), per_step, step_range)
    with _EXECUTABLES_LOCK:
        future = _EXECUTABLES.get(key)
        owner = future is None
        if owner:
            future = _EXECUTABLES[key] = concurrent.futures.Future()
    if owner:
        try:
            fn = _compiled(family, agent, num_episodes, sweep, dist is not None, per_step, step_range)
            future.set_result(fn.lower(params, *_chunk_args(chunk), dist).compile())
        except BaseException as err:
            with _EXECUTABLES_LOCK:
                del _EXECUTABLES[key]
            future.set_exception(err)
            raise
    return future.result()


def _chunk_for(family: TaskFamily, num_episodes: int, chunk_size: int | None, sweep_size: int | None) -> int:
    return chunk_size or default_chunk(num_episodes * family.horizon * (sweep_size or 1))


def compile_in_background(
    agent: AdaptiveAgent,
    family: TaskFamily,
    params: Any,
    *,
    num_episodes: int,
    chunk_size: int | None = None,
    per_step: bool = False,
    step_range: tuple[int, int] | None = None,
) -> concurrent.futures.Future:
    """Starts compiling the program `evaluate` will run for these arguments; returns its Future.

    `params` may be a callable returning the params pytree (its values do not matter, only its
    shapes), so that building it also happens off the calling thread. A later `evaluate` with the
    same agent, family, trial length, chunk, params shapes and `per_step` waits for this compile
    instead of starting its own.
    """
    global _COMPILER
    with _EXECUTABLES_LOCK:
        if _COMPILER is None:
            _COMPILER = concurrent.futures.ThreadPoolExecutor(COMPILE_THREADS, thread_name_prefix="compile")

    def job():
        concrete = params() if callable(params) else params
        chunk = _chunk_for(family, num_episodes, chunk_size, None)
        return _executable(family, agent, num_episodes, False, concrete, chunk, per_step=per_step,
                           step_range=None if step_range is None else (int(step_range[0]), int(step_range[1])))

    return _COMPILER.submit(job)


def _evaluate_many(agent, family, params, num_episodes, num_tasks, split, seed, chunk_size, sweep_size,
                   start: int = 0, dist=None, per_step: bool = False, step_range=None):
    family.check_episodes(num_episodes)
    check_parallel_episodes(agent, num_episodes)
    check_split(split, start + num_tasks, family)
    if dist is not None and family.task_list() is not None:
        raise ValueError(f"{family.spec()} takes its tasks from a published list; it has no distribution to replace")
    chunk = _chunk_for(family, num_episodes, chunk_size, sweep_size)
    if step_range is not None:
        check_step_range(step_range, family)
    run = _executable(family, agent, num_episodes, sweep_size is not None, params, chunk, dist, per_step, step_range)
    axis = 0 if sweep_size is None else 1
    pieces, counts, moments, aligned = [], None, None, None
    for first in range(0, num_tasks, chunk):
        # Every chunk has one shape (no recompiles): the last is padded by repeating earlier tasks,
        # which get weight 0 in the action counts and are dropped from the per-task results.
        keep = min(chunk, num_tasks - first)
        idx = (start + np.arange(first, first + chunk) % num_tasks).astype(np.uint32)
        weight = (np.arange(chunk) < keep).astype(np.float32)
        out = run(params, idx, np.int32(SPLIT_IDS[split]), np.int32(seed), weight, dist)
        out = jax.tree_util.tree_map(np.asarray, out)
        chunk_counts = out.pop("action_counts")
        if per_step:
            chunk_moments = out.pop("step_reward")
            moments = (tuple(np.asarray(x, np.float64) for x in chunk_moments) if moments is None
                       else _merge_moments(moments, chunk_moments))
            if "step_reward_aligned" in out:
                chunk_aligned = out.pop("step_reward_aligned")
                aligned = (tuple(np.asarray(x, np.float64) for x in chunk_aligned) if aligned is None
                           else _merge_moments(aligned, chunk_aligned))
        pieces.append({k: np.take(v, np.arange(keep), axis=axis) for k, v in out.items()})
        counts = chunk_counts if counts is None else counts + chunk_counts
    merged = {k: np.concatenate([p[k] for p in pieces], axis=axis) for k in pieces[0]}
    if per_step:
        merged["step_reward"] = moments  # (count, mean, sum of squared deviations) [..., episode, step]
        if aligned is not None:
            merged["step_reward_aligned"] = aligned  # the same [1, 2 T], relative to the change
    return merged, counts
