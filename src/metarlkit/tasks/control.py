"""Control families whose tasks differ in their dynamics.

Every family here is a `ParametricFamily`: a task is a set of named physical parameters drawn from
a `TaskDistribution` (`tasks.distributions`), so a learner can move the distribution
(`sample_task(key, dist)`) without recompiling, and the options `change_at` / `change_spread` make
the dynamics change inside a trial: each task then also holds a second parameter set (`after`,
drawn from the same distribution) and the trial step of the change (`change_step`, uniform in
[change_at, change_at + change_spread]; step t of episode e is trial step e * horizon + t), and
`task_at` gives the parameters in force at a trial step. `nominal=true` makes every task the
nominal one (a zero-width default distribution): the setting of the source environment.
`spread=s` sets the range of the log-uniform parameters to nominal x 1.5^[-s, s] (default 1;
rand_param_envs uses 3).

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
from metarlkit.tasks.base import MAX_TRIAL_STEPS, StepInfo, TaskFamily, optional_option

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
class ParametricFamily(TaskFamily):
    """A family whose task is a dict of physical parameters (see the module docstring).

    Subclasses give `distribution()` (the parameters' distribution; `default_distribution()`, what
    every test set is drawn from, is it unless `nominal=true`) and `nominal_task()`, and read the
    parameters in `step` from the task `task_at` returns.
    """

    change_at: int = optional_option(0)
    change_spread: int = optional_option(0)
    nominal: bool = optional_option(False)
    spread: float = optional_option(1.0)

    LIMITS: ClassVar[dict[str, int]] = {**TaskFamily.LIMITS, "change_at": MAX_TRIAL_STEPS,
                                        "change_spread": MAX_TRIAL_STEPS}
    defines_model: ClassVar[bool] = True
    reward_depends_on_task: ClassVar[bool] = False  # the parameters change the dynamics only

    def __post_init__(self):
        for name in ("change_at", "change_spread"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0 (0: no change), got {value!r}")
        if self.change_spread and not self.change_at:
            raise ValueError("change_spread needs change_at (the first trial step a change may happen at)")
        if isinstance(self.spread, bool) or not isinstance(self.spread, (int, float)) or not 0 <= self.spread <= 3:
            raise ValueError(f"spread must be a number in [0, 3] (parameters vary by 1.5^[-spread, spread]), got {self.spread!r}")

    @property
    def changes(self) -> bool:
        """Whether tasks change their dynamics inside a trial."""
        return self.change_at > 0

    def distribution(self) -> D.TaskDistribution:
        """The family's distribution of parameters (each subclass gives its own)."""
        raise NotImplementedError

    def nominal_task(self) -> dict[str, jax.Array]:
        raise NotImplementedError

    def default_distribution(self) -> D.TaskDistribution:
        """The distribution every task set is drawn from: `distribution()`, or with `nominal=true`
        the zero-width distribution at `nominal_task()` (every task the nominal one)."""
        if self.nominal:
            return D.TaskDistribution({name: D.uniform(value, value) for name, value in self.nominal_task().items()})
        return self.distribution()

    def sample_task(self, key, dist: D.TaskDistribution | None = None):
        dist = dist or self.default_distribution()
        if not self.changes:
            return dist.sample(key)
        key_before, key_after, key_step = jax.random.split(key, 3)
        task = dist.sample(key_before)
        task["after"] = dist.sample(key_after)
        task["change_step"] = self.change_at + jax.random.randint(key_step, (), 0, self.change_spread + 1)
        return task

    def task_at(self, task, trial_step):
        if not self.changes:
            return task
        switched = jnp.asarray(trial_step) >= task["change_step"]
        return {name: jnp.where(switched, after, task[name]) for name, after in task["after"].items()}

    def parameters(self, task) -> dict[str, jax.Array]:
        """The parameters a trial starts with (the task without its change)."""
        return {name: value for name, value in task.items() if name not in ("after", "change_step")}


@dataclasses.dataclass(frozen=True)
class Pendulum(ParametricFamily):
    """Gymnasium's Pendulum-v1 with per-task mass and length (and damping).

    Observation [cos theta, sin theta, theta_dot]; action a torque in [-2, 2] (clipped); reward
    -(angle^2 + 0.1 theta_dot^2 + 0.001 u^2) on the state *before* the step; 200 steps, no true end;
    episodes start at theta ~ U[-pi, pi], theta_dot ~ U[-1, 1]. Dynamics (dt 0.05, g 10):
      theta_dot' = clip(theta_dot + (3 g / (2 l) sin theta + 3 u / (m l^2) - b theta_dot) dt, -8, 8)
      theta' = theta + theta_dot' dt
    so the mass enters only the control gain 3 / (m l^2). The damping b is an extension (gymnasium
    has none): 0 at nominal, where the step is gymnasium's exactly.

    The observation determines the reward and the next observation (`reward_fn`, `dynamics_fn`).

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

    def distribution(self) -> D.TaskDistribution:
        s = float(self.spread)
        return D.TaskDistribution({"mass": D.log_uniform(1.0, 1.5, -s, s),
                                   "length": D.log_uniform(1.0, 1.5, -s, s),
                                   "damping": D.uniform(0.0, 0.0)})

    def nominal_task(self) -> dict[str, jax.Array]:
        return {"mass": jnp.float32(1.0), "length": jnp.float32(1.0), "damping": jnp.float32(0.0)}

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

    def reward_fn(self, obs, action, next_obs, task):
        del next_obs, task
        theta = jnp.arctan2(obs[..., 1], obs[..., 0])
        u = jnp.clip(action[..., 0], -MAX_TORQUE, MAX_TORQUE)
        return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)

    def dynamics_fn(self, obs, action, task):
        theta, theta_dot = jnp.arctan2(obs[..., 1], obs[..., 0]), obs[..., 2]
        state = PendulumState(theta, theta_dot, jnp.int32(0))
        next_obs, *_ = self.step(None, state, action, task)
        return next_obs
