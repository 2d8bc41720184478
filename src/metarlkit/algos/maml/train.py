"""MAML-RL meta-training (Finn et al. 2017): one meta-iteration is one compiled call.

`make_train(config, family)` returns pure `init(key)` and `run_chunk(state, n)`; `run_chunk` is a
`lax.scan` over n meta-iterations, each of which

  1. samples `meta_batch` tasks and plays one trial of each with the MAML agent (`agent.py`, the
     same agent evaluation scores): `inner_steps + 1` rounds of `trajectories` parallel episodes,
     an inner policy-gradient step after each round but the last;
  2. rebuilds the adapted parameters phi(theta) from the recorded rounds, differentiably
     (`losses.adapt`), and forms the outer surrogate on the last round's episodes;
  3. takes a TRPO step (natural gradient through the inner step: conjugate gradient on
     Hessian-vector products of the mean KL, a KL trust region and a backtracking line search)
     or `ppo_epochs` Adam steps on PPO's clipped surrogate.

The KL's Hessian-vector products are the costly part: the KL depends on theta through the inner
gradient. `losses.outer_gradient_and_fvp` linearises the inner step and the policy once per
meta-iteration and applies the exact Gauss-Newton form J^T F J of the KL's Hessian at the old
theta in each conjugate-gradient iteration.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.algos.common import chunking
from metarlkit.algos.registry import Train, single_phase
from metarlkit.algos.maml import losses
from metarlkit.rl.adaptation_agent import check_rounds, make_agent, record
from metarlkit.algos.maml.config import MAMLConfig
from metarlkit.nets.mlp import init_mlp_policy
from metarlkit.rl.optim import trpo_step
from metarlkit.tasks.base import TaskFamily
from metarlkit.trial import TaskSource, rollout

EVAL_STEPS = 3  # inner steps of the default evaluation trial (returns after 0..3 steps, as the MAML paper)


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly (one seed; `seeded` adds a leading axis)."""

    params: Any  # theta (a `nets.mlp` params dict)
    opt_state: Any  # optax state (PPO), () for TRPO
    key: jax.Array  # raw uint32 key [2]
    update: jax.Array  # int32, meta-iterations done
    kl_penalty: jax.Array  # float32, ProMP's current penalty weight (PPO; 0 when off)
    best_params: Any  # theta of the meta-iteration with the best post-adaptation return so far
    best_return: jax.Array  # float32, that return (the evaluation agent uses best_params with keep_best)


def _sizes(family: TaskFamily) -> tuple[int, int]:
    obs_size = math.prod(family.obs_shape)
    return obs_size, (family.action_size if family.continuous else family.num_actions)


def agent_args(config: MAMLConfig, family: TaskFamily, trajectories: int, steps: int) -> dict:
    """make_agent's arguments: `steps` inner steps' step sizes, `trajectories` episodes per round."""
    obs_size, num_actions = _sizes(family)
    later = config.inner_lr_later or config.inner_lr
    return {
        "obs_size": obs_size,
        "num_actions": num_actions,
        "horizon": family.horizon,
        "continuous": bool(family.continuous),
        "activation": config.activation,
        "trajectories": trajectories,
        "inner_lrs": (config.inner_lr,) + (later,) * (steps - 1),
        "inner_estimator": config.inner_estimator,
        "gamma": config.gamma,
        "gae_lambda": config.gae_lambda,
        "action_bounds": family.action_box(),
        "weighting": config.weighting,
        "normalize_actions": bool(config.normalize_actions and family.continuous),
    }


def default_episodes(config: MAMLConfig | None = None) -> int:
    """Episodes per evaluation trial when none are given: EVAL_STEPS + 1 rounds of
    eval_trajectories (the MAML paper's evaluation: returns after 0..3 steps, 40 episodes each)."""
    return (EVAL_STEPS + 1) * (config or MAMLConfig()).eval_trajectories


def check(config: MAMLConfig, family: TaskFamily, num_episodes: int) -> None:
    """Raises a one-line ValueError when the evaluation trial cannot be whole rounds."""
    check_rounds(config.eval_trajectories, family, num_episodes)


