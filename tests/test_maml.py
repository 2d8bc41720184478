"""MAML-RL: the meta-gradient against finite differences, the first-order rule, the inner
estimators' derivatives (VPG, LVC, DiCE), the TRPO step's trust region, and the adapting agent."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit.algos import maml
from metarlkit.algos.common import seeded
from metarlkit.algos.maml import losses
from metarlkit.nets.mlp import init_mlp_policy, mlp_policy

pytestmark = pytest.mark.usefixtures("fast_compile")

N, H, OBS, ACT = 3, 5, 2, 2
GAMMA = 0.9
WEIGHTING = "step"  # the synthetic episodes end early, so the two weightings differ on them


def _episodes(key, continuous=True):
    k_obs, k_act, k_rew = jax.random.split(key, 3)
    obs = jax.random.normal(k_obs, (N, H, OBS))
    if continuous:
        action = jax.random.normal(k_act, (N, H, ACT))
    else:
        action = jax.random.randint(k_act, (N, H), 0, ACT)
    reward = jax.random.normal(k_rew, (N, H))
    valid = jnp.arange(H)[None, :] < jnp.array([[H], [H - 2], [1]])  # one full, one short, one 1-step
    return losses.Episodes(obs, action, jnp.where(valid, reward, 0.0), valid)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _data(key, inner_steps=1, estimator="vpg", lrs=(0.5,)):
    """A tiny task's OuterData with synthetic episodes; the old policy is phi(theta0)."""
    k_params, *k_eps = jax.random.split(key, inner_steps + 2)
    theta = init_mlp_policy(k_params, OBS, (4,), ACT, continuous=True, init_log_std=-0.3)
    batches = [losses.process(_episodes(k), GAMMA, 0.95) for k in k_eps]
    inner = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *batches[:-1])
    outer = batches[-1]
    phi = losses.adapt(theta, inner, lrs, estimator=estimator, activation="tanh", gamma=GAMMA, weighting=WEIGHTING,
                       first_order=False)
    dist = losses.distribution(phi, outer.episodes.obs, "tanh")
    data = losses.OuterData(inner, outer, dist, losses.log_prob(dist, outer.episodes.action))
    return theta, data


def _as64(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating)
                                  else x, tree)


def test_meta_gradient_matches_finite_differences():
    """MAML's (second-order) meta-gradient through two inner steps is the exact derivative of the
    sampled surrogate: central differences in float64 along random directions agree. (LVC's and
    DiCE's are estimators of the derivative of an expectation over the samples, not derivatives of
    the sampled surrogate: see the enumeration test below.)"""
    estimator = "vpg"
    with jax.enable_x64(True):
        lrs = (0.5, 0.3)
        theta, data = _as64(_data(jax.random.PRNGKey(0), inner_steps=2, estimator=estimator, lrs=lrs))
        theta = jax.tree_util.tree_map(jnp.asarray, theta)

        @jax.jit
        def f(p):
            return losses.surrogate(p, data, lrs, estimator=estimator, activation="tanh", gamma=GAMMA,
                                    weighting=WEIGHTING, first_order=False)[0]

        grad = jax.jit(jax.grad(f))(theta)
        flat_grad, unravel = jax.flatten_util.ravel_pytree(grad)
        rng = np.random.default_rng(0)
        for _ in range(3):
            d = rng.normal(size=flat_grad.shape)
            eps = 1e-5
            step = unravel(jnp.asarray(eps * d))
            plus = f(jax.tree_util.tree_map(jnp.add, theta, step))
            minus = f(jax.tree_util.tree_map(jnp.subtract, theta, step))
            fd = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(float(jnp.dot(flat_grad, d)), float(fd), rtol=1e-6, atol=1e-9)


def test_first_order_is_the_stop_gradient_rule():
    """First-order MAML's meta-gradient is the outer loss's gradient at phi, carried to theta as is;
    the second-order one differs."""
    lrs = (0.5,)
    theta, data = _data(jax.random.PRNGKey(1))
    kw = {"estimator": "vpg", "activation": "tanh", "gamma": GAMMA, "weighting": WEIGHTING}

    def outer_at(phi):
        ep = data.outer.episodes
        ratio = jnp.exp(losses.log_prob(losses.distribution(phi, ep.obs, "tanh"), ep.action) - data.old_logp)
        return -losses.step_mean(ratio * data.outer.advantage, ep.valid, WEIGHTING)

    @jax.jit
    def gradients(theta):
        phi = losses.adapt(theta, data.inner, lrs, first_order=False, **kw)
        expected = jax.grad(outer_at)(phi)
        first = jax.grad(lambda p: losses.surrogate(p, data, lrs, first_order=True, **kw)[0])(theta)
        second = jax.grad(lambda p: losses.surrogate(p, data, lrs, first_order=False, **kw)[0])(theta)
        return expected, first, second

    expected, first, second = gradients(theta)
    for name in expected:
        np.testing.assert_allclose(first[name], expected[name], rtol=1e-5, atol=1e-7)
    diff = max(float(jnp.max(jnp.abs(first[n] - second[n]))) for n in first)
    assert diff > 1e-4


