"""GMPS: the imitation meta-gradient through the inner step against finite differences, the inner
step size 0 as plain behaviour cloning, DAgger's relabelling with the expert's actions, learnt step
sizes and the bias input receiving gradients, demonstrations read from task-set recordings (and
malformed ones rejected in one line), and the agent being MAML's."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import recording, tasks
from metarlkit.algos import gmps
from metarlkit.algos.gmps import train as G
from metarlkit.experiment.config import build
from metarlkit.nets.mlp import init_mlp_policy, mlp, policy_action
from metarlkit.rl.adaptation import Episodes, distribution, log_prob, process

pytestmark = pytest.mark.usefixtures("fast_compile")

N, H, OBS, ACT = 3, 5, 2, 2
NAV = tasks.from_spec("point-navigation")


def _config(**overrides):
    return build(gmps.GMPSConfig, {**gmps.PRESETS["tiny"], **overrides}, source="test")


def _task_data(key, params, activation="tanh"):
    """Synthetic pre-update episodes (one full, one short, one 1-step) and imitation data."""
    k_obs, k_act, k_rew, k_s, k_a = jax.random.split(key, 5)
    valid = jnp.arange(H)[None, :] < jnp.array([[H], [H - 2], [1]])
    ep = Episodes(jax.random.normal(k_obs, (N, H, OBS)), jax.random.normal(k_act, (N, H, ACT)),
                  jnp.where(valid, jax.random.normal(k_rew, (N, H)), 0.0), valid)
    data = process(ep, 0.9, 1.0, "step")
    old_logp = log_prob(distribution(params["policy"], ep.obs, activation), ep.action)
    return data, old_logp, jax.random.normal(k_s, (N, H, OBS)), jax.random.normal(k_a, (N, H, ACT)), valid


def _params(key, config):
    theta = init_mlp_policy(key, OBS, (4,), ACT, continuous=True, init_log_std=-0.3, bias_input=config.bias_transform)
    params = {"policy": theta}
    if config.learned_step_sizes:
        params["step_sizes"] = jax.tree_util.tree_map(lambda x: jnp.full_like(x, config.inner_lr), theta)
    return params


@pytest.mark.parametrize("kind", ["mean_squared", "likelihood"])
def test_imitation_meta_gradient_matches_finite_differences(kind):
    """The outer loss's gradient through the inner step (second order, with learnt step sizes and
    bias input) is the exact derivative: central differences in float64 along random directions
    agree. (With importance weights the inner loss's ratio is a constant to the meta-gradient, as
    the reference's stopped ratio: the gradient then leaves out the ratio's derivative on purpose.)"""
    config = _config(activation="tanh", imitation_loss=kind, learned_step_sizes=True, bias_transform=3, inner_lr=0.3,
                     importance_weights=False)
    with jax.enable_x64(True):
        params = _params(jax.random.PRNGKey(0), config)
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        data, old_logp, obs, action, valid = jax.tree_util.tree_map(
            lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x,
            _task_data(jax.random.PRNGKey(1), params))
        moved = jax.tree_util.tree_map(lambda x: x + 0.05, params)

        @jax.jit
        def f(p):
            return G.task_loss(p, data, old_logp, obs, action, valid, config)

        grad = jax.jit(jax.grad(f))(moved)
        flat, unravel = jax.flatten_util.ravel_pytree(grad)
        rng = np.random.default_rng(0)
        for _ in range(3):
            d = unravel(jnp.asarray(1e-5 * rng.normal(size=flat.shape)))
            fd = (f(jax.tree_util.tree_map(jnp.add, moved, d)) - f(jax.tree_util.tree_map(jnp.subtract, moved, d))) / 2
            np.testing.assert_allclose(float(jnp.dot(flat, jax.flatten_util.ravel_pytree(d)[0])), float(fd),
                                       rtol=1e-6, atol=1e-12)


def test_inner_step_size_zero_is_behaviour_cloning():
    """With alpha = 0 the outer loss and its gradient are plain behaviour cloning of theta; with
    alpha > 0 the gradient differs (the test can fail)."""
    config = _config(activation="tanh", inner_lr=0.0)
    params = _params(jax.random.PRNGKey(2), config)
    data, old_logp, obs, action, valid = _task_data(jax.random.PRNGKey(3), params)

    def bc(theta):
        return G.imitation_loss(theta, obs, action, valid, activation="tanh", kind=config.imitation_loss,
                                weighting="step")

    loss, grad = jax.value_and_grad(lambda p: G.task_loss(p, data, old_logp, obs, action, valid, config))(params)
    want_loss, want_grad = jax.value_and_grad(bc)(params["policy"])
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(grad["policy"]), jax.tree_util.tree_leaves(want_grad)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    moving = dataclasses.replace(config, inner_lr=0.5)
    other = jax.grad(lambda p: G.task_loss(p, data, old_logp, obs, action, valid, moving))(params)
    assert not np.allclose(jax.flatten_util.ravel_pytree(other)[0], jax.flatten_util.ravel_pytree(grad)[0])


@pytest.mark.parametrize("kind", ["likelihood", "mean_squared"])
def test_learned_step_sizes_and_the_bias_input_receive_gradients(kind):
    """Every learnt step size gets a gradient — but log_std's under the mean-squared loss, which
    reads the adapted policy's mean only."""
    config = _config(activation="tanh", learned_step_sizes=True, bias_transform=4, imitation_loss=kind)
    params = _params(jax.random.PRNGKey(4), config)
    data, old_logp, obs, action, valid = _task_data(jax.random.PRNGKey(5), params)
    grad = jax.grad(lambda p: G.task_loss(p, data, old_logp, obs, action, valid, config))(params)
    assert set(grad["step_sizes"]) == set(params["policy"]) and "bias_input" in grad["step_sizes"]
    for name, g in grad["step_sizes"].items():
        assert np.all(np.isfinite(g))
        if kind == "mean_squared" and name == "log_std":
            np.testing.assert_array_equal(g, 0.0)
        else:
            assert np.any(g != 0), f"step size of {name} gets no gradient"
    assert np.any(grad["policy"]["bias_input"] != 0)


