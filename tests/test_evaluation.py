"""The meta-test protocol: regret arithmetic (golden values), chunking and prefix invariance,
common random numbers, the JSON summary, sweeps and validation-set tuning."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import BANDIT_EPISODES, CHUNK
from scipy import stats

from metarlkit import baselines, evaluate, evaluate_sweep, tasks
from metarlkit.evaluation import EvalResult, mean_ci

pytestmark = pytest.mark.usefixtures("fast_compile")

T_975_1 = 12.706204736174698  # Student t quantile 0.975 with 1 degree of freedom (tables)


def hand_result(family=None) -> EvalResult:
    """2 tasks x 3 episodes of a 5-arm Bernoulli bandit (one pull per episode), by hand."""
    return EvalResult(
        family=family or tasks.make("bernoulli-bandit"),
        agent_name="hand",
        hyperparameters={"c": 0.5},
        split="test",
        seed=3,
        num_episodes=3,
        returns=np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]),
        expected_returns=np.array([[0.5, 0.6, 0.7], [0.2, 0.3, 0.4]]),
        optimal_expected=np.array([[0.8, 0.8, 0.8], [0.9, 0.9, 0.9]]),
        optimal_return=np.array([0.8, 0.9]),
        action_counts=np.zeros((3, 1, 5)),
        wall_time_s=1.23456,
    )


def test_regret_arithmetic_golden():
    r = hand_result()
    # total reward: 1 + 0 + 1 = 2 and 0 + 0 + 1 = 1.
    np.testing.assert_allclose(r.total_reward, [2.0, 1.0])
    np.testing.assert_allclose(r.expected_total_reward, [1.8, 0.9])
    # regret = episodes x optimal return - total reward: 3 x 0.8 - 2 = 0.4; 3 x 0.9 - 1 = 1.7.
    np.testing.assert_allclose(r.regret, [0.4, 1.7])
    # pseudo-regret = sum of (optimal - chosen) expected rewards: 0.3+0.2+0.1; 0.7+0.6+0.5.
    np.testing.assert_allclose(r.pseudo_regret, [0.6, 1.8])
    s = r.summary(provenance=False)
    # Two tasks: ci95 = t(0.975, 1) * sample std / sqrt(2) = 12.7062 * |x1 - x2| / 2.
    assert s["total_reward"]["mean"] == pytest.approx(1.5)
    assert s["total_reward"]["ci95"] == pytest.approx(T_975_1 * 0.5)
    assert s["regret"]["mean"] == pytest.approx(1.05)
    assert s["regret"]["ci95"] == pytest.approx(T_975_1 * 1.3 / 2)
    assert s["pseudo_regret"]["mean"] == pytest.approx(1.2)
    assert s["pseudo_regret"]["ci95"] == pytest.approx(T_975_1 * 1.2 / 2)
    assert s["expected_total_reward"]["mean"] == pytest.approx(1.35)
    assert s["optimal_total_reward"] == {"mean": pytest.approx(2.55), "ci95": pytest.approx(T_975_1 * 0.3 / 2)}
    # Per episode: means (0.5, 0, 1); only episode 0 varies across tasks.
    per_episode = s["per_episode_return"]
    assert [e["mean"] for e in per_episode] == pytest.approx([0.5, 0.0, 1.0])
    assert [e["ci95"] for e in per_episode] == pytest.approx([T_975_1 * 0.5, 0.0, 0.0])


def test_mean_ci_matches_scipy():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    mean, half = mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(3.875)
    assert half == pytest.approx((hi - lo) / 2)
    assert half == pytest.approx(2.364624251592785 * np.std(x, ddof=1) / math.sqrt(8))
    mean, half = mean_ci(np.array([2.0]))
    assert mean == 2.0 and np.isnan(half)  # one sample: no interval (None in JSON)
    means, halves = mean_ci(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(means, [2.0, 2.0])
    np.testing.assert_allclose(halves, [T_975_1, 0.0])


def test_summary_json_fields(bandit_eval):
    result = bandit_eval("greedy")
    s = result.summary()
    text = json.dumps(s, allow_nan=False)  # plain JSON: no NaN, no numpy types
    s = json.loads(text)
    assert s["task"] == "bernoulli-bandit:arms=5,pulls=1"
    assert s["agent"] == "greedy"
    assert (s["num_tasks"], s["episodes"], s["split"]) == (CHUNK, BANDIT_EPISODES, "test")
    for key in ("total_reward", "expected_total_reward", "regret", "pseudo_regret", "optimal_total_reward"):
        assert set(s[key]) == {"mean", "ci95"}, key
        assert s[key]["ci95"] > 0
    assert len(s["per_episode_return"]) == BANDIT_EPISODES
    assert all(set(e) == {"mean", "ci95"} for e in s["per_episode_return"])
    assert s["total_reward"]["mean"] == pytest.approx(sum(e["mean"] for e in s["per_episode_return"]))
    assert s["regret"]["mean"] == pytest.approx(s["optimal_total_reward"]["mean"] - s["total_reward"]["mean"])
    prov = s["provenance"]
    for key in ("metarlkit_version", "git_commit", "jax_version", "device", "task_set_hash",
                "agent_seed", "wall_time_s", "task_family_version", "task_set_seed", "env_seed"):
        assert key in prov, key
    import jax

    import metarlkit

    assert prov["metarlkit_version"] == metarlkit.__version__
    assert prov["jax_version"] == jax.__version__
    assert prov["agent_seed"] == 0 and prov["wall_time_s"] >= 0
    assert prov["task_set_hash"] == tasks.task_set_hash(result.family, "test", CHUNK)
    assert prov["device"].startswith("cpu")


def test_summary_without_pseudo_regret_for_tabular_mdp():
    r = hand_result(tasks.make("tabular-mdp", states=2, actions=5, steps=1))
    assert r.pseudo_regret is None
    s = r.summary(provenance=False)
    assert s["pseudo_regret"] is None and "provenance" not in s
    assert s["task"] == "tabular-mdp:actions=5,states=2,steps=1"
    assert s["regret"]["mean"] == pytest.approx(1.05)
    json.dumps(s, allow_nan=False)


def test_chunking_does_not_change_results(bandit_eval, bandit_family):
    """50 tasks in one chunk vs chunks of 7 (the last one padded): identical per-task returns and
    action counts (the padding must not be counted)."""
    whole = bandit_eval("greedy")
    resolved = baselines.resolve("greedy", bandit_family, BANDIT_EPISODES)
    default = evaluate(resolved.agent, bandit_family, resolved.params, num_episodes=BANDIT_EPISODES,
                       num_tasks=CHUNK)
    chunked = evaluate(resolved.agent, bandit_family, resolved.params, num_episodes=BANDIT_EPISODES,
                       num_tasks=CHUNK, chunk_size=7)
    for other in (default, chunked):
        for field in ("returns", "expected_returns", "optimal_expected", "optimal_return", "action_counts"):
            np.testing.assert_array_equal(getattr(other, field), getattr(whole, field), err_msg=field)
    assert whole.action_counts.sum() == CHUNK * BANDIT_EPISODES
    np.testing.assert_array_equal(whole.action_counts.sum(axis=(1, 2)), CHUNK)


def test_results_are_a_prefix(bandit_eval, bandit_family):
    """The first 20 tasks of a 50-task evaluation are a 20-task evaluation (here in chunks of 7,
    so it also reuses the compiled program of the chunking test)."""
    whole = bandit_eval("greedy")
    resolved = baselines.resolve("greedy", bandit_family, BANDIT_EPISODES)
    first = evaluate(resolved.agent, bandit_family, resolved.params, num_episodes=BANDIT_EPISODES,
                     num_tasks=20, chunk_size=7)
    for field in ("returns", "expected_returns", "optimal_expected", "optimal_return"):
        np.testing.assert_array_equal(getattr(first, field), getattr(whole, field)[:20], err_msg=field)


def test_agent_seed_changes_agent_draws_only(bandit_eval):
    """Seeds drive the agent alone: random agents with seeds 0 and 1 act differently, while the
    deterministic greedy agent gives identical results for both seeds (same tasks, same env draws)."""
    a, b = bandit_eval("random", seed=0), bandit_eval("random", seed=1)
    assert not np.array_equal(a.action_counts, b.action_counts)
    np.testing.assert_array_equal(a.optimal_return, b.optimal_return)
    g0, g1 = bandit_eval("greedy", seed=0), bandit_eval("greedy", seed=1)
    np.testing.assert_array_equal(g0.returns, g1.returns)
    np.testing.assert_array_equal(g0.action_counts, g1.action_counts)


def test_paired_comparison_is_tighter_than_unpaired(bandit_eval):
    """Common random numbers: on the same tasks and draws, the per-task difference of two agents'
    regrets has a smaller confidence interval than the two intervals combined."""
    greedy, ts = bandit_eval("greedy"), bandit_eval("ts")
    _, paired = mean_ci(greedy.regret - ts.regret)
    _, ci_g = mean_ci(greedy.regret)
    _, ci_t = mean_ci(ts.regret)
    unpaired = math.sqrt(ci_g**2 + ci_t**2)
    assert paired < unpaired, (paired, unpaired)
    # Same tasks: the optimum is the same for both.
    np.testing.assert_array_equal(greedy.optimal_return, ts.optimal_return)


UCB_GRID = baselines.get("ucb1").knobs["c"].grid


@pytest.fixture(scope="module")
def ucb_sweep(bandit_family):
    """evaluate_sweep over UCB1's whole c grid on the first 50 validation tasks."""
    import jax
    import jax.numpy as jnp

    resolved = baselines.resolve("ucb1:c=1", bandit_family, BANDIT_EPISODES)
    make = baselines.get("ucb1").make_params
    grid = [make(bandit_family, BANDIT_EPISODES, c=c) for c in UCB_GRID]
    params = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *grid)
    out = evaluate_sweep(resolved.agent, bandit_family, params, num_episodes=BANDIT_EPISODES,
                         num_tasks=CHUNK, split="validation")
    return resolved, out