def test_inner_estimators_share_the_first_derivative_not_the_second():
    """LVC's gradient is VPG's exactly; DiCE's is the score-function gradient
    sum_t gamma^t grad log pi_t (G_t - b_t) / s (mean over the valid steps); their Hessians differ."""
    theta, data = _data(jax.random.PRNGKey(2))
    batch = jax.tree_util.tree_map(lambda x: x[0], data.inner)
    ep = batch.episodes
    grads = {e: jax.grad(lambda p, e=e: losses.inner_loss(p, batch, estimator=e, activation="tanh", gamma=GAMMA,
                                                               weighting=WEIGHTING))(theta)
             for e in ("vpg", "lvc", "dice")}
    for name in theta:
        np.testing.assert_allclose(grads["lvc"][name], grads["vpg"][name], rtol=1e-5, atol=1e-7)

    # the score-function estimator, written out with explicit reward-to-go
    mask = np.asarray(ep.valid, np.float64)
    r = np.asarray(ep.reward, np.float64)
    G = np.zeros_like(r)
    for t in reversed(range(H)):
        G[:, t] = r[:, t] + (GAMMA * G[:, t + 1] if t + 1 < H else 0.0)
    weights = (GAMMA ** np.arange(H)) * (G - np.asarray(batch.baseline)) / float(batch.scale) * mask
    weights = weights / mask.sum()  # WEIGHTING 'step': every valid step weighs the same

    def score(p):
        logp = losses.log_prob(losses.distribution(p, ep.obs, "tanh"), ep.action)
        return -jnp.sum(logp * jnp.asarray(weights, jnp.float32))

    expected = jax.grad(score)(theta)
    for name in theta:
        np.testing.assert_allclose(grads["dice"][name], expected[name], rtol=1e-4, atol=1e-6)

    v = jax.tree_util.tree_map(jnp.ones_like, theta)

    def hvp(e):
        g = lambda p: jax.grad(lambda q: losses.inner_loss(q, batch, estimator=e, activation="tanh",  # noqa: E731
                                                           gamma=GAMMA, weighting=WEIGHTING))(p)
        return jax.flatten_util.ravel_pytree(jax.jvp(g, (theta,), (v,))[1])[0]

    assert float(jnp.max(jnp.abs(hvp("vpg") - hvp("lvc")))) > 1e-4


def test_mlp_policy_heads():
    key = jax.random.PRNGKey(3)
    gauss = init_mlp_policy(key, 3, (8, 8), 2, continuous=True, init_log_std=-1.0)
    dist = mlp_policy(gauss, jnp.zeros((5, 3)))
    assert dist.mean.shape == (5, 2) and np.allclose(dist.log_std, -1.0)
    cat = init_mlp_policy(key, 3, (8,), 4, continuous=False)
    assert mlp_policy(cat, jnp.zeros((3,))).logits.shape == (4,)


def test_step_mean_weights_steps_or_episodes():
    """'step' weighs every valid step alike; 'episode' gives an episode that ended after one step
    the weight of a whole episode in that step. They agree when every episode runs to the end."""
    x = jnp.array([[1.0, 1.0, 1.0, 1.0], [9.0, 0.0, 0.0, 0.0]])
    ended = jnp.array([[True] * 4, [True, False, False, False]])
    np.testing.assert_allclose(losses.step_mean(x, ended, "step"), 13.0 / 5.0)
    np.testing.assert_allclose(losses.step_mean(x, ended, "episode"), (1.0 + 9.0) / 2.0)
    full = jnp.ones_like(ended)
    np.testing.assert_allclose(losses.step_mean(x, full, "step"), losses.step_mean(x, full, "episode"))
    with pytest.raises(ValueError, match="weighting"):
        losses.step_mean(x, full, "task")