def test_the_bias_input_is_read_beside_the_observation():
    theta = init_mlp_policy(jax.random.PRNGKey(6), OBS, (5,), ACT, continuous=True, bias_input=3)
    assert theta["w0"].shape == (OBS + 3, 5) and np.all(theta["bias_input"] == 1)
    x = jax.random.normal(jax.random.PRNGKey(7), (4, OBS))
    plain = {k: v for k, v in theta.items() if k != "bias_input"}
    np.testing.assert_allclose(mlp(theta, x), mlp(plain, jnp.concatenate([x, jnp.ones((4, 3))], -1)), rtol=1e-6)


def _collect(config, family=NAV):
    trainer = G.make_train(config, family)
    state = trainer.init(jax.random.PRNGKey(8))
    return state, jax.jit(trainer.extras["collect"])(state, jax.random.PRNGKey(9))


@pytest.mark.parametrize("experts", ["oracle", "sac"])
def test_dagger_relabels_the_adapted_policys_states_with_the_expert(experts):
    """DAgger's imitation data are the post-update round's own states, each labelled with the
    expert's action at that state on that task, in the policy's units (the oracle's, or the SAC
    expert's deterministic action)."""
    from metarlkit.algos.gmps import experts as X

    config = _config(experts=experts, imitation_states="auto", meta_batch=2, trajectories=2)
    assert config.dagger
    state, (data, _, imitate, returns, index) = _collect(config)
    assert returns.shape == (2, 4) and imitate.obs.shape == (2, 2, NAV.horizon, 2)
    assert len(set(np.asarray(index).tolist())) == 2  # the tasks of an iteration are distinct
    # the states are not the pre-update round's: they come from the adapted policy's round
    assert not np.allclose(imitate.obs, data.episodes.obs)
    train_tasks = tasks.task_set(NAV, "train", config.train_tasks)
    for i in range(2):
        task = jax.tree_util.tree_map(lambda x: x[int(index[i])], train_tasks)
        ok = np.asarray(imitate.valid[i])
        obs = np.asarray(imitate.obs[i])[ok]
        if experts == "oracle":
            want = np.clip(np.asarray(task["goal"]) - obs, -0.1, 0.1) / 0.1
        else:
            want = jax.vmap(lambda o: policy_action(X.expert_action(state.expert.nets["policy"], task, o, (-0.1, 0.1)),
                                                    (-0.1, 0.1)))(jnp.asarray(obs))
        np.testing.assert_allclose(np.asarray(imitate.action[i])[ok], want, atol=1e-5)


