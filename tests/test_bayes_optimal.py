"""Bayes-optimal agents: exact values by recursion over the outcome tree, no sampling.

Every policy below is asked for its action through its real `act` on constructed agent states;
stochastic agents enter through their exact action probabilities. The expected total reward of
a policy under the prior is then an exact recursion over the tree of posterior states.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import betaln

from metarlkit import baselines, evaluate, run_trial, tasks
from metarlkit.baselines import bayes_optimal
from metarlkit.baselines.bandit import CountState
from metarlkit.specs import SpecError

TWO_ARM = tasks.make("bernoulli-bandit", arms=2)
OBS = jnp.zeros((1,))


def posterior_states(num_pulls: int):
    """All (s1, f1, s2, f2) reachable before the last pull (s1 + f1 + s2 + f2 <= N - 1)."""
    return [
        x for x in itertools.product(range(num_pulls), repeat=4) if sum(x) <= num_pulls - 1
    ]


def deterministic_actions(name: str, num_pulls: int, states, **knobs) -> dict:
    """{state: action} from the agent's own `act`, vmapped over constructed CountStates."""
    baseline = baselines.get(name)
    agent = baseline.build(TWO_ARM, num_pulls, {})
    params = baseline.make_params(TWO_ARM, num_pulls, **knobs)
    x = np.asarray(states, np.float32)
    batch = CountState(
        counts=jnp.asarray(np.stack([x[:, 0] + x[:, 1], x[:, 2] + x[:, 3]], 1)),
        sums=jnp.asarray(x[:, [0, 2]]),
        t=jnp.asarray(x.sum(1), jnp.int32),
    )
    act = jax.jit(jax.vmap(lambda s: agent.act(params, s, OBS, jax.random.PRNGKey(0))[0]))
    return dict(zip(states, np.asarray(act(batch)).tolist()))


