"""A toy algorithm registered from outside the library: the walkthrough of docs/algorithms.md.

`toy-pg` learns one memoryless policy for the whole task distribution with REINFORCE (no
adaptation: a "pooled" baseline), in two phases: `collect` only fills a replay buffer of full
transitions, then `train` keeps filling it and takes a policy-gradient step per update. It uses
every part of the algorithm contract a real algorithm needs: a config dataclass with a docstring
per field, presets, a check run before anything is written, a fixed set of training tasks, phases,
a replay buffer (fixed-size device arrays in the train state, checkpointed and resumed like the
rest), full transitions from the shared rollout, and an AdaptiveAgent scored by the one evaluator.
Nothing in the library names it: registering the record below is all it takes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metarlkit.agents import AdaptiveAgent, no_end_episode
from metarlkit.algos import Algorithm, Curve, Phase, Train
from metarlkit.nets.mlp import init_mlp_policy, mlp_policy
from metarlkit.rl import discounted_returns, masked_mean, normalize_advantages, policy_gradient_loss
from metarlkit.trial import TaskSource, rollout


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Options of the toy policy-gradient learner."""

    LIMITS: ClassVar[dict[str, int]] = {"tasks_per_update": 4096, "buffer_size": 10**11, "seed": 2**31 - 1,
                                        "seeds": 1024}

    learning_rate: float = 0.05
    """Adam step size of the policy-gradient step."""
    tasks_per_update: int = 8
    """Tasks (one trial each) rolled out per update."""
    collect_updates: int = 2
    """Updates of the first phase, which only fills the replay buffer."""
    train_updates: int = 4
    """Updates of the second phase, each a policy-gradient step."""
    updates_per_chunk: int = 2
    """Updates per compiled chunk; a checkpoint follows each."""
    buffer_size: int = 4096
    """Transitions the replay buffer holds (oldest overwritten first)."""
    train_tasks: int = 0
    """Train on the first N tasks of the family's 'train' split (0: fresh tasks every update)."""
    gamma: float = 0.99
    """Discount of the returns-to-go within an episode."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""

    def __post_init__(self):
        for name in ("tasks_per_update", "collect_updates", "train_updates", "updates_per_chunk", "buffer_size",
                     "seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("collect_updates", "train_updates"):
            if getattr(self, name) % self.updates_per_chunk:
                raise ValueError(f"{name} must be a multiple of updates_per_chunk ({self.updates_per_chunk})")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")


PRESETS = {"default": {}, "fixed-tasks": {"train_tasks": 10}}


class Buffer(NamedTuple):
    """A ring buffer of transitions: every leaf [N, ...]; `count` transitions written in all."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    count: jax.Array  # int32


class ToyState(NamedTuple):
    params: Any
    opt_state: Any
    buffer: Buffer
    key: jax.Array
    update: jax.Array


def make_agent(obs_size: int, num_actions: int, continuous: bool) -> AdaptiveAgent:
    """A memoryless policy: act samples from pi(. | obs); nothing adapts."""
    del obs_size, num_actions

    def init(params, key, num_episodes):
        del params, key, num_episodes
        return jnp.zeros(())

    def act(params, state, obs, key):
        action = mlp_policy(params, jnp.ravel(obs)).sample(key)
        return (action if continuous else action.astype(jnp.int32)), state

    def observe(params, state, transition):
        del params, transition
        return state

    return AdaptiveAgent(init, act, observe, no_end_episode)


def check(config: ToyConfig, family, num_episodes: int) -> None:
    per_update = config.tasks_per_update * num_episodes * family.horizon
    if per_update > config.buffer_size:
        raise ValueError(f"one update writes {per_update} transitions, more than buffer_size {config.buffer_size}; "
                         f"raise --buffer-size to at least {per_update}")