def test_expert_states_come_from_the_experts_trajectories():
    config = _config(experts="oracle", imitation_states="expert", meta_batch=2, trajectories=2)
    trainer = G.make_train(config, NAV)
    state = trainer.init(jax.random.PRNGKey(8))
    state, metrics = jax.jit(lambda s: trainer.phases[0].run_chunk(s, 1))(state)
    assert [p.name for p in trainer.phases] == ["experts", "imitation"]
    demos = state.experts
    goals = np.asarray(tasks.task_set(NAV, "train", config.train_tasks)["goal"])
    first = np.asarray(demos.obs[:, 0, 0])
    np.testing.assert_allclose(first, 0.0)  # every episode starts at the origin
    np.testing.assert_allclose(demos.action[:, 0, 0], np.clip(goals, -0.1, 0.1) / 0.1, atol=1e-6)
    assert float(metrics["expert_steps"][0]) == float(np.sum(demos.valid))


def _record(path, family, n_tasks, episodes, action_scale=1.0, **meta):
    goals = np.asarray(tasks.task_set(family, "train", n_tasks)["goal"])
    h = family.horizon
    obs = np.zeros((n_tasks, episodes, h, 2), np.float32)
    action = np.broadcast_to(np.clip(goals, -0.1, 0.1)[:, None, None, :] * action_scale,
                             (n_tasks, episodes, h, 2)).astype(np.float32)
    valid = np.ones((n_tasks, episodes, h), bool)
    info = {"task": family.spec(), "train_tasks": n_tasks, **meta}
    recording.save(path, recording.Recording(obs, action, obs, np.zeros(valid.shape, np.float32), valid, info))


def test_demonstrations_are_read_from_a_task_set_recording(tmp_path):
    family = tasks.from_spec("point-navigation:variant=sparse")
    path = tmp_path / "demos.npz"
    _record(path, family, 5, 3)
    config = _config(experts="demos", demos=str(path), train_tasks=4, expert_episodes=2)
    assert not config.dagger
    G.check(config, family, G.default_episodes(config))
    demos = G.load_demos(config, family)
    assert demos.obs.shape == (4, 2, family.horizon, 2)
    goals = np.asarray(tasks.task_set(family, "train", 4)["goal"])
    np.testing.assert_allclose(demos.action[:, 0, 0], policy_action(np.clip(goals, -0.1, 0.1), (-0.1, 0.1)), atol=1e-6)
    # the experts phase puts them into the train state
    trainer = G.make_train(config, family)
    state, _ = jax.jit(lambda s: trainer.phases[0].run_chunk(s, 1))(trainer.init(jax.random.PRNGKey(0)))
    np.testing.assert_allclose(state.experts.action, demos.action)


