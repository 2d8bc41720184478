"""The tanh-squashed Gaussian policy of soft actor-critic (SAC, PEARL), and a plain MLP on a dict of
arrays for the policy, Q and V networks of off-policy learners.

A SAC policy draws a pre-tanh value u ~ N(mean, std) and acts a = tanh(u), so every action lies in
(-1, 1) (the caller maps the box onto the environment's bounds). Its density follows from the
change of variables a = tanh(u), da/du = 1 - tanh(u)^2, per action dimension:

    log pi(a) = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2).

The correction is computed as log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), which is exact
and finite for every u. The direct form log(1 - a^2) loses every digit once tanh(u) rounds to +-1
in float32 (|u| beyond about 9); rlkit adds 1e-6 inside that log, which bounds the error but biases
the density of actions near the edge of the box.

`TanhGaussian` keeps the pre-tanh `mean` and `log_std`, which SAC's policy loss regularises
(oyster: 1e-3 * mean^2 and 1e-3 * log_std^2, see `rl.sac.policy_loss`). Like the distributions in
`nets.heads`, it describes one action [D]; `vmap` for batches (the methods also accept leading
axes, reducing over the last one).

`init_mlp` / `mlp` use the parameter layout of `nets.mlp` (`{"w0", "b0", ..., "wL", "bL"}`) with
rlkit's initialisation for SAC networks; `tanh_gaussian_head` turns a network's [2D] output into
the policy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.nets.mlp import mlp  # noqa: F401  (re-exported: the apply of init_mlp's params)

# The range oyster clamps the policy's log standard deviation to (rlkit/torch/sac/policies.py,
# LOG_SIG_MIN and LOG_SIG_MAX): exp(2) ~ 7.4 is already wide in pre-tanh units, and exp(-20) keeps
# the density finite.
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0

# `TanhGaussian.log_prob` clips given actions to +-ACTION_CLIP before atanh, so that actions on the
# boundary of the box (a replayed action of exactly +-1, or one that float32 rounded there) have a
# finite density. atanh(1 - 1e-6) ~ 7.25: a pre-tanh value beyond that is read as 7.25.
ACTION_CLIP = 1.0 - 1e-6

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_tanh_jacobian(u: jax.Array) -> jax.Array:
    """log(1 - tanh(u)^2) = log |d tanh(u)/du|, elementwise, in a form finite for every u."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


