"""A feed-forward policy whose parameters are a plain dict of arrays.

Gradient-based meta-RL differentiates *through* parameter updates (phi = theta - alpha * grad L),
adds, scales and flattens parameters, and takes Hessian-vector products in parameter space: a flat
dict of arrays keeps all of that ordinary `jax` code, with no module objects in the way.

`params = {"w0", "b0", ..., "wL", "bL"}` (+ `"log_std"` [D] for a Gaussian policy). Single stream:
one observation in, one distribution out; `vmap` (or leading batch axes, which every function here
accepts) for batches.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from metarlkit.nets.heads import Categorical, DiagGaussian

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def init_mlp_policy(key: jax.Array, obs_size: int, hidden: tuple[int, ...], num_outputs: int, *,
                    continuous: bool, init_log_std: float = 0.0, bias_input: int = 0) -> dict[str, jax.Array]:
    """Glorot-uniform weights and zero biases (as pytorch-maml-rl's policies); a state-independent
    log standard deviation `init_log_std` for a Gaussian policy.

    Args:
      obs_size: flattened observation size.
      hidden: units of each hidden layer, e.g. (64, 64).
      num_outputs: discrete actions (logits), or the action dimension D of a Gaussian.
      continuous: add the Gaussian's `log_std` parameter.
      bias_input: size of a learnt input vector `bias_input` (initialised to ones) read beside the
        observation by the first layer: the "bias transformation" (Finn, Yu et al. 2017), which
        gives an inner gradient step a direct handle on the first layer's bias (GMPS); 0: none.
    """
    sizes = (obs_size + bias_input, *hidden, num_outputs)
    params = {}
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        limit = math.sqrt(6.0 / (n_in + n_out))
        params[f"w{i}"] = jax.random.uniform(keys[i], (n_in, n_out), jnp.float32, -limit, limit)
        params[f"b{i}"] = jnp.zeros((n_out,), jnp.float32)
    if continuous:
        params["log_std"] = jnp.full((num_outputs,), init_log_std, jnp.float32)
    if bias_input:
        params["bias_input"] = jnp.ones((bias_input,), jnp.float32)
    return params


def num_layers(params: dict) -> int:
    return sum(1 for name in params if name.startswith("w"))


def mlp(params: dict[str, jax.Array], x: jax.Array, activation: str = "relu") -> jax.Array:
    """The network's output [..., out] at x [..., in]: the affine layers `w0, b0, ...` with
    `activation` between them and none after the last; a `bias_input` vector, when the params
    have one, is appended to every input (`init_mlp_policy`)."""
    act = ACTIVATIONS[activation]
    h = x.astype(jnp.float32)
    if "bias_input" in params:
        extra = params["bias_input"]
        h = jnp.concatenate([h, jnp.broadcast_to(extra, h.shape[:-1] + extra.shape)], axis=-1)
    n = num_layers(params)
    for i in range(n):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < n - 1:
            h = act(h)
    return h


def mlp_policy(params: dict, obs: jax.Array, activation: str = "tanh", min_log_std: float = -20.0):
    """The policy's distribution at `obs` ([..., obs_size] -> leaves [..., A]).

    A Gaussian (mean = the last layer's output, std = exp(log_std), clipped below at
    exp(min_log_std)) when `params` has `log_std`, else a categorical over the last layer's logits.
    """
    h = mlp(params, obs, activation)
    if "log_std" in params:
        log_std = jnp.maximum(params["log_std"], min_log_std)
        return DiagGaussian(h, jnp.broadcast_to(log_std, h.shape))
    return Categorical(h)


def env_action(u: jax.Array, bounds: tuple | None, normalize: bool = True) -> jax.Array:
    """The environment's action for the policy's `u`: with `normalize` the affine map of [-1, 1]
    onto the box `bounds` = (low, high) (rllab's `normalize`; the environment still clips), else
    (or for discrete actions, `bounds` None) `u` itself."""
    if bounds is None or not normalize:
        return u
    low, high = (jnp.asarray(b, jnp.float32) for b in bounds)
    return low + (u + 1.0) * (0.5 * (high - low))


def policy_action(a: jax.Array, bounds: tuple | None, normalize: bool = True) -> jax.Array:
    """The policy's `u` for the environment's action `a`: the inverse of `env_action` (an
    expert's action in the units the policy acts in)."""
    if bounds is None or not normalize:
        return a
    low, high = (jnp.asarray(b, jnp.float32) for b in bounds)
    return (a - low) / (0.5 * (high - low)) - 1.0
