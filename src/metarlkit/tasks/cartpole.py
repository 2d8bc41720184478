"""`cartpole`: gymnasium's CartPole-v1 in JAX, with per-task masses, pole length and frictions.

Source: gymnasium.envs.classic_control.cartpole (gymnasium 1.4), the Euler integrator it uses by
default; friction follows Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that can
solve difficult learning control problems", whose equations gymnasium's are with zero friction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.tasks import distributions as D
from metarlkit.tasks.base import StepInfo
from metarlkit.tasks.control import ParametricFamily

GRAVITY = 9.8
FORCE = 10.0
TAU = 0.02  # seconds per step
X_LIMIT = 2.4
THETA_LIMIT = 12 * 2 * math.pi / 360
CARTPOLE_STEPS = 500  # gymnasium's TimeLimit for CartPole-v1
VARIANTS = ("discrete", "continuous")


class CartPoleState(NamedTuple):
    q: jax.Array  # [x, x_dot, theta, theta_dot] (also the observation)
    t: jax.Array  # int32, steps taken in this episode


@dataclasses.dataclass(frozen=True)
class CartPole(ParametricFamily):
    """Gymnasium's CartPole-v1 with per-task cart mass, pole mass and pole half-length (and frictions).

    Source: gymnasium.envs.classic_control.cartpole (gymnasium 1.4), kinematics_integrator="euler"
    (its default). Observation [x, x_dot, theta, theta_dot]; `discrete` (default, as gymnasium):
    action 0 pushes the cart left with force 10, action 1 right (any other index pushes left, as
    gymnasium's `force_mag if action == 1 else -force_mag`); `continuous` (an extension): an action
    in R^1, force = clip(action, -1, 1) x 10 (so +-1 are the discrete pushes). Euler steps of 0.02 s:
      temp = (F + m_p l theta_dot^2 sin theta - mu_c sgn(x_dot)) / (m_c + m_p)
      theta_acc = (g sin theta - cos theta temp - mu_p theta_dot / (m_p l))
                  / (l (4/3 - m_p cos^2 theta / (m_c + m_p)))
      x_acc = temp - m_p l theta_acc cos theta / (m_c + m_p)
      x, x_dot, theta, theta_dot += 0.02 (x_dot, x_acc, theta_dot, theta_acc)
    with g 9.8 and `length` l the pole's half-length (as gymnasium). The episode ends for good
    (`terminated`) when |x| > 2.4 or |theta| > 12 degrees, and is truncated after 500 steps; the
    reward is 1 per step, the terminating one included; episodes start uniform in [-0.05, 0.05]^4.
    The frictions mu_c (cart on track) and mu_p (pole on cart) are an extension, Barto, Sutton &
    Anderson (1983)'s equations: 0 at nominal, where the step is gymnasium's arithmetic exactly
    (tests/test_cartpole.py compares them). Total mass and m_p l are
    derived from the task's parameters inside the step, so they always agree.

    The observation is the whole state: `dynamics_fn` (the next observation), `reward_fn` (1) and
    `terminated_fn` (the bounds on the next observation) reproduce the step.

    Tasks (the default distribution): masscart, masspole and length each nominal (1, 0.1, 0.5)
    times 1.5^u, u ~ U[-1, 1] (rand_param_envs-style log-uniform), frictions 0. No optimum is
    known, so regret and the oracle are not defined.
    """

    variant: str = "discrete"

    name: ClassVar[str] = "cartpole"
    version: ClassVar[int] = 1
    defines_optimum: ClassVar[bool] = False
    description: ClassVar[str] = (
        "gymnasium's CartPole-v1; per-task cart mass, pole mass, pole length (log-uniform 1.5^[-1,1]); "
        "variant discrete|continuous"
    )

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")

    @property
    def continuous(self):
        return self.variant == "continuous"

    @property
    def num_actions(self):
        if self.continuous:
            return super().num_actions  # the one-line ActionSpaceError
        return 2

    @property
    def action_size(self):
        if not self.continuous:
            return super().action_size
        return 1

    @property
    def action_bounds(self):
        self.action_size  # noqa: B018  (raises on the discrete variant)
        return (-1.0, 1.0)

    @property
    def obs_shape(self):
        return (4,)

    @property
    def horizon(self):
        return CARTPOLE_STEPS

    def distribution(self) -> D.TaskDistribution:
        return D.TaskDistribution({
            "masscart": D.log_uniform(1.0, 1.5, -float(self.spread), float(self.spread)),
            "masspole": D.log_uniform(0.1, 1.5, -float(self.spread), float(self.spread)),
            "length": D.log_uniform(0.5, 1.5, -float(self.spread), float(self.spread)),
            "friction_cart": D.uniform(0.0, 0.0),
            "friction_pole": D.uniform(0.0, 0.0),
        })

    def nominal_task(self):
        return {"masscart": jnp.float32(1.0), "masspole": jnp.float32(0.1), "length": jnp.float32(0.5),
                "friction_cart": jnp.float32(0.0), "friction_pole": jnp.float32(0.0)}

    def reset(self, key, task):
        del task
        q = jax.random.uniform(key, (4,), jnp.float32, -0.05, 0.05)
        return q, CartPoleState(q, jnp.int32(0))

    def force(self, action, dtype):
        if self.continuous:
            return jnp.clip(jnp.reshape(action, ()), -1.0, 1.0).astype(dtype) * FORCE
        return jnp.where(action == 1, FORCE, -FORCE).astype(dtype)

    def integrate(self, q, force, task):
        """One Euler step of the physics from q = [x, x_dot, theta, theta_dot] under `force`."""
        x, x_dot, theta, theta_dot = q[0], q[1], q[2], q[3]
        m_c, m_p, length = task["masscart"], task["masspole"], task["length"]
        mu_c, mu_p = task["friction_cart"], task["friction_pole"]
        total = m_p + m_c
        polemass_length = m_p * length
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin - mu_c * jnp.sign(x_dot)) / total
        theta_acc = (GRAVITY * sin - cos * temp - mu_p * theta_dot / polemass_length) / (
            length * (4.0 / 3.0 - m_p * cos**2 / total))
        x_acc = temp - polemass_length * theta_acc * cos / total
        return jnp.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc])

    @staticmethod
    def fallen(q):
        """Beyond the termination bounds (|x| > 2.4 or |theta| > 12 degrees)."""
        return (q[..., 0] < -X_LIMIT) | (q[..., 0] > X_LIMIT) | (q[..., 2] < -THETA_LIMIT) | (q[..., 2] > THETA_LIMIT)

    def step(self, key, env_state, action, task):
        del key  # deterministic dynamics
        q = self.integrate(env_state.q, self.force(action, env_state.q.dtype), task)
        t = env_state.t + 1
        terminated = self.fallen(q)
        reward = jnp.ones((), q.dtype)
        info = StepInfo(expected_reward=reward, optimal_expected_reward=jnp.asarray(jnp.nan, q.dtype),
                        terminated=terminated)
        return q, CartPoleState(q, t), reward, terminated | (t >= self.horizon), info

    def dynamics_fn(self, obs, action, task):
        return self.integrate(obs, self.force(action, obs.dtype), task)

    def reward_fn(self, obs, action, next_obs, task):
        del obs, action, task
        return jnp.ones(jnp.shape(next_obs)[:-1], next_obs.dtype)

    def terminated_fn(self, obs, action, next_obs, task):
        del obs, action, task
        return self.fallen(next_obs)
