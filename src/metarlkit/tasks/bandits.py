"""Multi-armed bandit task families.

Every bandit observation is a constant zero vector of size 1: what an agent knows of the task comes
only from the rewards it sees. Environment randomness for a pull is a single draw keyed by the
(task, episode, step) key, so two agents on the same task see the same draws whatever they pull
(common random numbers): a Bernoulli reward is `u < mean[action]` with one uniform `u` per pull.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.tasks.base import StepInfo, TaskFamily, zero_obs


class PullState(NamedTuple):
    t: jax.Array  # int32, pulls made so far in this episode


@dataclasses.dataclass(frozen=True)
class _StationaryBandit(TaskFamily):
    """Shared dynamics of bandits whose arm means stay fixed for the whole trial.

    Subclasses implement `means(task) -> [k]` and `_reward(key, mean)`.
    """

    pulls: int = 1

    defines_pseudo_regret: ClassVar[bool] = True
    ends_early: ClassVar[bool] = False

    def __post_init__(self):
        if not isinstance(self.pulls, int) or self.pulls < 1:
            raise ValueError(f"pulls must be a whole number >= 1, got {self.pulls!r}")

    @property
    def obs_shape(self):
        return (1,)

    @property
    def horizon(self):
        return self.pulls

    def means(self, task) -> jax.Array:
        raise NotImplementedError

    def _reward(self, key, mean):
        return (jax.random.uniform(key) < mean).astype(jnp.float32)

    def reset(self, key, task):
        del key, task
        return zero_obs(self.obs_shape), PullState(t=jnp.int32(0))

    def step(self, key, env_state, action, task):
        means = self.means(task)
        mean = means[action]
        reward = self._reward(key, mean)
        t = env_state.t + 1
        done = t >= self.pulls
        info = StepInfo(expected_reward=mean, optimal_expected_reward=jnp.max(means))
        return zero_obs(self.obs_shape), PullState(t=t), reward, done, info

    def optimal_return(self, task):
        return self.pulls * jnp.max(self.means(task))

    def oracle_action(self, task, obs, t):
        del obs, t
        return jnp.argmax(self.means(task))


@dataclasses.dataclass(frozen=True)
class BernoulliBandit(_StationaryBandit):
    """k independent Bernoulli arms with means ~ U[0, 1] (Duan et al. 2016, RL2, section 4.1)."""

    arms: int = 5

    name: ClassVar[str] = "bernoulli-bandit"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "bernoulli"
    description: ClassVar[str] = "k Bernoulli arms, means ~ U[0,1]; one pull per episode by default"

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.arms, int) or self.arms < 2:
            raise ValueError(f"arms must be a whole number >= 2, got {self.arms!r}")

    @property
    def num_actions(self):
        return self.arms

    def sample_task(self, key):
        return {"means": jax.random.uniform(key, (self.arms,))}

    def means(self, task):
        return task["means"]


@dataclasses.dataclass(frozen=True)
class GaussianBandit(_StationaryBandit):
    """k arms with means ~ N(0, 1) and Gaussian reward noise of standard deviation `noise`."""

    arms: int = 5
    noise: float = 1.0

    name: ClassVar[str] = "gaussian-bandit"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "gaussian"
    description: ClassVar[str] = "k arms, means ~ N(0,1), rewards mean + N(0, noise^2)"

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.arms, int) or self.arms < 2:
            raise ValueError(f"arms must be a whole number >= 2, got {self.arms!r}")
        if not self.noise > 0:
            raise ValueError(f"noise must be > 0, got {self.noise!r}")

    @property
    def num_actions(self):
        return self.arms

    def sample_task(self, key):
        return {"means": jax.random.normal(key, (self.arms,))}

    def means(self, task):
        return task["means"]

    def _reward(self, key, mean):
        return mean + self.noise * jax.random.normal(key)


DEPENDENT_VARIANTS = {
    "uniform": None,
    "easy": (0.1, 0.9),
    "medium": (0.25, 0.75),
    "hard": (0.4, 0.6),
}


@dataclasses.dataclass(frozen=True)
class DependentBandit(_StationaryBandit):
    """Two Bernoulli arms with means p and 1 - p (Wang et al. 2016, "Learning to reinforcement learn").

    `uniform`: p ~ U[0, 1]. `easy`, `medium`, `hard`: p is one of two values, each with probability
    1/2 -- these variants have only two distinct tasks.
    """

    variant: str = "uniform"

    name: ClassVar[str] = "dependent-bandit"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "bernoulli"
    description: ClassVar[str] = "2 arms with means p and 1-p; variant uniform|easy|medium|hard"

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in DEPENDENT_VARIANTS:
            raise ValueError(
                f"variant must be one of {', '.join(DEPENDENT_VARIANTS)}, got {self.variant!r}"
            )

    @property
    def num_actions(self):
        return 2

    def support(self):
        """The two values p can take, or None for the uniform variant."""
        return DEPENDENT_VARIANTS[self.variant]

    def sample_task(self, key):
        support = self.support()
        if support is None:
            p = jax.random.uniform(key)
        else:
            p = jnp.where(jax.random.bernoulli(key), support[1], support[0]).astype(jnp.float32)
        return {"p": p}

    def means(self, task):
        return jnp.stack([task["p"], 1.0 - task["p"]])


@dataclasses.dataclass(frozen=True)
class ElevenArmBandit(TaskFamily):
    """Wang et al. (2016) 11-arm bandit: exploit an informative arm.

    Arms 0..9: the target arm (uniform among them) pays 5, the nine others pay 1. Arm 10 (the
    informative arm) pays 0.1 x the target's 1-based index, i.e. it reveals the target. Rewards are
    deterministic. A trial is one episode of 5 pulls. The Bayes-optimal strategy pulls arm 10 once,
    then the target four times: expected total 0.55 + 20 = 20.55 (the task-aware optimum is 25).
    """

    name: ClassVar[str] = "eleven-arm-bandit"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "other"
    defines_pseudo_regret: ClassVar[bool] = True
    ends_early: ClassVar[bool] = False
    description: ClassVar[str] = "Wang et al.'s 11-arm bandit: arm 10 reveals which of arms 0-9 pays 5"
    PULLS: ClassVar[int] = 5

    @property
    def num_actions(self):
        return 11

    @property
    def obs_shape(self):
        return (1,)

    @property
    def horizon(self):
        return self.PULLS

    @property
    def default_episodes(self):
        return 1

    def sample_task(self, key):
        return {"target": jax.random.randint(key, (), 0, 10)}

    def means(self, task):
        target = task["target"]
        payoff = jnp.where(jnp.arange(10) == target, 5.0, 1.0)
        return jnp.concatenate([payoff, 0.1 * (target + 1.0)[None]]).astype(jnp.float32)

    def reset(self, key, task):
        del key, task
        return zero_obs(self.obs_shape), PullState(t=jnp.int32(0))

    def step(self, key, env_state, action, task):
        del key
        means = self.means(task)
        reward = means[action]
        t = env_state.t + 1
        info = StepInfo(expected_reward=reward, optimal_expected_reward=jnp.float32(5.0))
        return zero_obs(self.obs_shape), PullState(t=t), reward, t >= self.PULLS, info

    def optimal_return(self, task):
        del task
        return jnp.float32(5.0 * self.PULLS)

    def oracle_action(self, task, obs, t):
        del obs, t
        return task["target"]


RESTLESS_SIGMA = {"low": 0.01, "high": 0.1}


@dataclasses.dataclass(frozen=True)
class RestlessBandit(TaskFamily):
    """Two Bernoulli arms with means p_t and 1 - p_t, p_t a reflected Gaussian random walk on [0, 1].

    p_0 ~ U[0, 1]; p_{t+1} = reflect(p_t + sigma * z_t), z_t ~ N(0, 1), with sigma = 0.01 per pull
    (`volatility=low`) or 0.1 (`high`) (Wang et al. 2016 study volatile bandits). The walk is part
    of the task: `sample_task` draws the whole path, so a task-aware oracle knows p_t and every
    agent on the task faces the same path. A trial is one episode of `pulls` pulls.
    """

    pulls: int = 100
    volatility: str = "low"

    name: ClassVar[str] = "restless-bandit"
    version: ClassVar[int] = 1
    reward_model: ClassVar[str] = "bernoulli"
    defines_pseudo_regret: ClassVar[bool] = True
    ends_early: ClassVar[bool] = False
    description: ClassVar[str] = "2 arms p_t, 1-p_t; p_t a reflected random walk (volatility low|high)"

    def __post_init__(self):
        if not isinstance(self.pulls, int) or self.pulls < 1:
            raise ValueError(f"pulls must be a whole number >= 1, got {self.pulls!r}")
        if self.volatility not in RESTLESS_SIGMA:
            raise ValueError(f"volatility must be low or high, got {self.volatility!r}")

    @property
    def num_actions(self):
        return 2

    @property
    def obs_shape(self):
        return (1,)

    @property
    def horizon(self):
        return self.pulls

    @property
    def default_episodes(self):
        return 1

    def sample_task(self, key):
        key_start, key_walk = jax.random.split(key)
        p0 = jax.random.uniform(key_start)
        steps = RESTLESS_SIGMA[self.volatility] * jax.random.normal(key_walk, (self.pulls - 1,))
        walk = p0 + jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])
        # Reflection at 0 and 1 of a free walk equals the reflected walk step by step.
        folded = jnp.mod(walk, 2.0)
        return {"p": jnp.where(folded > 1.0, 2.0 - folded, folded)}

    def means_at(self, task, t):
        p = task["p"][jnp.minimum(t, self.pulls - 1)]
        return jnp.stack([p, 1.0 - p])

    def reset(self, key, task):
        del key, task
        return zero_obs(self.obs_shape), PullState(t=jnp.int32(0))

    def step(self, key, env_state, action, task):
        means = self.means_at(task, env_state.t)
        reward = (jax.random.uniform(key) < means[action]).astype(jnp.float32)
        t = env_state.t + 1
        info = StepInfo(expected_reward=means[action], optimal_expected_reward=jnp.max(means))
        return zero_obs(self.obs_shape), PullState(t=t), reward, t >= self.pulls, info

    def optimal_return(self, task):
        return jnp.sum(jnp.maximum(task["p"], 1.0 - task["p"]))

    def oracle_action(self, task, obs, t):
        del obs
        return jnp.argmax(self.means_at(task, t))
