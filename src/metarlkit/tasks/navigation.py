"""Point navigation: a 2D point robot with continuous velocity actions.

The first family with continuous actions (`TaskFamily.continuous`). Dynamics are deterministic, so
the environment keys are unused; `step` keeps the contract's signature.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.tasks import distributions as D
from metarlkit.tasks.base import StepInfo, TaskFamily, optional_option
from metarlkit.tasks.control import ParametricFamily

MAX_SPEED = 0.1  # per-coordinate clip of an action (a velocity; one step moves by it)
DENSE_HALF_WIDTH = 0.5  # dense goals ~ U[-0.5, 0.5]^2
DENSE_TOLERANCE = 0.01  # dense episodes end when |position - goal| < 0.01 in both coordinates
SPARSE_RADIUS = 1.0  # sparse goals lie on the upper half of the circle of this radius
SPARSE_GOAL_RADIUS = 0.2  # sparse rewards are non-zero within this distance of the goal

# variant -> episode horizon
NAVIGATION_VARIANTS = {"dense": 100, "sparse": 20}
GOAL_SETS = ("random", "oyster")
OYSTER_GOALS, OYSTER_TRAIN = 100, 80  # PEARL's sparse point robot: 100 goals, the first 80 for training


def oyster_goals() -> np.ndarray:
    """PEARL's goal list (oyster, rlkit/envs/point_robot.py, SparsePointEnv): 100 angles
    linspace(0, pi, 100) on the unit circle, the rows shuffled by NumPy's legacy generator seeded
    1337; float32 [100, 2]."""
    angles = np.linspace(0, np.pi, num=OYSTER_GOALS)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.random.RandomState(1337).shuffle(goals)
    return goals.astype(np.float32)


class PointState(NamedTuple):
    pos: jax.Array  # float32 [2], the robot's position (also the observation)
    t: jax.Array  # int32, steps taken in this episode


class PointRobotActions:
    """The point robot's action space, shared by its families: a velocity in R^2, clipped by the
    environment to [-0.1, 0.1] per coordinate."""

    continuous: ClassVar[bool] = True

    @property
    def action_size(self):
        return 2

    @property
    def action_bounds(self):
        return (-MAX_SPEED, MAX_SPEED)

    def goal_position(self, task) -> jax.Array:
        """The task's goal in the plane ([2]); the first two observation coordinates are the
        robot's position (`metarlkit paths` draws them)."""
        return task["goal"]