def _reference_inner_step(params, obs, action, reward, valid, gamma, lr, weighting):
    """One inner step written out from pytorch-maml-rl's formulas ('episode': `BatchEpisodes`,
    `LinearFeatureBaseline`, `weighted_normalize(lengths)`, `reinforce_loss`, `update_params`) or
    rllab's ('step': the same baseline, centred and scaled over all valid steps, loss averaged over
    them), time-major [T, B] in float64. Returns phi (our params layout)."""
    o, a = np.swapaxes(obs, 0, 1), np.swapaxes(action, 0, 1)
    r, m = np.swapaxes(reward, 0, 1), np.swapaxes(valid, 0, 1).astype(np.float64)
    T, B = r.shape
    lengths = m.sum(0)
    ret, acc = np.zeros_like(r), np.zeros(B)
    for t in reversed(range(T)):
        acc = gamma * acc + r[t] * m[t]
        ret[t] = acc
    ts = np.arange(T).reshape(-1, 1, 1) * m[..., None] / 100.0
    feats = np.concatenate([o * m[..., None], (o * m[..., None]) ** 2, ts, ts**2, ts**3, m[..., None]], axis=2)
    X, y = feats[m > 0], ret[m > 0]
    w = np.linalg.solve(X.T @ X + 1e-5 * np.eye(X.shape[1]), X.T @ y)
    v = np.concatenate([(feats @ w) * m, np.zeros((1, B))])
    delta = r + gamma * v[1:] - v[:-1]
    adv, acc = np.zeros_like(r), np.zeros(B)
    for t in reversed(range(T)):  # lambda = 1
        acc = gamma * acc + delta[t]
        adv[t] = acc
    adv = adv * m
    if weighting == "episode":
        centred = (adv - np.mean(adv.sum(0) / lengths)) * m
        adv = centred / (np.sqrt(np.mean((centred**2).sum(0) / lengths)) + 1e-8)
    else:
        centred = (adv - adv.sum() / m.sum()) * m
        adv = centred / (np.sqrt((centred**2).sum() / m.sum()) + 1e-8)

    def loss(p):
        h = jnp.tanh(jnp.asarray(o) @ p["w0"] + p["b0"])
        mu = h @ p["w1"] + p["b1"]
        z = (jnp.asarray(a) - mu) / jnp.exp(p["log_std"])
        logp = jnp.sum(-0.5 * z**2 - p["log_std"] - 0.5 * np.log(2 * np.pi), axis=-1)
        if weighting == "episode":
            return -jnp.mean(jnp.sum(logp * adv * m, axis=0) / lengths)
        return -jnp.sum(logp * adv * m) / m.sum()

    grads = jax.grad(loss)(params)
    return {k: params[k] - lr * grads[k] for k in params}


@pytest.mark.parametrize("weighting", ["episode", "step"])
def test_inner_step_equals_the_reference_formula(weighting):
    """The agent's inner step on a fixed batch with early-ending episodes is pytorch-maml-rl's
    ('episode': advantages normalised by the mean of per-episode means and the per-episode mean
    square, as its `weighted_normalize`) or rllab's ('step'), to 1e-5 (issue 23: the advantages
    were normalised over the steps under either weighting)."""
    n, h, lr, gamma = 4, 8, 0.1, 0.99
    with jax.enable_x64(True):
        k_obs, k_act, k_rew, k_par = jax.random.split(jax.random.PRNGKey(7), 4)
        valid = np.arange(h)[None, :] < np.array([[h], [3], [1], [6]])
        obs = np.where(valid[..., None], np.asarray(jax.random.uniform(k_obs, (n, h, 2), jnp.float64, -0.5, 0.5)), 0.0)
        action = np.where(valid[..., None], 0.1 * np.asarray(jax.random.normal(k_act, (n, h, 2), jnp.float64)), 0.0)
        reward = np.where(valid, -np.asarray(jax.random.uniform(k_rew, (n, h), jnp.float64)), 0.0)
        params = _as64(init_mlp_policy(k_par, 2, (5,), 2, continuous=True, init_log_std=-1.0))
        params = jax.tree_util.tree_map(jnp.asarray, params)
        agent = maml.make_agent(obs_size=2, num_actions=2, horizon=h, continuous=True, activation="tanh",
                                trajectories=n, inner_lrs=(lr,), inner_estimator="vpg", gamma=gamma, gae_lambda=1.0,
                                action_bounds=((-0.1, -0.1), (0.1, 0.1)), weighting=weighting)
        from metarlkit.rl.adaptation_agent import MAMLState

        state = MAMLState(policy=jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), params),
                          steps_done=jnp.zeros(n, jnp.int32), obs=jnp.asarray(obs), action=jnp.asarray(action),
                          reward=jnp.asarray(reward), valid=jnp.asarray(valid), t=jnp.zeros(n, jnp.int32),
                          last_obs=jnp.asarray(obs[:, 0]), last_action=jnp.asarray(action[:, 0]))
        phi = agent.end_episode(None, state, 0, None).policy
        expected = _reference_inner_step(params, obs, action, reward, valid, gamma, lr, weighting)
        for name in params:
            np.testing.assert_allclose(phi[name], expected[name], rtol=0, atol=1e-5, err_msg=name)
            assert float(jnp.max(jnp.abs(phi[name] - params[name]))) > 1e-4  # the step moved it
        other = _reference_inner_step(params, obs, action, reward, valid, gamma, lr,
                                      "step" if weighting == "episode" else "episode")
        assert max(float(jnp.max(jnp.abs(phi[k] - other[k]))) for k in params) > 1e-4  # the batch tells them apart


