"""Gittins index tables (golden values, an independent bisection, monotonicity) and the agent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import baselines, evaluate, tasks
from metarlkit.baselines import gittins
from metarlkit.baselines.bandit import CountState
from metarlkit.specs import SpecError

TABLE_PULLS = 60


@pytest.fixture(scope="module")
def tables():
    """Index tables for 60 pulls, one per discount used below (host numpy, cached)."""
    return {g: gittins.gittins_table(TABLE_PULLS, g) for g in (0.0, 0.5, 0.9, 0.95, 0.99)}


def bisection_index(s: int, f: int, discount: float, depth: int, lo: float = 0.0, hi: float = 1.0,
                    tol: float = 1e-7) -> float:
    """Reference index of Beta(1 + s, 1 + f) by bisection on the retirement reward in [lo, hi].

    For one lambda at a time: plain float64 backward induction over the states reachable from
    (s, f) within `depth` pulls (boundary: the posterior stops moving), and the sign of
    "continue once, then act optimally" minus "retire now". No grid, no interpolation. The
    bracket is checked, so a narrow [lo, hi] only saves time.
    """
    inv = 1.0 / (1.0 - discount)

    def continue_minus_retire(lam: float) -> float:
        i = np.arange(depth + 1)
        value = np.maximum(lam, (s + i + 1) / (s + f + depth + 2)) * inv
        for d in range(depth - 1, -1, -1):
            p = (s + np.arange(d + 1) + 1) / (s + f + d + 2)
            cont = p * (1.0 + discount * value[1:]) + (1.0 - p) * discount * value[:-1]
            value = np.maximum(lam * inv, cont)
        return float(cont[0] - lam * inv)

    assert continue_minus_retire(lo) > 0 >= continue_minus_retire(hi), "index outside bracket"
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if continue_minus_retire(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def test_index_of_uniform_prior_matches_gittins_table(tables):
    # Gittins's tables give 0.7029 for a Beta(1, 1) arm with discount 0.9.
    assert tables[0.9][0, 0] == pytest.approx(0.7029, abs=1e-4)


STATES = [(0, 0), (1, 0), (0, 1), (4, 2), (2, 12), (25, 5)]


@pytest.mark.parametrize(
    "discount, depth, states, tol",
    # At 0.99 each reference costs ~0.3 s (1000 pulls of look-ahead), so fewer states.
    [(0.9, 200, STATES, 1e-6), (0.99, 1000, [(0, 0), (0, 1), (25, 5)], 5e-5)],
)
def test_index_matches_independent_bisection(tables, discount, depth, states, tol):
    for s, f in states:
        table = float(tables[discount][s, f])
        want = bisection_index(s, f, discount, depth, lo=table - 0.005, hi=table + 0.005)
        assert table == pytest.approx(want, abs=tol), (s, f)


def test_index_with_zero_discount_is_the_posterior_mean(tables):
    n = np.add.outer(np.arange(TABLE_PULLS), np.arange(TABLE_PULLS))
    mean = (np.arange(TABLE_PULLS)[:, None] + 1.0) / (n + 2.0)
    # float32 tables: agreement to float32 rounding.
    np.testing.assert_allclose(tables[0.0][n < TABLE_PULLS], mean[n < TABLE_PULLS], atol=1e-6)


@pytest.mark.parametrize("discount", [0.5, 0.9, 0.99])
def test_index_exceeds_mean_and_moves_with_evidence(tables, discount):
    table = tables[discount]
    n = np.add.outer(np.arange(TABLE_PULLS), np.arange(TABLE_PULLS))
    mean = (np.arange(TABLE_PULLS)[:, None] + 1.0) / (n + 2.0)
    used = n < TABLE_PULLS
    assert np.all(table[used] >= mean[used] - 1e-9)
    # One more success raises the index, one more failure lowers it.
    inner = n[:-1, :-1] < TABLE_PULLS - 1
    assert np.all((table[1:, :-1] - table[:-1, :-1])[inner] > 0)
    assert np.all((table[:-1, 1:] - table[:-1, :-1])[inner] < 0)
    # The exploration bonus shrinks as evidence accumulates: (s, s) moves towards 1/2.
    diag = np.array([table[s, s] for s in range(TABLE_PULLS // 2)])
    assert np.all(np.diff(diag) < 0) and diag[-1] > 0.5


def test_index_grows_with_discount(tables):
    used = np.add.outer(np.arange(TABLE_PULLS), np.arange(TABLE_PULLS)) < TABLE_PULLS
    for low, high in [(0.0, 0.5), (0.5, 0.9), (0.9, 0.95), (0.95, 0.99)]:
        assert np.all(tables[high][used] >= tables[low][used] - 1e-6), (low, high)


def test_agent_pulls_largest_index_with_ties_to_lowest_arm(tables):
    family = tasks.make("bernoulli-bandit", arms=4)
    agent = gittins.build(family, TABLE_PULLS, {})
    params = {"index": jnp.asarray(tables[0.9], jnp.float32)}
    obs = jnp.zeros((1,))

    def act(counts, sums):
        state = CountState(jnp.asarray(counts, jnp.float32), jnp.asarray(sums, jnp.float32),
                           jnp.int32(sum(counts)))
        return int(agent.act(params, state, obs, jax.random.PRNGKey(0))[0])

    assert act([0, 0, 0, 0], [0, 0, 0, 0]) == 0  # all equal: lowest arm
    assert act([1, 0, 1, 0], [0, 0, 1, 0]) == 2  # one success beats untried arms
    assert act([1, 1, 0, 0], [0, 0, 0, 0]) == 2  # untried beats one failure; tie between 2 and 3
    # Gittins explores: an untried arm (index 0.703) beats 3 successes in 5 (mean 0.571,
    # index 0.658).
    assert tables[0.9][3, 2] < tables[0.9][0, 0]
    assert act([5, 0, 0, 0], [3, 0, 0, 0]) == 1


def test_supports_bernoulli_families_only():
    for spec in ("bernoulli-bandit", "dependent-bandit", "restless-bandit"):
        assert gittins.supports(tasks.from_spec(spec)) is None
    for spec in ("gaussian-bandit", "eleven-arm-bandit", "tabular-mdp"):
        reason = gittins.supports(tasks.from_spec(spec))
        assert reason and "Bernoulli" in reason and "\n" not in reason
    with pytest.raises(SpecError, match="cannot run on gaussian-bandit"):
        baselines.resolve("gittins", tasks.from_spec("gaussian-bandit"), 10)


def test_refuses_trials_longer_than_the_table_limit():
    family = tasks.from_spec("bernoulli-bandit")
    with pytest.raises(SpecError, match="limited to"):
        baselines.resolve("gittins:discount=0.9", family, gittins.MAX_PULLS + 1)
    with pytest.raises(SpecError, match="discount"):
        baselines.resolve("gittins:discount=1.0", family, 10)


def test_tuned_gittins_beats_random():
    family, num_episodes, num_tasks = tasks.from_spec("bernoulli-bandit:arms=5"), 10, 100
    # Tuning and evaluation on the same number of tasks share one compiled program.
    resolved = baselines.resolve("gittins", family, num_episodes, tune_tasks=num_tasks)
    assert resolved.hyperparameters["discount"] in gittins.DISCOUNT_GRID
    assert len(resolved.tuning["grid"]) == len(gittins.DISCOUNT_GRID)
    result = evaluate(resolved.agent, family, resolved.params, num_episodes=num_episodes,
                      num_tasks=num_tasks, name=resolved.spec)
    # Random's expected total reward on each task is exactly n x (mean of the arm means).
    means = np.asarray(tasks.task_set(family, "test", num_tasks)["means"])
    gain = result.expected_total_reward - num_episodes * means.mean(axis=1)
    assert gain.mean() > 1.0 and gain.mean() > 4 * gain.std(ddof=1) / np.sqrt(len(gain))
