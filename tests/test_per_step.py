"""`evaluate(per_step=True)` and `--per-step`: the reward at every step of every episode over tasks,
counting only valid steps; chunked moments against the whole record; nothing changes without it."""

from __future__ import annotations

import json
import types

import jax
import numpy as np
import pytest

from metarlkit import baselines, evaluate, tasks
from metarlkit.cli import main
from metarlkit.evaluation import StepReward, _merge_moments, _step_moments, mean_ci, step_reward
from metarlkit.tasks.tasksets import SPLIT_IDS, env_keys, split_tasks
from metarlkit.trial import run_trials

pytestmark = pytest.mark.usefixtures("fast_compile")

T_975_1 = 12.706204736174698  # Student t quantile 0.975 with 1 degree of freedom (tables)


def run(spec, agent_spec, episodes, num_tasks, chunk, per_step, seed=1):
    family = tasks.from_spec(spec)
    r = baselines.resolve(agent_spec, family, episodes)
    return evaluate(r.agent, family, r.params, num_episodes=episodes, num_tasks=num_tasks, chunk_size=chunk,
                    seed=seed, per_step=per_step), (family, r)


def whole_record(family, resolved, episodes, num_tasks, seed=1):
    """Every task's StepRecord [task, episode, step] of the trials `evaluate` runs (same draws)."""
    idx = np.arange(num_tasks, dtype=np.uint32)
    split = SPLIT_IDS["test"]
    agent_keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(idx)
    rec = run_trials(family, resolved.agent, resolved.params, split_tasks(family, split, idx),
                     env_keys(split, idx), agent_keys, episodes)
    return np.asarray(rec.reward, np.float64), np.asarray(rec.valid)


def reference(reward, valid):
    """(count, mean, ci95) [episode, step] by `mean_ci` over the tasks where each step is valid."""
    count = valid.sum(0)
    mean, half = np.full(count.shape, np.nan), np.full(count.shape, np.nan)
    for e, t in np.ndindex(*count.shape):
        if count[e, t]:
            mean[e, t], half[e, t] = mean_ci(reward[valid[:, e, t], e, t])
    return count, mean, half


def test_moments_merged_over_chunks_are_mean_ci_over_valid_tasks():
    # 5 tasks, 1 episode, 3 steps; the last task is padding (weight 0). Step 1 is valid on two
    # tasks, step 2 on one only.
    reward = np.array([[[1.0, 2.0, 0.0]], [[3.0, 0.0, 0.0]], [[2.0, 4.0, 5.0]], [[6.0, 0.0, 0.0]],
                       [[9.0, 9.0, 9.0]]], np.float32)
    valid = np.array([[[1, 1, 0]], [[1, 0, 0]], [[1, 1, 1]], [[1, 0, 0]], [[1, 1, 1]]], bool)
    weight = np.array([1, 1, 1, 1, 0], np.float32)
    chunks = [(slice(0, 2), weight[:2]), (slice(2, 5), weight[2:])]  # tasks {0, 1} then {2, 3, pad}
    moments = None
    for rows, w in chunks:
        part = _step_moments(w, types.SimpleNamespace(reward=reward[rows], valid=valid[rows]))
        moments = (tuple(np.asarray(x, np.float64) for x in part) if moments is None
                   else _merge_moments(moments, part))
    got = step_reward(moments)
    np.testing.assert_array_equal(got.count, [[4, 2, 1]])
    np.testing.assert_allclose(got.mean, [[3.0, 3.0, 5.0]])  # step 1: (2 + 4) / 2, not (2 + 0 + 4 + 0) / 4
    _, half = mean_ci(np.array([1.0, 3.0, 2.0, 6.0]))
    np.testing.assert_allclose(got.ci95[0, :2], [half, T_975_1 * np.std([2.0, 4.0], ddof=1) / np.sqrt(2)])
    assert np.isnan(got.ci95[0, 2])  # one task: no interval
    # No task valid: the whole entry is null; one task: a mean without an interval.
    stats = StepReward(np.array([[2, 1, 0]]), np.array([[0.5, 2.0, np.nan]]), np.array([[0.25, np.nan, np.nan]]))
    assert stats.to_json() == [[{"mean": 0.5, "ci95": 0.25}, {"mean": 2.0, "ci95": None}, None]]