def test_a_pytorch_maml_rl_policy_loads_as_theta(tmp_path):
    """A pytorch-maml-rl NormalMLPPolicy state dict (as .npz) becomes our params: the same mean
    (PyTorch's x W^T + b with tanh between layers) and log-std; a dict of another shape is a
    one-line error."""
    from metarlkit.algos.maml.convert import from_pytorch_maml_rl, load_pytorch_maml_rl

    rng = np.random.default_rng(0)
    arrays = {"layer1.weight": rng.normal(size=(6, 2)), "layer1.bias": rng.normal(size=6),
              "layer2.weight": rng.normal(size=(5, 6)), "layer2.bias": rng.normal(size=5),
              "mu.weight": rng.normal(size=(2, 5)), "mu.bias": rng.normal(size=2), "sigma": np.array([-2.6, -2.9])}
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    np.savez(tmp_path / "policy.npz", **arrays)
    params = load_pytorch_maml_rl(tmp_path / "policy.npz")
    x = rng.normal(size=(3, 2)).astype(np.float32)
    hidden = np.tanh(np.tanh(x @ arrays["layer1.weight"].T + arrays["layer1.bias"]) @ arrays["layer2.weight"].T
                     + arrays["layer2.bias"])
    dist = mlp_policy(params, jnp.asarray(x), "tanh")
    np.testing.assert_allclose(dist.mean, hidden @ arrays["mu.weight"].T + arrays["mu.bias"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dist.log_std[0], arrays["sigma"])
    with pytest.raises(ValueError, match="NormalMLPPolicy"):
        from_pytorch_maml_rl({k: v for k, v in arrays.items() if k != "sigma"})
    with pytest.raises(ValueError, match="layer2"):
        from_pytorch_maml_rl({**arrays, "layer2.weight": arrays["layer2.weight"][:, :4]})


@pytest.mark.parametrize("preset", sorted(maml.PRESETS))
def test_presets_are_valid_and_reach_the_agent(preset):
    """Every preset is a valid configuration, and the agent that training and evaluation build
    takes the configuration's loss weighting (paper-code: rllab's step weighting, the training
    script's meta-batch 40)."""
    from metarlkit.algos.maml.train import agent_args
    from metarlkit.tasks import make

    config = maml.MAMLConfig(**maml.PRESETS[preset])
    args = agent_args(config, make("point-navigation"), config.trajectories, 1)
    assert args["weighting"] == config.weighting
    assert args["normalize_actions"] == config.normalize_actions and args["action_bounds"] == ((-0.1, -0.1), (0.1, 0.1))
    if preset == "paper-code":
        assert config.weighting == "step" and config.inner_lrs() == (0.5,) and config.meta_batch == 40


def test_dice_hessian_is_unbiased_and_lvc_is_not():
    """On a two-step problem with a constant observation whose second reward depends on both
    actions, the expectation over every action sequence of DiCE's Hessian estimate equals the
    exact Hessian of the expected objective; LVC's (which drops the cross-step terms, nonzero in
    expectation when a reward depends on an earlier action) does not."""
    gamma = 0.9
    first_reward, second_reward = jnp.array([0.3, 1.0]), jnp.array([[1.0, -0.5], [0.2, 0.8]])
    theta = init_mlp_policy(jax.random.PRNGKey(4), 1, (3,), 2, continuous=False)
    theta = jax.tree_util.tree_map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(5), x.shape), theta)
    obs = jnp.ones((1, 2, 1))
    sequences = [(a, b) for a in (0, 1) for b in (0, 1)]

    def processed(seq):
        action = jnp.array([seq])
        r = jnp.array([[first_reward[seq[0]], second_reward[seq[0], seq[1]]]])
        ep = losses.Episodes(obs, action, r, jnp.ones((1, 2), bool))
        to_go = jnp.stack([r[:, 0] + gamma * r[:, 1], gamma * r[:, 1]], axis=-1)  # gamma^t G_t
        # LVC weighs each step's score by gamma^t G_t, DiCE by its own terms: the same first derivative
        return losses.Processed(ep, to_go, jnp.zeros((1, 2)), jnp.float32(1.0))  # no baseline, unit scale

    def probability(p, seq):
        logp = losses.log_prob(losses.distribution(p, obs, "tanh"), jnp.array([seq]))
        return jnp.exp(jnp.sum(logp))

    def expected_objective(p):  # what the inner losses estimate: -E[sum_t gamma^t r_t] / 2
        return -sum(probability(p, s) * (first_reward[s[0]] + gamma * second_reward[s]) for s in sequences) / 2

    flat, unravel = jax.flatten_util.ravel_pytree(theta)
    exact = jax.jit(jax.hessian(lambda f: expected_objective(unravel(f))))(flat)

    @functools.partial(jax.jit, static_argnums=0)
    def expected_hessian(estimator):
        total = 0.0
        for seq in sequences:
            loss = lambda f, d=processed(seq): losses.inner_loss(unravel(f), d, estimator=estimator,  # noqa: E731
                                                                  activation="tanh", gamma=gamma,
                                                                  weighting=WEIGHTING)
            total = total + jax.lax.stop_gradient(probability(theta, seq)) * jax.hessian(loss)(flat)
        return total

    np.testing.assert_allclose(expected_hessian("dice"), exact, rtol=1e-3, atol=1e-5)
    assert float(jnp.max(jnp.abs(expected_hessian("lvc") - exact))) > 1e-3


