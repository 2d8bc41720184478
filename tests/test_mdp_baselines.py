"""Tests of the tabular-MDP baselines: PSRL, optimistic PSRL, UCRL2, BEB, greedy, egreedy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

import metarlkit
from metarlkit import baselines, tasks
from metarlkit.agents import Transition
from metarlkit.baselines import mdp
from metarlkit.specs import SpecError

pytestmark = pytest.mark.usefixtures("fast_compile")  # see conftest.py: compile time dominates

NUM_TASKS = 200
NUM_EPISODES = 10
CHUNK = 50  # tasks per compiled call; tuning on CHUNK validation tasks reuses the same program


@pytest.fixture(scope="module")
def family():
    return tasks.make("tabular-mdp")


def _evaluate(family, spec, num_tasks=NUM_TASKS, num_episodes=NUM_EPISODES):
    resolved = baselines.resolve(spec, family, num_episodes)
    return metarlkit.evaluate(
        resolved.agent, family, resolved.params, num_episodes=num_episodes, num_tasks=num_tasks,
        name=resolved.spec, chunk_size=CHUNK,
    )


@pytest.fixture(scope="module")
def random_result(family):
    return _evaluate(family, "random")


@pytest.fixture(scope="module")
def greedy_result(family):
    return _evaluate(family, "greedy")


# --- UCRL2's optimistic step ---------------------------------------------------------------------


def _lp_optimum(p_hat, radius, values):
    """max p . values s.t. p in the simplex, ||p - p_hat||_1 <= radius, over variables (p, u)."""
    s = len(p_hat)
    eye = np.eye(s)
    # u_i >= |p_i - p_hat_i|  as  p - u <= p_hat  and  -p - u <= -p_hat;  sum u <= radius.
    a_ub = np.block([[eye, -eye], [-eye, -eye], [np.zeros((1, s)), np.ones((1, s))]])
    b_ub = np.concatenate([p_hat, -p_hat, [radius]])
    a_eq = np.concatenate([np.ones(s), np.zeros(s)])[None]
    res = linprog(
        -np.concatenate([values, np.zeros(s)]), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0],
        bounds=[(0, None)] * (2 * s), method="highs",
    )
    assert res.status == 0
    return -res.fun


def test_optimistic_transition_is_the_lp_optimum_in_the_l1_ball():
    rng = np.random.default_rng(0)
    step = jax.jit(mdp.optimistic_transition)
    for case in range(24):
        s = (3, 7)[(case // 6) % 2]  # two shapes (two compiles), each with every radius
        p_hat = rng.dirichlet(np.ones(s) * (0.3 if case % 2 else 1.0))
        values = rng.normal(size=s) * 3
        radius = float([0.0, 0.05, 0.3, 0.9, 1.7, 2.5][case % 6])
        p = step(jnp.asarray(p_hat, jnp.float32), jnp.float32(radius), jnp.asarray(values, jnp.float32))
        p = np.asarray(p, np.float64)
        assert np.all(p >= -1e-7)
        assert abs(p.sum() - 1.0) < 1e-5
        assert np.abs(p - p_hat).sum() <= radius + 1e-5
        assert p @ values == pytest.approx(_lp_optimum(p_hat, radius, values), abs=1e-4)


def test_optimistic_transition_batches_over_state_actions():
    rng = np.random.default_rng(1)
    p_hat = rng.dirichlet(np.ones(5), size=(3, 4)).astype(np.float32)
    radius = rng.uniform(0, 2, size=(3, 4)).astype(np.float32)
    values = rng.normal(size=5).astype(np.float32)
    batched = np.asarray(mdp.optimistic_transition(p_hat, radius, values))
    for i in range(3):
        for j in range(4):
            single = np.asarray(mdp.optimistic_transition(p_hat[i, j], radius[i, j], values))
            np.testing.assert_allclose(batched[i, j], single, atol=1e-6)


def _random_model(key, family, visits_scale=3.0):
    s, a = family.states, family.actions
    key_n, key_r = jax.random.split(key)
    counts = jnp.floor(jax.random.exponential(key_n, (s, a, s)) * visits_scale)
    counts = counts * (jax.random.uniform(key_r, (s, a, 1)) < 0.7)  # some pairs never visited
    visits = counts.sum(-1)
    return mdp.ModelState(
        transition_counts=counts,
        reward_sums=visits * jax.random.normal(key_r, (s, a)),
        visits=visits,
        step=jnp.int32(0),
        q=jnp.zeros((family.horizon, s, a)),
    )


@pytest.fixture(scope="module")
def plain_and_extended(family):
    """jit of (value iteration on the empirical model, extended value iteration at `scale`)."""

    @jax.jit
    def run(key, scale):
        state = _random_model(key, family)
        p_hat, r_hat, _ = mdp.ucrl2_model(state, 0.0)  # the empirical model
        plain = mdp.value_iteration(p_hat, r_hat, family.horizon)
        p_hat, rewards, radius = mdp.ucrl2_model(state, scale)
        return plain, mdp.extended_value_iteration(p_hat, rewards, radius, family.horizon)

    return run


@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0])
def test_extended_value_iteration_is_optimistic(plain_and_extended, scale):
    plain, extended = map(np.asarray, plain_and_extended(jax.random.PRNGKey(2), scale))
    assert np.all(extended >= plain - 1e-5)
    assert extended.max() > plain.max() + 1e-3


def test_extended_value_iteration_with_zero_radius_is_value_iteration(plain_and_extended):
    plain, extended = plain_and_extended(jax.random.PRNGKey(3), 0.0)
    np.testing.assert_allclose(extended, plain, atol=1e-5)


def test_posterior_mean_golden_values():
    counts = jnp.zeros((2, 1, 2)).at[0, 0, 1].set(3.0)
    state = mdp.ModelState(
        counts, jnp.array([[6.0], [0.0]]), counts.sum(-1), jnp.int32(0), jnp.zeros((1, 2, 1))
    )
    transitions, rewards = mdp.posterior_mean(state)
    np.testing.assert_allclose(transitions[:, 0], [[1 / 5, 4 / 5], [1 / 2, 1 / 2]], rtol=1e-6)
    np.testing.assert_allclose(rewards[:, 0], [7 / 4, 1.0], rtol=1e-6)


# --- agents' behaviour ---------------------------------------------------------------------------


def test_beb_with_zero_beta_acts_like_greedy(family, greedy_result):
    beb = _evaluate(family, "beb:beta=0")
    np.testing.assert_array_equal(beb.action_counts, greedy_result.action_counts)
    np.testing.assert_array_equal(beb.returns, greedy_result.returns)


def test_opsrl_with_one_sample_is_psrl(family):
    """K = 1 draws exactly PSRL's sample (the program of opsrl:samples=5, given K = 1)."""
    psrl = _evaluate(family, "psrl")
    opsrl = baselines.resolve("opsrl:samples=5", family, NUM_EPISODES)
    one = metarlkit.evaluate(opsrl.agent, family, {"samples": jnp.int32(1)}, num_episodes=NUM_EPISODES,
                             num_tasks=NUM_TASKS, chunk_size=CHUNK)
    np.testing.assert_array_equal(one.action_counts, psrl.action_counts)
    np.testing.assert_allclose(one.returns, psrl.returns, rtol=1e-6)


