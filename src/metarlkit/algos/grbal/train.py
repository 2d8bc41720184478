"""GrBAL training (Nagabandi, Clavera et al. 2019), following the reference code
(iclavera/learning_to_adapt): trainers/mb_trainer.py `Trainer.train` for the loop,
dynamics/meta_mlp_dynamics.py `fit` for the model's fit, samplers/sampler.py for the data.

Two phases, each compiled whole (collection, aggregation and the fit; the host only logs and
checkpoints):

  initial  one update: `initial_episodes` episodes of uniformly random actions (the reference's
           `initial_random_samples`), then a fit; a run started from another's state skips it;
  train    `iterations` updates, each: `episodes_per_iteration` episodes by the current agent
           (MPC on the model adapted every step, `agent.py`), each on a fresh task from the
           family's distribution (one set of parameters per episode: training needs no change
           inside an episode), appended to the data, then a fit.

A fit (`fit`): the data statistics are refitted on the episodes just collected (the reference
calls `compute_normalization` on the data passed to `fit`); then epochs of Adam steps, as many per
epoch as the training episodes hold batches of `meta_batch` windows of M + K transitions, each on
the meta-loss (GrBAL: the loss on the last K of the model adapted on the first M; ReBAL: of the
model conditioned on its GRU's reading of the first M) or the plain loss over the whole window
(MB); after each epoch, the validation loss on as many held-out batches (MB, and GrBAL by
default: the unadapted loss, as the reference's `self.loss`; GrBAL with `validation=adapted` and
ReBAL: the training loss, as the reference's recurrent model validates its predictions) updates
a rolling average (persistence `rolling_persistence`, started at 1.5 x the first loss, its
previous value at 2 x), and the fit stops after the epoch in which the rolling average rose, or
after `max_epochs`. Adam's state carries over from fit to fit, as the reference's optimiser.

A run's env steps count whole episodes of the family's horizon (an episode that ends early counts
its horizon: an upper bound).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.algos.grbal import data as D
from metarlkit.algos.grbal import model as M
from metarlkit.algos.grbal.agent import make_agent
from metarlkit.algos.grbal.config import GrBALConfig
from metarlkit.algos.registry import Phase, Train
from metarlkit.tasks.base import TaskFamily
from metarlkit.trial import TaskSource, run_trials


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly (one seed; the runner adds a leading axis)."""

    model: dict  # the dynamics model's parameters (`nets.mlp` layout)
    opt: optax.OptState
    norm: M.Normalizer
    data: D.Episodes
    key: jax.Array
    update: jax.Array  # int32: fits done


def agent_args(config: GrBALConfig, family: TaskFamily) -> dict:
    return {
        "task": family.spec(),
        "obs_size": math.prod(family.obs_shape),
        "action_size": math.prod(family.action_shape),
        "adapt_steps": config.adapt_steps,
        "step_size": float(config.step_size),
        "online": config.adapts_online,
        "activation": config.activation,
        "method": config.method,
        "horizon": config.horizon,
        "candidates": config.candidates,
        "cem_iterations": config.cem_iterations,
        "elites": config.elites,
        "discount": float(config.discount),
        "model": config.model,
        "hidden_sizes": tuple(config.hidden_sizes),
        "core_size": config.core_size,
    }


def held_out(n: int, valid_split: float) -> int:
    """Episodes of a batch of n held out for validation: ceil(n x split), keeping one for training."""
    return max(0, min(math.ceil(n * valid_split), n - 1))