# --- meta-training through the run tooling ------------------------------------------------------------

TINY = maml.MAMLConfig(hidden_sizes=(8,), meta_batch=3, trajectories=4, meta_iterations=4, checkpoint_iterations=2,
                       cg_iterations=4, line_search_steps=6, seeds=2)


def _family():
    from metarlkit import tasks

    return tasks.from_spec("point-navigation:variant=sparse")


@pytest.fixture(scope="module")
def maml_run(tmp_path_factory):
    from metarlkit.experiment import train

    run_dir = tmp_path_factory.mktemp("maml")
    status = train(maml.ALGORITHM, TINY, _family(), maml.default_episodes(TINY), run_dir, progress=False, tensorboard=False)
    return run_dir, status


def test_trpo_meta_steps_stay_in_the_trust_region(maml_run):
    from metarlkit.experiment.metrics import read

    run_dir, status = maml_run
    assert status["state"] == "complete" and status["updates"] == 4
    rows = read(run_dir)
    assert len(rows) == 8  # 4 meta-iterations x 2 seeds
    for row in rows:
        assert row["accepted"] in (0.0, 1.0)
        assert 0.0 <= row["kl"] <= TINY.max_kl * (1 + 1e-4)
        assert row["step_fraction"] == 0.0 or row["kl"] > 0.0
    assert sum(row["accepted"] for row in rows) >= 2  # the bound is checked on steps actually taken


