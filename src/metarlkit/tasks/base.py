"""The TaskFamily contract: a distribution over MDPs written as pure, jit- and vmap-friendly functions.

A family instance is a frozen dataclass of its options (hashable, so it can close over compiled
functions). It holds no Python state: a *task* is a pytree of parameters drawn by `sample_task`,
and every method is a pure function of its arguments.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any

MAX_EPISODES = 100_000  # episodes per trial
MAX_TRIAL_STEPS = 1_000_000  # episodes x horizon: a trial's records must fit in memory


class ActionSpaceError(ValueError):
    """Code written for one kind of action space (discrete or continuous) met a family of the other
    kind; the message is one line naming the family and its action space."""


class StepInfo(NamedTuple):
    """What a step reports besides the reward (scalars).

    expected_reward: expected reward of the action just taken, given the task (and, for restless
      bandits, the current arm means).
    optimal_expected_reward: expected reward of the best action at this step; with
      `expected_reward` it gives pseudo-regret where `TaskFamily.defines_pseudo_regret`.
    terminated: the step reached a true end of the episode (a goal, a fall): nothing follows it,
      so learners do not bootstrap past it. An episode that ends only because it reached the
      horizon is *truncated*, not terminated (the default, False); trials derive
      truncated = done and not terminated.
    success: the goal is reached at this step (families that declare `defines_success`); an
      episode succeeds when any of its steps does.
    dense_reward: a shaped reward beside a sparse one (families that declare
      `reports_dense_reward`: PEARL trains its critic on it and feeds the sparse one to its encoder).
    """

    expected_reward: Array
    optimal_expected_reward: Array
    terminated: Array = False
    success: Array = False
    dense_reward: Array = float("nan")


@dataclasses.dataclass(frozen=True)
class TaskFamily:
    """Base class of task families. Subclasses are frozen dataclasses whose fields are options.

    Class attributes every family sets:
      name: registry name.
      version: bumped whenever dynamics or task sampling change; recorded in every output.
      reward_model: 'bernoulli' (rewards in {0, 1}), 'gaussian' (unit-variance noise around a
        mean) or 'other'; classic bandit agents pick their posterior from it.
      defines_pseudo_regret: True when `StepInfo.optimal_expected_reward` is meaningful per step.
      defines_optimum: `optimal_return` and `oracle_action` exist, so regret and the `oracle`
        agent are defined; a family without a known optimum (continuous control) sets False and
        the evaluator reports regret as not defined.
      defines_success: `StepInfo.success` marks reaching the goal; evaluations then report the
        fraction of successful episodes.
      defines_model: the observation is the whole state, and `dynamics_fn` (the true next
        observation) and `reward_fn` exist: planners (`mpc`) and model learners (GrBAL) use them.
      reward_depends_on_task: `reward_fn` reads the task (a goal); false where only the dynamics
        vary, so an agent that does not know the task can still score plans (GrBAL).
      reports_dense_reward: `StepInfo.dense_reward` holds a shaped reward beside the sparse one.
      description: one line for `metarlkit tasks`.
      continuous: actions are real vectors in a box (`action_size`, `action_bounds`) rather than
        indices (`num_actions`). Code that handles either kind builds placeholder actions from
        `action_shape` and `action_dtype`; code that needs one kind gets a one-line
        ActionSpaceError from the other kind's properties.
      ends_early: an episode may report done before `horizon` steps. True (the safe default)
        makes trials freeze the agent after `done`; a family whose episodes always last exactly
        `horizon` steps sets False, and trials skip that per-step select of the agent state,
        which is the largest cost of acting for agents with big states (a transformer's context).
        The contract checker verifies the claim.
    """

    # Upper bounds of whole-number options (checked when a family is built from options; shown by
    # `metarlkit tasks`): beyond them a task or a trial no longer fits a machine's memory.
    LIMITS: ClassVar[dict[str, int]] = {"arms": 1024, "pulls": 100_000, "states": 128, "actions": 32,
                                        "steps": 100_000}

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "other"
    defines_pseudo_regret: ClassVar[bool] = False
    defines_optimum: ClassVar[bool] = True
    defines_success: ClassVar[bool] = False
    defines_model: ClassVar[bool] = False
    reward_depends_on_task: ClassVar[bool] = True
    reports_dense_reward: ClassVar[bool] = False
    description: ClassVar[str] = ""
    continuous: ClassVar[bool] = False
    ends_early: ClassVar[bool] = True

    # --- shape information -------------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        """Number of discrete actions (discrete families; an action is an int32 index)."""
        if self.continuous:
            raise ActionSpaceError(
                f"{self.name} has continuous actions ({self._box_text()}), not a number of discrete "
                "actions; this needs a family with discrete actions"
            )
        raise NotImplementedError

    @property
    def action_size(self) -> int:
        """D, the length of an action vector (continuous families; an action is float32 [D])."""
        if not self.continuous:
            raise ActionSpaceError(
                f"{self.name} has discrete actions ({self.num_actions} of them); action_size and "
                "action_bounds are for families with continuous actions"
            )
        raise NotImplementedError

    @property
    def action_bounds(self) -> tuple[Any, Any]:
        """(low, high) of the action box (continuous families): floats, or float32 [D] arrays.

        The box is where actions have distinct effects: `step` accepts any finite vector and the
        family documents what it does outside the box (e.g. clips it), so an agent may output
        unbounded actions. Discrete families raise ActionSpaceError (see `action_size`).
        """
        self.action_size  # noqa: B018  (raises the one-line error on discrete families)
        raise NotImplementedError

    def action_box(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """`action_bounds` as per-dimension tuples of floats (hashable, for cached agents), or None
        for discrete actions. Everywhere in the library, an agent's `action_bounds` means this box."""
        if not self.continuous:
            return None
        size = self.action_size
        return tuple(tuple(np.broadcast_to(np.asarray(b, np.float64), (size,)).tolist()) for b in self.action_bounds)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: () for discrete families, (D,) for continuous ones."""
        return (self.action_size,) if self.continuous else ()

    @property
    def action_dtype(self):
        """dtype of an action: int32 (an index) for discrete families, float32 for continuous."""
        return jnp.float32 if self.continuous else jnp.int32

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation (float32)."""
        raise NotImplementedError

    @property
    def horizon(self) -> int:
        """Maximum number of steps in one episode; the step function reports done at the end."""
        raise NotImplementedError

    @property
    def default_episodes(self) -> int | None:
        """Episodes per trial when the family fixes it (e.g. 1 for one-episode trials), else None."""
        return None

    # --- dynamics -----------------------------------------------------------------------------
    def sample_task(self, key: Array) -> PyTree:
        """Draws one task (a pytree of arrays) from the family's distribution.

        A family whose tasks are physical parameters (`pendulum`) also takes `dist`, a
        `tasks.distributions.TaskDistribution` (default: `default_distribution()`, which every test
        set uses), so a learner can move the distribution without recompiling.
        """
        raise NotImplementedError

    def reset(self, key: Array, task: PyTree) -> tuple[Array, PyTree]:
        """Starts an episode of `task`. Returns (obs, env_state)."""
        raise NotImplementedError

    def step(self, key: Array, env_state: PyTree, action: Array, task: PyTree):
        """One transition. Returns (obs, env_state, reward, done, StepInfo).

        `done` ends the episode, whether at a true end (`StepInfo.terminated`) or at the horizon.
        """
        raise NotImplementedError

    def task_at(self, task: PyTree, trial_step: Array) -> PyTree:
        """The task in force at `trial_step` of a trial (step t of episode e is e * horizon + t).

        Trials pass this to `step`, so a family whose dynamics change inside a trial (a task holding
        a change step and a second parameter set, `tasks.control`) switches there; others return
        `task` unchanged, at no cost.
        """
        del trial_step
        return task

    def task_list(self) -> tuple[PyTree, dict[str, tuple[int, int]]] | None:
        """A family with a published, finite task list (PEARL's 100 goals) returns (tasks [N], the
        (start, size) of each split in it); tasks sets then index the list instead of drawing tasks
        from keys, and a split not named has no tasks. None (the default): tasks are drawn."""
        return None

    def reward_fn(self, obs: Array, action: Array, next_obs: Array, task: PyTree) -> Array:
        """The reward of a step from its observations (families declaring `defines_model`): what a
        planner scores predicted observations with. Equal to `step`'s reward on real transitions.
        One observation and one action (no batch axis: `vmap` for batches), as `step`."""
        raise NotImplementedError(f"{self.name} declares no reward function of its observations")

    def dynamics_fn(self, obs: Array, action: Array, task: PyTree) -> Array:
        """The next observation from an observation and an action under `task` (families declaring
        `defines_model`): the true model a planner uses, the model a learner fits. One observation
        and one action (no batch axis: `vmap` for batches), as `step`."""
        raise NotImplementedError(f"{self.name} declares no dynamics function of its observations")

    def terminated_fn(self, obs: Array, action: Array, next_obs: Array, task: PyTree) -> Array:
        """Whether a step ends the episode for good (a planner stops counting rewards after it);
        the default: never."""
        del obs, action, task
        return jnp.zeros(jnp.shape(next_obs)[:-1], bool)

    def optimal_return(self, task: PyTree) -> Array:
        """Expected return of one episode under the best task-aware policy."""
        raise NotImplementedError

    def oracle_action(self, task: PyTree, obs: Array, t: Array) -> Array:
        """The best task-aware action at step `t` of an episode, seeing observation `obs`."""
        raise NotImplementedError

    # --- conveniences -------------------------------------------------------------------------
    def describe_actions(self) -> str:
        """The action space in words: '5 discrete' or 'continuous, R^2 in [-0.1, 0.1]'."""
        if not self.continuous:
            return f"{self.num_actions} discrete"
        return f"continuous, {self._box_text()}"

    def _box_text(self) -> str:
        low, high = (np.asarray(b, np.float64) for b in self.action_bounds)
        if low.ndim == 0 and high.ndim == 0:
            return f"R^{self.action_size} in [{low.item():g}, {high.item():g}]"
        return f"R^{self.action_size} in a box with per-coordinate bounds"

    def spec(self) -> str:
        """The `NAME:key=value` string that rebuilds this family with `tasks.make`.

        Options declared with `optional_option` are left out at their default, so adding one to a
        family keeps the specs (and task-set hashes) of everything recorded before.
        """
        from metarlkit.specs import format_spec, options_of

        optional = {f.name: f.default for f in dataclasses.fields(self) if f.metadata.get("optional")}
        options = {k: v for k, v in options_of(self).items() if k not in optional or v != optional[k]}
        return format_spec(self.name, dict(sorted(options.items())))

    def check_episodes(self, num_episodes: int) -> None:
        """Raises a one-line ValueError when a trial length does not suit the family (at most
        MAX_EPISODES episodes and MAX_TRIAL_STEPS steps)."""
        if not isinstance(num_episodes, int) or isinstance(num_episodes, bool) or num_episodes < 1:
            raise ValueError(f"episodes must be a whole number >= 1, got {num_episodes!r}")
        if num_episodes > MAX_EPISODES or num_episodes * self.horizon > MAX_TRIAL_STEPS:
            raise ValueError(f"a trial of {num_episodes:,} episodes x {self.horizon:,} steps is too long; "
                             f"use at most {min(MAX_EPISODES, MAX_TRIAL_STEPS // self.horizon):,} episodes "
                             f"(a trial is at most {MAX_TRIAL_STEPS:,} steps)")
        fixed = self.default_episodes
        if fixed is not None and num_episodes != fixed:
            raise ValueError(
                f"{self.name} trials are {fixed} episode(s) long (set the number of pulls with the "
                f"task option instead); use --episodes {fixed}"
            )


def optional_option(default: Any) -> Any:
    """A family option left out of `spec()` at its default (see `TaskFamily.spec`)."""
    return dataclasses.field(default=default, metadata={"optional": True})


def zero_obs(shape: tuple[int, ...]) -> Array:
    return jnp.zeros(shape, jnp.float32)
