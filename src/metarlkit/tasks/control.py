"""Control families whose tasks differ in their dynamics.

`pendulum` is gymnasium's Pendulum-v1 (gymnasium.envs.classic_control.pendulum, version 1.4) at
nominal parameters, written in JAX: swing a pole up and hold it with a bounded torque. A task is a
set of physical parameters drawn from a `TaskDistribution` (`tasks.distributions`), so a learner
can move the distribution (`sample_task(key, dist)`) without recompiling.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.tasks import distributions as D
from metarlkit.tasks.base import StepInfo, TaskFamily

GRAVITY = 10.0
DT = 0.05
MAX_SPEED = 8.0
MAX_TORQUE = 2.0
PENDULUM_STEPS = 200  # gymnasium's TimeLimit for Pendulum-v1


class PendulumState(NamedTuple):
    theta: jax.Array  # angle, 0 upright
    theta_dot: jax.Array  # angular velocity
    t: jax.Array  # int32, steps taken in this episode (the time limit ends it)


def angle_normalize(x):
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


@dataclasses.dataclass(frozen=True)
class Pendulum(TaskFamily):
    """Gymnasium's Pendulum-v1 with per-task mass and length (and damping).

    Observation [cos theta, sin theta, theta_dot]; action a torque in [-2, 2] (clipped); reward
    -(angle^2 + 0.1 theta_dot^2 + 0.001 u^2) on the state *before* the step; 200 steps, no true end;
    episodes start at theta ~ U[-pi, pi], theta_dot ~ U[-1, 1]. Dynamics (dt 0.05, g 10):
      theta_dot' = clip(theta_dot + (3 g / (2 l) sin theta + 3 u / (m l^2) - b theta_dot) dt, -8, 8)
      theta' = theta + theta_dot' dt
    so the mass enters only the control gain 3 / (m l^2). The damping b is an extension (gymnasium
    has none): 0 at nominal, where the step is gymnasium's exactly.

    Tasks (the default distribution): mass and length each nominal 1 times 1.5^u, u ~ U[-1, 1]
    (rand_param_envs-style log-uniform, 0.67 to 1.5), damping 0. No optimal return is known, so
    regret and the oracle are not defined.
    """

    name: ClassVar[str] = "pendulum"
    version: ClassVar[int] = 1
    continuous: ClassVar[bool] = True
    ends_early: ClassVar[bool] = False
    defines_optimum: ClassVar[bool] = False
    description: ClassVar[str] = "gymnasium's Pendulum-v1 swing-up; per-task mass and length (log-uniform 1.5^[-1,1])"

    @property
    def action_size(self):
        return 1

    @property
    def action_bounds(self):
        return (-MAX_TORQUE, MAX_TORQUE)

    @property
    def obs_shape(self):
        return (3,)

    @property
    def horizon(self):
        return PENDULUM_STEPS

    def default_distribution(self) -> D.TaskDistribution:
        """The task distribution test sets come from."""
        return D.TaskDistribution({"mass": D.log_uniform(1.0, 1.5, -1.0, 1.0),
                                   "length": D.log_uniform(1.0, 1.5, -1.0, 1.0),
                                   "damping": D.uniform(0.0, 0.0)})

    def nominal_task(self) -> dict[str, jax.Array]:
        return {"mass": jnp.float32(1.0), "length": jnp.float32(1.0), "damping": jnp.float32(0.0)}

    def sample_task(self, key, dist: D.TaskDistribution | None = None):
        return (dist or self.default_distribution()).sample(key)

    def reset(self, key, task):
        del task
        high = jnp.array([jnp.pi, 1.0], jnp.float32)
        theta, theta_dot = jax.random.uniform(key, (2,), jnp.float32, -high, high)
        state = PendulumState(theta, theta_dot, jnp.int32(0))
        return self.observe(state), state

    @staticmethod
    def observe(state: PendulumState):
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot])

    def step(self, key, env_state, action, task):
        del key  # deterministic dynamics
        theta, theta_dot, t = env_state
        m, length, b = task["mass"], task["length"], task["damping"]
        u = jnp.clip(jnp.reshape(action, ()), -MAX_TORQUE, MAX_TORQUE).astype(theta.dtype)
        cost = angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2
        accel = 3 * GRAVITY / (2 * length) * jnp.sin(theta) + 3.0 / (m * length**2) * u - b * theta_dot
        new_theta_dot = jnp.clip(theta_dot + accel * DT, -MAX_SPEED, MAX_SPEED)
        state = PendulumState(theta + new_theta_dot * DT, new_theta_dot, t + 1)
        reward = -cost
        info = StepInfo(expected_reward=reward, optimal_expected_reward=jnp.asarray(jnp.nan, reward.dtype))
        return self.observe(state), state, reward, state.t >= self.horizon, info