def make_train(config: ToyConfig, family, num_episodes: int, train_tasks: TaskSource | None = None) -> Train:
    source = train_tasks or TaskSource(family)
    obs_size = math.prod(family.obs_shape)
    outputs = family.action_size if family.continuous else family.num_actions
    args = {"obs_size": obs_size, "num_actions": outputs, "continuous": family.continuous}
    agent = make_agent(**args)
    optimizer = optax.adam(config.learning_rate)
    B, T, N = config.tasks_per_update, num_episodes * family.horizon, config.buffer_size

    def init(key):
        key_params, key = jax.random.split(key)
        params = init_mlp_policy(key_params, obs_size, (), outputs, continuous=family.continuous)
        zeros = lambda shape, dtype=jnp.float32: jnp.zeros((N,) + shape, dtype)  # noqa: E731
        buffer = Buffer(zeros(family.obs_shape), zeros(family.action_shape, family.action_dtype), zeros(()),
                        zeros(family.obs_shape), zeros((), bool), zeros((), bool), jnp.int32(0))
        return ToyState(params, optimizer.init(params), buffer, key, jnp.int32(0))

    def collect(state):
        key_rollout, key = jax.random.split(state.key)
        _, rec = rollout(source, agent, state.params, key_rollout, B, num_episodes, transitions=True)
        # Valid steps go to the ring buffer; invalid ones (after an early end) are written past the
        # end and dropped.
        flat = jax.tree_util.tree_map(lambda x: x.reshape((B * T,) + x.shape[3:]), rec)
        order = jnp.cumsum(flat.valid) - 1
        index = jnp.where(flat.valid, (state.buffer.count + order) % N, N)
        put = lambda buf, x: buf.at[index].set(x, mode="drop")  # noqa: E731
        b = state.buffer
        buffer = Buffer(put(b.obs, flat.obs), put(b.action, flat.action), put(b.reward, flat.reward),
                        put(b.next_obs, flat.next_obs), put(b.terminated, flat.terminated),
                        put(b.truncated, flat.truncated), b.count + jnp.sum(flat.valid).astype(jnp.int32))
        metrics = {"trial_return": jnp.mean(jnp.sum(rec.reward, axis=(1, 2))),
                   "buffer_size": jnp.minimum(buffer.count, N).astype(jnp.float32)}
        return state._replace(buffer=buffer, key=key, update=state.update + 1), rec, metrics

    def loss_fn(params, rec):
        returns = jax.vmap(jax.vmap(lambda r, ok: discounted_returns(r, config.gamma, 0.0, ok)))(rec.reward, rec.valid)
        logp = jax.vmap(jax.vmap(jax.vmap(lambda o, a: mlp_policy(params, jnp.ravel(o)).log_prob(a))))(
            rec.obs, rec.action)
        return policy_gradient_loss(logp, normalize_advantages(returns, rec.valid), rec.valid)

    def collect_chunk(state, num):
        def update(state, _):
            state, rec, metrics = collect(state)
            metrics["loss"] = jnp.float32(0.0)
            return state, metrics

        return jax.lax.scan(update, state, None, length=num)

    def train_chunk(state, num):
        def update(state, _):
            params = state.params
            state, rec, metrics = collect(state)
            loss, grads = jax.value_and_grad(loss_fn)(params, rec)
            updates, opt_state = optimizer.update(grads, state.opt_state, params)
            metrics.update(loss=loss, mean_valid_reward=masked_mean(rec.reward, rec.valid))
            return state._replace(params=optax.apply_updates(params, updates), opt_state=opt_state), metrics

        return jax.lax.scan(update, state, None, length=num)

    phases = (Phase("collect", collect_chunk, config.collect_updates, config.updates_per_chunk, B * T),
              Phase("train", train_chunk, config.train_updates, config.updates_per_chunk, B * T))
    params_of = lambda state: state.params  # noqa: E731
    return Train(init, phases, agent, args, trained_params=params_of, current_params=params_of)


TOY = Algorithm(
    name="toy-pg",
    description="toy: one memoryless policy for all tasks by REINFORCE (a test of the algorithm contract)",
    config=ToyConfig,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    check=check,
    fixed_train_tasks=lambda config: config.train_tasks or None,
    curves=(Curve("trial_return", "mean return per training trial"),),
    progress_metric="trial_return",
    finite_metrics=("loss",),
    divergence_hint="learning_rate",
)