def test_sweep_equals_individual_evaluations(ucb_sweep, bandit_eval):
    resolved, out = ucb_sweep
    g = len(UCB_GRID)
    assert out["returns"].shape == (g, CHUNK, BANDIT_EPISODES)
    assert out["optimal_return"].shape == (g, CHUNK)
    for i in (0, 3, g - 1):
        single = bandit_eval(f"ucb1:c={UCB_GRID[i]}", split="validation")
        np.testing.assert_array_equal(out["returns"][i], single.returns)
        np.testing.assert_allclose(out["expected_returns"][i], single.expected_returns, rtol=1e-6)
        np.testing.assert_array_equal(out["optimal_return"][i], single.optimal_return)
    # The grid matters: different c, different behaviour.
    assert len({out["expected_returns"][i].sum().round(4) for i in range(g)}) > 3


def test_resolve_tunes_on_validation(ucb_sweep, bandit_family):
    _, out = ucb_sweep
    resolved = baselines.resolve("ucb1", bandit_family, BANDIT_EPISODES, tune_tasks=CHUNK)
    tuning = resolved.tuning
    assert tuning["split"] == "validation" and tuning["num_tasks"] == CHUNK and tuning["seed"] == 0
    assert [g["c"] for g in tuning["grid"]] == list(UCB_GRID)
    scores = out["expected_returns"].sum(-1).mean(-1)  # [G]
    np.testing.assert_allclose([g["score"] for g in tuning["grid"]], scores, rtol=1e-5)
    chosen = tuning["chosen"]["c"]
    assert chosen in UCB_GRID and chosen == UCB_GRID[int(np.argmax(scores))]
    assert resolved.hyperparameters == {"c": chosen}
    assert resolved.spec == f"ucb1:c={chosen}"
    assert float(resolved.params["c"]) == pytest.approx(chosen)
    # A knob given in the spec is not tuned.
    assert baselines.resolve("ucb1:c=0.3", bandit_family, BANDIT_EPISODES).tuning is None


