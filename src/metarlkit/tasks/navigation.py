"""Point navigation: a 2D point robot with continuous velocity actions.

The first family with continuous actions (`TaskFamily.continuous`). Dynamics are deterministic, so
the environment keys are unused; `step` keeps the contract's signature.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.tasks.base import StepInfo, TaskFamily

MAX_SPEED = 0.1  # per-coordinate clip of an action (a velocity; one step moves by it)
DENSE_HALF_WIDTH = 0.5  # dense goals ~ U[-0.5, 0.5]^2
DENSE_TOLERANCE = 0.01  # dense episodes end when |position - goal| < 0.01 in both coordinates
SPARSE_RADIUS = 1.0  # sparse goals lie on the upper half of the circle of this radius
SPARSE_GOAL_RADIUS = 0.2  # sparse rewards are non-zero within this distance of the goal

# variant -> episode horizon
NAVIGATION_VARIANTS = {"dense": 100, "sparse": 20}


class PointState(NamedTuple):
    pos: jax.Array  # float32 [2], the robot's position (also the observation)
    t: jax.Array  # int32, steps taken in this episode


@dataclasses.dataclass(frozen=True)
class PointNavigation(TaskFamily):
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

    name: ClassVar[str] = "point-navigation"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "other"
    defines_pseudo_regret: ClassVar[bool] = False
    continuous: ClassVar[bool] = True
    defines_success: ClassVar[bool] = True
    description: ClassVar[str] = (
        "2D point robot to an unseen goal, velocity actions clipped to 0.1; variant dense|sparse"
    )

    def __post_init__(self):
        if self.variant not in NAVIGATION_VARIANTS:
            raise ValueError(
                f"variant must be one of {', '.join(NAVIGATION_VARIANTS)}, got {self.variant!r}"
            )

    @property
    def ends_early(self):
        # dense episodes end in the goal zone; sparse ones always last 20 steps
        return self.variant == "dense"

    @property
    def action_size(self):
        return 2

    @property
    def action_bounds(self):
        return (-MAX_SPEED, MAX_SPEED)

    @property
    def obs_shape(self):
        return (2,)

    @property
    def horizon(self):
        return NAVIGATION_VARIANTS[self.variant]

    def sample_task(self, key):
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
                        terminated=terminated, success=success)
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
