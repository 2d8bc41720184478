"""Task families: the contract on every registered family, the registry, task sets, and golden
facts of each family (including finite-horizon value iteration on a hand-solved MDP)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import FamilyContract, raw_keys, shared_contract
from scipy import stats

from metarlkit import tasks
from metarlkit.specs import SpecError
from metarlkit.tasks import value_iteration
from metarlkit.tasks.bandits import DEPENDENT_VARIANTS, RESTLESS_SIGMA

pytestmark = pytest.mark.usefixtures("fast_compile")

# Every registered family with its defaults, plus option variants.
# Kept short: each costs about five compiles (the suite's time budget is seconds). The dependent
# bandit's variants differ only in sample_task, checked for each in test_dependent_bandit_support;
# point-navigation's sparse variant is checked in test_navigation.
VARIANTS = tasks.names() + [
    "bernoulli-bandit:arms=3,pulls=4",
    "restless-bandit:volatility=high,pulls=20",
    "point-robot-wind:change_at=30,observe_wind=true",
    "point-navigation:variant=sparse,goals=oyster",
    "cartpole:variant=continuous",
]


@pytest.fixture(scope="module", params=VARIANTS)
def contract(request):
    # Checkers are shared with the families' own test modules, so they compile once per process.
    return shared_contract(tasks.from_spec(request.param))


@pytest.mark.parametrize("check", FamilyContract.CHECKS)
def test_family_contract(contract, check):
    getattr(contract, check)()


def test_every_registered_family_is_checked():
    assert set(tasks.names()) <= {v.partition(":")[0] for v in VARIANTS}
    assert tasks.names() == [
        "bernoulli-bandit", "cartpole", "dependent-bandit", "eleven-arm-bandit", "gaussian-bandit", "pendulum",
        "point-navigation", "point-robot-wind", "restless-bandit", "tabular-mdp",
    ]


# --- registry and specs --------------------------------------------------------------------------


def test_unknown_family_lists_available_names():
    with pytest.raises(SpecError) as err:
        tasks.from_spec("bernouli-bandit")
    message = str(err.value)
    assert "did you mean 'bernoulli-bandit'" in message
    for name in tasks.names():
        assert name in message
    assert "\n" not in message


def test_bad_option_name_lists_valid_options():
    with pytest.raises(SpecError, match=r"has no option 'arm'; valid options: arms, pulls$"):
        tasks.from_spec("bernoulli-bandit:arm=3")
    with pytest.raises(SpecError, match=r"valid options: actions, states, steps$"):
        tasks.make("tabular-mdp", size=3)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("bernoulli-bandit:arms=1", "arms must be a whole number >= 2, got 1"),
        ("bernoulli-bandit:arms=x", "option 'arms' must be int, got 'x'"),
        ("bernoulli-bandit:arms=2.5", "option 'arms' must be int, got '2.5'"),
        ("bernoulli-bandit:pulls=0", "pulls must be a whole number >= 1, got 0"),
        ("gaussian-bandit:noise=0", "noise must be > 0"),
        ("gaussian-bandit:noise=abc", "option 'noise' must be float"),
        ("dependent-bandit:variant=medium-hard", "variant must be one of uniform, easy, medium, hard"),
        ("restless-bandit:volatility=mid", "volatility must be low or high"),
        ("tabular-mdp:states=1", "states must be a whole number >= 2, got 1"),
        ("tabular-mdp:steps=0", "steps must be a whole number >= 1, got 0"),
        ("point-navigation:variant=hard", "variant must be one of dense, sparse, got 'hard'"),
    ],
)
def test_bad_option_values_give_one_line_spec_error(spec, fragment):
    with pytest.raises(SpecError) as err:
        tasks.from_spec(spec)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_typed_and_string_options_build_equal_families():
    assert tasks.make("bernoulli-bandit", arms=3) == tasks.make("bernoulli-bandit", arms="3")
    assert tasks.from_spec("gaussian-bandit:noise=2") == tasks.make("gaussian-bandit", noise=2.0)
    family = tasks.from_spec("restless-bandit:volatility=high,pulls=20")
    assert family.spec() == "restless-bandit:pulls=20,volatility=high"


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        tasks.register(tasks.BernoulliBandit)


def test_split_checks_have_clear_errors():
    family = tasks.make("bernoulli-bandit")
    with pytest.raises(ValueError, match=r"num-tasks 100001 exceeds the test split's 100000 tasks"):
        tasks.task_set(family, "test", 100_001)
    with pytest.raises(ValueError, match=r"exceeds the validation split"):
        tasks.task_set(family, "validation", 10, start=99_995)
    with pytest.raises(ValueError, match=r"unknown split 'dev'; choose one of train, validation, test"):
        tasks.task_set(family, "dev", 10)
    with pytest.raises(ValueError, match=r"num-tasks must be a whole number >= 1, got 0"):
        tasks.task_set(family, "test", 0)
    assert tasks.SPLIT_SIZES == {"train": 2**31 - 1, "validation": 100_000, "test": 100_000}


def test_fixed_trial_lengths_are_enforced():
    with pytest.raises(ValueError, match=r"eleven-arm-bandit trials are 1 episode\(s\) long"):
        tasks.make("eleven-arm-bandit").check_episodes(2)
    with pytest.raises(ValueError, match=r"use --episodes 1"):
        tasks.make("restless-bandit").check_episodes(5)
    with pytest.raises(ValueError, match="episodes must be a whole number >= 1"):
        tasks.make("bernoulli-bandit").check_episodes(0)
    tasks.make("bernoulli-bandit").check_episodes(100)


def test_task_set_prefix_property():
    """A set of M = 10 tasks is the first 10 of a set of M = 50 (as the contract checks per family
    with one batch shape)."""
    family = tasks.make("bernoulli-bandit")
    small = np.asarray(tasks.task_set(family, "test", 10)["means"])
    large = np.asarray(tasks.task_set(family, "test", 50)["means"])
    np.testing.assert_array_equal(small, large[:10])
    np.testing.assert_array_equal(np.asarray(tasks.task_set(family, "test", 10, start=40)["means"]), large[40:])
    assert len(np.unique(large[:, 0])) == 50


def test_splits_differ_and_hash_is_stable():
    family = tasks.make("bernoulli-bandit")
    test, validation = (np.asarray(tasks.task_set(family, s, 10)["means"]) for s in ("test", "validation"))
    assert not np.any(test == validation)
    digest = tasks.task_set_hash(family, "test", 10)
    assert len(digest) == 16 and digest == tasks.task_set_hash(family, "test", 10)
    assert digest != tasks.task_set_hash(family, "validation", 10)
    assert digest != tasks.task_set_hash(family, "test", 50)
    assert digest != tasks.task_set_hash(tasks.from_spec("bernoulli-bandit:arms=3,pulls=4"), "test", 10)


def test_task_sets_are_pinned():
    """The seeded task sets are a published fixture: changing them changes every result."""
    family = tasks.make("bernoulli-bandit")
    means = np.asarray(tasks.task_set(family, "test", 10)["means"])
    np.testing.assert_allclose(means[:2], [[0.697374, 0.7895193, 0.00571096, 0.401811, 0.26633346],
                                           [0.50610876, 0.9158455, 0.14586973, 0.8288952, 0.71388066]],
                               rtol=1e-6)
    assert (tasks.TASK_SET_SEED, tasks.ENV_SEED) == (20161102, 20161117)
    assert tasks.tasksets.SPLIT_IDS == {"train": 0, "validation": 1, "test": 2}

    @jax.jit
    def documented(indices):
        # Task i of split s: sample_task(fold_in(fold_in(PRNGKey(TASK_SET_SEED), s), i)); its
        # environment key: fold_in(fold_in(PRNGKey(ENV_SEED), s), i).
        def keys(seed, i):
            return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), 2), i)

        task_keys = jax.vmap(lambda i: keys(20161102, i))(indices)
        return jax.vmap(family.sample_task)(task_keys)["means"], jax.vmap(lambda i: keys(20161117, i))(indices)

    indices = np.arange(10, dtype=np.uint32)
    expected_means, expected_env = (np.asarray(x) for x in documented(indices))
    np.testing.assert_array_equal(means, expected_means)
    env = np.asarray(tasks.env_keys("test", indices))
    np.testing.assert_array_equal(env, expected_env)
    assert len({tuple(k) for k in env}) == 10


# --- per-family golden facts ---------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _task_sets(spec: str, num_tasks: int) -> dict:
    """`num_tasks` test tasks drawn ten at a time: the batch shape the contract checks compile
    (for the tabular MDP, whose Dirichlet draws cost seconds to compile per shape, this matters)."""
    family = tasks.from_spec(spec)
    parts = [tasks.task_set(family, "test", 10, start=start) for start in range(0, num_tasks, 10)]
    return jax.tree_util.tree_map(lambda *x: np.concatenate(x), *parts)


def test_bernoulli_means_are_uniform():
    means = _task_sets("bernoulli-bandit:arms=3,pulls=4", 600)["means"]
    assert means.shape == (600, 3)
    assert means.min() >= 0.0 and means.max() < 1.0
    np.testing.assert_allclose(means.mean(), 0.5, atol=0.03)
    np.testing.assert_allclose(means.var(), 1 / 12, atol=0.008)
    assert stats.kstest(means.ravel(), "uniform").pvalue > 1e-3


def test_gaussian_bandit_means_and_noise():
    means = _task_sets("gaussian-bandit", 400)["means"]
    np.testing.assert_allclose([means.mean(), means.std()], [0.0, 1.0], atol=0.05)
    assert stats.kstest(means.ravel(), "norm").pvalue > 1e-3
    family = tasks.make("gaussian-bandit", arms=4, noise=2.0)

    @jax.jit
    def inspect(step_keys, task):
        _, state = family.reset(step_keys[0], task)
        return jax.vmap(family.step, in_axes=(0, None, None, None))(step_keys, state, 2, task)

    task = {"means": np.array([0.5, -1.0, 2.0, 0.0], np.float32)}
    _, _, reward, _, info = jax.tree_util.tree_map(np.asarray, inspect(raw_keys((20_000,), 1), task))
    assert np.all(info.expected_reward == 2.0) and np.all(info.optimal_expected_reward == 2.0)
    np.testing.assert_allclose([reward.mean(), reward.std()], [2.0, 2.0], atol=0.05)


@pytest.mark.parametrize("variant", list(DEPENDENT_VARIANTS))
def test_dependent_bandit_support(variant):
    family = tasks.make("dependent-bandit", variant=variant)

    @jax.jit
    def inspect(keys):
        task = jax.vmap(family.sample_task)(keys)
        return task["p"], jax.vmap(family.means)(task)

    p, means = (np.asarray(x) for x in inspect(raw_keys((1000,))))
    support = DEPENDENT_VARIANTS[variant]
    if support is None:
        assert p.min() >= 0.0 and p.max() <= 1.0
        np.testing.assert_allclose(p.mean(), 0.5, atol=0.03)
        assert len(np.unique(p)) > 900
    else:
        low, high = np.float32(support[0]), np.float32(support[1])
        assert set(np.unique(p)) == {low, high}
        assert 0.45 < np.mean(p == high) < 0.55
    np.testing.assert_allclose(means, np.stack([p, 1 - p], axis=1), rtol=1e-6)
    assert family.num_actions == 2


def test_eleven_arm_bandit_rewards():
    family = tasks.make("eleven-arm-bandit")

    @jax.jit
    def inspect(targets, keys):
        def one(task):
            _, state = family.reset(keys[0], task)
            step = jax.vmap(family.step, in_axes=(None, None, 0, None))(keys[1], state, jnp.arange(11), task)
            return (family.means(task), step, family.oracle_action(task, None, 0),
                    family.optimal_return(task))

        return jax.vmap(one)({"target": targets}), jax.vmap(family.sample_task)(keys)["target"]

    (means, (_, _, reward, done, info), oracle, optimum), targets = jax.tree_util.tree_map(
        np.asarray, inspect(np.arange(10, dtype=np.int32), raw_keys((1000,))))
    expected = np.ones((10, 11), np.float32)
    expected[np.arange(10), np.arange(10)] = 5.0
    expected[:, 10] = 0.1 * np.arange(1, 11)  # the informative arm: 0.1 x the target's 1-based index
    np.testing.assert_allclose(means, expected, rtol=1e-6)
    np.testing.assert_allclose(reward, expected, rtol=1e-6)  # deterministic rewards
    np.testing.assert_allclose(info.expected_reward, expected, rtol=1e-6)
    assert np.all(info.optimal_expected_reward == 5.0) and not np.any(done)
    np.testing.assert_array_equal(oracle, np.arange(10))
    np.testing.assert_array_equal(optimum, 25.0)
    assert set(np.unique(targets)) == set(range(10))
    assert np.all(np.bincount(targets) > 70)
    # The docstring's Bayes-optimal total: pull arm 10 once, then the revealed target four times.
    np.testing.assert_allclose(np.mean(expected[:, 10] + 4 * 5.0), 20.55, rtol=1e-6)
    assert family.horizon == 5 and family.default_episodes == 1


@pytest.mark.parametrize("spec", ["restless-bandit", "restless-bandit:volatility=high,pulls=20"])
def test_restless_walk(spec):
    family = tasks.from_spec(spec)
    volatility = family.volatility
    p = _task_sets(spec, 400)["p"]
    assert p.shape == (400, family.pulls)
    assert p.min() >= 0.0 and p.max() <= 1.0
    np.testing.assert_allclose(p[:, 0].mean(), 0.5, atol=0.05)  # p_0 ~ U[0, 1]
    sigma = RESTLESS_SIGMA[volatility]
    steps = np.diff(p, axis=1)
    # Reflection only ever shortens a step; away from the walls steps are N(0, sigma^2).
    assert np.abs(steps).max() <= 6 * sigma
    interior = steps[(p[:, :-1] > 3 * sigma) & (p[:, :-1] < 1 - 3 * sigma)]
    assert interior.size > 3000
    np.testing.assert_allclose(interior.mean(), 0.0, atol=0.05 * sigma)
    np.testing.assert_allclose(interior.std(), sigma, rtol=0.05)
    np.testing.assert_allclose(np.abs(interior).mean(), sigma * np.sqrt(2 / np.pi), rtol=0.05)


def test_restless_bandit_follows_the_walk():
    """The expected reward at pull t is p_t (arm 0) or 1 - p_t (arm 1); the optimum sums the max."""
    family = tasks.make("restless-bandit", volatility="high", pulls=20)

    @jax.jit
    def inspect(key):
        task = family.sample_task(key)
        _, state = family.reset(key, task)
        t = jnp.arange(20, dtype=jnp.int32)
        actions = t % 2
        steps = jax.vmap(family.step, in_axes=(None, 0, 0, None))(key, state._replace(t=t), actions, task)
        oracle = jax.vmap(family.oracle_action, in_axes=(None, None, 0))(task, None, t)
        return task["p"], steps, oracle, family.optimal_return(task)

    p, (_, state, _, done, info), oracle, optimum = jax.tree_util.tree_map(np.asarray, inspect(raw_keys((1,))[0]))
    arm0 = np.arange(20) % 2 == 0
    np.testing.assert_allclose(info.expected_reward, np.where(arm0, p, 1 - p), rtol=1e-6)
    np.testing.assert_allclose(info.optimal_expected_reward, np.maximum(p, 1 - p), rtol=1e-6)
    np.testing.assert_array_equal(oracle, (p < 0.5).astype(int))
    np.testing.assert_array_equal(done, np.arange(20) == 19)
    np.testing.assert_array_equal(state.t, np.arange(1, 21))
    np.testing.assert_allclose(optimum, np.maximum(p, 1 - p).sum(), rtol=1e-6)


def test_tabular_mdp_distribution():
    batch = _task_sets("tabular-mdp", 50)
    transitions, rewards = batch["transitions"], batch["rewards"]
    assert transitions.shape == (50, 10, 5, 10) and rewards.shape == (50, 10, 5)
    assert transitions.min() >= 0.0
    np.testing.assert_allclose(transitions.sum(-1), 1.0, atol=1e-5)
    # Dirichlet(1, ..., 1) over 10 states: each entry has mean 1/10 and variance (1/10)(9/10)/11.
    np.testing.assert_allclose(transitions.mean(), 0.1, atol=1e-4)
    np.testing.assert_allclose(transitions.var(), 9 / 1100, rtol=0.05)
    np.testing.assert_allclose([rewards.mean(), rewards.std()], [1.0, 1.0], atol=0.06)


def _tabular_task(i):
    return jax.tree_util.tree_map(lambda x: x[i], _task_sets("tabular-mdp", 10))


def test_tabular_mdp_dynamics():
    """Start in state 0; next states follow P(. | s, a); reward noise is N(0, 1) around R(s, a)."""
    family = tasks.make("tabular-mdp")

    @jax.jit
    def inspect(task, keys):
        obs, state = family.reset(keys[0], task)
        state = state._replace(s=jnp.int32(2))
        return obs, jax.vmap(family.step, in_axes=(0, None, None, None))(keys, state, 1, task)

    task = _tabular_task(0)
    obs, (next_obs, next_state, reward, done, info) = jax.tree_util.tree_map(
        np.asarray, inspect(task, raw_keys((20_000,))))
    np.testing.assert_array_equal(obs, np.eye(10)[0])
    np.testing.assert_array_equal(next_obs.argmax(-1), next_state.s)
    freq = np.bincount(next_state.s, minlength=10) / 20_000
    np.testing.assert_allclose(freq, task["transitions"][2, 1], atol=0.012)
    noise = reward - task["rewards"][2, 1]
    np.testing.assert_allclose([noise.mean(), noise.std()], [0.0, 1.0], atol=0.03)
    assert np.all(info.expected_reward == task["rewards"][2, 1])
    assert not np.any(done) and np.all(next_state.t == 1)


# Hand-solved 2-state, 2-action MDP (horizon 3). Action 0 stays put; action 1 from state 0 reaches
# state 1 with probability 1/2, and from state 1 returns to state 0. R = [[0.2, 0], [1, 0]].
#   1 step left:  q = R                                   = [[0.2, 0.0], [1.0, 0.0]]; V1 = [0.2, 1]
#   2 steps left: q(0,0) = 0.2 + V1(0)           = 0.4
#                 q(0,1) = 0   + 0.5 V1(0) + 0.5 V1(1) = 0.6
#                 q(1,0) = 1   + V1(1)           = 2.0
#                 q(1,1) = 0   + V1(0)           = 0.2                               ; V2 = [0.6, 2]
#   3 steps left: q(0,0) = 0.2 + 0.6 = 0.8;  q(0,1) = 0.5 * 0.6 + 0.5 * 2 = 1.3
#                 q(1,0) = 1 + 2 = 3.0;      q(1,1) = 0.6                             ; V3 = [1.3, 3]
HAND_P = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [1.0, 0.0]]], np.float32)
HAND_R = np.array([[0.2, 0.0], [1.0, 0.0]], np.float32)
HAND_Q = np.array(
    [[[0.8, 1.3], [3.0, 0.6]], [[0.4, 0.6], [2.0, 0.2]], [[0.2, 0.0], [1.0, 0.0]]], np.float32
)


def test_value_iteration_golden():
    q = np.asarray(jax.jit(value_iteration, static_argnums=2)(HAND_P, HAND_R, 3))
    assert q.shape == (3, 2, 2)
    np.testing.assert_allclose(q, HAND_Q, rtol=1e-6)


def test_tabular_optimal_return_and_oracle_on_hand_mdp():
    family = tasks.make("tabular-mdp", states=2, actions=2, steps=3)

    @jax.jit
    def inspect(task):
        t = jnp.arange(3, dtype=jnp.int32)[:, None]
        obs = jnp.eye(2, dtype=jnp.float32)[None, :]
        table = jax.vmap(jax.vmap(family.oracle_action, in_axes=(None, 0, None)), in_axes=(None, None, 0))
        return family.optimal_return(task), table(task, obs[0], t[:, 0])

    optimum, oracle = inspect({"transitions": HAND_P, "rewards": HAND_R})
    np.testing.assert_allclose(optimum, 1.3, rtol=1e-6)
    # Oracle [t, s]: try to move in state 0 while 2 or 3 steps are left, stay in state 1, and at
    # the last step take R's argmax (ties to the lowest index).
    np.testing.assert_array_equal(oracle, [[1, 0], [1, 0], [0, 0]])


def _exact_policy_value(family, task, policy):
    """Expected episode return from state 0 of `policy(t, s) -> a` by forward state distributions."""
    p, r = np.asarray(task["transitions"], np.float64), np.asarray(task["rewards"], np.float64)
    dist = np.zeros(family.states)
    dist[0] = 1.0
    total = 0.0
    for t in range(family.steps):
        actions = np.array([policy(t, s) for s in range(family.states)])
        total += dist @ r[np.arange(family.states), actions]
        dist = dist @ p[np.arange(family.states), actions]
    return total


def test_tabular_optimal_return_is_exact():
    """`optimal_return` equals the exact value of the oracle's policy and bounds open-loop sequences."""
    family = tasks.make("tabular-mdp")
    rng = np.random.default_rng(0)
    eye = np.eye(family.states, dtype=np.float32)
    table = jax.vmap(jax.vmap(family.oracle_action, in_axes=(None, 0, None)), in_axes=(None, None, 0))
    inspect = jax.jit(lambda task: (family.optimal_return(task), table(task, eye, jnp.arange(family.steps))))
    for i in range(3):
        task = _tabular_task(i)
        opt, table_i = inspect(task)
        opt, table_i = float(opt), np.asarray(table_i)  # table_i[t, s]
        np.testing.assert_allclose(_exact_policy_value(family, task, lambda t, s: table_i[t, s]), opt, rtol=1e-5)
        for _ in range(20):
            seq = rng.integers(0, family.actions, family.steps)
            assert _exact_policy_value(family, task, lambda t, s: seq[t]) <= opt + 1e-5