@pytest.mark.parametrize("case, message", [
    ("missing", "no recording at"),
    ("damaged", "is damaged"),
    ("one task", "not a recording of training tasks"),
    ("few tasks", "records 3 training tasks; this run needs 4"),
    ("few episodes", "records 1 episodes per task"),
    ("other family", "was recorded on point-robot-wind"),
])
def test_malformed_demonstrations_fail_in_one_line(tmp_path, case, message):
    family = tasks.from_spec("point-navigation:variant=sparse")
    path = tmp_path / "demos.npz"
    if case == "damaged":
        path.write_bytes(b"not a zip")
    elif case == "one task":
        h = family.horizon
        z = np.zeros((2, h, 2), np.float32)
        recording.save(path, recording.Recording(z, z, z, np.zeros((2, h), np.float32), np.ones((2, h), bool),
                                                 {"task": family.spec()}))
    elif case == "few tasks":
        _record(path, family, 3, 2)
    elif case == "few episodes":
        _record(path, family, 4, 1)
    elif case == "other family":
        _record(path, family, 4, 2)
        with np.load(path) as archive:
            arrays = dict(archive)
        arrays["meta"] = np.asarray(str(arrays["meta"]).replace("point-navigation", "point-robot-wind"))
        np.savez(path, **arrays)
    config = _config(experts="demos", demos=str(path), train_tasks=4, expert_episodes=2)
    with pytest.raises(ValueError, match=message) as err:
        G.check(config, family, G.default_episodes(config))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    ({"experts": "demos"}, "give --demos FILE.npz"),
    ({"demos": "x.npz"}, "read with experts=demos"),
    ({"experts": "demos", "demos": "x.npz", "imitation_states": "dagger"}, "use imitation_states=expert"),
    ({"meta_batch": 5}, "exceeds train_tasks"),
])
def test_bad_options_fail_in_one_line(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_oracle_experts_need_a_family_with_an_oracle():
    family = tasks.from_spec("pendulum")
    config = _config()
    with pytest.raises(ValueError, match="no oracle_action"):
        G.check(config, family, G.default_episodes(config))


def test_the_agent_is_mamls_and_adapts_with_the_learned_step_sizes():
    """The trained agent is MAML's agent; with learnt step sizes its inner step is
    theta - alpha (elementwise) * grad, not the configured scalar step."""
    from metarlkit.rl.adaptation_agent import make_agent

    config = _config(learned_step_sizes=True)
    args = G.agent_args(config, NAV, 2)
    agent = make_agent(**args)
    theta = init_mlp_policy(jax.random.PRNGKey(0), 2, (8,), 2, continuous=True)
    sizes = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.0), theta)
    sizes["b1"] = jnp.full_like(theta["b1"], 2.0)  # only the last bias may move
    state = agent.init({"policy": theta, "step_sizes": sizes}, jax.random.PRNGKey(1), 2)
    key = jax.random.PRNGKey(2)
    for t in range(5):
        _, state = agent.act(None, state, jnp.zeros(2), jax.random.fold_in(key, t))
        state = agent.observe(None, state, type("T", (), {"obs": jnp.zeros(2), "reward": jnp.float32(t)})())
    states = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), state)
    new = agent.end_episode({"policy": theta, "step_sizes": sizes}, states, 0, key)
    for name in theta:
        if name == "b1":
            assert not np.allclose(new.policy[name], theta[name])
        else:
            np.testing.assert_array_equal(new.policy[name], theta[name])


