"""RL2: a probe task learnt in seconds, hidden state across episodes, rollout == unroll, configs."""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.algos import rl2
from metarlkit.algos.common import seeded
from metarlkit.algos.rl2.agent import record
from metarlkit.experiment.config import field_docs
from metarlkit.tasks.bandits import _StationaryBandit
from metarlkit.tasks.navigation import PointNavigation
from metarlkit.trial import run_trial

pytestmark = pytest.mark.usefixtures("fast_compile")


@dataclasses.dataclass(frozen=True)
class FixedBandit(_StationaryBandit):
    """The probe: every task is the same 2-arm bandit, arm 1 pays with probability 0.9, arm 0 0.1."""

    name: ClassVar[str] = "fixed-bandit"

    @property
    def num_actions(self):
        return 2

    def sample_task(self, key):
        del key
        return {"means": jnp.array([0.1, 0.9])}

    def means(self, task):
        return task["means"]


@dataclasses.dataclass(frozen=True)
class NoisyFixedBandit(FixedBandit):
    """The probe with Gaussian noise of standard deviation 30 on every reward (expectations unchanged)."""

    name: ClassVar[str] = "noisy-fixed-bandit"

    def step(self, key, env_state, action, task):
        obs, env_state, reward, done, info = super().step(key, env_state, action, task)
        noise = 30.0 * jax.random.normal(jax.random.fold_in(key, 1))
        return obs, env_state, info.expected_reward + noise, done, info


@dataclasses.dataclass(frozen=True)
class FixedGoalNavigation(PointNavigation):
    """The continuous probe: every task is the dense point-navigation goal (0.3, 0.3)."""

    name: ClassVar[str] = "fixed-goal-navigation"

    def sample_task(self, key):
        del key
        return {"goal": jnp.array([0.3, 0.3], jnp.float32)}


SMALL = dict(hidden_size=16, tasks_per_update=64, learning_rate=3e-3, checkpoint_steps=64 * 8 * 20)


def test_probe_two_arm_bandit_is_learnt_in_seconds():
    family = FixedBandit()
    config = rl2.RL2Config(total_steps=64 * 8 * 40, entropy_coef=0.01, **SMALL)
    train = rl2.make_train(config, family, 8)
    init, run_chunk = seeded(train)
    state = init(jnp.stack([jax.random.PRNGKey(0)]))
    state, first = run_chunk(state, 5)
    state, last = run_chunk(state, 35)
    # Random play earns 0.5 per pull; always pulling arm 1 earns 0.9.
    assert float(first["trial_expected_return"][0, 0]) < 5.0
    assert float(last["trial_expected_return"][-1, 0]) > 0.85 * 8
    assert np.all(np.isfinite(last["loss"]))


def test_expected_reward_returns_learn_through_reward_noise():
    # Each pull's reward is its expectation plus noise of std 30: the sampled rewards bury the
    # 0.8 difference between the arms, their expectations do not (and the agent still only sees
    # the noisy reward).
    config = rl2.RL2Config(total_steps=64 * 8 * 40, entropy_coef=0.01, expected_reward_returns=True, **SMALL)
    train = rl2.make_train(config, NoisyFixedBandit(), 8)
    init, run_chunk = seeded(train)
    _, metrics = run_chunk(init(jnp.stack([jax.random.PRNGKey(0)])), 40)
    assert float(metrics["trial_expected_return"][-1, 0]) > 0.85 * 8


def test_continuous_probe_is_learnt_in_seconds():
    # A Gaussian head on a fixed goal: the first policy moves at random (mean 0, std 1, clipped)
    # and stays about 1 from the goal on average over the 100 steps; the trained one heads for
    # (0.3, 0.3) and stays near it (its noise keeps it from the 0.01 zone that ends the episode).
    family = FixedGoalNavigation()
    config = rl2.RL2Config(total_steps=64 * 100 * 30, entropy_coef=0.0, **{**SMALL, "checkpoint_steps": 64 * 100 * 30})
    train = rl2.make_train(config, family, 1)
    init, run_chunk = seeded(train)
    _, metrics = run_chunk(init(jnp.stack([jax.random.PRNGKey(0)])), 30)
    first, last = float(metrics["trial_return"][0, 0]), float(metrics["trial_return"][-1, 0])
    assert first < -50.0
    assert last > -10.0