def test_psrl_with_a_concentrated_posterior_plays_the_oracle_action(family):
    agent = baselines.get("psrl").build(family, NUM_EPISODES, {})
    rng = np.random.default_rng(7)
    shape = (family.states, family.actions)
    task = {
        "transitions": jnp.asarray(rng.dirichlet(np.ones(family.states), size=shape), jnp.float32),
        "rewards": jnp.asarray(1.0 + rng.normal(size=shape), jnp.float32),
    }
    huge = 1e7
    key_end = jax.random.PRNGKey(8)
    # The prior (what `init` starts from) with the counts of `huge` visits of every pair.
    state = mdp.empty_model(family)._replace(
        transition_counts=huge * task["transitions"],
        reward_sums=huge * task["rewards"],
        visits=jnp.full(task["rewards"].shape, huge),
        step=jnp.int32(4),
    )
    state = jax.jit(agent.end_episode)({}, state, 0, key_end)
    assert int(state.step) == 0

    def action_at(t, s):
        obs = jax.nn.one_hot(s, family.states)
        return agent.act({}, state._replace(step=t), obs, jax.random.PRNGKey(0))[0]

    t_grid, s_grid = jnp.meshgrid(jnp.arange(family.horizon), jnp.arange(family.states), indexing="ij")
    actions = jax.jit(jax.vmap(jax.vmap(action_at)))(t_grid, s_grid)
    q = np.asarray(family.optimal_q(task))
    chosen = np.take_along_axis(q, np.asarray(actions)[..., None], -1)[..., 0]
    # Near-ties between actions are within the sample's tiny error; otherwise the action is exact.
    np.testing.assert_allclose(chosen, q.max(-1), atol=1e-2)
    assert (np.asarray(actions) == q.argmax(-1)).mean() > 0.95  # the oracle's actions


