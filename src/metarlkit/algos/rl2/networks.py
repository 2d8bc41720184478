"""The RL2 network: inputs (obs, previous action, previous reward, done) -> recurrent core -> heads."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from metarlkit.nets.heads import Categorical
from metarlkit.nets.recurrent import RecurrentCore


def input_size(obs_size: int, num_actions: int, time_input: bool) -> int:
    """obs + one-hot previous action + previous reward + done flag (+ trial fraction)."""
    return obs_size + num_actions + 2 + int(time_input)


def encode(obs, prev_action, prev_reward, prev_done, trial_fraction, num_actions: int, time_input: bool):
    """The network input of one step ([D] float32).

    At the first step of a trial the previous action is all zeros (no action yet), the previous
    reward 0 and the done flag 0. `prev_done` is 1 when the previous step ended an episode: the agent
    is told the episode boundary, but its hidden state is not reset (only trial boundaries reset it).
    """
    parts = [
        jnp.ravel(obs).astype(jnp.float32),
        jax.nn.one_hot(prev_action, num_actions) * (prev_action >= 0),
        jnp.reshape(prev_reward, (1,)).astype(jnp.float32),
        jnp.reshape(prev_done, (1,)).astype(jnp.float32),
    ]
    if time_input:
        parts.append(jnp.reshape(trial_fraction, (1,)).astype(jnp.float32))
    return jnp.concatenate(parts)


class RL2Network(nnx.Module):
    """Recurrent core with a categorical policy head and a value head, both linear in the output."""

    def __init__(self, in_features: int, num_actions: int, core: str, hidden_size: int, *, rngs: nnx.Rngs):
        self.core = RecurrentCore(core, in_features, hidden_size, rngs=rngs)
        # Small initial policy weights: a near-uniform policy at the start explores every arm.
        self.policy = nnx.Linear(hidden_size, num_actions, kernel_init=nnx.initializers.orthogonal(0.01), rngs=rngs)
        self.value = nnx.Linear(hidden_size, 1, kernel_init=nnx.initializers.orthogonal(1.0), rngs=rngs)

    def __call__(self, carry, x):
        """One step: (carry, x [D]) -> (carry, Categorical, value [])."""
        carry, h = self.core(carry, x)
        return carry, Categorical(self.policy(h)), self.value(h)[0]


@functools.lru_cache(maxsize=64)
def network_def(in_features: int, num_actions: int, core: str, hidden_size: int):
    """(graphdef, apply, init_params) for a network shape; cached so agents built from it are shared.

    apply(params, carry, x) -> (carry, dist, value) and init_params(key) -> params are pure.
    """
    template = nnx.eval_shape(lambda: RL2Network(in_features, num_actions, core, hidden_size, rngs=nnx.Rngs(0)))
    graphdef, _ = nnx.split(template)

    def apply(params, carry, x):
        return nnx.merge(graphdef, params)(carry, x)

    def init_params(key):
        net = RL2Network(in_features, num_actions, core, hidden_size, rngs=nnx.Rngs(params=key))
        return nnx.split(net)[1]

    return graphdef, apply, init_params, template.core.initial_carry