@pytest.fixture(scope="module")
def small_agent():
    family = tasks.from_spec("bernoulli-bandit:arms=3")
    config = rl2.RL2Config(**SMALL)
    train = rl2.make_train(config, family, 4)
    params = train.init(jax.random.PRNGKey(3)).params
    return family, config, train, params


def test_rollout_records_equal_the_learner_unroll(small_agent):
    # The learner re-runs the network over the recorded inputs from the trial-start carry; if
    # either side reset the hidden state at an episode end, the log-probabilities would differ.
    family, config, train, params = small_agent
    task = family.sample_task(jax.random.PRNGKey(0))
    rec = jax.jit(lambda p: run_trial(family, train.agent, p, task, jax.random.PRNGKey(1), jax.random.PRNGKey(2), 4,
                                      record=record))(params)
    x = rec.extras.x.reshape(4, -1)
    dist, value = train.extras["network"].unroll(params, x, jnp.ones(4, bool))
    logp = jax.vmap(lambda lg, a: jax.nn.log_softmax(lg)[a])(dist.logits, rec.action.reshape(4))
    np.testing.assert_allclose(logp, rec.extras.logp.reshape(4), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, rec.extras.value.reshape(4), rtol=1e-5, atol=1e-6)
    # Inputs carry the previous action (one-hot), reward and done flag; zeros at the trial start.
    np.testing.assert_array_equal(x[0, 1:], np.zeros(5))
    np.testing.assert_array_equal(x[1, 1:4], np.eye(3)[int(rec.action[0, 0])])
    assert float(x[1, 4]) == float(rec.reward[0, 0]) and float(x[1, 5]) == 1.0


@dataclasses.dataclass(frozen=True)
class EarlyEndBandit(FixedBandit):
    """The probe with 4-pull episodes that end early when arm 1 is pulled."""

    name: ClassVar[str] = "early-end-bandit"
    ends_early: ClassVar[bool] = True
    pulls: int = 4

    def step(self, key, env_state, action, task):
        obs, env_state, reward, done, info = super().step(key, env_state, action, task)
        return obs, env_state, reward, done | (action == 1), info


@pytest.mark.parametrize("family, overrides", [
    (EarlyEndBandit(), dict(core="gru")),
    (EarlyEndBandit(), dict(core="mlp")),
    (EarlyEndBandit(), dict(core="lstm", embed_size=8, head_size=8)),
    (EarlyEndBandit(), dict(core="transformer", layers=2, heads=2)),
    (EarlyEndBandit(), dict(core="transformer", layers=1, heads=4, context=3, prev_obs_input=True)),
    (FixedGoalNavigation(variant="sparse"), dict(core="transformer", layers=1, heads=2, time_input=True)),
], ids=["gru", "mlp", "lstm-embed-head", "transformer", "transformer-window", "transformer-continuous"])
def test_every_core_unrolls_exactly_like_its_rollout(family, overrides):
    # Episodes that end early leave invalid steps in the trial: the rollout does not feed the agent
    # there, so the learner's unroll must skip them too -- the transformer computes the whole trial
    # at once with masks, and a window (context 3) must drop exactly the steps the ring buffer
    # overwrote.
    config = rl2.RL2Config(**{**SMALL, **overrides})
    train = rl2.make_train(config, family, 3)
    params = train.init(jax.random.PRNGKey(3)).params
    keys = jax.random.split(jax.random.PRNGKey(4), 6)
    tasks_ = jax.vmap(family.sample_task)(keys)
    rec = jax.jit(jax.vmap(lambda t, k: run_trial(family, train.agent, params, t, k, k, 3, record=record)))(tasks_, keys)
    steps = 3 * family.horizon
    flat = jax.tree_util.tree_map(lambda a: a.reshape((6, steps) + a.shape[3:]), rec)
    valid = np.asarray(flat.valid)
    assert family.continuous or 0 < valid.sum() < valid.size  # some episodes did end early
    dist, value = jax.vmap(lambda x, v: train.extras["network"].unroll(params, x, v))(flat.extras.x, flat.valid)
    logp = jax.vmap(jax.vmap(lambda d, a: d.log_prob(a)))(dist, flat.action)
    np.testing.assert_allclose(np.asarray(logp)[valid], np.asarray(flat.extras.logp)[valid], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(value)[valid], np.asarray(flat.extras.value)[valid], rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(np.asarray(value)))  # invalid steps too (they are masked, not NaN)