def test_opsrl_backs_up_the_best_sample_per_state_action(family):
    """K = 1 plans in the first sample (PSRL); K = 5 equals backward induction by hand over the
    same 5 draws with a max over samples at every step and (s, a), which is at least every
    single sample's value and differs from the best single sample's plan."""
    agent = baselines.get("opsrl").build(family, NUM_EPISODES, {"samples": (1, 5)})  # buffer of 5
    state = _random_model(jax.random.PRNGKey(4), family)
    key = jax.random.PRNGKey(5)

    @jax.jit
    def plans_and_samples():
        def plan(samples):
            return agent.end_episode({"samples": samples}, state, 0, key).q

        plans = jax.vmap(plan)(jnp.array([1, 5], jnp.int32))
        draws = [mdp.sample_mdps(jax.random.fold_in(key, k), state, 1) for k in range(5)]
        transitions, rewards = (jnp.concatenate(x) for x in zip(*draws))  # the draws the plan makes
        q = jax.vmap(mdp.value_iteration, in_axes=(0, 0, None))(transitions, rewards, family.horizon)
        return plans, q, transitions, rewards

    plans, q, transitions, rewards = (np.asarray(x, np.float64) for x in plans_and_samples())
    np.testing.assert_allclose(plans[0], q[0], atol=1e-5)
    v = np.zeros(family.states)
    by_hand = np.zeros_like(plans[1])
    for t in reversed(range(family.horizon)):
        by_hand[t] = (rewards + transitions @ v).max(axis=0)
        v = by_hand[t].max(axis=-1)
    np.testing.assert_allclose(plans[1], by_hand, rtol=1e-5, atol=1e-4)
    assert np.all(plans[1] >= q.max(axis=0) - 1e-4)
    assert plans[1][0, 0].max() > q[:, 0, 0].max() + 1e-3


def test_observe_counts_the_transition_and_the_step(family):
    greedy = baselines.resolve("greedy", family, NUM_EPISODES)
    agent, params = greedy.agent, greedy.params
    state = agent.init(params, jax.random.PRNGKey(0), NUM_EPISODES)
    obs, next_obs = jax.nn.one_hot(2, family.states), jax.nn.one_hot(5, family.states)
    transition = Transition(obs, jnp.int32(3), jnp.float32(0.5), next_obs, jnp.bool_(False))
    state = agent.observe(params, state, transition)
    assert float(state.transition_counts[2, 3, 5]) == 1.0 and float(state.transition_counts.sum()) == 1.0
    assert float(state.reward_sums[2, 3]) == 0.5 and float(state.visits[2, 3]) == 1.0
    assert int(state.step) == 1
    state = agent.end_episode(params, state, 0, jax.random.PRNGKey(1))
    assert int(state.step) == 0


@pytest.mark.parametrize(
    "spec", ["psrl", "opsrl:samples=5", "ucrl2:scale=0.1", "beb:beta=1", "greedy", "egreedy:epsilon=0.1"]
)
def test_agent_beats_random(family, random_result, greedy_result, spec):
    result = greedy_result if spec == "greedy" else _evaluate(family, spec)
    # Common random numbers: the paired difference has a small error.
    diff = result.total_reward - random_result.total_reward
    mean, half = metarlkit.evaluation.mean_ci(diff)
    assert mean - half > 10.0, (spec, float(mean), float(half))


def test_resolve_tunes_the_knob_on_the_validation_split(family):
    # Same trial length and chunk of tasks as the other evaluations: the compiled program is shared.
    resolved = baselines.resolve("beb", family, NUM_EPISODES, tune_tasks=CHUNK)
    tuning = resolved.tuning
    assert tuning["split"] == "validation" and tuning["num_tasks"] == CHUNK
    scores = [g["score"] for g in tuning["grid"]]
    assert [g["beta"] for g in tuning["grid"]] == list(mdp.BEB_BETA_GRID)
    chosen = tuning["chosen"]["beta"]
    assert chosen == mdp.BEB_BETA_GRID[int(np.argmax(scores))]
    assert resolved.hyperparameters == {"beta": chosen}
    assert resolved.spec == f"beb:beta={chosen}"


def test_mdp_agents_reject_other_families():
    bandit = tasks.make("bernoulli-bandit")
    for name in ("psrl", "opsrl", "ucrl2", "beb"):
        with pytest.raises(SpecError, match="tabular-mdp"):
            baselines.resolve(name, bandit, 10)
