"""PEARL training (Rakelly et al. 2019), following oyster (katerakelly/oyster): rlkit/core/rl_algorithm.py
`MetaRLAlgorithm.train` and `collect_data` for the data, rlkit/torch/sac/sac.py
`PEARLSoftActorCritic._take_step` for the gradient step.

Two phases, each compiled whole (collection, buffer writes and gradient steps; the host only logs
and checkpoints):

  initial  one update: every training task gets `initial_steps` of data with z from the prior,
           into both buffers (oyster's first iteration); a run started from another's state
           (`--init-from`) has its buffers already and skips it;
  train    `iterations` updates, each:
           1. collect: `tasks_per_iteration` distinct training tasks; each task's encoder buffer
              is cleared, then one trial of the PEARL agent with sampled actions: `prior_steps`
              with z from the prior (a fresh draw per episode), `posterior_steps` and then
              `extra_rl_steps` with z from the posterior of the trial's prior and posterior
              data. Everything goes to the SAC buffer; the prior and posterior steps also to the
              encoder buffer. Steps are whole episodes (rounded up, as oyster collects whole paths).
           2. `train_steps` gradient steps, each on `meta_batch` training tasks drawn with
              replacement: a context batch from each task's encoder buffer and, apart, a SAC batch
              from its SAC buffer; q(z | context) per task and one reparameterised z; the critics
              and the encoder step on the Q loss with z attached plus `kl_weight` x the KL of the
              posteriors to the prior (summed over tasks); the value network, its Polyak target
              and the policy step with z detached (`rl.sac`).

Where this differs from oyster, on purpose: the posterior during collection is the agent's own,
over every transition of the trial that feeds the encoder, where oyster samples a context batch
from the task's encoder buffer (which holds the same data: it was cleared before the task's
collection); and oyster restarts from the prior at each of its collection calls, here once per
trial. On a family that reports a dense reward beside a sparse one, the SAC batch's reward is the
dense one and the encoder's the sparse one (oyster's `sparse_rewards`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.algos.pearl import context as C
from metarlkit.algos.pearl.agent import make_agent, record
from metarlkit.algos.pearl.config import PEARLConfig
from metarlkit.algos.registry import Phase, Train
from metarlkit.nets.squashed import init_mlp, mlp
from metarlkit.rl import replay, sac
from metarlkit.tasks.base import TaskFamily
from metarlkit.trial import TaskSource, run_trials

NETS = ("policy", "q1", "q2", "v", "v_target", "encoder")


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly (one seed; the runner adds a leading axis)."""

    nets: dict  # policy, q1, q2, v, v_target, encoder (`nets.squashed.mlp` params)
    opt: dict  # Adam states: policy, q (both critics), v, encoder
    rl_buffer: replay.ReplayBuffer  # [train_tasks, capacity]: the SAC data
    enc_buffer: replay.ReplayBuffer  # [train_tasks, encoder capacity]: the encoder's recent data
    key: jax.Array
    update: jax.Array  # int32: iterations done (the initial collection not counted)


def episodes_for(steps: int, horizon: int) -> int:
    """Whole episodes that collect at least `steps` transitions."""
    return math.ceil(steps / horizon)


def uses_next_obs(config: PEARLConfig, family: TaskFamily) -> bool:
    """Whether the encoder reads s' ('auto': on families whose dynamics vary)."""
    if config.next_obs_in_context == "auto":
        return hasattr(family, "default_distribution")
    return config.next_obs_in_context == "true"


def agent_args(config: PEARLConfig, family: TaskFamily) -> dict:
    return {
        "obs_size": math.prod(family.obs_shape),
        "action_size": math.prod(family.action_shape),
        "latent_size": config.latent_size,
        "probabilistic": bool(config.probabilistic),
        "next_obs_in_context": uses_next_obs(config, family),
        "prior_episodes": config.prior_episodes,
        "posterior_update": config.posterior_update,
        "deterministic": bool(config.deterministic_eval),
        "action_bounds": family.action_box(),
    }