@dataclasses.dataclass(frozen=True)
class PointNavigation(PointRobotActions, TaskFamily):
    """A point robot in the plane moves to an unseen goal; every episode starts at the origin.

    The observation is the position (float32 [2]); an action is a velocity in R^2, clipped by the
    environment to [-0.1, 0.1] per coordinate (the agent may output any real vector), and the
    position moves by the clipped action. The task is the goal.

    `dense` (Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks",
    2D navigation; as pytorch-maml-rl's `2DNavigation-v0`): goal ~ U[-0.5, 0.5]^2; the reward is
    minus the Euclidean distance from the new position to the goal; the episode ends when both
    coordinates are within 0.01 of the goal (strictly, as pytorch-maml-rl) or after 100 steps.

    `sparse` (Rakelly et al. 2019, "Efficient Off-Policy Meta-Reinforcement Learning via
    Probabilistic Context Variables" (PEARL), sparse point robot): the goal is at an angle
    ~ U[0, pi] on the circle of radius 1; episodes are 20 steps with no early end; the reward is
    1 - distance within distance 0.2 of the goal (PEARL's sparsified reward, made positive) and 0
    elsewhere. PEARL uses a fixed list of goals; here every task draws its own angle.

    Rewards are deterministic (`expected_reward` = reward). The best task-aware policy moves each
    coordinate toward the goal by min(0.1, remaining): after t steps it stands at the point of the
    reachable box [-0.1 t, 0.1 t]^2 nearest the goal, so it minimises the distance at every step
    at once, and both rewards are non-increasing in the distance (and the dense variant's goal
    zone is reached first this way), so it is optimal for both variants.
    """

    variant: str = "dense"
    goals: str = optional_option("random")

    name: ClassVar[str] = "point-navigation"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "other"
    defines_pseudo_regret: ClassVar[bool] = False
    defines_success: ClassVar[bool] = True
    defines_model: ClassVar[bool] = True
    description: ClassVar[str] = (
        "2D point robot to an unseen goal, velocity actions clipped to 0.1; variant dense|sparse"
    )

    def __post_init__(self):
        if self.variant not in NAVIGATION_VARIANTS:
            raise ValueError(
                f"variant must be one of {', '.join(NAVIGATION_VARIANTS)}, got {self.variant!r}"
            )
        if self.goals not in GOAL_SETS:
            raise ValueError(f"goals must be one of {', '.join(GOAL_SETS)}, got {self.goals!r}")
        if self.goals == "oyster" and self.variant != "sparse":
            raise ValueError("goals=oyster is PEARL's sparse point robot: use variant=sparse")

    @property
    def reports_dense_reward(self):
        return self.variant == "sparse"

    @property
    def ends_early(self):
        # dense episodes end in the goal zone; sparse ones always last 20 steps
        return self.variant == "dense"

    @property
    def obs_shape(self):
        return (2,)

    @property
    def horizon(self):
        return NAVIGATION_VARIANTS[self.variant]

    def task_list(self):
        if self.goals != "oyster":
            return None
        return ({"goal": jnp.asarray(oyster_goals())},
                {"train": (0, OYSTER_TRAIN), "test": (OYSTER_TRAIN, OYSTER_GOALS - OYSTER_TRAIN)})

    def sample_task(self, key):
        if self.goals == "oyster":  # one of the training goals
            return {"goal": jnp.asarray(oyster_goals())[jax.random.randint(key, (), 0, OYSTER_TRAIN)]}
        if self.variant == "dense":
            goal = jax.random.uniform(key, (2,), minval=-DENSE_HALF_WIDTH, maxval=DENSE_HALF_WIDTH)
        else:
            angle = jax.random.uniform(key, (), minval=0.0, maxval=jnp.pi)
            goal = SPARSE_RADIUS * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        return {"goal": goal.astype(jnp.float32)}

    def reset(self, key, task):
        del key, task
        pos = jnp.zeros(2, jnp.float32)
        return pos, PointState(pos=pos, t=jnp.int32(0))

    def _reward(self, distance):
        if self.variant == "dense":
            return -distance
        return jnp.where(distance <= SPARSE_GOAL_RADIUS, 1.0 - distance, 0.0)

    def dynamics_fn(self, obs, action, task):
        del task
        return obs + jnp.clip(jnp.asarray(action, jnp.float32), -MAX_SPEED, MAX_SPEED)

    def reward_fn(self, obs, action, next_obs, task):
        del obs, action
        return self._reward(jnp.sqrt(jnp.sum((next_obs - task["goal"]) ** 2, axis=-1))).astype(jnp.float32)

    def terminated_fn(self, obs, action, next_obs, task):
        del obs, action
        if self.variant != "dense":
            return jnp.zeros(jnp.shape(next_obs)[:-1], bool)
        return jnp.all(jnp.abs(next_obs - task["goal"]) < DENSE_TOLERANCE, axis=-1)

    def step(self, key, env_state, action, task):
        del key  # deterministic dynamics
        goal = task["goal"]
        move = jnp.clip(jnp.asarray(action, jnp.float32), -MAX_SPEED, MAX_SPEED)
        pos = env_state.pos + move
        offset = pos - goal
        reward = self._reward(jnp.sqrt(jnp.sum(offset**2))).astype(jnp.float32)
        t = env_state.t + 1
        # Reaching the dense goal zone is a true end; the horizon only truncates.
        terminated = jnp.bool_(False)
        if self.variant == "dense":
            terminated = jnp.all(jnp.abs(offset) < DENSE_TOLERANCE)
        done = (t >= self.horizon) | terminated
        if self.variant == "dense":
            success = terminated  # in the goal zone
        else:
            success = jnp.sqrt(jnp.sum(offset**2)) <= SPARSE_GOAL_RADIUS
        info = StepInfo(expected_reward=reward, optimal_expected_reward=jnp.float32(jnp.nan),
                        terminated=terminated, success=success, dense_reward=-jnp.sqrt(jnp.sum(offset**2)))
        return pos, PointState(pos=pos, t=t), reward, done, info

    def optimal_return(self, task):
        # The oracle's episode through `step` itself, so the value is exactly what a trial of the
        # oracle scores (same float operations); after the dense goal zone nothing counts.
        obs, state = self.reset(None, task)

        def body(carry, t):
            obs, state, alive = carry
            obs, state, reward, done, _ = self.step(None, state, self.oracle_action(task, obs, t), task)
            return (obs, state, alive & ~done), jnp.where(alive, reward, 0.0)

        _, rewards = jax.lax.scan(body, (obs, state, jnp.bool_(True)), jnp.arange(self.horizon))
        return jnp.sum(rewards)

    def oracle_action(self, task, obs, t):
        del t
        return jnp.clip(task["goal"] - obs, -MAX_SPEED, MAX_SPEED).astype(jnp.float32)


WIND_GOAL = (0.0, 1.0)  # point-robot-wind's fixed goal
WIND_STEPS = 20
WIND_SPEED = (0.02, 0.08)  # range of |wind| per step, below the action bound


