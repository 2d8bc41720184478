"""The PEARL agent: z from the prior, then from the posterior of everything seen in the trial."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.algos.pearl import agent as A
from metarlkit.nets.squashed import init_mlp, mlp
from metarlkit.trial import run_trial

pytestmark = pytest.mark.usefixtures("fast_compile")

LATENT = 3


def play(family, probabilistic, prior_episodes, episodes, context_episodes=None, update="episode"):
    obs_size, act_size = family.obs_shape[0], family.action_shape[0]
    feat = 2 * obs_size + act_size + 1
    params = {"policy": init_mlp(jax.random.PRNGKey(0), (obs_size + LATENT, 16, 2 * act_size)),
              "encoder": init_mlp(jax.random.PRNGKey(1), (feat, 16, LATENT * (2 if probabilistic else 1)),
                                  final_scale=1.0)}
    agent = A.make_agent(obs_size, act_size, LATENT, probabilistic, True, prior_episodes, update, True,
                         family.action_box(), context_episodes)
    task = family.sample_task(jax.random.PRNGKey(2))
    rec = jax.jit(lambda: run_trial(family, agent, params, task, jax.random.PRNGKey(3), jax.random.PRNGKey(4),
                                    episodes, record=A.record, transitions=True))()
    return params, rec


@pytest.fixture(scope="module")
def family():
    return tasks.make("point-navigation", variant="sparse")


def test_z_is_the_prior_first_then_the_mean_of_everything_seen(family):
    """Deterministic context: z is exactly the mean of the encoder's outputs over the transitions of
    the episodes before; 0 (the prior) during the first `prior_episodes`."""
    params, rec = play(family, False, 2, 4)
    z = np.asarray(rec.extras[0])  # [episodes, horizon, L]
    np.testing.assert_array_equal(z[:2], 0.0)
    for e in (2, 3):
        assert np.all(z[e] == z[e, :1])  # fixed within the episode
        out = jax.vmap(jax.vmap(lambda o, a, r, n: mlp(params["encoder"], A.C.features(o, a, r, n))))(
            rec.obs[:e], rec.extras[1][:e], rec.reward[:e], rec.next_obs[:e])
        np.testing.assert_allclose(z[e, 0], np.asarray(out).reshape(-1, LATENT).mean(0), rtol=1e-4, atol=1e-6)


def test_only_the_context_episodes_feed_the_posterior(family):
    _, limited = play(family, False, 1, 4, context_episodes=1)
    z = np.asarray(limited.extras[0])
    np.testing.assert_allclose(z[2], z[1], rtol=1e-6)  # episode 1 was played but not added
    np.testing.assert_allclose(z[3], z[1], rtol=1e-6)
    _, full = play(family, False, 1, 4)
    assert not np.allclose(np.asarray(full.extras[0])[2], z[2])


def test_probabilistic_z_draws_from_the_prior_then_from_a_narrowing_posterior(family):
    _, rec = play(family, True, 1, 3)
    z = np.asarray(rec.extras[0])
    assert not np.allclose(z[0, 0], z[1, 0]) and not np.allclose(z[1, 0], z[2, 0])
    _, per_step = play(family, True, 1, 2, update="step")
    z = np.asarray(per_step.extras[0])
    assert np.all(z[0] == z[0, :1])  # the prior episode keeps its draw
    assert len({tuple(r) for r in z[1]}) > 1  # the posterior is drawn again at every step after
