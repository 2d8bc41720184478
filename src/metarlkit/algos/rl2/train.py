"""RL2 training: whole trials rolled out on freshly sampled tasks, recurrent PPO/A2C updates.

`make_train(config, family, num_episodes)` returns pure `init(key)` and `run_chunk(state, n)`;
`run_chunk` is a `lax.scan` over n updates, each of which

  1. samples `tasks_per_update` tasks and rolls out one trial of each with the current policy
     (`trial.run_trial`, the function evaluation uses, `vmap`ped over tasks);
  2. computes GAE over each whole trial: ATTENTION, episode ends inside a trial are not terminal
     (see `metarlkit.rl.returns`); only the trial end is, so discount_t = gamma everywhere and the
     trial's last valid step bootstraps from 0;
  3. takes `epochs` passes of `minibatches` Adam steps over the trials, re-running the recurrent
     network from the trial-start carry (whole trials, so no truncated backpropagation).

Seeds are a `vmap` of both functions over keys (`seeded`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.algos.common import chunking
from metarlkit.algos.registry import Train, single_phase
from metarlkit.algos.rl2.agent import make_agent, record
from metarlkit.algos.rl2.config import RL2Config
from metarlkit.algos.rl2.losses import Batch, loss_fn
from metarlkit.algos.rl2.networks import NetworkShape, input_size, network_def
from metarlkit.rl.returns import gae
from metarlkit.tasks.base import TaskFamily
from metarlkit.trial import TaskSource, rollout


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly (one seed; the runner adds a leading axis)."""

    params: Any  # network params (nnx.State)
    opt_state: Any  # optax state
    key: jax.Array  # raw uint32 key [2]
    update: jax.Array  # int32, updates done


def agent_args(config: RL2Config, family: TaskFamily, num_episodes: int) -> dict:
    """make_agent's arguments for `family`: a categorical head, or a Gaussian over the action box."""
    bounds = family.action_box()
    transformer = config.core == "transformer"
    return {
        "obs_size": math.prod(family.obs_shape),
        "num_actions": family.action_size if family.continuous else family.num_actions,
        "horizon": family.horizon,
        "core": config.core,
        "hidden_size": config.hidden_size,
        "time_input": config.time_input,
        "prev_obs_input": config.prev_obs_input,
        "embed_size": config.embed_size,
        "action_bounds": bounds,
        "head_size": config.head_size,
        # Only the transformer has these; recurrent agents keep the defaults (one cached agent).
        "layers": config.layers if transformer else 2,
        "heads": config.heads if transformer else 4,
        "context": (config.context or num_episodes * family.horizon) if transformer else 0,
    }


def make_train(config: RL2Config, family: TaskFamily, num_episodes: int,
               train_tasks: TaskSource | None = None) -> Train:
    """Builds RL2 training for `family` with trials of `num_episodes` episodes.

    Args:
      config: RL2Config.
      family: the task family trained on.
      num_episodes: episodes per trial.
      train_tasks: where training tasks come from (default: fresh draws from the distribution by
        the run's key).

    Returns:
      Train with one phase; `extras["network"]` holds the network's pure functions.
    """
    family.check_episodes(num_episodes)
    source = train_tasks or TaskSource(family)
    args = agent_args(config, family, num_episodes)
    agent = make_agent(**args)
    d = input_size(args["obs_size"], args["num_actions"], config.time_input, config.prev_obs_input)
    shape = NetworkShape(d, args["num_actions"], config.core, config.hidden_size, config.embed_size,
                         config.head_size, args["action_bounds"], args["layers"], args["heads"], args["context"])
    net = network_def(shape)
    B, T = config.tasks_per_update, num_episodes * family.horizon
    steps_per_update = B * T
    per_chunk, num_updates = chunking(config.total_steps, config.checkpoint_steps, steps_per_update)
    mb_size = B // config.minibatches
    opt_steps = num_updates * config.epochs * config.minibatches
    if config.lr_schedule == "linear":
        lr = optax.linear_schedule(config.learning_rate, 0.0, opt_steps)
    else:
        lr = config.learning_rate
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))
    anneal_updates = max(1, round(config.entropy_anneal * num_updates))

    def entropy_coef(update):
        frac = jnp.minimum(update.astype(jnp.float32) / anneal_updates, 1.0)
        return config.entropy_coef + frac * (config.entropy_coef_final - config.entropy_coef)

    def init(key) -> TrainState:
        key_params, key = jax.random.split(key)
        params = net.init_params(key_params)
        return TrainState(params, optimizer.init(params), key, jnp.int32(0))

    def update(state: TrainState, _):
        key_rollout, key_sgd, key = jax.random.split(state.key, 3)
        _, rec = rollout(source, agent, state.params, key_rollout, B, num_episodes, record=record)
        rec = jax.tree_util.tree_map(lambda a: a.reshape((B, T) + a.shape[3:]), rec)
        reward = rec.expected_reward if config.expected_reward_returns else rec.reward
        adv, target = jax.vmap(lambda r, v, ok: gae(r, v, config.gamma, config.gae_lambda, 0.0, ok))(
            reward * config.reward_scale, rec.extras.value, rec.valid
        )
        batch = Batch(rec.extras.x, rec.action, rec.extras.logp, rec.extras.value, adv, target, rec.valid)
        coef = entropy_coef(state.update)
        grad_fn = jax.grad(
            lambda p, mb: loss_fn(p, mb, coef, unroll=net.unroll, algorithm=config.algorithm,
                                  clip_eps=config.clip_eps, value_coef=config.value_coef,
                                  normalize=config.normalize_advantages),
            has_aux=True,
        )

        def sgd_step(carry, mb):
            params, opt_state = carry
            grads, stats = grad_fn(params, mb)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            stats["grad_norm"] = optax.tree.norm(grads)
            return (optax.apply_updates(params, updates), opt_state), stats

        def epoch(carry, key_perm):
            perm = jax.random.permutation(key_perm, B)
            mbs = jax.tree_util.tree_map(lambda a: a[perm].reshape((config.minibatches, mb_size) + a.shape[1:]), batch)
            return jax.lax.scan(sgd_step, carry, mbs)

        (params, opt_state), stats = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key_sgd, config.epochs)
        )
        metrics = {k: jnp.mean(v) for k, v in stats.items()}
        metrics["trial_return"] = jnp.mean(jnp.sum(rec.reward, axis=1))
        metrics["trial_expected_return"] = jnp.mean(jnp.sum(rec.expected_reward, axis=1))
        if family.defines_pseudo_regret:  # elsewhere optimal_expected_reward is NaN
            metrics["trial_pseudo_regret"] = jnp.mean(jnp.sum(rec.optimal_expected_reward - rec.expected_reward, axis=1))
        metrics["entropy_coef"] = coef
        return TrainState(params, opt_state, key, state.update + 1), metrics

    def run_chunk(state: TrainState, num: int):
        return jax.lax.scan(update, state, None, length=num)

    return Train(init, single_phase(run_chunk, num_updates, per_chunk, steps_per_update), agent, args,
                 trained_params=_params, current_params=_params, extras={"network": net})


def _params(state: TrainState):
    return state.params
