"""EPOpt: the CVaR selection, the update at epsilon = 1 against plain batch TRPO built from the
shared pieces, and the source distribution in the train state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import algos, tasks
from metarlkit.algos.epopt import EPOptConfig, cvar_mask, kept_count, make_train
from metarlkit.algos.epopt.train import Batch, advantages, trpo_update
from metarlkit.rl.adaptation import Episodes, distribution, kl_divergence, log_prob, process, step_mean
from metarlkit.rl.optim import trpo_step

pytestmark = pytest.mark.usefixtures("fast_compile")

SMALL = dict(hidden_sizes=(8,), models=12, iterations=2, warmup=0, checkpoint_iterations=1, cg_iterations=5,
             line_search_steps=5)


@pytest.mark.parametrize("returns, k, kept", [
    ([3.0, 1.0, 1.5, 2.0, 5.0], 2, [1, 2]),
    ([3.0, 1.0, 1.5, 2.0, 5.0], 3, [1, 2, 3]),
    ([1.0, 1.0, 1.0, 1.0], 2, [0, 1]),  # ties: the earlier trajectories
    ([2.0, 0.0, 2.0, 0.0, 2.0], 3, [0, 1, 3]),
    ([4.0, 3.0], 2, [0, 1]),
])
def test_cvar_keeps_exactly_the_worst_k(returns, k, kept):
    mask = np.asarray(cvar_mask(jnp.asarray(returns), jnp.int32(k)))
    assert mask.sum() == k and np.flatnonzero(mask).tolist() == kept


def test_kept_count_is_ceil_of_epsilon_n():
    assert kept_count(0.1, 240) == 24  # not 25: 0.1 x 240 in floating point is 24.000000000000004
    assert kept_count(1.0, 240) == 240 and kept_count(0.5, 3) == 2 and kept_count(0.001, 10) == 1


@pytest.fixture(scope="module")
def pendulum_batch():
    family = tasks.make("pendulum")
    config = EPOptConfig(**SMALL, epsilon=1.0)
    train = make_train(config, family)
    state = train.init(jax.random.PRNGKey(0))
    batch, returns = jax.jit(train.extras["collect"])(state.params, state.source, jax.random.PRNGKey(1))
    return family, config, state, batch, returns


def test_at_epsilon_one_the_update_is_plain_batch_trpo(pendulum_batch):
    family, config, state, batch, _ = pendulum_batch
    kept = jnp.ones(config.models, bool)
    adv = advantages(batch, kept, config)
    # the advantages are the shared batch processing's (linear baseline on all, GAE, normalised)
    ref = process(Episodes(batch.obs, batch.action, batch.reward, batch.valid), config.gamma, config.gae_lambda)
    np.testing.assert_allclose(adv, ref.advantage, rtol=1e-5, atol=1e-5)
    new, _ = jax.jit(lambda p: trpo_update(p, batch, adv, batch.valid, config))(state.params)

    # plain batch TRPO from the shared pieces: the surrogate over every valid step
    params = state.params
    old = distribution(params, batch.obs, config.activation)
    old_logp = log_prob(old, batch.action)

    def objective(p):
        dist = distribution(p, batch.obs, config.activation)
        loss = -step_mean(jnp.exp(log_prob(dist, batch.action) - old_logp) * ref.advantage, batch.valid, "step")
        return loss, step_mean(kl_divergence(old, dist), batch.valid, "step")

    def plain(p):
        grad = jax.grad(lambda q: objective(q)[0])(p)
        fvp = lambda v: jax.jvp(jax.grad(lambda q: objective(q)[1]), (p,), (v,))[1]  # noqa: E731
        return trpo_step(p, grad, fvp, objective, config.max_kl, cg_iterations=config.cg_iterations,
                         damping=config.cg_damping, backtrack_ratio=config.line_search_ratio,
                         max_backtracks=config.line_search_steps)[0]

    want = jax.jit(plain)(params)
    # the same step up to float32 rounding of two separately compiled programs: the steps
    # (new - old) agree to 0.1% of the step's norm
    step = np.concatenate([np.ravel(new[k] - params[k]) for k in params])
    ref_step = np.concatenate([np.ravel(want[k] - params[k]) for k in params])
    assert np.linalg.norm(ref_step) > 0  # it moved
    assert np.linalg.norm(step - ref_step) <= 1e-3 * np.linalg.norm(ref_step), \
        np.linalg.norm(step - ref_step) / np.linalg.norm(ref_step)


def test_the_update_uses_only_the_kept_trajectories(pendulum_batch):
    """Trajectories outside the CVaR set do not change the update: scrambling their rewards and
    actions (baseline fitted on the kept ones) leaves the new policy the same."""
    family, config, state, batch, returns = pendulum_batch
    config = EPOptConfig(**{**SMALL, "baseline_data": "kept"})
    kept = cvar_mask(returns, jnp.int32(3))
    rng = np.random.default_rng(0)
    drop = ~np.asarray(kept)
    scrambled = Batch(batch.obs, jnp.where(drop[:, None, None], jnp.asarray(rng.normal(size=batch.action.shape), jnp.float32),
                                           batch.action),
                      jnp.where(drop[:, None], 5.0, batch.reward), batch.valid)
    step = jax.jit(lambda b: trpo_update(state.params, b, advantages(b, kept, config), b.valid & kept[:, None], config)[0])
    a, b = step(batch), step(scrambled)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_the_source_distribution_lives_in_the_train_state_and_bounds_the_models():
    family = tasks.make("cartpole", variant="continuous")
    train = make_train(EPOptConfig(**SMALL), family)
    state = train.init(jax.random.PRNGKey(0))
    assert set(state.source.params) == {"masscart", "masspole", "length", "friction_cart", "friction_pole"}
    drawn = jax.jit(jax.vmap(lambda k: family.sample_task(k, state.source)))(jax.random.split(jax.random.PRNGKey(2), 500))
    for name, nominal in (("masscart", 1.0), ("masspole", 0.1), ("length", 0.5)):
        x = np.asarray(drawn[name]) / nominal
        assert x.min() >= 1 / 1.5 - 1e-5 and x.max() <= 1.5 + 1e-5
    assert algos.get("epopt").default_episodes(EPOptConfig()) == 1


def test_warmup_then_epsilon():
    family = tasks.make("pendulum")
    train = make_train(EPOptConfig(**{**SMALL, "iterations": 3, "warmup": 1, "epsilon": 0.25}), family)
    from metarlkit.algos.common import seeded

    init, run_chunk = seeded(train)
    _, metrics = run_chunk(init(jnp.stack([jax.random.PRNGKey(0)])), 3)
    np.testing.assert_allclose(np.asarray(metrics["epsilon"])[:, 0], [1.0, 0.25, 0.25])
    assert np.all(np.asarray(metrics["cvar_return"]) <= np.asarray(metrics["return"]) + 1e-3)


# --- source-distribution adaptation --------------------------------------------------------------


class Drift:
    """A one-dimensional toy model: s' = s + drift (the parameter), for the closed-form posterior."""

    @staticmethod
    def dynamics_fn(obs, action, task):
        del action
        return obs + task["drift"]