def capacities(config: PEARLConfig, horizon: int) -> tuple[int, int]:
    """(SAC buffer, encoder buffer) capacity per task, from the run's budget (`replay.capacity_for`)."""
    initial = episodes_for(config.initial_steps, horizon) * horizon
    per_iteration = (episodes_for(config.prior_steps, horizon) + episodes_for(config.posterior_steps, horizon)
                     + episodes_for(config.extra_rl_steps, horizon)) * horizon
    later = replay.capacity_for(config.iterations * config.tasks_per_iteration * per_iteration, config.train_tasks,
                                config.buffer_capacity)
    context = (episodes_for(config.prior_steps, horizon) + episodes_for(config.posterior_steps, horizon)) * horizon
    return min(config.buffer_capacity, initial + later), max(initial, context, 1)


def make_train(config: PEARLConfig, family: TaskFamily, num_episodes: int | None = None,
               train_tasks: TaskSource | None = None) -> Train:
    """Builds PEARL training on `family`'s first `config.train_tasks` training tasks."""
    del num_episodes  # evaluation trials of any length: the agent adapts episode by episode
    source = train_tasks if train_tasks is not None and train_tasks.num_fixed else TaskSource(family, config.train_tasks)
    args = agent_args(config, family)
    agent = make_agent(**args)
    obs_size, act_size, latent = args["obs_size"], args["action_size"], config.latent_size
    next_obs = args["next_obs_in_context"]
    dense = bool(family.reports_dense_reward)
    horizon, num_tasks = family.horizon, config.train_tasks
    e_init = episodes_for(config.initial_steps, horizon)
    e_prior, e_post = episodes_for(config.prior_steps, horizon), episodes_for(config.posterior_steps, horizon)
    e_iter = e_prior + e_post + episodes_for(config.extra_rl_steps, horizon)
    capacity, enc_capacity = capacities(config, horizon)
    feat = 2 * obs_size + act_size + 1 if next_obs else obs_size + act_size + 1
    hidden = tuple(config.hidden_sizes)
    optimizer = optax.adam(config.learning_rate)

    q_apply, v_apply, policy_apply = sac.mlp_q, sac.mlp_v, sac.mlp_policy

    def init(key) -> TrainState:
        keys = jax.random.split(key, 6)
        sizes = {"policy": (obs_size + latent,) + hidden + (2 * act_size,),
                 "q1": (obs_size + latent + act_size,) + hidden + (1,),
                 "q2": (obs_size + latent + act_size,) + hidden + (1,),
                 "v": (obs_size + latent,) + hidden + (1,),
                 "encoder": (feat,) + tuple(config.encoder_sizes) + ((2 if config.probabilistic else 1) * latent,)}
        nets = {name: init_mlp(k, sizes[name], final_scale=1e-3 if name == "policy" else 3e-3)
                for name, k in zip(("policy", "q1", "q2", "v", "encoder"), keys[:5])}
        nets["v_target"] = nets["v"]
        opt = {"policy": optimizer.init(nets["policy"]), "q": optimizer.init((nets["q1"], nets["q2"])),
               "v": optimizer.init(nets["v"]), "encoder": optimizer.init(nets["encoder"])}

        def buffer(cap):
            return replay.empty(num_tasks, cap, (obs_size,), (act_size,), dense_reward=dense)

        return TrainState(nets, opt, buffer(capacity), buffer(enc_capacity), keys[5], jnp.int32(0))

    def collect(state: TrainState, key, task_index, episodes: int, prior_episodes: int, context_episodes: int,
                clear_encoder: bool):
        """One trial per task of `task_index` [K] into the buffers: (state, per-episode returns [K, E])."""
        collector = make_agent(obs_size, act_size, latent, bool(config.probabilistic), next_obs, prior_episodes,
                               "episode", False, family.action_box(), context_episodes)
        k = task_index.shape[0]
        key_env, key_agent = jax.random.split(key)
        params = {"policy": state.nets["policy"], "encoder": state.nets["encoder"]}
        rec = run_trials(family, collector, params, source.tasks(task_index), jax.random.split(key_env, k),
                         jax.random.split(key_agent, k), episodes, record=record, transitions=True)
        _, action = rec.extras

        def flat(x):
            return x.reshape((k, episodes * horizon) + x.shape[3:])

        data = replay.Transitions(flat(rec.obs), flat(action), flat(rec.reward), flat(rec.next_obs),
                                  flat(rec.terminated), flat(rec.dense_reward) if dense else None)
        valid = flat(rec.valid)
        for_encoder = valid & flat(jnp.broadcast_to((jnp.arange(episodes) < context_episodes)[None, :, None],
                                                    rec.valid.shape))
        enc_buffer = replay.clear(state.enc_buffer, task_index) if clear_encoder else state.enc_buffer
        state = state._replace(rl_buffer=replay.add_many(state.rl_buffer, task_index, data, valid),
                               enc_buffer=replay.add_many(enc_buffer, task_index, data, for_encoder))
        returns = (rec.dense_reward if dense else rec.reward).sum(-1)
        return state, returns, rec.reward.sum(-1)

    def posterior_z(encoder, ctx: replay.Transitions, key):
        """z [M, L] (reparameterised) and the summed KL to the prior, from context batches [M, Bc]."""
        if next_obs:
            feats = jax.vmap(jax.vmap(C.features))(ctx.obs, ctx.action, ctx.reward, ctx.next_obs)
        else:
            feats = jax.vmap(jax.vmap(lambda o, a, r: C.features(o, a, r, None)))(ctx.obs, ctx.action, ctx.reward)
        mu, var = C.factors(jax.vmap(jax.vmap(lambda x: mlp(encoder, x)))(feats), config.probabilistic)
        if not config.probabilistic:
            return jnp.mean(mu, axis=1), jnp.float32(0.0), jnp.float32(0.0)
        post = jax.vmap(C.product_of_gaussians)(mu, var)
        z = post.mean + jnp.sqrt(post.var) * jax.random.normal(key, post.mean.shape)
        return z, jnp.sum(jax.vmap(C.kl_to_prior)(post)), jnp.mean(post.var)

    def gradient_step(carry, key):
        nets, opt, rl_buffer, enc_buffer = carry
        key_tasks, key_ctx, key_rl, key_z, key_pi = jax.random.split(key, 5)
        tasks = jax.random.randint(key_tasks, (config.meta_batch,), 0, num_tasks)
        ctx = replay.sample(enc_buffer, key_ctx, tasks, config.context_batch_size)
        batch = replay.sample(rl_buffer, key_rl, tasks, config.batch_size)
        sac_reward = batch.dense_reward if dense else batch.reward
        rows = config.meta_batch * config.batch_size

        def with_z(obs, z):
            return jnp.concatenate([obs, jnp.broadcast_to(z[:, None, :], obs.shape[:2] + z.shape[1:])],
                                   axis=-1).reshape(rows, -1)

        def critic_loss(trainable):
            qs, encoder = trainable
            z, kl, z_var = posterior_z(encoder, ctx, key_z)
            flat = replay.Transitions(with_z(batch.obs, z), batch.action.reshape(rows, -1), sac_reward.reshape(rows),
                                      with_z(batch.next_obs, z), batch.terminated.reshape(rows))
            loss, stats = sac.q_loss(qs, nets["v_target"], flat, q_apply=q_apply, v_apply=v_apply,
                                     discount=config.discount, reward_scale=config.reward_scale)
            return loss + config.kl_weight * kl, (z, {"q_loss": loss, "kl": kl, "z_var": z_var, **stats})

        qs = (nets["q1"], nets["q2"])
        (_, (z, stats)), (g_q, g_enc) = jax.value_and_grad(critic_loss, has_aux=True)((qs, nets["encoder"]))
        updates, opt_q = optimizer.update(g_q, opt["q"], qs)
        qs = optax.apply_updates(qs, updates)
        updates, opt_enc = optimizer.update(g_enc, opt["encoder"], nets["encoder"])
        encoder = optax.apply_updates(nets["encoder"], updates)

        obs_z = with_z(batch.obs, jax.lax.stop_gradient(z))
        (v_loss, v_stats), g_v = jax.value_and_grad(sac.v_loss, has_aux=True)(
            nets["v"], qs, nets["policy"], obs_z, key_pi, v_apply=v_apply, q_apply=q_apply, policy_apply=policy_apply)
        updates, opt_v = optimizer.update(g_v, opt["v"], nets["v"])
        v = optax.apply_updates(nets["v"], updates)
        v_target = sac.polyak(nets["v_target"], v, config.target_tau)
        (pi_loss, pi_stats), g_pi = jax.value_and_grad(sac.policy_loss, has_aux=True)(
            nets["policy"], qs, obs_z, key_pi, policy_apply=policy_apply, q_apply=q_apply)
        updates, opt_pi = optimizer.update(g_pi, opt["policy"], nets["policy"])
        policy = optax.apply_updates(nets["policy"], updates)

        nets = {"policy": policy, "q1": qs[0], "q2": qs[1], "v": v, "v_target": v_target, "encoder": encoder}
        opt = {"policy": opt_pi, "q": opt_q, "v": opt_v, "encoder": opt_enc}
        metrics = {**stats, "v_loss": v_loss, "policy_loss": pi_loss, "log_pi": pi_stats["log_pi"],
                   "grad_norm": optax.tree.norm((g_q, g_enc, g_v, g_pi))}
        return (nets, opt, rl_buffer, enc_buffer), metrics

    def initial_update(state: TrainState, _):
        key, key_collect = jax.random.split(state.key)
        state, returns, encoder_returns = collect(state._replace(key=key), key_collect,
                                                  jnp.arange(num_tasks, dtype=jnp.uint32), e_init, e_init, e_init, False)
        return state, {"return": jnp.mean(returns), "encoder_return": jnp.mean(encoder_returns)}

    def train_update(state: TrainState, _):
        key, key_tasks, key_collect, key_steps = jax.random.split(state.key, 4)
        tasks = source.sample_indices(key_tasks, config.tasks_per_iteration)
        state, returns, encoder_returns = collect(state._replace(key=key), key_collect, tasks, e_iter, e_prior,
                                                  e_prior + e_post, True)
        (nets, opt, _, _), metrics = jax.lax.scan(
            gradient_step, (state.nets, state.opt, state.rl_buffer, state.enc_buffer),
            jax.random.split(key_steps, config.train_steps))
        metrics = {name: jnp.mean(metrics[name]) for name in LOSS_METRICS}
        return state._replace(nets=nets, opt=opt, update=state.update + 1), {
            "return": jnp.mean(returns), "encoder_return": jnp.mean(encoder_returns), **metrics}

    def chunk_of(update):
        def run_chunk(state: TrainState, num: int):
            return jax.lax.scan(update, state, None, length=num)
        return run_chunk

    per_chunk = min(config.checkpoint_iterations, config.iterations)
    num_updates = math.ceil(config.iterations / per_chunk) * per_chunk
    phases = []
    if e_init:
        phases.append(Phase("initial", chunk_of(initial_update), 1, 1, num_tasks * e_init * horizon,
                            first_start_only=True))
    phases.append(Phase("train", chunk_of(train_update), num_updates, per_chunk,
                        config.tasks_per_iteration * e_iter * horizon))

    def trained_params(state: TrainState):
        return {"policy": state.nets["policy"], "encoder": state.nets["encoder"]}

    return Train(init, tuple(phases), agent, args, trained_params=trained_params, current_params=lambda s: s.nets,
                 extras={"gradient_step": gradient_step, "collect": collect, "capacities": (capacity, enc_capacity)})


LOSS_METRICS = ("q_loss", "kl", "z_var", "q1", "q_target", "v_loss", "policy_loss", "log_pi", "grad_norm")
