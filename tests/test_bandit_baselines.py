"""Classic bandit agents (metarlkit.baselines.bandit): decision rules on constructed states
(golden values), posterior means, agent equivalences, and the oracle as an upper bound."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import BANDIT_EPISODES
from scipy import stats

from metarlkit import baselines, tasks
from metarlkit.baselines.bandit import CountState, posterior_for
from metarlkit.evaluation import mean_ci

pytestmark = pytest.mark.usefixtures("fast_compile")

NUM_KEYS = 4000


def keys(n: int = NUM_KEYS, seed: int = 0) -> np.ndarray:
    """Raw PRNG keys made in numpy (no compile)."""
    return np.random.default_rng(seed).integers(0, 2**32, (n, 2), dtype=np.uint32)


def counts(n, sums, t=None) -> CountState:
    n = np.asarray(n, np.float32)
    return CountState(n, np.asarray(sums, np.float32), np.int32(n.sum() if t is None else t))


@functools.lru_cache(maxsize=None)
def _act_over_keys(agent):
    return jax.jit(jax.vmap(lambda p, k, s: agent.act(p, s, jnp.zeros(1), k)[0], in_axes=(None, 0, None)))


def actions_over_keys(resolved, state, key_batch=None, params=None):
    """The agent's action from `state` for each of many keys (one compile per agent and shape);
    `params` overrides some of the resolved agent's params."""
    act = _act_over_keys(resolved.agent)
    return np.asarray(act({**resolved.params, **(params or {})},
                          keys() if key_batch is None else key_batch, state))


def resolve(spec, family=None):
    return baselines.resolve(spec, family or tasks.make("bernoulli-bandit", arms=3), BANDIT_EPISODES)


# --- posteriors -----------------------------------------------------------------------------------


def test_posterior_means_bernoulli_golden():
    post = posterior_for(tasks.make("bernoulli-bandit", arms=3))
    s = counts([3, 0, 5], [2, 0, 5])
    # Beta(1 + successes, 1 + failures): (1+2)/(2+3) = 0.6, the prior 1/2, (1+5)/(2+5) = 6/7.
    np.testing.assert_allclose(post.mean(s), [0.6, 0.5, 6 / 7], rtol=1e-6)
    np.testing.assert_allclose(post.pseudo_count(s), [5, 2, 7])


@pytest.mark.parametrize("noise, expected", [
    # N(0, 1) prior, noise sigma: mean = (sum / sigma^2) / (1 + n / sigma^2).
    (1.0, [2 / 4, 0.0, -1 / 2]),
    (2.0, [(2 / 4) / (1 + 3 / 4), 0.0, (-1 / 4) / (1 + 1 / 4)]),
])
def test_posterior_means_gaussian_golden(noise, expected):
    post = posterior_for(tasks.make("gaussian-bandit", arms=3, noise=noise))
    s = counts([3, 0, 1], [2, 0, -1])
    np.testing.assert_allclose(post.mean(s), expected, rtol=1e-6)
    np.testing.assert_allclose(post.pseudo_count(s), [4, 1, 2])


# --- decision rules --------------------------------------------------------------------------------


def test_greedy_ties_to_the_lowest_index():
    greedy = resolve("greedy")
    assert np.all(actions_over_keys(greedy, counts([0, 0, 0], [0, 0, 0]), keys(4)) == 0)
    # Posterior means 0.5, 2/3, 2/3: the tie between arms 1 and 2 goes to arm 1.
    assert np.all(actions_over_keys(greedy, counts([0, 1, 1], [0, 1, 1]), keys(4)) == 1)
    assert np.all(actions_over_keys(greedy, counts([0, 1, 4], [0, 1, 4]), keys(4)) == 2)


# UCB1 golden (Bernoulli, two arms): counts n = (10, 2), successes (6, 1), t = 12 pulls so far.
#   posterior means: (1+6)/(2+10) = 7/12 = 0.583333 and (1+1)/(2+2) = 0.5
#   pseudo-counts m = n + 2 = (12, 4); ln(t + 1) = ln 13 = 2.564949
#   bonus = c sqrt(2 ln 13 / m) = c * (0.653826, 1.132460)
#   arm 1 wins once 0.5 + 1.132460 c > 0.583333 + 0.653826 c, i.e. c > 0.083333 / 0.478634 = 0.174106
UCB_STATE = ((10, 2), (6, 1))
UCB_SWITCH = (7 / 12 - 0.5) / (math.sqrt(2 * math.log(13) / 4) - math.sqrt(2 * math.log(13) / 12))


def test_ucb1_bonus_golden():
    assert UCB_SWITCH == pytest.approx(0.174106, abs=1e-6)
    ucb = resolve("ucb1:c=1", tasks.make("bernoulli-bandit", arms=2))
    state = counts(*UCB_STATE)
    for c, arm in ((0.0, 0), (UCB_SWITCH - 1e-3, 0), (UCB_SWITCH + 1e-3, 1), (1.0, 1)):
        got = actions_over_keys(ucb, state, keys(2), params={"c": jnp.float32(c)})
        assert np.all(got == arm), (c, got)
    # t counts all pulls of the trial: with t = 0 (ln 1 = 0) there is no bonus at all.
    zero_t = CountState(*state[:2], np.int32(0))
    assert np.all(actions_over_keys(ucb, zero_t, keys(2), params={"c": jnp.float32(100.0)}) == 0)