def test_maml_resume_is_bit_identical(maml_run, tmp_path):
    from metarlkit.experiment import train

    run_dir, _ = maml_run
    cut = tmp_path / "cut"
    train(maml.ALGORITHM, TINY, _family(), maml.default_episodes(TINY), cut, progress=False, tensorboard=False, stop_after_chunks=1)
    train(maml.ALGORITHM, None, None, None, cut, resume=True, progress=False, tensorboard=False)
    from test_experiment import leaves

    (meta_a, a), (meta_b, b) = leaves(run_dir), leaves(cut)
    assert meta_a["update"] == meta_b["update"] == 4
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_evaluate_reports_returns_after_each_inner_step(maml_run, tmp_path):
    from metarlkit.cli import main

    run_dir, _ = maml_run
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--agent", f"{run_dir}:seed=1", "--num-tasks", "4", "--json", str(out)]) == 0
    import json

    summary = json.loads(out.read_text())
    assert summary["episodes"] == 160 and summary["parallel_episodes"] == 40
    steps = summary["return_after_steps"]
    assert len(steps) == 4 and all(np.isfinite(s["mean"]) for s in steps)
    per_episode = np.array([e["mean"] for e in summary["per_episode_return"]])
    np.testing.assert_allclose([s["mean"] for s in steps], per_episode.reshape(4, 40).mean(1), rtol=1e-6)
    assert main(["evaluate", "--agent", str(run_dir), "--num-tasks", "4", "--episodes", "50"]) == 2
    # --task without --episodes: the run of that family gives its trial length
    assert main(["compare", "--task", "point-navigation:variant=sparse", "--agent", str(run_dir), "--agent", "oracle",
                 "--num-tasks", "4"]) == 0


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_gauss_newton_products_equal_autodiff_at_the_old_theta(inner_steps):
    """TRPO's gradient and KL-Hessian products, built from one linearisation (J^T F J), equal
    differentiating the surrogate and the KL's gradient through the inner steps. In float64: the
    two are the same quantity computed along different paths (the autodiff side takes third
    derivatives), so float32 roundoff alone separates them by ~1e-4 relative on some CPUs."""
    with jax.enable_x64(True):
        _gauss_newton_equals_autodiff(inner_steps)


def _gauss_newton_equals_autodiff(inner_steps):
    lrs = (0.5, 0.3)[:inner_steps]
    pieces = [_as64(_data(jax.random.PRNGKey(k), inner_steps, "vpg", lrs)) for k in (6, 7)]
    theta = jax.tree_util.tree_map(jnp.asarray, pieces[0][0])
    data = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[d for _, d in pieces])
    kw = {"estimator": "vpg", "activation": "tanh", "gamma": GAMMA, "weighting": WEIGHTING, "first_order": False}

    def old_policy(inner, outer):  # each task's adapted policy at the shared theta
        dist = losses.distribution(losses.adapt(theta, inner, lrs, **kw), outer.episodes.obs, "tanh")
        return dist, losses.log_prob(dist, outer.episodes.action)

    old_dist, old_logp = jax.jit(jax.vmap(old_policy))(data.inner, data.outer)
    data = data._replace(old_dist=old_dist, old_logp=old_logp)

    @jax.jit
    def both(theta, v):
        def objective(p):
            loss, kl = jax.vmap(lambda d: losses.surrogate(p, d, lrs, **kw))(data)
            return jnp.mean(loss), jnp.mean(kl)

        loss, grad = jax.value_and_grad(lambda p: objective(p)[0])(theta)
        hvp = jax.jvp(jax.grad(lambda p: objective(p)[1]), (theta,), (v,))[1]
        gn_loss, gn_grad, fvp, _ = losses.outer_gradient_and_fvp(theta, data, lrs, **kw)
        own = losses.outer_gradient_and_fvp(theta, data._replace(old_dist=None, old_logp=None), lrs, **kw)
        return (loss, grad, hvp, loss, grad, hvp), (gn_loss, gn_grad, fvp(v), own[0], own[1], own[2](v))

    v = jax.tree_util.tree_map(lambda x: jax.random.normal(jax.random.PRNGKey(8), x.shape, x.dtype), theta)
    exact, fast = both(theta, v)
    for a, b in zip(jax.tree_util.tree_leaves(exact), jax.tree_util.tree_leaves(fast)):
        assert a.dtype == b.dtype == jnp.float64
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_promp_penalty_halves_below_and_doubles_above_its_target():
    got = [float(losses.adapt_kl_penalty(jnp.float32(1.0), jnp.float32(kl), 0.01)) for kl in (0.001, 0.006, 0.01, 0.015, 0.02)]
    assert got == [0.5, 0.5, 1.0, 1.0, 2.0]