class TanhGaussian(NamedTuple):
    """a = tanh(u) with u ~ N(mean, exp(log_std)^2), independent per action dimension.

    `mean` and `log_std` are the pre-tanh Gaussian's; build it with `tanh_gaussian_head`, which
    clamps `log_std` to [LOG_STD_MIN, LOG_STD_MAX] as oyster does.
    """

    mean: jax.Array  # [D] pre-tanh
    log_std: jax.Array  # [D] pre-tanh

    def sample_pre_tanh(self, key: jax.Array) -> jax.Array:
        """u ~ N(mean, std) [D], reparameterised (differentiable in `mean` and `log_std`)."""
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def log_prob_pre_tanh(self, u: jax.Array) -> jax.Array:
        """log pi(tanh(u)): the density of the action tanh(u), from its pre-tanh value (exact)."""
        z = (u - self.mean) * jnp.exp(-self.log_std)
        log_normal = -0.5 * z**2 - self.log_std - _LOG_SQRT_2PI
        return jnp.sum(log_normal - log_tanh_jacobian(u), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """A squashed action in (-1, 1)^D (float32 may round it to +-1)."""
        return jnp.tanh(self.sample_pre_tanh(key))

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(action [D], log pi(action)), reparameterised: what SAC's V target and policy loss use.

        The density is computed from the pre-tanh draw, so it is exact even where tanh rounds the
        action to +-1 (unlike `log_prob` of the returned action)."""
        u = self.sample_pre_tanh(key)
        return jnp.tanh(u), self.log_prob_pre_tanh(u)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log pi(action) of a given squashed action [D] (e.g. one read from a replay buffer).

        The action is clipped to +-ACTION_CLIP before atanh so that the result stays finite on the
        boundary of the box; for actions whose pre-tanh value was beyond atanh(ACTION_CLIP) it is
        the density at the clipped point. For the policy's own draws use `sample_and_log_prob`.
        """
        u = jnp.arctanh(jnp.clip(action, -ACTION_CLIP, ACTION_CLIP))
        return self.log_prob_pre_tanh(u)

    def mode(self) -> jax.Array:
        """tanh(mean): the deterministic action SAC and PEARL evaluate with. It is the median of
        the action (tanh is monotone), not the density's maximum, which for a wide pre-tanh
        Gaussian lies near the edges of the box."""
        return jnp.tanh(self.mean)


def tanh_gaussian_head(out: jax.Array, log_std_min: float = LOG_STD_MIN,
                       log_std_max: float = LOG_STD_MAX) -> TanhGaussian:
    """The policy from a network's output [..., 2D]: the first D entries are the pre-tanh mean,
    the last D the log standard deviation, clamped to [log_std_min, log_std_max].

    oyster's policy has two output layers (mean and log-std) on the last hidden layer, both
    initialised uniformly in +-1e-3; one layer of 2D outputs initialised so (`init_mlp(...,
    final_scale=1e-3)`) is the same network. The clamp passes no gradient outside the range,
    as torch.clamp's.
    """
    d = out.shape[-1] // 2
    if out.shape[-1] != 2 * d:
        raise ValueError(f"tanh_gaussian_head needs an even output size (mean and log-std), got {out.shape[-1]}")
    return TanhGaussian(out[..., :d], jnp.clip(out[..., d:], log_std_min, log_std_max))


def init_mlp(key: jax.Array, sizes: tuple[int, ...], *, final_scale: float = 3e-3,
             hidden_bias: float = 0.1) -> dict[str, jax.Array]:
    """rlkit's initialisation of SAC networks (oyster rlkit/torch/networks.py `Mlp`), in the
    parameter layout of `nets.mlp` (`{"w0", "b0", ..., "wL", "bL"}`, w_i of shape [in, out]).

    Hidden layers: weights uniform in +-1/sqrt(fan-in) (the DDPG initialisation) and biases
    `hidden_bias`; last layer: weights and biases uniform in +-`final_scale`, so the first Q and V
    values are near 0 and the first policy is near tanh(N(0, 1)). oyster uses 3e-3 for Q, V and
    the encoder and 1e-3 for the policy.

    rlkit's `fanin_init` reads the first dimension of torch's [out, in] weight, so its
    bound is 1/sqrt(fan-out); the layers differ only where a layer's input and output sizes differ
    (the first, for equal hidden sizes). We use the fan-in the initialisation is named after.

    Args:
      sizes: (input size, hidden sizes..., output size).
      final_scale: half-width of the last layer's uniform weights and biases.
      hidden_bias: the hidden layers' initial bias.
    """
    if len(sizes) < 2:
        raise ValueError(f"init_mlp needs at least an input and an output size, got sizes={sizes}")
    params = {}
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    last = len(sizes) - 2
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        key_w, key_b = keys[2 * i], keys[2 * i + 1]
        if i == last:
            params[f"w{i}"] = jax.random.uniform(key_w, (n_in, n_out), jnp.float32, -final_scale, final_scale)
            params[f"b{i}"] = jax.random.uniform(key_b, (n_out,), jnp.float32, -final_scale, final_scale)
        else:
            bound = 1.0 / math.sqrt(n_in)
            params[f"w{i}"] = jax.random.uniform(key_w, (n_in, n_out), jnp.float32, -bound, bound)
            params[f"b{i}"] = jnp.full((n_out,), hidden_bias, jnp.float32)
    return params
