"""EPOpt-epsilon training (Rajeswaran et al. 2017): batch TRPO on the worst trajectories of a model ensemble.

One iteration (one compiled call of `update`):
  1. draw N source models (tasks) from the source distribution held in the train state
     (`family.sample_task(key, dist)`: a pytree, so the distribution can be moved between
     iterations without recompiling) and roll one trajectory in each with the current policy
     (`trial.run_trials`, the evaluator's rollout path);
  2. keep the worst ceil(epsilon N) trajectories by return (`cvar_mask`; epsilon = 1 during the
     first `warmup` iterations: plain ensemble training);
  3. fit the linear feature baseline on all N trajectories or on the kept ones (`baseline_data`),
     take GAE advantages, normalised over the kept steps;
  4. take one TRPO step (natural gradient by conjugate gradient on Fisher-vector products of the
     mean KL, a KL trust region, a backtracking line search: `rl.optim.trpo_step`) on the kept
     trajectories' surrogate.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.algos.common import chunking
from metarlkit.algos.epopt.agent import make_agent, record
from metarlkit.algos.epopt.config import EPOptConfig
from metarlkit.algos.registry import Train, single_phase
from metarlkit.nets.mlp import init_mlp_policy
from metarlkit.rl.adaptation import distribution, kl_divergence, log_prob, step_mean
from metarlkit.rl.losses import normalize_advantages
from metarlkit.rl.optim import fit_linear_baseline, linear_baseline_features, linear_baseline_values, trpo_step
from metarlkit.rl.returns import discounted_returns, gae
from metarlkit.tasks.base import TaskFamily
from metarlkit.trial import TaskSource, run_trials


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly (one seed; `seeded` adds a leading axis)."""

    params: Any  # the policy (a `nets.mlp` params dict)
    key: jax.Array  # raw uint32 key [2]
    update: jax.Array  # int32, iterations done
    source: Any  # the source TaskDistribution (None for a family without physical parameters)


class Batch(NamedTuple):
    """N trajectories, [N, H] (obs [N, H, O]; action [N, H] or [N, H, D])."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    valid: jax.Array


def kept_count(epsilon: float, n: int) -> int:
    """ceil(epsilon N), at least 1 (computed in float64 on the host: 0.1 x 240 is 24, not 25)."""
    return min(n, max(1, math.ceil(epsilon * n - 1e-9)))


def cvar_mask(returns: jax.Array, k: jax.Array) -> jax.Array:
    """[N] bool: the k trajectories with the lowest returns. Ties are broken by index (a stable
    sort: among equal returns the earlier trajectories are kept), so exactly k are kept."""
    n = returns.shape[0]
    order = jnp.argsort(returns, stable=True)
    rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    return rank < k


def advantages(batch: Batch, kept: jax.Array, config: EPOptConfig) -> jax.Array:
    """GAE over the linear baseline, fitted on all trajectories or the kept ones, normalised over
    the kept trajectories' valid steps (0 elsewhere)."""
    horizon = batch.reward.shape[-1]
    returns = jax.vmap(lambda r, ok: discounted_returns(r, config.gamma, 0.0, ok))(batch.reward, batch.valid)
    features = jax.vmap(lambda o, ok: linear_baseline_features(o.reshape(horizon, -1), ok, horizon))(
        batch.obs, batch.valid)
    use = batch.valid & kept[:, None]
    fit_on = use if config.baseline_data == "kept" else batch.valid
    weights = fit_linear_baseline(features, returns, fit_on)
    values = jnp.where(batch.valid, linear_baseline_values(weights, features), 0.0)
    adv, _ = jax.vmap(lambda r, v, ok: gae(r, v, config.gamma, config.gae_lambda, 0.0, ok))(
        batch.reward, values, batch.valid)
    return jax.lax.stop_gradient(normalize_advantages(adv, use))


