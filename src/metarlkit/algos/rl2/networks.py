"""The RL2 network: inputs (obs, previous action, previous reward, done) -> core -> heads."""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from metarlkit.nets.cores import make_core
from metarlkit.nets.heads import PolicyHead
from metarlkit.nets.pure import pure_module


def input_size(obs_size: int, num_actions: int, time_input: bool, prev_obs_input: bool = False) -> int:
    """obs + previous action + previous reward + done flag (+ trial fraction, + previous obs).

    The previous action takes `num_actions` inputs: a one-hot for discrete actions, the action
    vector itself for continuous ones (`num_actions` is then the action dimension).
    """
    return obs_size * (1 + int(prev_obs_input)) + num_actions + 2 + int(time_input)


def encode(obs, prev_obs, prev_action, prev_reward, prev_done, trial_fraction, num_actions: int,
           time_input: bool, prev_obs_input: bool = False, continuous: bool = False):
    """The network input of one step ([D] float32).

    At the first step of a trial the previous action is all zeros (no action yet), the previous
    reward 0 and the done flag 0. `prev_done` is 1 when the previous step ended an episode: the agent
    is told the episode boundary, but its hidden state is not reset (only trial boundaries reset it).
    With `prev_obs_input` the observation the previous action was taken in is appended (zeros at
    the first step), so one input holds the whole last transition (s, a, r, s').

    Args:
      prev_action: int32 index, -1 before the first step (discrete); or the [num_actions] action
        vector, zeros before the first step (continuous).
    """
    if continuous:
        action_in = jnp.ravel(prev_action).astype(jnp.float32)
    else:
        action_in = jax.nn.one_hot(prev_action, num_actions) * (prev_action >= 0)
    parts = [
        jnp.ravel(obs).astype(jnp.float32),
        action_in,
        jnp.reshape(prev_reward, (1,)).astype(jnp.float32),
        jnp.reshape(prev_done, (1,)).astype(jnp.float32),
    ]
    if time_input:
        parts.append(jnp.reshape(trial_fraction, (1,)).astype(jnp.float32))
    if prev_obs_input:
        parts.append(jnp.ravel(prev_obs).astype(jnp.float32))
    return jnp.concatenate(parts)


class NetworkShape(NamedTuple):
    """Everything that fixes the network's parameters and programs (hashable: networks are cached)."""

    in_features: int  # input size D (see `input_size`)
    num_actions: int  # discrete actions, or the action dimension when `action_bounds` is given
    core: str  # 'gru', 'lstm' or 'transformer'
    hidden_size: int  # the core's output size
    embed_size: int = 0  # ReLU layer before the core (0: none)
    head_size: int = 0  # ReLU layer on [core output, input] under both heads (0: none)
    action_bounds: tuple | None = None  # continuous actions: (low, high) of the box, for a Gaussian head
    layers: int = 2  # transformer only
    heads: int = 4  # transformer only
    context: int = 0  # transformer only: steps attended to


class RL2Network(nnx.Module):
    """A core (recurrent or transformer) with a policy head (categorical or diagonal Gaussian) and a
    value head, both linear in the core's output (or in an optional ReLU layer on it)."""

    def __init__(self, shape: NetworkShape, *, rngs: nnx.Rngs):
        d = shape.in_features
        # An optional ReLU layer in front of the core: its units can detect conjunctions of inputs
        # (this state and that action), which a recurrent cell's input transform, linear in x, cannot.
        self.embed = nnx.Linear(d, shape.embed_size, rngs=rngs) if shape.embed_size else None
        self.core = make_core(shape.core, shape.embed_size or d, shape.hidden_size, layers=shape.layers,
                              heads=shape.heads, context=shape.context, rngs=rngs)
        # An optional ReLU layer on the core's output and the step's input, shared by both heads:
        # it can read the part of the memory that concerns the current observation (a product of
        # the two), which heads linear in the core's output cannot.
        self.head = nnx.Linear(shape.hidden_size + d, shape.head_size, rngs=rngs) if shape.head_size else None
        features = shape.head_size or shape.hidden_size
        # Small initial policy weights: a near-uniform policy (or a Gaussian centred in the action
        # box with the box's half-width as standard deviation) at the start explores every action.
        self.policy = PolicyHead(features, shape.num_actions, continuous=shape.action_bounds is not None,
                                 action_bounds=shape.action_bounds, rngs=rngs)
        self.value = nnx.Linear(features, 1, kernel_init=nnx.initializers.orthogonal(1.0), rngs=rngs)

    def __call__(self, carry, x):
        """One step: (carry, x [D]) -> (carry, Categorical or DiagGaussian, value [])."""
        carry, h = self.core(carry, self._embed(x))
        return (carry, *self._heads(h, x))

    def sequence(self, x_t, valid_t):
        """A whole trial at once (cores with a `sequence` method: the transformer).

        x_t [T, D], valid_t [T] -> (dist with [T, ...] leaves, value [T]); equal to stepping from
        the trial-start carry and keeping the carry of valid steps only.
        """
        h = self.core.sequence(self._embed(x_t), valid_t)
        return self._heads(h, x_t)

    def _embed(self, x):
        return x if self.embed is None else jax.nn.relu(self.embed(x))

    def _heads(self, h, x):
        if self.head is not None:
            h = jax.nn.relu(self.head(jnp.concatenate([h, x], axis=-1)))
        return self.policy(h), self.value(h)[..., 0]


class Network(NamedTuple):
    """The pure functions of a network shape (see `network_def`)."""

    graphdef: Any
    apply: Callable  # (params, carry, x [D]) -> (carry, dist, value): one step
    unroll: Callable  # (params, x_t [T, D], valid_t [T]) -> (dist [T, ...], value [T]): a trial
    init_params: Callable  # key -> params
    initial_carry: Callable  # () -> the carry at a trial boundary


@functools.lru_cache(maxsize=64)
def network_def(shape: NetworkShape) -> Network:
    """The pure functions of a network shape; cached, so agents built from it are shared.

    `unroll` is what the learner differentiates. For recurrent cores it is a `lax.scan` of `apply`
    in which the carry does not advance on invalid steps (exactly as in the rollout, where the agent
    is not fed after an early episode end); the transformer computes all steps at once with the
    same result.
    """
    module = pure_module(lambda rngs: RL2Network(shape, rngs=rngs))
    initial_carry = module.template.core.initial_carry
    apply = module.apply

    def scan_unroll(params, x_t, valid_t):
        def step(carry, inputs):
            x, ok = inputs
            next_carry, dist, value = apply(params, carry, x)
            carry = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), next_carry, carry)
            return carry, (dist, value)

        _, (dist, value) = jax.lax.scan(step, initial_carry(), (x_t, valid_t))
        return dist, value

    def parallel_unroll(params, x_t, valid_t):
        return apply(params, x_t, valid_t, method="sequence")

    unroll = parallel_unroll if hasattr(module.template.core, "sequence") else scan_unroll
    return Network(module.graphdef, apply, unroll, module.init_params, initial_carry)
