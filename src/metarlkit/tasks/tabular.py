"""Random tabular MDPs (Duan et al. 2016, RL2, section 4.2) and finite-horizon value iteration."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.tasks.base import StepInfo, TaskFamily


def value_iteration(transitions: jax.Array, rewards: jax.Array, horizon: int) -> jax.Array:
    """Finite-horizon optimal action values by backward induction.

    Args:
      transitions: [S, A, S] next-state probabilities P(s' | s, a).
      rewards: [S, A] expected rewards.
      horizon: number of steps H in the episode.

    Returns:
      q: [H, S, A]; q[t] is the optimal action value with H - t steps left (q[H-1] = rewards).
    """

    def backward(v_next, _):
        q = rewards + transitions @ v_next
        return q.max(axis=-1), q

    _, q_rev = jax.lax.scan(backward, jnp.zeros(rewards.shape[0], rewards.dtype), None, length=horizon)
    return q_rev[::-1]


class MDPState(NamedTuple):
    s: jax.Array  # int32 current state
    t: jax.Array  # int32 steps taken in this episode


@dataclasses.dataclass(frozen=True)
class TabularMDP(TaskFamily):
    """Random finite MDPs: |S| states, |A| actions, episodes of `steps` steps starting in state 0.

    Each transition row P(. | s, a) ~ Dirichlet(1, ..., 1); each mean reward R(s, a) ~ N(1, 1); the
    observed reward is R(s, a) + N(0, 1). Observations are one-hot states.
    """

    states: int = 10
    actions: int = 5
    steps: int = 10

    name: ClassVar[str] = "tabular-mdp"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "gaussian"
    defines_pseudo_regret: ClassVar[bool] = False
    ends_early: ClassVar[bool] = False
    description: ClassVar[str] = "random MDPs: Dirichlet(1) transitions, N(1,1) mean rewards, unit noise"

    def __post_init__(self):
        for field in ("states", "actions", "steps"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < (2 if field != "steps" else 1):
                least = 2 if field != "steps" else 1
                raise ValueError(f"{field} must be a whole number >= {least}, got {value!r}")

    @property
    def num_actions(self):
        return self.actions

    @property
    def obs_shape(self):
        return (self.states,)

    @property
    def horizon(self):
        return self.steps

    def sample_task(self, key):
        key_p, key_r = jax.random.split(key)
        transitions = jax.random.dirichlet(
            key_p, jnp.ones(self.states), (self.states, self.actions)
        )
        rewards = 1.0 + jax.random.normal(key_r, (self.states, self.actions))
        return {"transitions": transitions, "rewards": rewards}

    def _obs(self, s):
        return jax.nn.one_hot(s, self.states, dtype=jnp.float32)

    def reset(self, key, task):
        del key, task
        s = jnp.int32(0)
        return self._obs(s), MDPState(s=s, t=jnp.int32(0))

    def step(self, key, env_state, action, task):
        key_next, key_noise = jax.random.split(key)
        s = env_state.s
        mean = task["rewards"][s, action]
        reward = mean + jax.random.normal(key_noise)
        # Inverse-CDF sampling from one uniform keeps draws common across agents.
        cdf = jnp.cumsum(task["transitions"][s, action])
        s_next = jnp.minimum(
            jnp.sum(cdf < jax.random.uniform(key_next) * cdf[-1]), self.states - 1
        ).astype(jnp.int32)
        t = env_state.t + 1
        info = StepInfo(expected_reward=mean, optimal_expected_reward=jnp.float32(jnp.nan))
        return self._obs(s_next), MDPState(s=s_next, t=t), reward, t >= self.steps, info

    def optimal_q(self, task):
        return value_iteration(task["transitions"], task["rewards"], self.steps)

    def optimal_return(self, task):
        return self.optimal_q(task)[0, 0].max()

    def oracle_action(self, task, obs, t):
        q = self.optimal_q(task)[jnp.minimum(t, self.steps - 1)]
        return jnp.argmax(q[jnp.argmax(obs)])