@dataclasses.dataclass(frozen=True)
class PointRobotWind(PointRobotActions, ParametricFamily):
    """The point robot of `point-navigation` with a fixed goal, blown by a per-task wind.

    Every episode starts at the origin; the goal is (0, 1) in every task; an action is a velocity
    clipped to [-0.1, 0.1] per coordinate, and every step the robot also drifts by the task's wind:
      position' = position + clip(action, -0.1, 0.1) + wind,   reward = -|position' - goal|,
    20 steps, no early end. The wind is (speed cos angle, speed sin angle) with angle ~ U[0, 2 pi)
    and speed ~ U[0.02, 0.08] (`wind_angle`, `wind_speed`: each coordinate of the wind stays below
    the action bound, so the robot can always hold its place; nominal: no wind). The observation
    is the position, so an agent without memory cannot know the wind; `observe_wind=true` appends
    the wind of the last step (at a reset, the wind in force): the "told" variant, a reference for
    what knowing the task is worth.
    `change_at` makes the wind change inside a trial (a second wind from the same distribution;
    with `reverse=true`, the first wind reversed: same speed, opposite direction).

    The same argument as `point-navigation`'s gives the optimum: after t steps the reachable set is
    the box of half-width 0.1 t around t * wind, and moving each coordinate toward the goal by the
    clipped (goal - position - wind) stands at its nearest point at every step at once. So the
    oracle and regret are defined when the wind does not change (an episode's optimum then depends
    only on the task); with `change_at` they are not.
    """

    observe_wind: bool = optional_option(False)
    reverse: bool = optional_option(False)

    name: ClassVar[str] = "point-robot-wind"
    version: ClassVar[int] = 1
    ends_early: ClassVar[bool] = False
    description: ClassVar[str] = (
        "2D point robot to a fixed goal, drifted by a per-task wind (|wind| 0.02-0.08 per step); 20 steps"
    )

    def goal_position(self, task) -> jax.Array:
        del task
        return jnp.asarray(WIND_GOAL, jnp.float32)

    def __post_init__(self):
        super().__post_init__()
        if self.spread != 1.0:
            raise ValueError("point-robot-wind's wind has no log-uniform range: spread applies to pendulum and cartpole")
        if self.reverse and not self.changes:
            raise ValueError("reverse needs change_at (the trial step the wind reverses at)")

    def sample_task(self, key, dist: D.TaskDistribution | None = None):
        task = super().sample_task(key, dist)
        if self.reverse:
            task["after"] = {"wind_angle": jnp.mod(task["wind_angle"] + math.pi, 2 * math.pi).astype(jnp.float32),
                             "wind_speed": task["wind_speed"]}
        return task

    @property
    def defines_optimum(self):
        return not self.changes

    @property
    def obs_shape(self):
        return (4,) if self.observe_wind else (2,)

    @property
    def horizon(self):
        return WIND_STEPS

    def distribution(self) -> D.TaskDistribution:
        return D.TaskDistribution({"wind_angle": D.uniform(0.0, 2 * math.pi),
                                   "wind_speed": D.uniform(*WIND_SPEED)})

    def nominal_task(self):
        return {"wind_angle": jnp.float32(0.0), "wind_speed": jnp.float32(0.0)}

    @staticmethod
    def wind(params) -> jax.Array:
        """The wind vector [2] of a task's parameters (those in force: `task_at`)."""
        angle, speed = params["wind_angle"], params["wind_speed"]
        return (speed * jnp.stack([jnp.cos(angle), jnp.sin(angle)])).astype(jnp.float32)

    def _observe(self, pos, params):
        return jnp.concatenate([pos, self.wind(params)]) if self.observe_wind else pos

    def reset(self, key, task):
        del key
        pos = jnp.zeros(2, jnp.float32)
        return self._observe(pos, task), PointState(pos=pos, t=jnp.int32(0))

    def step(self, key, env_state, action, task):
        del key  # deterministic dynamics
        move = jnp.clip(jnp.asarray(action, jnp.float32), -MAX_SPEED, MAX_SPEED)
        pos = env_state.pos + move + self.wind(task)
        reward = -jnp.sqrt(jnp.sum((pos - jnp.asarray(WIND_GOAL, jnp.float32)) ** 2))
        t = env_state.t + 1
        info = StepInfo(expected_reward=reward, optimal_expected_reward=jnp.float32(jnp.nan))
        return self._observe(pos, task), PointState(pos=pos, t=t), reward, t >= self.horizon, info

    def dynamics_fn(self, obs, action, task):
        move = jnp.clip(jnp.asarray(action, jnp.float32), -MAX_SPEED, MAX_SPEED)
        return self._observe(obs[:2] + move + self.wind(task), task)

    def reward_fn(self, obs, action, next_obs, task):
        del obs, action, task
        return -jnp.sqrt(jnp.sum((next_obs[..., :2] - jnp.asarray(WIND_GOAL, jnp.float32)) ** 2, axis=-1))

    def oracle_action(self, task, obs, t):
        del t
        goal = jnp.asarray(WIND_GOAL, jnp.float32)
        return jnp.clip(goal - obs[:2] - self.wind(task), -MAX_SPEED, MAX_SPEED).astype(jnp.float32)

    def optimal_return(self, task):
        obs, state = self.reset(None, task)

        def body(carry, t):
            obs, state = carry
            obs, state, reward, _, _ = self.step(None, state, self.oracle_action(task, obs, t), task)
            return (obs, state), reward

        _, rewards = jax.lax.scan(body, (obs, state), jnp.arange(self.horizon))
        return jnp.sum(rewards)