def test_ucb1_gaussian_pseudo_count():
    """Gaussian model: m = n + 1. Means 2/(1+2) = 0.6667 (n=2) vs 0 (n=0): bonus (sqrt(2 ln 3 / 3),
    sqrt(2 ln 3)) c, so arm 1 wins for c > 0.666667 / (1.482304 - 0.855808) = 1.064121."""
    switch = (2 / 3) / (math.sqrt(2 * math.log(3)) - math.sqrt(2 * math.log(3) / 3))
    assert switch == pytest.approx(1.064121, abs=1e-6)
    ucb = resolve("ucb1:c=1", tasks.make("gaussian-bandit", arms=2))
    state = counts([2, 0], [2, 0])
    for c, arm in ((switch - 1e-3, 0), (switch + 1e-3, 1)):
        assert np.all(actions_over_keys(ucb, state, keys(2), params={"c": jnp.float32(c)}) == arm)


def test_egreedy_limits():
    family = tasks.make("bernoulli-bandit", arms=3)
    egreedy, greedy = resolve("egreedy:epsilon=0", family), resolve("greedy", family)
    state = counts([2, 3, 1], [1, 2, 1])  # means 0.5, 0.6, 0.667: greedy pulls arm 2
    never = actions_over_keys(egreedy, state, params={"epsilon": jnp.float32(0.0)})
    np.testing.assert_array_equal(never, actions_over_keys(greedy, state))
    assert np.all(never == 2)
    always = actions_over_keys(egreedy, state, params={"epsilon": jnp.float32(1.0)})
    observed = np.bincount(always, minlength=3)
    assert stats.chisquare(observed).pvalue > 1e-3
    half = actions_over_keys(egreedy, state, params={"epsilon": jnp.float32(0.5)})
    # Greedy half the time plus a third of the random half: P(arm 2) = 0.5 + 0.5 / 3.
    assert np.mean(half == 2) == pytest.approx(2 / 3, abs=0.03)


def test_thompson_sampling_follows_the_posterior():
    """TS pulls arm 0 with the posterior probability that theta_0 is the larger.

    Bernoulli, counts (3, 0), successes (2, 0): Beta(3, 2) vs Beta(1, 1); P(U < X) = E[X] = 0.6
    (swapped Beta parameters would give 0.4). Gaussian (noise 1), counts (3, 0), sums (2, 0):
    N(1/2, 1/4) vs N(0, 1); P = Phi(0.5 / sqrt(1.25)) = 0.672639.
    """
    ts = resolve("ts", tasks.make("bernoulli-bandit", arms=2))
    got = actions_over_keys(ts, counts([3, 0], [2, 0]))
    assert np.mean(got == 0) == pytest.approx(0.6, abs=0.025)
    assert stats.norm.cdf(0.5 / math.sqrt(1.25)) == pytest.approx(0.672639, abs=1e-6)
    ts = resolve("ts", tasks.make("gaussian-bandit", arms=2))
    got = actions_over_keys(ts, counts([3, 0], [2, 0]))
    assert np.mean(got == 0) == pytest.approx(0.672639, abs=0.025)


# --- whole trials on the test split ---------------------------------------------------------------

AGENTS = ("random", "greedy", "egreedy:epsilon=0.1", "ucb1:c=0.3", "ts", "ots:samples=1", "oracle")
NUM_TASKS = 200


def test_ots_with_one_sample_is_thompson_sampling(bandit_eval):
    """With s = 1 the most probable of the samples is the only one: OTS draws exactly what TS draws
    (same keys), so whole evaluations agree action for action."""
    ts, ots = bandit_eval("ts", NUM_TASKS), bandit_eval("ots:samples=1", NUM_TASKS)
    np.testing.assert_array_equal(ots.action_counts, ts.action_counts)
    np.testing.assert_array_equal(ots.returns, ts.returns)


def test_oracle_has_no_pseudo_regret(bandit_eval):
    oracle = bandit_eval("oracle", NUM_TASKS)
    np.testing.assert_array_equal(oracle.pseudo_regret, 0.0)
    np.testing.assert_allclose(oracle.expected_total_reward, BANDIT_EPISODES * oracle.optimal_return, rtol=1e-6)
    # Realised regret is zero-mean noise around it.
    _, ci = mean_ci(oracle.regret)
    assert abs(oracle.regret.mean()) < 1.5 * ci


@pytest.mark.parametrize("spec", AGENTS)
def test_no_agent_beats_the_oracle(bandit_eval, spec):
    """Per task, no agent's expected total reward exceeds the oracle's (pseudo-regret >= 0)."""
    oracle, result = bandit_eval("oracle", NUM_TASKS), bandit_eval(spec, NUM_TASKS)
    assert result.num_tasks == NUM_TASKS
    assert np.all(result.expected_total_reward <= oracle.expected_total_reward + 1e-5)
    assert np.all(result.pseudo_regret >= -1e-5)
    np.testing.assert_array_equal(result.optimal_return, oracle.optimal_return)


def test_adaptive_agents_beat_random(bandit_eval):
    """Sanity on 200 tasks x 10 episodes: learning agents lose less than random (mean pseudo-regret
    with 95% intervals apart)."""
    random = bandit_eval("random", NUM_TASKS)
    r_mean, r_ci = mean_ci(random.pseudo_regret)
    for spec in ("greedy", "ucb1:c=0.3", "ts"):
        mean, ci = mean_ci(bandit_eval(spec, NUM_TASKS).pseudo_regret)
        assert mean + ci < r_mean - r_ci, (spec, mean, r_mean)