def test_record_train_tasks_writes_demonstrations_gmps_trains_on(tmp_path, capsys):
    """`metarlkit record --train-tasks N` writes a task-set recording (the oracle's trials on the
    first N training tasks) that `train gmps --experts demos` reads; bad combinations fail in one
    line and write nothing."""
    from metarlkit.cli import main

    demos = tmp_path / "demos.npz"
    spec = "point-navigation:variant=sparse"
    assert main(["record", "--agent", "oracle", "--task", spec, "--train-tasks", "4", "--episodes", "2",
                 "--out", str(demos)]) == 0
    family = tasks.from_spec(spec)
    rec = recording.load_task_set(demos, family, 4)
    assert rec.valid.shape == (4, 2, family.horizon) and rec.meta["train_tasks"] == 4
    goals = np.asarray(tasks.task_set(family, "train", 4)["goal"])
    np.testing.assert_allclose(rec.action[:, 0, 0], np.clip(goals, -0.1, 0.1), atol=1e-6)
    with pytest.raises(ValueError, match="records 4 training tasks; give a recording of one task"):
        recording.load(demos, family)
    capsys.readouterr()
    assert main(["record", "--agent", "oracle", "--task", "pendulum", "--train-tasks", "2", "--physics", "mass=1",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "give one of them" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()

    run = tmp_path / "run"
    assert main(["train", "gmps", "--task", spec, "--preset", "tiny", "--experts", "demos", "--demos", str(demos),
                 "--out", str(run), "--no-progress", "--no-tensorboard"]) == 0
    info = __import__("json").loads((run / "run.json").read_text())
    assert [p["name"] for p in info["phases"]] == ["experts", "imitation"]
    assert info["phases"][0]["steps_per_update"] == 4 * 2 * family.horizon  # the demonstrations' env steps
    capsys.readouterr()
    assert main(["train", "gmps", "--task", spec, "--preset", "tiny", "--experts", "demos", "--demos",
                 str(tmp_path / "none.npz"), "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no recording at" in err[0] and not (tmp_path / "bad").exists()


def test_sac_experts_learn_from_the_dense_reward_and_fill_their_buffers():
    """The SAC expert phase plays one episode of every training task per iteration into that
    task's buffer, with the dense reward on a sparse family (the sparse one is never negative,
    the dense one always is), and counts those steps."""
    family = tasks.from_spec("point-navigation:variant=sparse")
    config = _config(experts="sac", imitation_states="expert")
    trainer = G.make_train(config, family)
    assert [p.name for p in trainer.phases] == ["experts-sac", "experts", "imitation"]
    assert trainer.phases[0].steps_per_update == config.train_tasks * family.horizon
    state = trainer.init(jax.random.PRNGKey(0))
    state, metrics = jax.jit(lambda s: trainer.phases[0].run_chunk(s, 2))(state)
    buffer = state.expert.buffer
    np.testing.assert_array_equal(buffer.size, 2 * family.horizon)
    assert np.all(np.asarray(buffer.reward)[:, :2 * family.horizon] < 0)
    assert np.all(np.isfinite(metrics["expert_q_loss"]))


def test_expert_improvement_alternates_with_imitation():
    """With expert_improvement k, each imitation iteration first runs k SAC expert iterations: the
    buffers grow by k episodes per task per iteration, and those steps are counted."""
    config = _config(experts="sac", expert_improvement=2)
    trainer = G.make_train(config, NAV)
    sac_phase, imitation = trainer.phases[0], trainer.phases[-1]
    assert imitation.steps_per_update == (config.meta_batch * 2 * config.trajectories * NAV.horizon
                                          + 2 * config.train_tasks * NAV.horizon)
    state = trainer.init(jax.random.PRNGKey(0))
    state, _ = jax.jit(lambda s: sac_phase.run_chunk(s, 1))(state)
    state, metrics = jax.jit(lambda s: imitation.run_chunk(s, 1))(state)
    np.testing.assert_array_equal(state.expert.buffer.size, 3 * NAV.horizon)
    assert "expert_return" in metrics
    with pytest.raises(ValueError, match="use it with experts=sac"):
        _config(expert_improvement=1)


def test_the_adapted_policy_samples_with_the_scaled_spread():
    """adapted_std_scale multiplies the Gaussian's standard deviation once an inner step is taken
    (the reference's post-update sampling), never before it."""
    from metarlkit.rl.adaptation_agent import make_agent

    args = {**G.agent_args(_config(adapted_std_scale=1e-3), NAV, 2), "normalize_actions": False}
    agent = make_agent(**args)
    theta = init_mlp_policy(jax.random.PRNGKey(0), 2, (8,), 2, continuous=True)
    state = agent.init(theta, jax.random.PRNGKey(1), 2)
    keys = jax.random.split(jax.random.PRNGKey(2), 2000)

    def spread(s):
        actions = jax.vmap(lambda k: agent.act(theta, s, jnp.zeros(2), k)[0])(keys)
        return float(jnp.std(actions))

    before = spread(state)
    assert 0.8 < before < 1.2  # std 1 (log_std 0), unscaled
    adapted = state._replace(steps_done=jnp.int32(1))
    np.testing.assert_allclose(spread(adapted), before * 1e-3, rtol=0.1)


def test_validation_keeps_the_best_theta():
    """With validation_tasks, each iteration scores its theta after one inner step on validation
    tasks (counted in the env steps) and the trained agent runs the best theta so far."""
    config = _config(validation_tasks=2)
    trainer = G.make_train(config, NAV)
    imitation = trainer.phases[-1]
    assert imitation.steps_per_update == (config.meta_batch + 2) * 2 * config.trajectories * NAV.horizon
    state = trainer.init(jax.random.PRNGKey(0))
    state, metrics = jax.jit(lambda s: imitation.run_chunk(s, 2))(state)
    returns = np.asarray(metrics["validation_return"])
    assert float(state.best_return) == pytest.approx(returns.max())
    first = trainer.init(jax.random.PRNGKey(0)).params["policy"]
    chosen = trainer.trained_params(state)
    # the first validation scores the initial theta; the best is the initial or the once-updated theta
    if returns[0] >= returns[1]:
        np.testing.assert_array_equal(chosen["w0"], first["w0"])
    else:
        assert not np.array_equal(chosen["w0"], first["w0"]) and not np.array_equal(chosen["w0"], state.params["policy"]["w0"])