def prob_theta1_beats_theta2(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(theta1 > theta2) for independent Beta(a1, b1), Beta(a2, b2), integer parameters.

    Closed form: P(theta2 > theta1) = sum_{i<a2} B(a1+i, b1+b2) / ((b2+i) B(1+i, b2) B(a1, b1)).
    """
    total = 0.0
    for i in range(a2):
        total += math.exp(
            betaln(a1 + i, b1 + b2) - math.log(b2 + i) - betaln(1 + i, b2) - betaln(a1, b1)
        )
    return 1.0 - total


def exact_value(prob_arm0, num_pulls: int) -> float:
    """Expected total reward over `num_pulls` pulls of a 2-arm U[0,1] Bernoulli bandit.

    prob_arm0(state) is the probability the policy pulls arm 0 in posterior state (s1,f1,s2,f2).
    """

    @functools.lru_cache(maxsize=None)
    def value(s1, f1, s2, f2):
        if s1 + f1 + s2 + f2 == num_pulls:
            return 0.0
        p1, p2 = (s1 + 1) / (s1 + f1 + 2), (s2 + 1) / (s2 + f2 + 2)
        arm0 = p1 * (1 + value(s1 + 1, f1, s2, f2)) + (1 - p1) * value(s1, f1 + 1, s2, f2)
        arm1 = p2 * (1 + value(s1, f1, s2 + 1, f2)) + (1 - p2) * value(s1, f1, s2, f2 + 1)
        q = prob_arm0((s1, f1, s2, f2))
        return q * arm0 + (1 - q) * arm1

    return value(0, 0, 0, 0)


def optimal_value(num_pulls: int) -> float:
    """Independent Bayes-optimal value: the same recursion with a max instead of a policy."""

    @functools.lru_cache(maxsize=None)
    def value(s1, f1, s2, f2):
        if s1 + f1 + s2 + f2 == num_pulls:
            return 0.0
        p1, p2 = (s1 + 1) / (s1 + f1 + 2), (s2 + 1) / (s2 + f2 + 2)
        arm0 = p1 * (1 + value(s1 + 1, f1, s2, f2)) + (1 - p1) * value(s1, f1 + 1, s2, f2)
        arm1 = p2 * (1 + value(s1, f1, s2 + 1, f2)) + (1 - p2) * value(s1, f1, s2, f2 + 1)
        return max(arm0, arm1)

    return value(0, 0, 0, 0)


# --- 2-arm Bernoulli bandit -------------------------------------------------------------------


def test_two_arm_values_by_hand():
    assert bayes_optimal.two_arm_policy(1).value == pytest.approx(0.5, abs=1e-15)
    # Pull arm 0 (1/2); after a success stay (2/3), after a failure switch (1/2): 13/12.
    assert bayes_optimal.two_arm_policy(2).value == pytest.approx(13 / 12, abs=1e-15)
    for n in (3, 7, 12):
        assert bayes_optimal.two_arm_policy(n).value == pytest.approx(optimal_value(n), abs=1e-12)


def test_thompson_probability_closed_form():
    assert prob_theta1_beats_theta2(3, 4, 3, 4) == pytest.approx(0.5, abs=1e-12)
    assert prob_theta1_beats_theta2(2, 1, 1, 1) == pytest.approx(2 / 3, abs=1e-12)  # int 2x * x
    assert prob_theta1_beats_theta2(1, 1, 2, 1) == pytest.approx(1 / 3, abs=1e-12)
    # Symmetry: P(theta1 > theta2) + P(theta2 > theta1) = 1.
    assert prob_theta1_beats_theta2(2, 5, 4, 3) + prob_theta1_beats_theta2(4, 3, 2, 5) == (
        pytest.approx(1.0, abs=1e-12)
    )


@pytest.mark.parametrize("num_pulls", [4, 6])
def test_bayes_optimal_beats_every_policy_exactly(num_pulls):
    states = posterior_states(num_pulls)
    deterministic = {
        "greedy": deterministic_actions("greedy", num_pulls, states),
        "ucb1:c=0.5": deterministic_actions("ucb1", num_pulls, states, c=0.5),
        "ucb1:c=1.0": deterministic_actions("ucb1", num_pulls, states, c=1.0),
        "gittins:discount=0.9": deterministic_actions("gittins", num_pulls, states, discount=0.9),
        "gittins:discount=0.99": deterministic_actions("gittins", num_pulls, states, discount=0.99),
        "bayes-optimal": deterministic_actions("bayes-optimal", num_pulls, states),
    }
    greedy = deterministic["greedy"]
    epsilon = 0.2
    values = {name: exact_value(lambda x, a=actions: 1.0 - a[x], num_pulls)
              for name, actions in deterministic.items()}
    values["random"] = exact_value(lambda x: 0.5, num_pulls)
    values["egreedy:epsilon=0.2"] = exact_value(
        lambda x: epsilon / 2 + (1 - epsilon) * (greedy[x] == 0), num_pulls
    )
    values["ts"] = exact_value(
        lambda x: prob_theta1_beats_theta2(1 + x[0], 1 + x[1], 1 + x[2], 1 + x[3]), num_pulls
    )

    dp = bayes_optimal.two_arm_policy(num_pulls).value
    assert dp == pytest.approx(optimal_value(num_pulls), abs=1e-12)
    # Its own policy, read back through the agent's act, achieves the DP value ...
    assert values["bayes-optimal"] == pytest.approx(dp, abs=1e-12)
    # ... and no other policy does better.
    for name, value in values.items():
        assert value <= dp + 1e-12, name
    assert values["random"] == pytest.approx(num_pulls / 2, abs=1e-12)
    assert values["greedy"] < dp - 1e-3 and values["ts"] < dp - 1e-3


def test_policy_lookup_is_exact_for_longer_trials():
    # 25 pulls: 20475 states; checks the bit ranking against the recursion everywhere.
    num_pulls = 25
    actions = deterministic_actions("bayes-optimal", num_pulls, posterior_states(num_pulls))
    value = exact_value(lambda x: 1.0 - actions[x], num_pulls)
    assert value == pytest.approx(bayes_optimal.two_arm_policy(num_pulls).value, abs=1e-9)
    assert value == pytest.approx(optimal_value(num_pulls), abs=1e-9)


def test_two_arm_limits_and_other_families():
    reason = bayes_optimal.supports(tasks.make("bernoulli-bandit", arms=5))
    assert "gittins" in reason and "\n" not in reason
    assert "arms=2" in bayes_optimal.supports(tasks.from_spec("gaussian-bandit"))
    assert bayes_optimal.supports(tasks.from_spec("restless-bandit"))
    with pytest.raises(SpecError, match="limited to 200 pulls"):
        baselines.resolve("bayes", TWO_ARM, bayes_optimal.TWO_ARM_MAX_PULLS + 1)
    with pytest.raises(SpecError, match="2 arms"):
        baselines.resolve("bayes-optimal", tasks.make("bernoulli-bandit", arms=3), 10)


def test_evaluation_matches_the_dp_value():
    num_episodes = 20
    resolved = baselines.resolve("bayes", TWO_ARM, num_episodes)
    result = evaluate(resolved.agent, TWO_ARM, resolved.params, num_episodes=num_episodes,
                      num_tasks=2000, chunk_size=1000)
    score = result.expected_total_reward
    se = score.std(ddof=1) / np.sqrt(len(score))
    assert abs(score.mean() - bayes_optimal.two_arm_policy(num_episodes).value) < 4 * se


# --- dependent bandit -------------------------------------------------------------------------


def posterior_mean_of_p(family, alpha: int, beta: int) -> float:
    support = family.support()
    if support is None:
        return (1 + alpha) / (2 + alpha + beta)
    log_w = np.array([alpha * np.log(q) + beta * np.log1p(-q) for q in support])
    w = np.exp(log_w - log_w.max())
    return float(np.dot(w, support) / w.sum())


@pytest.mark.parametrize("variant", ["uniform", "easy", "medium", "hard"])
def test_dependent_bandit_dp_is_greedy_on_the_posterior_mean(variant):
    family = tasks.make("dependent-bandit", variant=variant)
    num_pulls = 40

    # DP over (alpha, beta): outcomes with likelihood p and 1 - p. Arm 0 pays on p-outcomes,
    # arm 1 on (1 - p)-outcomes.
    @functools.lru_cache(maxsize=None)
    def q_values(alpha, beta):
        if alpha + beta == num_pulls:
            return 0.0, 0.0, 0.0, 0.0
        m = posterior_mean_of_p(family, alpha, beta)
        up, down = value(alpha + 1, beta), value(alpha, beta + 1)
        info0 = m * up + (1 - m) * down  # arm 0: success -> alpha + 1, failure -> beta + 1
        info1 = (1 - m) * down + m * up  # arm 1: success -> beta + 1, failure -> alpha + 1
        return m + info0, (1 - m) + info1, info0, info1

    def value(alpha, beta):
        q0, q1, _, _ = q_values(alpha, beta)
        return max(q0, q1)

    agent = bayes_optimal.build(family, num_pulls, {})
    states, optimal = [], []
    for alpha in range(num_pulls):
        for beta in range(num_pulls - alpha):
            q0, q1, info0, info1 = q_values(alpha, beta)
            assert info0 == pytest.approx(info1, abs=1e-12)  # both arms carry the same information
            best = int(q1 > q0 + 1e-9)
            m = posterior_mean_of_p(family, alpha, beta)
            assert best == int(1 - m > m + 1e-12)  # = greedy on the posterior mean of p
            # Three agent states with this evidence: all on arm 0, all on arm 1, split.
            for counts, sums in (([alpha + beta, 0], [alpha, 0]), ([0, alpha + beta], [0, beta]),
                                 ([alpha, beta], [alpha, beta])):
                states.append((counts, sums))
                optimal.append(best)
    batch = CountState(
        counts=jnp.asarray([c for c, _ in states], jnp.float32),
        sums=jnp.asarray([s for _, s in states], jnp.float32),
        t=jnp.asarray([sum(c) for c, _ in states], jnp.int32),
    )
    actions = jax.jit(jax.vmap(lambda s: agent.act({}, s, OBS, jax.random.PRNGKey(0))[0]))(batch)
    np.testing.assert_array_equal(np.asarray(actions), np.asarray(optimal))
    assert 0 < sum(optimal) < len(optimal)  # both arms are chosen somewhere


# --- eleven-arm bandit ------------------------------------------------------------------------


def eleven_arm_optimal_value(pulls: int) -> float:
    """Exact expectimax over beliefs (the set of arms that may still be the target, uniform)."""

    @functools.lru_cache(maxsize=None)
    def value(belief: frozenset, left: int) -> float:
        if left == 0:
            return 0.0
        best = -math.inf
        for arm in range(11):
            total = 0.0
            for target in belief:
                if arm == 10:
                    reward, after = 0.1 * (target + 1), frozenset([target])
                elif arm == target:
                    reward, after = 5.0, frozenset([target])
                else:
                    reward, after = 1.0, belief - {arm}
                total += reward + value(after, left - 1)
            best = max(best, total / len(belief))
        return best

    return value(frozenset(range(10)), pulls)


def test_eleven_arm_policy_is_optimal():
    family = tasks.from_spec("eleven-arm-bandit")
    optimum = eleven_arm_optimal_value(family.horizon)
    assert optimum == pytest.approx(20.55, abs=1e-12)

    agent = bayes_optimal.build(family, 1, {})
    targets = {"target": jnp.arange(10, dtype=jnp.int32)}  # the 10 tasks, equally likely
    records = jax.jit(jax.vmap(
        lambda task: run_trial(family, agent, {}, task, jax.random.PRNGKey(0),
                               jax.random.PRNGKey(1), 1)
    ))(targets)
    totals = np.asarray(records.reward).sum(axis=(1, 2))
    np.testing.assert_allclose(totals, 20.0 + 0.1 * (np.arange(10) + 1), atol=1e-5)
    assert totals.mean() == pytest.approx(optimum, abs=1e-5)
    assert np.all(np.asarray(records.action)[:, 0, 0] == 10)
