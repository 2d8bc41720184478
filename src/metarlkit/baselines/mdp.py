"""Classic adaptive agents for random tabular MDPs: PSRL, optimistic PSRL, UCRL2, BEB, greedy, egreedy.

These are the baselines of the RL2 paper's tabular-MDP experiment (Duan et al. 2016, section 4.2,
Table 2) on the `tabular-mdp` family (|S| states, |A| actions, H steps per episode from state 0).

Shared model (`ModelState`), accumulated over the whole trial:
  N[s, a, s']   transition counts; Dirichlet(1, ..., 1) prior, so the posterior of P(. | s, a) is
                Dirichlet(1 + N[s, a, :]) with mean (1 + N[s, a, s']) / (S + n(s, a));
  n(s, a), sum(s, a)
                visit counts and reward sums; prior N(1, 1) on each mean reward (the family's
                distribution) and unit observation noise, so the posterior is
                N((1 + sum) / (1 + n), 1 / (1 + n)).
The agent reads the state from the one-hot observation and counts the step t within the episode
itself (`observe` increments it, `end_episode` resets it). Every agent plans once per episode, at
the start of the trial (`init`) and after every episode (`end_episode`), with finite-horizon value
iteration to get Q[H, S, A], and then acts with argmax_a Q[t, s, a] (ties to the lowest index).

The rules, episode by episode:
  greedy   plan in the posterior-mean MDP (mean transitions and mean rewards above).
  egreedy  as greedy, but each step takes a uniformly random action with probability `epsilon`.
  psrl     posterior sampling (Osband, Russo & Van Roy 2013): draw one MDP from the posterior
           (P(. | s, a) ~ Dirichlet(1 + N[s, a, :]), R(s, a) ~ N((1 + sum) / (1 + n), 1 / (1 + n)),
           independently per (s, a)), plan in it and act greedily.
  opsrl    optimistic posterior sampling (Agrawal & Jia 2017; Tiapkin et al. 2022): draw
           `samples` = K MDPs independently as in psrl and back up, at every step and (s, a),
           the most valuable of them: Q_t(s, a) = max_k [R_k(s, a) + P_k(. | s, a) . V_{t+1}],
           V_t = max_a Q_t; K = 1 is psrl. (Keeping instead the one sample of highest start
           value, max_k max_a Q_k[0, 0, a], scored lower on the validation tasks; docs/baselines.md.)
           The buffer of samples is static (the largest K the agent must support), the first K
           are drawn in a loop (`sample_mdps_up_to`: cost grows with K, not with the buffer) and
           the rest are masked out, so a grid of K is one compiled program. Sample 0 is PSRL's
           draw: opsrl with K = 1 takes exactly psrl's actions.
  ucrl2    episodic UCRL2 (Jaksch, Ortner & Auer 2010) by extended value iteration: with the
           empirical model P_hat = N / n (uniform where n = 0) and R_hat = sum / n (the prior mean 1
           where n = 0), the log term L = ln(2 S A max(1, T) / delta), delta = 0.05, T the steps
           taken in the trial before the episode, the confidence set of P(. | s, a) is the L1 ball
           ||P - P_hat||_1 <= scale * sqrt(2 S L / max(1, n)) intersected with the simplex, and the
           optimistic reward is R_hat + scale * sqrt(L / max(1, n)). Backward induction takes, at
           every step and (s, a), the most valuable next-state distribution in the ball of radius
           d: it moves min(d / 2, 1 - P_hat(s*)) mass onto the best next state s* (highest value
           with one step less to go) and removes the same amount from the lowest-valued states
           first (`optimistic_transition`). scale = 0 plans in the empirical model.
  beb      Bayesian Exploration Bonus (Kolter & Ng 2009): plan in the posterior-mean MDP with the
           rewards (1 + sum) / (1 + n) + beta / (1 + n(s, a)); beta = 0 is greedy.

Note: every model gives unvisited pairs the prior mean (reward 1, uniform transitions), which is
mildly optimistic. That makes greedy much stronger than in the RL2 paper's Table 2 (150.7 vs 134.8
at 10 episodes); greedy on the empirical model with reward 0 for unvisited pairs scores 130.2,
close to the paper's number.

Knob grids (tuned on the validation split by `metarlkit.baselines.resolve` unless given):
  opsrl samples    1, 2, 5, 10, 20                        (OPSRL_SAMPLES_GRID)
  ucrl2 scale      0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1   (UCRL2_SCALE_GRID)
  beb beta         0, 0.1, 0.25, 0.5, 1, 2, 5, 10         (BEB_BETA_GRID)
  egreedy epsilon  0, 0.1, ..., 1                          (defined with the knob in `bandit.py`)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent
from metarlkit.baselines import sampling
from metarlkit.baselines.core import Baseline, Knob, fixed_params, int_params, no_params, register
from metarlkit.tasks.base import TaskFamily
from metarlkit.tasks.tabular import value_iteration

OPSRL_SAMPLES_GRID = (1, 2, 5, 10, 20)
UCRL2_SCALE_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
BEB_BETA_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
UCRL2_DELTA = 0.05
PRIOR_REWARD_MEAN = 1.0  # the family's N(1, 1) prior on mean rewards (unit variance, unit noise)


class ModelState(NamedTuple):
    """Counts of one trial and the plan of the current episode (single task, no batch axis)."""

    transition_counts: jax.Array  # [S, A, S] float32 N(s, a, s')
    reward_sums: jax.Array  # [S, A] float32
    visits: jax.Array  # [S, A] float32 n(s, a)
    step: jax.Array  # int32 step within the episode
    q: jax.Array  # [H, S, A] action values the agent acts on this episode


# --- the posterior and the planners ------------------------------------------------------------


def posterior_mean(state: ModelState) -> tuple[jax.Array, jax.Array]:
    """Mean transitions [S, A, S] and mean rewards [S, A] of the posterior (module docstring)."""
    num_states = state.transition_counts.shape[-1]
    transitions = (1.0 + state.transition_counts) / (num_states + state.visits[..., None])
    rewards = (PRIOR_REWARD_MEAN + state.reward_sums) / (1.0 + state.visits)
    return transitions, rewards


def sample_mdps(key: jax.Array, state: ModelState, num: int) -> tuple[jax.Array, jax.Array]:
    """`num` independent MDPs from the posterior: transitions [num, S, A, S], rewards [num, S, A]."""
    key_p, key_r = jax.random.split(key)
    alpha = jnp.broadcast_to(1.0 + state.transition_counts, (num, *state.transition_counts.shape))
    gammas = sampling.gamma(key_p, alpha)  # shapes >= 1, as the sampler requires
    transitions = gammas / gammas.sum(-1, keepdims=True)
    _, mean_r = posterior_mean(state)
    noise = jax.random.normal(key_r, (num, *mean_r.shape))
    rewards = mean_r + noise / jnp.sqrt(1.0 + state.visits)
    return transitions, rewards


def sample_mdps_up_to(key: jax.Array, state: ModelState, count: jax.Array, capacity: int):
    """The first `count` of `capacity` posterior MDPs; buffer slots from `count` on stay zero.

    Sample k is `sample_mdps(fold_in(key, k), state, 1)`, drawn in a loop of `count` iterations:
    the cost of drawing grows with `count` (a param, which may vary across a tuning grid), not
    with the static `capacity`. Sample 0 is PSRL's sample.
    """
    buffers = (
        jnp.zeros((capacity, *state.transition_counts.shape), jnp.float32),
        jnp.zeros((capacity, *state.visits.shape), jnp.float32),
    )

    def draw(k, buffers):
        transitions, rewards = sample_mdps(jax.random.fold_in(key, k), state, 1)
        return buffers[0].at[k].set(transitions[0]), buffers[1].at[k].set(rewards[0])

    return jax.lax.fori_loop(0, count, draw, buffers)


def optimistic_transition(p_hat: jax.Array, radius: jax.Array, values: jax.Array) -> jax.Array:
    """argmax of p . values over {p in the simplex : ||p - p_hat||_1 <= radius} (Jaksch et al. 2010,
    figure 2).

    Adds min(radius / 2, 1 - p_hat[best]) to the best state, then removes the same mass from the
    states in increasing order of value: after sorting ascending (best last) with C_i the cumulative
    p_hat of the i lowest states and e the mass added, the i-th keeps max(0, C_i - e) - max(0,
    C_{i-1} - e).

    Args:
      p_hat: [..., S] centre distributions.
      radius: [...] L1 radii (>= 0).
      values: [S] next-state values, shared by the leading axes.

    Returns:
      [..., S] optimistic distributions.
    """
    order = jnp.argsort(values)  # worst first, best last
    sorted_p = jnp.take(p_hat, order, axis=-1)
    best = sorted_p[..., -1]
    added = jnp.minimum(0.5 * radius, 1.0 - best)
    cum = jnp.cumsum(sorted_p[..., :-1], axis=-1)
    kept = jnp.maximum(cum - added[..., None], 0.0)
    kept_before = jnp.concatenate([jnp.zeros_like(kept[..., :1]), kept[..., :-1]], axis=-1)
    sorted_new = jnp.concatenate([kept - kept_before, (best + added)[..., None]], axis=-1)
    inverse = jnp.argsort(order)
    return jnp.take(sorted_new, inverse, axis=-1)


def extended_value_iteration(
    p_hat: jax.Array, rewards: jax.Array, radius: jax.Array, horizon: int
) -> jax.Array:
    """Finite-horizon optimistic Q over L1 balls of transitions (UCRL2's extended value iteration).

    Args:
      p_hat: [S, A, S] centre transitions.
      rewards: [S, A] optimistic rewards (bonus included).
      radius: [S, A] L1 radii of the transition confidence sets.
      horizon: steps H.

    Returns:
      q: [H, S, A]; q[t] has H - t steps left, as `value_iteration`.
    """

    def backward(v_next, _):
        p = optimistic_transition(p_hat, radius, v_next)
        q = rewards + p @ v_next
        return q.max(axis=-1), q

    v0 = jnp.zeros(rewards.shape[0], rewards.dtype)
    _, q_rev = jax.lax.scan(backward, v0, None, length=horizon)
    return q_rev[::-1]


def ucrl2_model(state: ModelState, scale) -> tuple[jax.Array, jax.Array, jax.Array]:
    """UCRL2's (P_hat [S, A, S], optimistic rewards [S, A], L1 radii [S, A]) (module docstring)."""
    num_states, num_actions = state.visits.shape
    n = state.visits
    seen = n > 0
    p_hat = jnp.where(
        seen[..., None], state.transition_counts / jnp.maximum(n, 1.0)[..., None], 1.0 / num_states
    )
    r_hat = jnp.where(seen, state.reward_sums / jnp.maximum(n, 1.0), PRIOR_REWARD_MEAN)
    steps = jnp.maximum(1.0, n.sum())
    log_term = jnp.log(2.0 * num_states * num_actions * steps / UCRL2_DELTA)
    radius = scale * jnp.sqrt(2.0 * num_states * log_term / jnp.maximum(n, 1.0))
    bonus = scale * jnp.sqrt(log_term / jnp.maximum(n, 1.0))
    return p_hat, r_hat + bonus, radius


def empty_model(family: TaskFamily) -> ModelState:
    """The model before any data (the prior), at step 0, with an all-zero plan."""
    num_states, num_actions = family.states, family.actions
    return ModelState(
        transition_counts=jnp.zeros((num_states, num_actions, num_states), jnp.float32),
        reward_sums=jnp.zeros((num_states, num_actions), jnp.float32),
        visits=jnp.zeros((num_states, num_actions), jnp.float32),
        step=jnp.int32(0),
        q=jnp.zeros((family.horizon, num_states, num_actions), jnp.float32),
    )


# --- the agents ---------------------------------------------------------------------------------


def _check_family(family: TaskFamily) -> None:
    reason = _supports_mdp(family)
    if reason:
        raise ValueError(f"tabular MDP agents cannot run on {family.name}: {reason}")


def _planning_agent(family: TaskFamily, plan, choose=None) -> AdaptiveAgent:
    """An agent on ModelState that re-plans every episode.

    plan(params, model_state, key) -> Q [H, S, A]; choose(params, q_row [A], key) -> action
    (default: argmax).
    """
    _check_family(family)
    horizon = family.horizon

    def init(params, key, num_episodes):
        del num_episodes
        state = empty_model(family)
        return state._replace(q=plan(params, state, key))

    def act(params, state, obs, key):
        q_row = state.q[jnp.minimum(state.step, horizon - 1), jnp.argmax(obs)]
        action = jnp.argmax(q_row) if choose is None else choose(params, q_row, key)
        return action.astype(jnp.int32), state

    def observe(params, state, transition):
        del params
        s, a = jnp.argmax(transition.obs), transition.action
        s_next = jnp.argmax(transition.next_obs)
        return state._replace(
            transition_counts=state.transition_counts.at[s, a, s_next].add(1.0),
            reward_sums=state.reward_sums.at[s, a].add(transition.reward),
            visits=state.visits.at[s, a].add(1.0),
            step=state.step + 1,
        )

    def end_episode(params, state, episode_index, key):
        del episode_index
        state = state._replace(step=jnp.int32(0))
        return state._replace(q=plan(params, state, key))

    return AdaptiveAgent(init, act, observe, end_episode)


@functools.lru_cache(maxsize=16)
def mean_planner(family: TaskFamily) -> AdaptiveAgent:
    """Plans in the posterior-mean MDP with reward bonus beta / (1 + n(s, a)) each episode and acts
    greedily on it, or with probability epsilon uniformly at random.

    greedy (beta = epsilon = 0), epsilon-greedy (beta = 0) and BEB (epsilon = 0) are this one
    agent with different params, so on a family they share one compiled program.
    """
    horizon, num_actions = family.horizon, family.actions

    def plan(params, state, key):
        del key
        transitions, rewards = posterior_mean(state)
        return value_iteration(transitions, rewards + params["beta"] / (1.0 + state.visits), horizon)

    def choose(params, q_row, key):
        key_explore, key_action = jax.random.split(key)
        explore = jax.random.uniform(key_explore) < params["epsilon"]
        return jnp.where(explore, jax.random.randint(key_action, (), 0, num_actions), jnp.argmax(q_row))

    return _planning_agent(family, plan, choose)


def build_mean_planner(family, num_episodes, knobs):
    """greedy, egreedy and beb on tabular MDPs (see `mean_planner`)."""
    del num_episodes, knobs
    return mean_planner(family)


def build_psrl(family, num_episodes, knobs):
    """PSRL (Osband et al. 2013): plans in one posterior sample per episode."""
    del num_episodes, knobs
    horizon = family.horizon

    def plan(params, state, key):
        del params
        transitions, rewards = sample_mdps(jax.random.fold_in(key, 0), state, 1)
        return value_iteration(transitions[0], rewards[0], horizon)

    return _planning_agent(family, plan)


def sampled_optimistic_q(transitions: jax.Array, rewards: jax.Array, horizon: int, use: jax.Array) -> jax.Array:
    """Finite-horizon Q that backs up the best of K sampled models at every step and (s, a).

    Args:
      transitions: [K, S, A, S] sampled next-state probabilities.
      rewards: [K, S, A] sampled mean rewards.
      horizon: steps H.
      use: [K] bool, which samples take part (at least one).

    Returns:
      q: [H, S, A]; q[t] has H - t steps left, as `value_iteration`.
    """

    def backward(v_next, _):
        q_k = rewards + transitions @ v_next
        q = jnp.where(use[:, None, None], q_k, -jnp.inf).max(axis=0)
        return q.max(axis=-1), q

    v0 = jnp.zeros(rewards.shape[1], rewards.dtype)
    _, q_rev = jax.lax.scan(backward, v0, None, length=horizon)
    return q_rev[::-1]


def build_opsrl(family, num_episodes, knobs):
    """Optimistic posterior sampling: per (s, a), the best of K posterior samples (module docstring)."""
    del num_episodes
    horizon = family.horizon
    # Static buffer as large as the largest K this agent must support; samples past K are masked.
    max_samples = int(max(knobs["samples"]))

    def plan(params, state, key):
        count = params["samples"]
        transitions, rewards = sample_mdps_up_to(key, state, count, max_samples)
        return sampled_optimistic_q(transitions, rewards, horizon, jnp.arange(max_samples) < count)

    return _planning_agent(family, plan)


def build_ucrl2(family, num_episodes, knobs):
    """Episodic UCRL2 (Jaksch et al. 2010) by extended value iteration; see the module docstring."""
    del num_episodes, knobs
    horizon = family.horizon

    def plan(params, state, key):
        del key
        p_hat, rewards, radius = ucrl2_model(state, params["scale"])
        return extended_value_iteration(p_hat, rewards, radius, horizon)

    return _planning_agent(family, plan)


# --- registration -------------------------------------------------------------------------------


def _supports_mdp(family: TaskFamily) -> str | None:
    if family.name != "tabular-mdp":
        return "it is a tabular-MDP agent; use it on tabular-mdp"
    return None


register(
    Baseline(
        "psrl", "posterior sampling for RL: plan in one posterior MDP per episode", build_psrl,
        no_params, _supports_mdp,
    )
)
register(
    Baseline(
        "opsrl", "optimistic posterior sampling: per (s, a), the best of K posterior MDPs",
        build_opsrl, int_params("samples"), _supports_mdp,
        knobs={"samples": Knob(int, OPSRL_SAMPLES_GRID, 1, 1000, "posterior MDPs sampled per episode")},
        static_knobs=("samples",),
    )
)
register(
    Baseline(
        "ucrl2", "episodic UCRL2: extended value iteration over L1 confidence sets", build_ucrl2,
        fixed_params(), _supports_mdp,
        knobs={"scale": Knob(float, UCRL2_SCALE_GRID, 0.0, 100.0, "confidence-set scale")},
    )
)
register(
    Baseline(
        "beb", "Bayesian exploration bonus: posterior mean + beta / (1 + n)", build_mean_planner,
        fixed_params(epsilon=0.0), _supports_mdp,
        knobs={"beta": Knob(float, BEB_BETA_GRID, 0.0, 1000.0, "exploration bonus scale")},
    )
)