def make_train(config: GrBALConfig, family: TaskFamily, num_episodes: int | None = None,
               train_tasks: TaskSource | None = None) -> Train:
    """Builds GrBAL (or MB, `meta=False`) training on `family`'s task distribution."""
    del num_episodes  # evaluation trials of any length: the agent adapts every step
    source = train_tasks if train_tasks is not None else TaskSource(family)
    args = agent_args(config, family)
    agent, explorer = make_agent(**args), make_agent(**args, random_actions=True)
    obs_size, act_size, horizon = args["obs_size"], args["action_size"], family.horizon
    span = config.adapt_steps + config.predict_steps
    per_chunk = min(config.checkpoint_iterations, config.iterations)
    num_updates = math.ceil(config.iterations / per_chunk) * per_chunk
    capacity = config.initial_episodes + num_updates * config.episodes_per_iteration
    optimizer = optax.adam(config.learning_rate)
    dyn = M.make_dynamics(config.model, obs_size, act_size, tuple(config.hidden_sizes), config.activation,
                          config.adapt_steps, config.step_size, config.meta, config.core_size,
                          config.validation == "adapted")

    def init(key) -> TrainState:
        key_model, key = jax.random.split(key)
        params = dyn.init(key_model)
        return TrainState(params, optimizer.init(params), M.identity_normalizer(obs_size, act_size),
                          D.empty(capacity, horizon, obs_size, act_size), key, jnp.int32(0))

    def collect(state: TrainState, key, n: int, random: bool):
        """n episodes on fresh tasks, appended: (state, the episodes' returns [n], the first new slot)."""
        key_tasks, key_env, key_agent, key_split = jax.random.split(key, 4)
        tasks = source.sample(key_tasks, n)
        params = {"model": state.model, "norm": state.norm}
        rec = run_trials(family, explorer if random else agent, params, tasks, jax.random.split(key_env, n),
                         jax.random.split(key_agent, n), 1, transitions=True)
        first = jax.tree_util.tree_map(lambda x: x[:, 0], rec)  # one episode per trial
        rank = jnp.argsort(jax.random.permutation(key_split, n))  # a random order of the n episodes
        start = state.data.count
        data = D.add(state.data, first.obs.reshape(n, horizon, obs_size),
                     first.action.reshape(n, horizon, act_size).astype(jnp.float32),
                     first.next_obs.reshape(n, horizon, obs_size), first.valid, rank < held_out(n, config.valid_split))
        return state._replace(data=data), jnp.sum(first.reward, axis=1), start

    def batch_loss(params, norm, windows: M.Window):
        return jnp.mean(jax.vmap(lambda w: dyn.window_loss(params, norm, w))(windows))

    def valid_loss(params, norm, windows: M.Window):
        return jnp.mean(jax.vmap(lambda w: dyn.valid_loss(params, norm, w))(windows))

    def fit(state: TrainState, new_from):
        """Refit the statistics on the episodes from slot `new_from` on, then train to early stopping."""
        obs, act, next_obs, weight = D.transitions(state.data)
        slot = jnp.repeat(jnp.arange(capacity), horizon)
        norm = M.fit_normalizer(obs, act, next_obs, weight & (slot >= new_from))
        per_batch = config.meta_batch * span
        train_steps = jnp.maximum(D.num_transitions(state.data, False) // per_batch, 1)
        valid_steps = jnp.maximum(D.num_transitions(state.data, True) // per_batch, 1)
        grad = jax.value_and_grad(batch_loss)

        def adam_step(i, carry):
            params, opt, key, total = carry
            key, key_w = jax.random.split(key)
            windows, _ = D.sample_windows(state.data, key_w, config.meta_batch, span, validation=False)
            value, g = grad(params, norm, windows)
            updates, opt = optimizer.update(g, opt, params)
            return optax.apply_updates(params, updates), opt, key, total + value

        def epoch(carry):
            params, opt, key, n, rolling, prev, done, _, _ = carry
            params, opt, key, total = jax.lax.fori_loop(0, train_steps, adam_step, (params, opt, key, 0.0))

            def valid_batch(i, carry):
                key, total = carry
                key, key_w = jax.random.split(key)
                held, ok = D.sample_windows(state.data, key_w, config.meta_batch, span, validation=True)
                # no held-out episode long enough for a window yet: score training windows instead
                other, _ = D.sample_windows(state.data, key_w, config.meta_batch, span, validation=False)
                windows = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), held, other)
                return key, total + valid_loss(params, norm, windows)

            key, v_total = jax.lax.fori_loop(0, valid_steps, valid_batch, (key, 0.0))
            v = v_total / valid_steps
            first = n == 0
            rolling = jnp.where(first, 1.5 * v, rolling)
            prev = jnp.where(first, 2.0 * v, prev)
            rolling = config.rolling_persistence * rolling + (1.0 - config.rolling_persistence) * v
            done = (prev < rolling) | (n + 1 >= config.max_epochs)
            return params, opt, key, n + 1, rolling, rolling, done, total / train_steps, v

        key, key_fit = jax.random.split(state.key)
        zero = jnp.float32(0.0)
        params, opt, _, epochs, _, _, _, train_loss, v = jax.lax.while_loop(
            lambda c: ~c[6], epoch, (state.model, state.opt, key_fit, jnp.int32(0), zero, zero, jnp.bool_(False),
                                     zero, zero))
        state = state._replace(model=params, opt=opt, norm=norm, key=key, update=state.update + 1)
        return state, {"model_loss": train_loss, "valid_loss": v, "epochs": epochs.astype(jnp.float32)}

    def initial_update(state: TrainState, _):
        key, key_collect = jax.random.split(state.key)
        state, returns, start = collect(state._replace(key=key), key_collect, config.initial_episodes, True)
        state, metrics = fit(state, start)
        return state, {"return": jnp.mean(returns), **metrics}

    def train_update(state: TrainState, _):
        key, key_collect = jax.random.split(state.key)
        state, returns, start = collect(state._replace(key=key), key_collect, config.episodes_per_iteration, False)
        state, metrics = fit(state, start)
        return state, {"return": jnp.mean(returns), **metrics}

    def chunk_of(update):
        def run_chunk(state: TrainState, num: int):
            return jax.lax.scan(update, state, None, length=num)
        return run_chunk

    phases = (
        Phase("initial", chunk_of(initial_update), 1, 1, config.initial_episodes * horizon, first_start_only=True),
        Phase("train", chunk_of(train_update), num_updates, per_chunk, config.episodes_per_iteration * horizon),
    )

    def trained_params(state: TrainState):
        return {"model": state.model, "norm": state.norm}

    return Train(init, phases, agent, args, trained_params=trained_params,
                 current_params=lambda s: {"model": s.model, "norm": s.norm},
                 extras={"fit": fit, "collect": collect, "capacity": capacity})