def test_per_step_means_sum_to_the_episode_means_when_every_step_is_valid():
    episodes, num_tasks = 3, 12
    result, (family, resolved) = run("bernoulli-bandit:arms=3,pulls=5", "random", episodes, num_tasks, 5, True)
    stats = result.per_step_reward
    assert stats.mean.shape == stats.ci95.shape == stats.count.shape == (episodes, family.horizon)
    assert (stats.count == num_tasks).all()
    np.testing.assert_allclose(stats.mean.sum(axis=1), result.returns.mean(axis=0), rtol=1e-6, atol=1e-6)
    reward, valid = whole_record(family, resolved, episodes, num_tasks)
    np.testing.assert_array_equal(reward.sum(-1), result.returns)  # the same trials as evaluate's
    count, mean, half = reference(reward, valid)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.ci95, half, rtol=1e-5, atol=1e-6)
    per_step = result.summary(provenance=False)["per_step_reward"]
    assert len(per_step) == episodes and all(len(e) == family.horizon for e in per_step)
    assert per_step[2][4] == {"mean": pytest.approx(mean[2, 4]), "ci95": pytest.approx(half[2, 4])}


def test_early_ending_episodes_average_over_valid_steps_only():
    # Dense point navigation ends an episode in the goal zone; the oracle gets there in a few steps,
    # each task after its own number of steps, and no task is left after step 5.
    episodes, num_tasks = 2, 7
    result, (family, resolved) = run("point-navigation", "oracle", episodes, num_tasks, 3, True)
    stats = result.per_step_reward
    reward, valid = whole_record(family, resolved, episodes, num_tasks)
    count, mean, half = reference(reward, valid)
    np.testing.assert_array_equal(stats.count, count)
    assert (count[:, 0] == num_tasks).all() and (count == 0).any()
    partial = (count > 0) & (count < num_tasks)
    assert partial.any()
    # Over valid steps only: not the mean with ended episodes counted as reward 0.
    zero_filled = reward.mean(0)
    assert not np.allclose(stats.mean[partial], zero_filled[partial])
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(stats.ci95, half, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(stats.mean[count == 0]).all()
    per_step = result.summary(provenance=False)["per_step_reward"]
    assert [[x is None for x in e] for e in per_step] == (count == 0).tolist()
    # The chunking (3 tasks per call, the last chunk padded) does not change the result.
    one_chunk, _ = run("point-navigation", "oracle", episodes, num_tasks, num_tasks, True)
    np.testing.assert_array_equal(one_chunk.per_step_reward.count, stats.count)
    np.testing.assert_allclose(one_chunk.per_step_reward.mean, stats.mean, rtol=1e-6, atol=1e-7, equal_nan=True)


def test_without_per_step_nothing_changes():
    with_it, _ = run("point-navigation", "oracle", 2, 7, 3, True)
    without, _ = run("point-navigation", "oracle", 2, 7, 3, False)
    assert without.per_step_reward is None
    for name in ("returns", "expected_returns", "optimal_expected", "optimal_return", "action_counts", "successes"):
        a, b = getattr(with_it, name), getattr(without, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    plain, asked = without.summary(provenance=False), with_it.summary(provenance=False)
    assert "per_step_reward" not in plain
    assert {k: v for k, v in asked.items() if k != "per_step_reward"} == plain


def test_cli_writes_per_step_reward_only_when_asked(capsys, tmp_path):
    common = ["--agent", "random", "--task", "bernoulli-bandit:arms=3,pulls=4", "--episodes", "2",
              "--num-tasks", "6", "--chunk-size", "4"]
    assert main(["evaluate", *common, "--json", str(tmp_path / "plain.json")]) == 0
    assert main(["evaluate", *common, "--per-step", "--json", str(tmp_path / "steps.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    steps = json.loads((tmp_path / "steps.json").read_text())
    assert "per_step_reward" not in plain
    per_step = steps.pop("per_step_reward")
    assert len(per_step) == 2 and all(len(e) == 4 for e in per_step)
    assert all(set(x) == {"mean", "ci95"} for e in per_step for x in e)
    assert sum(x["mean"] for x in per_step[1]) == pytest.approx(steps["per_episode_return"][1]["mean"])
    for data in (plain, steps):
        data["provenance"].pop("wall_time_s")
    assert steps == plain
    compare = ["compare", *common, "--agent", "oracle", "--per-step", "--json", str(tmp_path / "c.json")]
    assert main(compare) == 0
    results = json.loads((tmp_path / "c.json").read_text())["results"]
    assert all(len(r["per_step_reward"]) == 2 for r in results)
    capsys.readouterr()
    assert main(["evaluate", *common, "--per-step"]) == 2  # nothing would show it
    err = capsys.readouterr().err.strip()
    assert err.startswith("metarlkit: error:") and "--json" in err and len(err.splitlines()) == 1


def test_a_step_range_gives_each_tasks_mean_reward_over_those_steps(tmp_path, capsys):
    """`step_range=(a, b)`: per task and episode, the mean reward over its valid steps a <= t < b,
    the same numbers `per_step` averages; steps past an early end are left out (NaN: none valid)."""
    from metarlkit import baselines, evaluate, tasks
    from metarlkit.cli import main

    wind = tasks.from_spec("point-robot-wind")  # no early end: every step of every task is valid
    rnd = baselines.resolve("random", wind, 2)
    res = evaluate(rnd.agent, wind, rnd.params, num_episodes=2, num_tasks=6, step_range=(5, 15), per_step=True)
    assert res.range_reward.shape == (6, 2) and np.all(np.isfinite(res.range_reward))
    np.testing.assert_allclose(res.range_reward.mean(axis=0), res.per_step_reward.mean[:, 5:15].mean(axis=1), rtol=1e-5)
    family = tasks.from_spec("point-navigation")
    oracle = baselines.resolve("oracle", family, 1)
    res = evaluate(oracle.agent, family, oracle.params, num_episodes=1, num_tasks=6, step_range=(0, 3))
    late = evaluate(oracle.agent, family, oracle.params, num_episodes=1, num_tasks=6, step_range=(90, 100))
    assert np.all(np.isnan(late.range_reward))  # the oracle reaches every goal long before step 90
    assert late.summary()["step_range_reward"]["per_episode"][0] == {"mean": None, "ci95": None, "tasks": 0}
    out = tmp_path / "r.json"
    code = main(["evaluate", "--agent", "oracle", "--task", "point-navigation", "--episodes", "1", "--num-tasks", "6",
                 "--step-range", "0:3", "--json", str(out)])
    assert code == 0
    import json

    got = json.loads(out.read_text())["step_range_reward"]
    assert got["steps"] == [0, 3] and abs(got["per_episode"][0]["mean"] - float(res.range_reward.mean())) < 1e-6
    assert main(["evaluate", "--agent", "oracle", "--task", "point-navigation", "--episodes", "1",
                 "--step-range", "5:200"]) == 2
    assert "0 <= START < STOP <= 100" in capsys.readouterr().err


def test_per_step_rewards_align_on_each_tasks_change(tmp_path):
    """On a family whose dynamics change at a task-dependent step, the aligned per-step reward at
    offset k averages each task's reward at its change step + k: with a change spread of 0 it is
    the per-step reward shifted by the change step; the plot draws a third panel."""
    from metarlkit import baselines, evaluate, tasks
    from metarlkit.plotting import plot_results

    fixed = tasks.from_spec("point-robot-wind:change_at=7")
    rnd = baselines.resolve("random", fixed, 2)
    res = evaluate(rnd.agent, fixed, rnd.params, num_episodes=2, num_tasks=5, per_step=True)
    trial = 2 * fixed.horizon
    assert res.aligned_reward.mean.shape == (1, 2 * trial)
    flat = res.per_step_reward.mean.reshape(-1)
    np.testing.assert_allclose(res.aligned_reward.mean[0, trial - 7: 2 * trial - 7], flat, rtol=1e-5)
    out = res.summary()["per_step_reward_after_change"]
    assert out["first_step"] == -7 and len(out["steps"]) == trial
    spread = tasks.from_spec("point-robot-wind:change_at=5,change_spread=20")
    res = evaluate(rnd.agent, spread, rnd.params, num_episodes=2, num_tasks=8, per_step=True)
    assert len(set(res.change_steps.tolist())) > 1
    assert int(res.aligned_reward.count[0, trial]) == 8  # every task has its change step
    plot_results([res], tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
