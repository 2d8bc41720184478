"""PEARL's data path: what each phase writes to which buffer, and which reward each learner sees."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.algos.pearl import PRESETS, PEARLConfig, make_train
from metarlkit.experiment.config import build
from metarlkit.trial import TaskSource

pytestmark = pytest.mark.usefixtures("fast_compile")


@pytest.fixture(scope="module")
def run():
    family = tasks.make("point-navigation", variant="sparse")
    config = build(PEARLConfig, {**PRESETS["tiny"], "initial_steps": 60, "prior_steps": 20, "posterior_steps": 20,
                                 "extra_rl_steps": 40, "reward_scale": 100.0, "tasks_per_iteration": 2})
    train = make_train(config, family, None, TaskSource(family, config.train_tasks))
    state0 = jax.jit(train.init)(jax.random.PRNGKey(0))
    state1, m1 = jax.jit(lambda s: train.phases[0].run_chunk(s, 1))(state0)
    state2, m2 = jax.jit(lambda s: train.phases[1].run_chunk(s, 1))(state1)
    return family, config, (state0, state1, state2), (m1, m2)


def test_the_initial_phase_fills_both_buffers_of_every_task(run):
    family, config, (_, state, _), _ = run
    for buffer in (state.rl_buffer, state.enc_buffer):
        np.testing.assert_array_equal(buffer.size, [60] * config.train_tasks)  # 3 episodes of 20 steps


def test_sparse_reward_goes_to_the_encoder_and_dense_reward_to_sac(run):
    _, _, (_, state, _), (_, m2) = run
    rl = state.rl_buffer
    sparse, dense = np.asarray(rl.reward[:, :60]), np.asarray(rl.dense_reward[:, :60])
    assert np.all(sparse >= 0) and np.all(dense < 0)  # 1 - d within 0.2 of the goal, else 0; and -d
    np.testing.assert_array_equal(state.enc_buffer.reward[:, :60], sparse)
    # the critics' target is reward_scale x the dense reward (V starts near 0): about -100 x distance
    assert float(np.mean(m2["q_target"])) < -20


def test_an_iteration_clears_the_sampled_tasks_encoder_data_and_keeps_only_context_episodes(run):
    _, config, (_, before, after), _ = run
    grew = np.asarray(after.rl_buffer.size) - np.asarray(before.rl_buffer.size)
    sampled = np.flatnonzero(grew)
    assert len(sampled) == config.tasks_per_iteration and np.all(grew[sampled] == 80)  # 4 episodes each
    enc = np.asarray(after.enc_buffer.size)
    np.testing.assert_array_equal(enc[sampled], 40)  # cleared, then the prior + posterior episodes only
    others = np.setdiff1d(np.arange(config.train_tasks), sampled)
    np.testing.assert_array_equal(enc[others], 60)  # untouched: the initial data
    changed = [not np.array_equal(before.nets[name]["w0"], after.nets[name]["w0"]) for name in
               ("policy", "q1", "q2", "v", "v_target", "encoder")]
    assert all(changed)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from metarlkit import algos
    from metarlkit.experiment import train

    algo, family = algos.get("pearl"), tasks.make("point-navigation", variant="sparse")
    config = build(PEARLConfig, PRESETS["tiny"])
    path = tmp_path_factory.mktemp("pearl") / "a"
    status = train(algo, config, family, 2, path, progress=False, tensorboard=False)
    return algo, config, family, path, status


def test_a_run_started_from_another_skips_the_initial_collection(tiny_run, tmp_path):
    """`--init-from`: the buffers come with the state, so the first-start-only phase is not run."""
    import json

    from metarlkit.experiment import train

    algo, config, family, first_dir, first = tiny_run
    assert first["updates"] == 3  # initial + 2 iterations
    again = train(algo, config, family, 2, tmp_path / "b", progress=False, tensorboard=False, init_from=first_dir,
                  stop_after_chunks=1)
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert [p["name"] for p in info["phases"]] == ["train"] and info["num_updates"] == 2
    assert again["updates"] == 1
    done = train(algo, None, None, None, tmp_path / "b", resume=True, progress=False, tensorboard=False)
    assert done["state"] == "complete" and done["updates"] == 2  # the resumed run keeps the same plan


def test_a_run_is_evaluated_with_other_evaluation_only_options(tiny_run):
    """`RUN:prior_episodes=N`: the same trained parameters, another agent; training options refused."""
    from metarlkit.experiment import load
    from metarlkit.experiment.runner import RunDirError

    _, config, _, path, _ = tiny_run
    plain = load(path)
    other = load(path, agent_options={"prior_episodes": "3", "posterior_update": "step"})
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, plain.params, other.params))
    assert other.hyperparameters["agent_options"] == {"prior_episodes": 3, "posterior_update": "step"}
    assert "agent_options" not in plain.hyperparameters and config.prior_episodes != 3
    assert other.name.endswith(":seed=0,posterior_update=step,prior_episodes=3")
    from metarlkit import evaluate

    def returns(trained):  # on the dense family (same spaces): every step's reward tells
        return evaluate(trained.agent, tasks.make("point-navigation"), trained.params, num_episodes=3,
                        num_tasks=4).returns

    np.testing.assert_array_equal(returns(plain)[:, 0], returns(other)[:, 0])  # z from the prior in both
    assert not np.array_equal(returns(plain)[:, 1:], returns(other)[:, 1:])  # posterior against prior draws
    sampled = load(path, agent_options={"deterministic_eval": "false"})
    assert sampled.name.endswith(":seed=0,deterministic_eval=False")
    assert not np.array_equal(returns(plain)[:, 0], returns(sampled)[:, 0])  # sampled actions from the first step
    with pytest.raises(RunDirError, match="takes the options seed, update, prior_episodes, posterior_update, "
                                          "deterministic_eval; got 'kl_weight'"):
        load(path, agent_options={"kl_weight": "2"})
    with pytest.raises(RunDirError, match="posterior_update"):
        load(path, agent_options={"posterior_update": "never"})
