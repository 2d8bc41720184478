"""GMPS's experts trained by reinforcement learning: one soft actor-critic conditioned on the task
(the task's parameters, flattened, beside the observation), trained on every training task from
per-task replay buffers with PEARL's pieces (`rl.sac`, `rl.replay`, `nets.squashed`) and no
context encoder: the expert is told the task, as the paper's local learners each know theirs.

A gradient step follows oyster's order (`rl.sac`'s module docstring): the critics step on the Q
loss (target V from before the step), then the value and policy losses with the updated critics
and one draw of new actions, the value step, the Polyak target update and the policy step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.agents import AdaptiveAgent, no_end_episode
from metarlkit.nets.mlp import env_action, policy_action
from metarlkit.nets.squashed import init_mlp
from metarlkit.rl import replay, sac

LEARNING_RATE = 3e-4  # oyster's, for every network
TARGET_TAU = 0.005


class ExpertState(NamedTuple):
    """The task-conditioned SAC expert and its data (one seed)."""

    nets: dict  # policy, q1, q2, v, v_target (`nets.squashed.mlp` params)
    opt: dict  # Adam states: policy, q (both critics), v
    buffer: replay.ReplayBuffer  # [train_tasks, capacity], actions in the box's [-1, 1] units


def task_features(task) -> jax.Array:
    """The task's parameters as one float vector (every leaf flattened, in pytree order)."""
    return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree_util.tree_leaves(task)])


def _policy(policy, obs, feats):
    return sac.mlp_policy(policy, jnp.concatenate([obs, feats]))


def make_expert_agent(bounds, deterministic: bool) -> AdaptiveAgent:
    """The expert as a task-aware agent (`params` = its policy network): tanh of its mean
    (`deterministic`) or a draw, mapped onto the action box."""

    def init(params, key, num_episodes, task):
        del params, key, num_episodes
        return task_features(task)

    def act(params, feats, obs, key):
        dist = _policy(params, jnp.ravel(obs).astype(jnp.float32), feats)
        u = dist.mode() if deterministic else dist.sample(key)
        return env_action(u, bounds), feats

    def observe(params, feats, transition):
        del params, transition
        return feats

    return AdaptiveAgent(init=init, act=act, observe=observe, end_episode=no_end_episode, task_aware=True)


def expert_action(policy, task, obs, bounds) -> jax.Array:
    """The expert's deterministic action at `obs` on `task`, in the environment's units."""
    return env_action(_policy(policy, jnp.ravel(obs).astype(jnp.float32), task_features(task)).mode(), bounds)


def init_expert(key, obs_size: int, task_size: int, action_size: int, hidden: tuple[int, ...], num_tasks: int,
                capacity: int) -> ExpertState:
    keys = jax.random.split(key, 4)
    inp = obs_size + task_size
    sizes = {"policy": (inp,) + hidden + (2 * action_size,), "q1": (inp + action_size,) + hidden + (1,),
             "q2": (inp + action_size,) + hidden + (1,), "v": (inp,) + hidden + (1,)}
    nets = {name: init_mlp(k, sizes[name], final_scale=1e-3 if name == "policy" else 3e-3)
            for name, k in zip(("policy", "q1", "q2", "v"), keys)}
    nets["v_target"] = nets["v"]
    adam = optax.adam(LEARNING_RATE)
    opt = {"policy": adam.init(nets["policy"]), "q": adam.init((nets["q1"], nets["q2"])), "v": adam.init(nets["v"])}
    return ExpertState(nets, opt, replay.empty(num_tasks, capacity, (obs_size,), (action_size,)))


def add_episodes(state: ExpertState, rec, bounds) -> ExpertState:
    """Every training task's trial (a `StepRecord` [T, E, H] with transitions) into its buffer."""
    t, e, h = rec.valid.shape

    def flat(x):
        return x.reshape((t, e * h) + x.shape[3:])

    action = policy_action(rec.action.astype(jnp.float32), bounds)  # the box's [-1, 1] units
    data = replay.Transitions(flat(rec.obs.reshape(rec.obs.shape[:3] + (-1,))), flat(action), flat(rec.reward),
                              flat(rec.next_obs.reshape(rec.next_obs.shape[:3] + (-1,))), flat(rec.terminated))
    buffer = replay.add_many(state.buffer, jnp.arange(t, dtype=jnp.uint32), data, flat(rec.valid))
    return state._replace(buffer=buffer)


def gradient_step(state: ExpertState, key, task_feats: jax.Array, *, batch_size: int, discount: float,
                  reward_scale: float):
    """One SAC step on `batch_size` transitions of every training task (`task_feats` [T, F])."""
    nets, opt = state.nets, state.opt
    adam = optax.adam(LEARNING_RATE)
    key_batch, key_pi = jax.random.split(key)
    t = task_feats.shape[0]
    batch = replay.sample(state.buffer, key_batch, jnp.arange(t, dtype=jnp.uint32), batch_size)  # [T, B]
    rows = t * batch_size

    def with_task(obs):
        feats = jnp.broadcast_to(task_feats[:, None, :], obs.shape[:2] + task_feats.shape[1:])
        return jnp.concatenate([obs, feats], axis=-1).reshape(rows, -1)

    flat = replay.Transitions(with_task(batch.obs), batch.action.reshape(rows, -1), batch.reward.reshape(rows),
                              with_task(batch.next_obs), batch.terminated.reshape(rows))

    q_apply, v_apply, policy_apply = sac.mlp_q, sac.mlp_v, sac.mlp_policy
    qs = (nets["q1"], nets["q2"])
    (q_loss, q_stats), g_q = jax.value_and_grad(sac.q_loss, has_aux=True)(
        qs, nets["v_target"], flat, q_apply=q_apply, v_apply=v_apply, discount=discount, reward_scale=reward_scale)
    updates, opt_q = adam.update(g_q, opt["q"], qs)
    qs = optax.apply_updates(qs, updates)
    (v_loss, _), g_v = jax.value_and_grad(sac.v_loss, has_aux=True)(
        nets["v"], qs, nets["policy"], flat.obs, key_pi, v_apply=v_apply, q_apply=q_apply, policy_apply=policy_apply)
    updates, opt_v = adam.update(g_v, opt["v"], nets["v"])
    v = optax.apply_updates(nets["v"], updates)
    (pi_loss, _), g_pi = jax.value_and_grad(sac.policy_loss, has_aux=True)(
        nets["policy"], qs, flat.obs, key_pi, policy_apply=policy_apply, q_apply=q_apply)
    updates, opt_pi = adam.update(g_pi, opt["policy"], nets["policy"])
    nets = {"policy": optax.apply_updates(nets["policy"], updates), "q1": qs[0], "q2": qs[1], "v": v,
            "v_target": sac.polyak(nets["v_target"], v, TARGET_TAU)}
    opt = {"policy": opt_pi, "q": opt_q, "v": opt_v}
    return state._replace(nets=nets, opt=opt), {"expert_q_loss": q_loss, "expert_v_loss": v_loss,
                                                "expert_policy_loss": pi_loss, "expert_q1": q_stats["q1"]}