def test_evaluate_rejects_bad_requests(bandit_family):
    resolved = baselines.resolve("greedy", bandit_family, 1)
    with pytest.raises(ValueError, match="exceeds the test split"):
        evaluate(resolved.agent, bandit_family, resolved.params, num_episodes=1, num_tasks=100_001)
    eleven = tasks.make("eleven-arm-bandit")
    with pytest.raises(ValueError, match=r"trials are 1 episode\(s\) long"):
        evaluate(resolved.agent, eleven, resolved.params, num_episodes=3, num_tasks=5)


def test_successive_halving_rungs():
    """Rungs are whole chunks; the grid shrinks to its best quarter (at least 2) per rung."""
    from metarlkit.baselines.core import survivors, tuning_rungs

    assert tuning_rungs(20, 200) == [50, 50, 100]  # OTS: 20 x 50 + 5 x 50 + 2 x 100 = 1450 trials
    assert tuning_rungs(11, 500) == [100, 100, 300]
    assert tuning_rungs(6, 200) == [100, 100]
    assert tuning_rungs(4, 200) == [200]  # small grids: every point on every task
    assert tuning_rungs(20, 50) == [50]  # too few tasks for two rungs of whole chunks
    assert [survivors(g) for g in (20, 5, 11, 3, 2)] == [5, 2, 3, 2, 2]