def test_the_source_update_is_the_closed_form_posterior_of_a_gaussian_model():
    """Prior drift ~ N(0, 1) (truncated far out), 5 transitions s' = s + 1.5 + N(0, 0.5^2): the
    importance-weighted fit is the Gaussian posterior, mean sum(d)/sigma^2 / (1 + T/sigma^2)."""
    from metarlkit.algos.epopt.adapt import Transitions, adapt_source
    from metarlkit.tasks import distributions as D

    rng = np.random.default_rng(0)
    sigma, t = 0.5, 5
    obs = rng.normal(size=(t, 1)).astype(np.float32)
    next_obs = (obs + 1.5 + sigma * rng.normal(size=(t, 1))).astype(np.float32)
    source = D.TaskDistribution({"drift": D.truncated_normal(0.0, 1.0, -10.0, 10.0)})
    target = Transitions(jnp.asarray(obs), jnp.zeros((t, 1)), jnp.asarray(next_obs), jnp.ones(t, bool))
    new, info = jax.jit(lambda k: adapt_source(Drift, source, target, k, samples=200_000, noise=sigma))(
        jax.random.PRNGKey(0))
    precision = 1.0 + t / sigma**2
    want_mean = float(np.sum(next_obs - obs) / sigma**2 / precision)
    fitted = new.params["drift"]
    assert float(fitted.mean) == pytest.approx(want_mean, abs=0.02)
    assert float(fitted.std) == pytest.approx(precision**-0.5, rel=0.05)
    assert float(info["ess"]) > 1000
    assert float(fitted.low) == -10.0 and float(fitted.high) == 10.0  # bounds kept


def test_five_target_trajectories_move_the_pendulum_source_toward_the_target():
    from metarlkit import baselines
    from metarlkit.algos.epopt.adapt import Transitions, adapt_source
    from metarlkit.trial import run_trials

    family = tasks.make("pendulum")
    source = family.default_distribution()
    target_task = {"mass": jnp.float32(1.4), "length": jnp.float32(0.8), "damping": jnp.float32(0.0)}
    agent = baselines.resolve("random", family, 1)
    batched = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (5,)), target_task)
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    rec = jax.jit(lambda: run_trials(family, agent.agent, agent.params, batched, keys, keys, 1, transitions=True))()
    flat = lambda x: x.reshape((-1,) + x.shape[3:])  # noqa: E731
    target = Transitions(flat(rec.obs), flat(rec.action), flat(rec.next_obs), flat(rec.valid))
    new, info = jax.jit(lambda k: adapt_source(family, source, target, k, samples=4000, noise=0.01))(jax.random.PRNGKey(0))
    before, after = source.mean(), new.mean()
    for name in ("mass", "length"):
        gap_before = abs(float(before[name]) - float(target_task[name]))
        gap_after = abs(float(after[name]) - float(target_task[name]))
        assert gap_after <= 0.5 * gap_before, (name, float(before[name]), float(after[name]))
    # the refit stays inside the source's support (exponents within [-1, 1])
    for name in ("mass", "length"):
        assert -1.0 <= float(new.params[name].low) <= float(new.params[name].high) <= 1.0