def test_emaml_term_is_the_score_function_of_the_pre_update_episodes():
    """E-MAML's exploration loss at the old theta: value 0 for centred task advantages, gradient
    -mean_tasks A_task * mean over the episode's steps of grad log pi_theta (per-episode mean)."""
    k_params, k1, k2 = jax.random.split(jax.random.PRNGKey(9), 3)
    theta = init_mlp_policy(k_params, OBS, (4,), ACT, continuous=True, init_log_std=-0.3)
    episodes = jax.tree_util.tree_map(lambda *x: jnp.stack(x), _episodes(k1), _episodes(k2))
    post = jnp.array([-3.0, 1.0])
    pre = jax.jit(losses.pre_update, static_argnums=3)(theta, episodes, post, "tanh")
    np.testing.assert_allclose(pre.task_advantage, [-1.0, 1.0], rtol=1e-5)
    value, grad = jax.jit(jax.value_and_grad(lambda p: losses.pre_update_terms(p, pre, "tanh", WEIGHTING)[1]))(theta)
    assert abs(float(value)) < 1e-6

    def score(p):
        logp = jax.vmap(losses.log_prob)(losses.distribution(p, episodes.obs, "tanh"), episodes.action)
        per_task = jax.vmap(lambda x, ok: losses.step_mean(x, ok, WEIGHTING))(logp, episodes.valid)
        return -jnp.mean(pre.task_advantage * per_task)

    expected = jax.jit(jax.grad(score))(theta)
    for name in theta:
        np.testing.assert_allclose(grad[name], expected[name], rtol=1e-4, atol=1e-6)
    kl = losses.pre_update_terms(theta, pre, "tanh", WEIGHTING)[0]
    assert abs(float(kl)) < 1e-6  # no KL at the old theta


def test_promp_and_emaml_outer_objectives_train():
    """ProMP's configuration (LVC inner step, clipped PPO outer steps, adaptive KL penalty) with
    E-MAML's exploration term: a few meta-iterations run, and the penalty moves by factors of 2."""
    import dataclasses

    config = dataclasses.replace(TINY, outer="ppo", inner_estimator="lvc", kl_penalty=5e-4, exploration_weight=1.0,
                                 seeds=1)
    train = maml.make_train(config, _family())
    init, run_chunk = seeded(train)
    state, metrics = run_chunk(init(jax.random.PRNGKey(0)[None]), 3)
    metrics = {k: np.asarray(v)[:, 0] for k, v in metrics.items()}
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    ratios = metrics["kl_penalty"] / np.concatenate([[5e-4], metrics["kl_penalty"][:-1]])
    assert set(np.round(ratios, 6)) <= {0.5, 1.0, 2.0}
    assert float(state.kl_penalty[0]) == pytest.approx(metrics["kl_penalty"][-1])
    # keep_best's candidate: the best post-adaptation return seen and the theta that earned it
    assert float(state.best_return[0]) == pytest.approx(metrics["return_after"].max())
    assert train.trained_params(state) is state.params  # keep_best is off
    best = maml.make_train(dataclasses.replace(config, keep_best=True), _family()).trained_params(state)
    assert best is state.best_params


def test_train_rejects_an_evaluation_trial_of_partial_rounds(tmp_path, capsys):
    from metarlkit.cli import main

    out = tmp_path / "run"
    assert main(["train", "maml", "--task", "bernoulli-bandit:arms=5", "--episodes", "100", "--out", str(out)]) == 2
    assert "--eval-trajectories" in capsys.readouterr().err and not out.exists()


def test_reproduce_adds_a_maml_column_beside_snails_number(tmp_path, capsys):
    """A MAML run on 5-armed bandits (an inner step every 10 pulls of a 100-pull trial) goes to
    the n=100, k=5 cell of the RL2 paper's Table 1, with SNAIL's published MAML number beside it."""
    import json

    from metarlkit.cli import main

    run, rows = tmp_path / "maml-k5", tmp_path / "rows.json"
    assert main(["train", "maml", "--task", "bernoulli-bandit:arms=5", "--episodes", "100", "--eval-trajectories", "10",
                 "--trajectories", "5", "--meta-batch", "4", "--hidden-sizes", "4", "--meta-iterations", "2",
                 "--checkpoint-iterations", "2", "--no-progress", "--no-tensorboard", "--out", str(run)]) == 0
    assert main(["reproduce", "rl2-bandits", "--n", "100", "--k", "5", "--agents", "random", "--runs", str(run),
                 "--num-tasks", "20", "--tune-tasks", "20", "--json", str(rows)]) == 0
    row = next(r for r in json.loads(rows.read_text()) if r.get("algorithm") == "maml")
    assert (row["n"], row["k"], row["paper"]) == (100, 5, 67.1) and len(row["seeds"]) == 1
    assert "maml" in capsys.readouterr().out