def test_hidden_state_resets_only_at_trial_boundaries(small_agent):
    family, config, train, params = small_agent
    agent = train.agent
    state = agent.init(params, jax.random.PRNGKey(0), 3)
    np.testing.assert_array_equal(state.carry, np.zeros(config.hidden_size))
    obs = jnp.zeros(1)
    action, state = agent.act(params, state, obs, jax.random.PRNGKey(1))
    from metarlkit.agents import Transition

    state = agent.observe(params, state, Transition(obs, action, jnp.float32(1.0), obs, jnp.bool_(True)))
    _, state = agent.act(params, state, obs, jax.random.PRNGKey(4))  # sees the reward: the carry moves
    carried = state.carry
    assert float(jnp.abs(carried).sum()) > 0
    state = agent.end_episode(params, state, jnp.int32(0), jax.random.PRNGKey(2))
    np.testing.assert_array_equal(state.carry, carried)  # an episode end keeps the hidden state
    fresh = agent.init(params, jax.random.PRNGKey(3), 3)
    np.testing.assert_array_equal(fresh.carry, np.zeros(config.hidden_size))  # a new trial resets it


def test_the_feed_forward_core_has_no_memory():
    """core=mlp: the same step input gives the same output whatever came before (its carry is
    empty), so it is the memoryless ablation of the same agent."""
    family = EarlyEndBandit()
    train = rl2.make_train(rl2.RL2Config(**{**SMALL, "core": "mlp"}), family, 3)
    params = train.init(jax.random.PRNGKey(3)).params
    network = train.extras["network"]
    x = jax.random.normal(jax.random.PRNGKey(0), (5, network_input_size(train, family)))
    history = jnp.concatenate([jax.random.normal(jax.random.PRNGKey(1), (4, x.shape[1])), x[-1:]])
    valid = jnp.ones(5, bool)
    (d1, v1), (d2, v2) = (network.unroll(params, h, valid) for h in (x, history))
    np.testing.assert_allclose(v1[-1], v2[-1], rtol=1e-6)
    np.testing.assert_allclose(d1.logits[-1], d2.logits[-1], rtol=1e-6)
    assert not np.allclose(v1[:-1], v2[:-1])


def network_input_size(train, family):
    """The width of one step's input to the RL2 network (from a recorded trial)."""
    rec = jax.jit(lambda k: run_trial(family, train.agent, train.init(k).params, family.sample_task(k), k, k, 1,
                                      record=record))(jax.random.PRNGKey(0))
    return rec.extras.x.shape[-1]


def test_trials_start_from_the_same_state_and_then_diverge(small_agent):
    family, config, train, params = small_agent
    keys = jax.random.split(jax.random.PRNGKey(5), 8)
    tasks_ = jax.vmap(family.sample_task)(keys)
    rec = jax.jit(jax.vmap(lambda t, k: run_trial(family, train.agent, params, t, k, k, 4, record=record)))(tasks_, keys)
    first = np.asarray(rec.extras.value[:, 0, 0])
    np.testing.assert_allclose(first, first[0])  # every trial starts from zeros
    later = np.asarray(rec.extras.value[:, 3, 0])
    assert np.ptp(later) > 0  # ...and the history of the trial (not a reset) shapes later steps