def make_train(config: MAMLConfig, family: TaskFamily, num_episodes: int | None = None,
               train_tasks: TaskSource | None = None) -> Train:
    """Builds MAML-RL meta-training on `family`.

    Args:
      config: MAMLConfig.
      family: the task family.
      num_episodes: episodes of the evaluation trial (rounds of `eval_trajectories`; None:
        `default_episodes(config)`); training trials are `inner_steps + 1` rounds of `trajectories`.
      train_tasks: where training tasks come from (default: fresh draws from the distribution).

    Returns:
      Train with one phase; `extras` holds `train_agent` (the agent training rolls out with, its
      `trajectories` per round) and `internals` (the meta-iteration's stages, for profiling).
    """
    num_episodes = num_episodes or default_episodes(config)
    source = train_tasks or TaskSource(family)
    check(config, family, num_episodes)
    obs_size, num_actions = _sizes(family)
    K, P, M, H = config.inner_steps, config.trajectories, config.meta_batch, family.horizon
    rounds = K + 1
    lrs = config.inner_lrs()
    train_agent = make_agent(**agent_args(config, family, P, K))
    eval_args = {**agent_args(config, family, config.eval_trajectories, max(1, num_episodes // config.eval_trajectories - 1)),
                 "adapted_std_scale": float(config.adapted_std_scale)}
    eval_agent = make_agent(**eval_args)
    per_chunk, num_updates = chunking(config.meta_iterations, config.checkpoint_iterations, 1)
    steps_per_update = M * rounds * P * H
    optimizer = optax.adam(config.outer_lr)
    common = {"estimator": config.inner_estimator, "activation": config.activation, "gamma": config.gamma,
              "weighting": config.weighting, "first_order": config.first_order}

    def init(key) -> TrainState:
        key_params, key = jax.random.split(key)
        params = init_mlp_policy(key_params, obs_size, config.hidden_sizes, num_actions,
                                 continuous=family.continuous, init_log_std=config.init_log_std)
        opt_state = optimizer.init(params) if config.outer == "ppo" else ()
        return TrainState(params, opt_state, key, jnp.int32(0), jnp.float32(config.kl_penalty), params,
                          jnp.float32(-jnp.inf))

    def collect(params, key):
        """Plays a trial of each of M fresh tasks; returns per-task data [M, ...] and round returns."""
        _, rec = rollout(source, train_agent, params, key, M, rounds * P, record=record)
        split = lambda x: x.reshape((M, rounds, P) + x.shape[2:])  # noqa: E731
        obs, actions = rec.extras  # the policy's own actions, which the agent's inner steps used
        episodes = losses.Episodes(split(obs), split(actions), split(rec.reward), split(rec.valid))
        processed = jax.vmap(jax.vmap(lambda e: losses.process(e, config.gamma, config.gae_lambda,
                                                               config.weighting)))(episodes)
        inner = jax.tree_util.tree_map(lambda x: x[:, :K], processed)
        outer = jax.tree_util.tree_map(lambda x: x[:, K], processed)
        task_returns = jnp.mean(jnp.sum(episodes.reward, axis=-1), axis=2)  # [M, rounds]
        pre = losses.pre_update(params, jax.tree_util.tree_map(lambda x: x[:, 0], episodes), task_returns[:, -1],
                                config.activation)
        return inner, outer, pre, jnp.mean(task_returns, axis=0)

    def old_policy(params, inner, outer):
        phi = losses.adapt(params, inner, lrs, **common)
        dist = losses.distribution(phi, outer.episodes.obs, config.activation)
        return jax.lax.stop_gradient((dist, losses.log_prob(dist, outer.episodes.action)))

    def objective(params, data, clip_eps=None):
        loss, kl = jax.vmap(lambda d: losses.surrogate(params, d, lrs, clip_eps=clip_eps, **common))(data)
        return jnp.mean(loss), jnp.mean(kl)

    explore = config.exploration_weight

    def with_exploration(params, data, pre, clip_eps=None):
        loss, kl = objective(params, data, clip_eps)
        if explore:
            loss = loss + explore * losses.pre_update_terms(params, pre, config.activation, config.weighting)[1]
        return loss, kl

    def trpo_update(state, data, pre):
        params = state.params
        loss_before, grad, fvp, data = losses.outer_gradient_and_fvp(params, data, lrs, **common)
        if explore:  # E-MAML: theta's own term, outside the trust region's KL
            term, term_grad = jax.value_and_grad(
                lambda p: losses.pre_update_terms(p, pre, config.activation, config.weighting)[1])(params)
            loss_before = loss_before + explore * term
            grad = optax.tree.add_scale(grad, explore, term_grad)
        params, info = trpo_step(params, grad, fvp, lambda p: with_exploration(p, data, pre), config.max_kl,
                                 cg_iterations=config.cg_iterations, damping=config.cg_damping,
                                 backtrack_ratio=config.line_search_ratio, max_backtracks=config.line_search_steps,
                                 loss_before=loss_before, sequential=config.line_search == "sequential")
        stats = {"loss": loss_before, "kl": info["kl"], "step_fraction": info["step_fraction"],
                 "accepted": info["accepted"].astype(jnp.float32), "grad_norm": optax.tree.norm(grad)}
        return state._replace(params=params), stats

    def ppo_update(state, data, pre):
        eta = state.kl_penalty

        def total(p):
            loss, kl = with_exploration(p, data, pre, config.clip_eps)
            if config.kl_penalty:  # ProMP: eta * KL(pre-update policy at the old theta || at theta)
                loss = loss + eta * losses.pre_update_terms(p, pre, config.activation, config.weighting)[0]
            return loss, kl

        def step(carry, _):
            params, opt_state = carry
            (loss, kl), grads = jax.value_and_grad(total, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, optax.tree.norm(grads))

        (params, opt_state), (loss, norm) = jax.lax.scan(step, (state.params, state.opt_state), None,
                                                         length=config.ppo_epochs)
        _, kl_after = objective(params, data)
        pre_kl = losses.pre_update_terms(params, pre, config.activation, config.weighting)[0]
        if config.kl_penalty:  # ProMP's adaptive rule
            eta = losses.adapt_kl_penalty(eta, pre_kl, config.kl_target)
        stats = {"loss": loss[0], "kl": kl_after, "step_fraction": jnp.float32(1.0), "accepted": jnp.float32(1.0),
                 "grad_norm": norm[0], "pre_update_kl": pre_kl, "kl_penalty": eta}
        return state._replace(params=params, opt_state=opt_state, kl_penalty=eta), stats

    outer_update = trpo_update if config.outer == "trpo" else ppo_update

    def update(state: TrainState, _):
        key_collect, key = jax.random.split(state.key)
        inner, outer, pre, round_returns = collect(state.params, key_collect)
        if config.outer == "trpo":  # its linearisation at the old theta gives the old policy
            data = losses.OuterData(inner, outer, None, None)
        else:
            old_dist, old_logp = jax.vmap(old_policy, in_axes=(None, 0, 0))(state.params, inner, outer)
            data = losses.OuterData(inner, outer, old_dist, old_logp)
        # The theta these episodes were collected with, and its post-adaptation return: the
        # candidate "best iteration" (Finn et al. keep the best; `keep_best`).
        better = round_returns[-1] > state.best_return
        best_params = jax.tree_util.tree_map(lambda b, p: jnp.where(better, p, b), state.best_params, state.params)
        best_return = jnp.maximum(state.best_return, round_returns[-1])
        state, stats = outer_update(state, data, pre)
        stats["return_before"] = round_returns[0]
        stats["return_after"] = round_returns[-1]
        return state._replace(key=key, update=state.update + 1, best_params=best_params, best_return=best_return), stats

    def run_chunk(state: TrainState, num: int):
        return jax.lax.scan(update, state, None, length=num)

    internals = {"collect": collect, "objective": objective, "lrs": lrs, "common": common}

    def trained_params(state: TrainState):
        return state.best_params if config.keep_best else state.params

    return Train(init, single_phase(run_chunk, num_updates, per_chunk, steps_per_update), eval_agent, eval_args,
                 trained_params=trained_params, current_params=lambda state: state.params,
                 extras={"train_agent": train_agent, "internals": internals})