def test_normalized_actions_map_the_policy_box_onto_the_family_box():
    """With `normalize_actions` the policy acts in [-1, 1] units scaled onto the velocity box: a
    zero-mean, unit-std policy moves with a standard deviation of 0.1 (the box's half-width), and
    the learner records the policy's own actions, the ones the environment got scaled."""
    import dataclasses

    from metarlkit.rl.adaptation_agent import record
    from metarlkit.nets.mlp import env_action
    from metarlkit.trial import run_trial

    family = _family()
    config = dataclasses.replace(TINY, normalize_actions=True, seeds=1)
    from metarlkit.algos.maml.train import agent_args

    bounds = family.action_box()
    assert bounds == ((-0.1, -0.1), (0.1, 0.1))
    assert agent_args(config, family, 2, 1)["normalize_actions"] is True
    assert agent_args(TINY, family, 2, 1)["normalize_actions"] is False

    train = maml.make_train(config, family)
    params = init_mlp_policy(jax.random.PRNGKey(0), 2, (8,), 2, continuous=True)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)  # mean 0, std 1 in policy units
    agent = train.extras["train_agent"]
    state = agent.init(zero, None, config.trajectories)
    keys = jax.random.split(jax.random.PRNGKey(1), 2000)
    actions = jax.vmap(lambda k: agent.act(zero, state, jnp.zeros(2), k)[0])(keys)
    assert float(jnp.std(actions)) == pytest.approx(0.1, rel=0.05)

    task = family.sample_task(jax.random.PRNGKey(2))
    rec = run_trial(family, agent, params, task, jax.random.PRNGKey(3), jax.random.PRNGKey(4),
                    2 * config.trajectories, record=record)
    _, policy_actions = rec.extras
    np.testing.assert_array_equal(env_action(policy_actions, bounds), rec.action)
    assert float(jnp.max(jnp.abs(policy_actions))) > 0.5  # policy units, not the 0.1-wide box

    init, run_chunk = seeded(train)
    _, metrics = run_chunk(init(jax.random.PRNGKey(0)[None]), 1)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())


def test_eval_trajectories_is_an_evaluation_only_option_of_a_trained_run():
    from pathlib import Path

    from metarlkit.experiment import load
    from metarlkit.experiment.rundir import RunDirError

    run = Path(__file__).parent / "data" / "legacy_runs" / "maml-navigation"
    plain, wider = load(run), load(run, agent_options={"eval_trajectories": "4"})
    assert plain.agent.parallel_episodes == 2 and wider.agent.parallel_episodes == 4
    assert wider.hyperparameters["agent_options"] == {"eval_trajectories": 4}
    assert wider.name.endswith(",eval_trajectories=4")
    with pytest.raises(RunDirError, match="inner_lr"):
        load(run, agent_options={"inner_lr": "0.2"})


def test_adapted_std_scale_narrows_the_evaluated_agent_only_after_a_step():
    """An evaluation-only option of a trained run (a run from before the option loads with it):
    the adapted policy samples with the scaled spread once it has taken an inner step, never
    before it, and meta-training's agent keeps the policy's own spread."""
    from pathlib import Path

    from metarlkit.experiment import load
    from metarlkit.experiment.rundir import RunDirError

    run = Path(__file__).parent / "data" / "legacy_runs" / "maml-navigation"
    plain, narrow = load(run), load(run, agent_options={"adapted_std_scale": "0.01"})
    assert narrow.hyperparameters["agent_options"] == {"adapted_std_scale": 0.01}
    keys = jax.random.split(jax.random.PRNGKey(2), 1000)

    def spread(trained, steps_done):
        state = trained.agent.init(trained.params, jax.random.PRNGKey(1), trained.num_episodes)
        state = state._replace(steps_done=jnp.int32(steps_done))
        obs = jnp.zeros(trained.family.obs_shape)
        return float(jnp.std(jax.vmap(lambda k: trained.agent.act(trained.params, state, obs, k)[0])(keys)))

    assert spread(narrow, 0) == pytest.approx(spread(plain, 0))
    assert spread(narrow, 1) < 0.05 * spread(plain, 1)
    with pytest.raises(RunDirError, match=r"adapted_std_scale must be in \(0, 1\]"):
        load(run, agent_options={"adapted_std_scale": "0"})
    config = maml.MAMLConfig(hidden_sizes=(8,), eval_trajectories=2, adapted_std_scale=0.01)
    family = load(run).family
    trainer = maml.make_train(config, family, 4)
    assert trainer.agent_args["adapted_std_scale"] == 0.01
    assert "adapted_std_scale" not in maml.train.agent_args(config, family, 2, 1)
