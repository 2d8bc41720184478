"""Classic bandit agents: random, greedy, epsilon-greedy, UCB1, Thompson sampling, optimistic TS, oracle.

All keep per-arm counts and reward sums and read their estimates from a conjugate posterior chosen
by the family's reward model:
  bernoulli: Beta(1, 1) prior, posterior Beta(1 + successes, 1 + failures); pseudo-count
             m_a = n_a + 2 (the prior's two pseudo-observations);
  gaussian / other: N(0, 1) prior on each mean, Gaussian likelihood with the family's noise
             (1 unless the family sets `noise`); posterior precision 1 + n_a / sigma^2;
             pseudo-count m_a = 1 + n_a.
The agents follow the RL2 paper's evaluation (Duan et al. 2016, section 4.1 and appendix): greedy
is argmax of the posterior mean (ties to the lowest index), epsilon-greedy acts uniformly at random
with probability epsilon and greedily otherwise, UCB1 adds c * sqrt(2 ln t / m_a) to the posterior
mean with t the number of pulls so far plus one, TS acts greedily on one posterior sample, and OTS
draws s joint posterior samples, keeps the one of highest posterior density and acts greedily on
it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from metarlkit.agents import AdaptiveAgent, no_end_episode
from metarlkit.baselines import sampling
from metarlkit.baselines.core import Baseline, Knob, fixed_params, int_params, no_params, register
from metarlkit.tasks.base import TaskFamily

BANDIT_FAMILIES = ("bernoulli-bandit", "gaussian-bandit", "dependent-bandit", "eleven-arm-bandit", "restless-bandit")
EPSILON_GRID = tuple(round(0.1 * i, 1) for i in range(11))
UCB_C_GRID = EPSILON_GRID
OTS_SAMPLES_GRID = tuple(range(1, 21))


class CountState(NamedTuple):
    """Per-arm statistics of a bandit agent, accumulated over the whole trial."""

    counts: jax.Array  # [k] pulls per arm (float32)
    sums: jax.Array  # [k] reward sums per arm
    t: jax.Array  # int32, pulls so far in the trial


def initial_counts(num_arms: int) -> CountState:
    return CountState(jnp.zeros(num_arms), jnp.zeros(num_arms), jnp.int32(0))


def update_counts(state: CountState, action, reward) -> CountState:
    return CountState(
        counts=state.counts.at[action].add(1.0),
        sums=state.sums.at[action].add(reward),
        t=state.t + 1,
    )


def _noise(family: TaskFamily) -> float:
    return float(getattr(family, "noise", 1.0))


class Posterior(NamedTuple):
    """Per-arm posterior summaries and sampling for one reward model."""

    mean: callable  # CountState -> [k]
    pseudo_count: callable  # CountState -> [k]
    sample: callable  # (key, CountState, shape) -> [*shape, k]
    log_density: callable  # (CountState, theta [..., k]) -> [...]


def posterior_for(family: TaskFamily) -> Posterior:
    """The conjugate posterior the classic agents use on `family` (see module docstring)."""
    if family.reward_model == "bernoulli":

        def ab(s):
            return 1.0 + s.sums, 1.0 + s.counts - s.sums

        def mean(s):
            a, b = ab(s)
            return a / (a + b)

        def sample(key, s, shape):
            a, b = ab(s)
            full = (*shape, a.shape[0])
            return sampling.beta(key, jnp.broadcast_to(a, full), jnp.broadcast_to(b, full))

        def log_density(s, theta):
            a, b = ab(s)
            theta = jnp.clip(theta, 1e-7, 1.0 - 1e-7)
            norm = gammaln(a + b) - gammaln(a) - gammaln(b)
            return jnp.sum(norm + (a - 1.0) * jnp.log(theta) + (b - 1.0) * jnp.log1p(-theta), -1)

        return Posterior(mean, lambda s: s.counts + 2.0, sample, log_density)

    noise_var = _noise(family) ** 2

    def precision(s):
        return 1.0 + s.counts / noise_var

    def mean(s):
        return (s.sums / noise_var) / precision(s)

    def sample(key, s, shape):
        full = (*shape, s.counts.shape[0])
        return mean(s) + jax.random.normal(key, full) / jnp.sqrt(precision(s))

    def log_density(s, theta):
        return jnp.sum(0.5 * jnp.log(precision(s)) - 0.5 * precision(s) * (theta - mean(s)) ** 2, -1)

    return Posterior(mean, lambda s: s.counts + 1.0, sample, log_density)


def _count_agent(family: TaskFamily, choose) -> AdaptiveAgent:
    """An agent whose state is CountState and whose action is `choose(params, state, key)`."""
    k = family.num_actions

    def init(params, key, num_episodes):
        del params, key, num_episodes
        return initial_counts(k)

    def act(params, state, obs, key):
        del obs
        return choose(params, state, key), state

    def observe(params, state, transition):
        del params
        return update_counts(state, transition.action, transition.reward)

    return AdaptiveAgent(init, act, observe, no_end_episode)


def _supports_bandits(family: TaskFamily) -> str | None:
    if family.name not in BANDIT_FAMILIES:
        return "it is a bandit agent; use it on " + ", ".join(BANDIT_FAMILIES)
    return None


def _any_family(family: TaskFamily) -> str | None:
    del family
    return None


# --- agents -----------------------------------------------------------------------------------


def build_random(family, num_episodes, knobs):
    """Uniform over the actions: over the indices, or over the action box of a continuous family."""
    del num_episodes, knobs
    if family.continuous:
        low, high = family.action_bounds
        shape = family.action_shape

        def draw(key):
            return jax.random.uniform(key, shape, jnp.float32, jnp.asarray(low), jnp.asarray(high))
    else:
        k = family.num_actions

        def draw(key):
            return jax.random.randint(key, (), 0, k)

    def init(params, key, num_episodes):
        del params, key, num_episodes
        return ()

    def act(params, state, obs, key):
        del params, obs
        return draw(key), state

    def observe(params, state, transition):
        del params, transition
        return state

    return AdaptiveAgent(init, act, observe, no_end_episode)


@functools.lru_cache(maxsize=64)
def index_agent(family: TaskFamily) -> AdaptiveAgent:
    """argmax of posterior mean + c sqrt(2 ln t / m), or with probability epsilon a uniform arm.

    greedy (c = epsilon = 0), epsilon-greedy (c = 0) and UCB1 (epsilon = 0) are this one agent
    with different params, so on a family they share one compiled program.
    """
    post = posterior_for(family)
    k = family.num_actions

    def choose(params, s, key):
        key_explore, key_arm = jax.random.split(key)
        t = s.t.astype(jnp.float32) + 1.0
        index = post.mean(s) + params["c"] * jnp.sqrt(2.0 * jnp.log(t) / post.pseudo_count(s))
        explore = jax.random.uniform(key_explore) < params["epsilon"]
        return jnp.where(explore, jax.random.randint(key_arm, (), 0, k), jnp.argmax(index))

    return _count_agent(family, choose)


def build_index(family, num_episodes, knobs):
    del num_episodes, knobs
    return index_agent(family)


def build_ts(family, num_episodes, knobs):
    del num_episodes, knobs
    post = posterior_for(family)
    return _count_agent(family, lambda params, s, key: jnp.argmax(post.sample(key, s, ())))


def build_ots(family, num_episodes, knobs):
    del num_episodes
    post = posterior_for(family)
    # The sample buffer is static: as large as the largest s this agent must support (the grid
    # when tuning); samples beyond the params' s are masked out.
    max_samples = int(max(knobs["samples"]))

    def choose(params, s, key):
        theta = post.sample(key, s, (max_samples,))  # [S, k]
        density = post.log_density(s, theta)
        density = jnp.where(jnp.arange(max_samples) < params["samples"], density, -jnp.inf)
        return jnp.argmax(theta[jnp.argmax(density)])

    return _count_agent(family, choose)


def build_oracle(family, num_episodes, knobs):
    """Knows the task; acts with the family's task-aware optimal action."""
    del num_episodes, knobs

    class OracleState(NamedTuple):
        task: object
        t: jax.Array  # step within the episode

    def init(params, key, num_episodes, task):
        del params, key, num_episodes
        return OracleState(task, jnp.int32(0))

    def act(params, state, obs, key):
        del params, key
        return family.oracle_action(state.task, obs, state.t), state

    def observe(params, state, transition):
        del params, transition
        return state._replace(t=state.t + 1)

    def end_episode(params, state, episode_index, key):
        del params, episode_index, key
        return state._replace(t=jnp.int32(0))

    return AdaptiveAgent(init, act, observe, end_episode, task_aware=True)