def trpo_update(params, batch: Batch, adv: jax.Array, use: jax.Array, config: EPOptConfig):
    """One TRPO step on the steps marked `use` [N, H]: (new params, info)."""
    old = jax.lax.stop_gradient(distribution(params, batch.obs, config.activation))
    old_logp = jax.lax.stop_gradient(log_prob(old, batch.action))

    def surrogate_and_kl(p):
        dist = distribution(p, batch.obs, config.activation)
        ratio = jnp.exp(log_prob(dist, batch.action) - old_logp)
        loss = -step_mean(ratio * adv, use, "step")
        return loss, step_mean(kl_divergence(old, dist), use, "step")

    def mean_kl(p):
        return surrogate_and_kl(p)[1]

    def fvp(v):
        return jax.jvp(jax.grad(mean_kl), (params,), (v,))[1]

    (loss, _), grad = jax.value_and_grad(surrogate_and_kl, has_aux=True)(params)
    new, info = trpo_step(params, grad, fvp, surrogate_and_kl, config.max_kl, cg_iterations=config.cg_iterations,
                          damping=config.cg_damping, backtrack_ratio=config.line_search_ratio,
                          max_backtracks=config.line_search_steps, loss_before=loss, sequential=True)
    return new, {**info, "grad_norm": optax.tree.norm(grad)}


def agent_args(config: EPOptConfig, family: TaskFamily) -> dict:
    return {
        "obs_size": math.prod(family.obs_shape),
        "num_actions": family.action_size if family.continuous else family.num_actions,
        "continuous": bool(family.continuous),
        "activation": config.activation,
        "action_bounds": family.action_box(),
        "normalize_actions": bool(config.normalize_actions and family.continuous),
    }


def default_episodes(config: EPOptConfig | None = None) -> int:
    """A robust policy does not adapt: one episode per evaluation trial."""
    del config
    return 1


def make_train(config: EPOptConfig, family: TaskFamily, num_episodes: int | None = None,
               train_tasks: TaskSource | None = None) -> Train:
    """Builds EPOpt training on `family` (see the module docstring).

    `train_tasks`: a fixed set of training tasks replaces the source distribution (and the
    distribution cannot then be adapted); by default the source is the family's default
    distribution, held in the train state.
    """
    del num_episodes  # evaluation trials of any length: the policy does not adapt
    source = train_tasks or TaskSource(family)
    args = agent_args(config, family)
    agent = make_agent(**args)
    n, horizon = config.models, family.horizon
    k_cvar = kept_count(config.epsilon, n)
    parametric = hasattr(family, "default_distribution") and source.num_fixed is None
    per_chunk, num_updates = chunking(config.iterations, config.checkpoint_iterations, 1)

    def init(key) -> TrainState:
        key_params, key = jax.random.split(key)
        params = init_mlp_policy(key_params, args["obs_size"], config.hidden_sizes, args["num_actions"],
                                 continuous=family.continuous, init_log_std=config.init_log_std)
        dist = family.default_distribution() if parametric else None
        return TrainState(params, key, jnp.int32(0), dist)

    def collect(params, dist, key) -> tuple[Batch, jax.Array]:
        key_tasks, key_env, key_agent = jax.random.split(key, 3)
        if parametric:
            tasks = jax.vmap(lambda k: family.sample_task(k, dist))(jax.random.split(key_tasks, n))
        else:
            tasks = source.sample(key_tasks, n)
        rec = run_trials(family, agent, params, tasks, jax.random.split(key_env, n), jax.random.split(key_agent, n), 1,
                         record=record)
        obs, action = rec.extras  # [N, 1, H, ...]: the policy's own actions
        batch = Batch(obs[:, 0], action[:, 0], rec.reward[:, 0], rec.valid[:, 0])
        return batch, batch.reward.sum(-1)

    def update(state: TrainState, _):
        key_collect, key = jax.random.split(state.key)
        batch, returns = collect(state.params, state.source, key_collect)
        k = jnp.where(state.update < config.warmup, n, k_cvar)
        kept = cvar_mask(returns, k)
        adv = advantages(batch, kept, config)
        params, info = trpo_update(state.params, batch, adv, batch.valid & kept[:, None], config)
        stats = {
            "return": jnp.mean(returns),
            "cvar_return": jnp.sum(jnp.where(kept, returns, 0.0)) / k,
            "min_return": jnp.min(returns),
            "epsilon": k.astype(jnp.float32) / n,
            "loss": info["loss_before"],
            "kl": info["kl"],
            "step_fraction": info["step_fraction"],
            "accepted": info["accepted"].astype(jnp.float32),
            "grad_norm": info["grad_norm"],
        }
        return state._replace(params=params, key=key, update=state.update + 1), stats

    def run_chunk(state: TrainState, num: int):
        return jax.lax.scan(update, state, None, length=num)

    return Train(init, single_phase(run_chunk, num_updates, per_chunk, n * horizon), agent, args,
                 trained_params=lambda state: state.params, current_params=lambda state: state.params,
                 extras={"collect": collect, "advantages": advantages, "trpo_update": trpo_update})