def test_resolve_reports_each_points_tasks(bandit_family):
    """With halving, eliminated points were scored on rung 1 only; the winner ran on all tasks."""
    resolved = baselines.resolve("egreedy", bandit_family, BANDIT_EPISODES, tune_tasks=2 * CHUNK)
    tuning = resolved.tuning
    assert tuning["method"] == "successive halving"
    tasks_run = sorted(g["tasks"] for g in tuning["grid"])
    assert tasks_run == [CHUNK] * 8 + [2 * CHUNK] * 3
    best = max((g for g in tuning["grid"] if g["tasks"] == 2 * CHUNK), key=lambda g: g["score"])
    assert tuning["chosen"] == {"epsilon": best["epsilon"]}


def test_goal_families_report_success_and_undeclared_metrics_say_why(tmp_path):
    """Point navigation declares success: the oracle reaches every goal, a random policy fewer.
    A family that declares no optimum gets no regret and no oracle, and the outputs say why."""
    import dataclasses
    from typing import ClassVar

    from metarlkit.plotting import plot_results
    from metarlkit.tasks.navigation import PointNavigation

    family = tasks.from_spec("point-navigation:variant=sparse")
    results = {}
    for spec in ("oracle", "random"):
        resolved = baselines.resolve(spec, family, 2)
        results[spec] = evaluate(resolved.agent, family, resolved.params, num_episodes=2, num_tasks=50,
                                 name=resolved.spec)
    oracle, random = (results[k].summary() for k in ("oracle", "random"))
    assert [e["mean"] for e in oracle["per_episode_success"]] == [1.0, 1.0]
    assert all(e["mean"] < 0.5 for e in random["per_episode_success"])
    assert set(oracle["not_defined"]) == {"pseudo_regret"} and oracle["regret"] is not None

    @dataclasses.dataclass(frozen=True)
    class NoOptimum(PointNavigation):
        defines_optimum: ClassVar[bool] = False

    bare = NoOptimum(variant="sparse")
    assert "declares no optimal policy" in baselines.get("oracle").supports(bare)
    resolved = baselines.resolve("random", bare, 2)
    result = evaluate(resolved.agent, bare, resolved.params, num_episodes=2, num_tasks=50, name="random")
    summary = result.summary()
    assert summary["regret"] is None and summary["optimal_total_reward"] is None
    assert "declares no optimal return" in summary["not_defined"]["regret"]
    json.dumps(summary)  # still a valid JSON object
    plot_results([result], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_robustness_metrics_are_percentiles_and_the_worst_tenth_with_bootstrap_intervals():
    from metarlkit.evaluation import cvar, robustness

    x = np.arange(100, dtype=np.float64)[::-1]  # 99 .. 0
    assert cvar(x) == pytest.approx(4.5)  # the worst 10: 0 .. 9
    assert cvar(np.arange(15.0)) == pytest.approx(0.5)  # ceil(0.1 * 15) = 2 worst
    out = robustness(x)
    assert out["return_percentiles"]["10"]["value"] == pytest.approx(np.percentile(x, 10))
    assert out["return_percentiles"]["50"]["value"] == pytest.approx(49.5)
    for stat in (*out["return_percentiles"].values(), out["cvar"]):
        low, high = stat["ci95"]
        assert low <= stat["value"] <= high and high > low
    assert out["cvar"]["alpha"] == 0.1
    assert robustness(x) == out  # fixed bootstrap seed: the same result, the same intervals
    single = robustness(np.array([3.0]))
    assert single["cvar"] == {"alpha": 0.1, "value": 3.0, "ci95": [None, None]}
