"""The RL2 network: inputs (obs, previous action, previous reward, done) -> recurrent core -> heads."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from metarlkit.nets.heads import PolicyHead
from metarlkit.nets.recurrent import RecurrentCore


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


class RL2Network(nnx.Module):
    """Recurrent core with a policy head (categorical or diagonal Gaussian) and a value head, both
    linear in the core's output."""

    def __init__(self, in_features: int, num_actions: int, core: str, hidden_size: int, embed_size: int = 0,
                 continuous: bool = False, head_size: int = 0, *, rngs: nnx.Rngs):
        # An optional ReLU layer in front of the core: its units can detect conjunctions of inputs
        # (this state and that action), which a recurrent cell's input transform, linear in x, cannot.
        self.embed = nnx.Linear(in_features, embed_size, rngs=rngs) if embed_size else None
        self.core = RecurrentCore(core, embed_size or in_features, hidden_size, rngs=rngs)
        # An optional ReLU layer on the core's output and the step's input, shared by both heads:
        # it can read the part of the memory that concerns the current observation (a product of
        # the two), which heads linear in the core's output cannot.
        self.head = nnx.Linear(hidden_size + in_features, head_size, rngs=rngs) if head_size else None
        features = head_size or hidden_size
        # Small initial policy weights: a near-uniform policy (or a zero-mean Gaussian with unit
        # standard deviation) at the start explores every action.
        self.policy = PolicyHead(features, num_actions, continuous=continuous, rngs=rngs)
        self.value = nnx.Linear(features, 1, kernel_init=nnx.initializers.orthogonal(1.0), rngs=rngs)

    def __call__(self, carry, x):
        """One step: (carry, x [D]) -> (carry, Categorical or DiagGaussian, value [])."""
        inputs = x
        if self.embed is not None:
            x = jax.nn.relu(self.embed(x))
        carry, h = self.core(carry, x)
        if self.head is not None:
            h = jax.nn.relu(self.head(jnp.concatenate([h, inputs])))
        return carry, self.policy(h), self.value(h)[0]


@functools.lru_cache(maxsize=64)
def network_def(in_features: int, num_actions: int, core: str, hidden_size: int, embed_size: int = 0,
                continuous: bool = False, head_size: int = 0):
    """(graphdef, apply, init_params, initial_carry) for a network shape; cached so agents built from
    it are shared.

    apply(params, carry, x) -> (carry, dist, value) and init_params(key) -> params are pure.
    """
    def build(rngs):
        return RL2Network(in_features, num_actions, core, hidden_size, embed_size, continuous, head_size, rngs=rngs)

    template = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    graphdef, _ = nnx.split(template)

    def apply(params, carry, x):
        return nnx.merge(graphdef, params)(carry, x)

    def init_params(key):
        return nnx.split(build(nnx.Rngs(params=key)))[1]

    return graphdef, apply, init_params, template.core.initial_carry