register(Baseline("random", "uniformly random actions (in the box for continuous actions)", build_random,
                  no_params, _any_family))


def _bandit_or_mdp(bandit_build, bandit_params, mdp_name, mdp_params):
    """Greedy and epsilon-greedy exist for bandits (posterior means) and tabular MDPs (planning in
    the posterior-mean model, see `metarlkit.baselines.mdp`); one CLI name serves both."""

    def build(family, num_episodes, knobs):
        if family.name == "tabular-mdp":
            from metarlkit.baselines import mdp

            return getattr(mdp, mdp_name)(family, num_episodes, knobs)
        return bandit_build(family, num_episodes, knobs)

    def make_params(family, num_episodes, **knobs):
        chosen = mdp_params if family.name == "tabular-mdp" else bandit_params
        return chosen(family, num_episodes, **knobs)

    return build, make_params


def _supports_bandits_or_mdp(family: TaskFamily) -> str | None:
    if family.name == "tabular-mdp":
        return None
    return _supports_bandits(family)


register(
    Baseline(
        "greedy", "argmax of the posterior mean (MDPs: plan in the posterior-mean model)",
        *_bandit_or_mdp(build_index, fixed_params(c=0.0, epsilon=0.0),
                        "build_mean_planner", fixed_params(beta=0.0, epsilon=0.0)),
        _supports_bandits_or_mdp,
    )
)
register(
    Baseline(
        "egreedy", "random with probability epsilon, else greedy",
        *_bandit_or_mdp(build_index, fixed_params(c=0.0), "build_mean_planner", fixed_params(beta=0.0)),
        _supports_bandits_or_mdp,
        knobs={"epsilon": Knob(float, EPSILON_GRID, 0.0, 1.0, "exploration probability")},
        aliases=("epsilon-greedy",),
    )
)
register(
    Baseline(
        "ucb1", "posterior mean + c sqrt(2 ln t / m)", build_index, fixed_params(epsilon=0.0),
        _supports_bandits,
        knobs={"c": Knob(float, UCB_C_GRID, 0.0, 100.0, "exploration bonus scale")},
    )
)
register(
    Baseline("ts", "Thompson sampling", build_ts, no_params, _supports_bandits, aliases=("thompson",))
)
register(
    Baseline(
        "ots", "optimistic TS: most probable of s posterior samples", build_ots,
        int_params("samples"), _supports_bandits,
        knobs={"samples": Knob(int, OTS_SAMPLES_GRID, 1, 1000, "joint posterior samples per step")},
        static_knobs=("samples",),
    )
)
def _optimum_defined(family: TaskFamily) -> str | None:
    if not family.defines_optimum:
        return f"{family.name} declares no optimal policy (no oracle); see 'metarlkit tasks'"
    return None


register(Baseline("oracle", "knows the task; acts optimally", build_oracle, no_params, _optimum_defined))