@pytest.mark.parametrize("spec, overrides", [
    ("bernoulli-bandit:arms=2", dict(algorithm="a2c")),
    ("bernoulli-bandit:arms=2", dict(core="lstm")),
    ("bernoulli-bandit:arms=2", dict(time_input=True)),
    ("tabular-mdp:states=3,actions=2,steps=2", {}),
    ("tabular-mdp:states=3,actions=2,steps=2", dict(prev_obs_input=True, embed_size=8, head_size=8, expected_reward_returns=True)),
    ("point-navigation:variant=sparse", dict(prev_obs_input=True)),
    ("point-robot-wind", dict(core="mlp")),
    ("bernoulli-bandit:arms=2", dict(core="transformer", layers=1, heads=2)),
])
def test_variants_take_finite_updates(spec, overrides):
    family = tasks.from_spec(spec)
    config = rl2.RL2Config(**{**SMALL, "tasks_per_update": 16, **overrides})
    train = rl2.make_train(config, family, 3)
    init, run_chunk = seeded(train)
    state, metrics = run_chunk(init(jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])), 2)
    assert metrics["loss"].shape == (2, 2)
    # every metric is finite: families without pseudo-regret do not log it (it would be NaN)
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    assert ("trial_pseudo_regret" in metrics) == family.defines_pseudo_regret
    assert int(state.update[0]) == 2


def test_every_config_field_is_documented():
    docs = field_docs(rl2.RL2Config)
    missing = [f.name for f in dataclasses.fields(rl2.RL2Config) if not docs.get(f.name)]
    assert not missing


@pytest.mark.parametrize("bad, message", [
    (dict(hidden_size=0), "hidden_size must be a whole number >= 1"),
    (dict(algorithm="trpo"), "algorithm must be one of ppo, a2c"),
    (dict(tasks_per_update=10, minibatches=4), "multiple of minibatches"),
    (dict(algorithm="a2c", epochs=3), "a2c takes one gradient step"),
    (dict(gae_lambda=1.5), "gae_lambda must be in [0, 1]"),
    (dict(embed_size=-1), "embed_size must be a whole number >= 0 (0: no layer)"),
    (dict(core="transformer", hidden_size=30, heads=4), "hidden_size (30) must be a multiple of heads (4)"),
    (dict(context=-2), "context must be a whole number >= 0 (0: the whole trial)"),
    (dict(core="rnn"), "core must be one of gru, lstm, transformer, mlp"),
])
def test_bad_config_values_are_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rl2.RL2Config(**bad)


def test_defaults_resolve_per_algorithm():
    assert (rl2.RL2Config().epochs, rl2.RL2Config().minibatches) == (4, 4)
    assert (rl2.RL2Config(algorithm="a2c").epochs, rl2.RL2Config(algorithm="a2c").minibatches) == (1, 1)


def test_budget_is_whole_chunks():
    from metarlkit.algos.common import chunking

    per_chunk, total = chunking(total_steps=157 * 1280, checkpoint_steps=39 * 1280, steps_per_update=1280)
    assert total % per_chunk == 0 and 157 <= total < 157 + per_chunk


@pytest.mark.parametrize("preset", sorted(rl2.PRESETS))
def test_every_preset_is_a_valid_config(preset):
    overrides = rl2.PRESETS[preset]
    field_names = {f.name for f in dataclasses.fields(rl2.RL2Config)}
    assert set(overrides) <= field_names
    config = rl2.RL2Config(**overrides)
    assert all(getattr(config, name) == value for name, value in overrides.items())
