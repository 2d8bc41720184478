"""GrBAL's dynamics model: an MLP predicting the normalised state change, adapted by one SGD step.

Following the reference code of Nagabandi, Clavera et al. 2019 ("Learning to Adapt in Dynamic,
Real-World Environments through Meta-Reinforcement Learning"; iclavera/learning_to_adapt,
learning_to_adapt/dynamics/meta_mlp_dynamics.py):

- the network maps the normalised observation and action, ((s - mu_s) / sd_s, (a - mu_a) / sd_a),
  to the normalised change (s' - s - mu_d) / sd_d; the statistics are the data's means and
  standard deviations, refitted whenever the model is fitted (`compute_normalization`; 1e-10 is
  added to each standard deviation, as there);
- the loss is the mean squared error of the normalised change, over transitions and observation
  coordinates (`self.loss`);
- adaptation is one plain gradient step on that loss over the last M transitions,
  theta' = theta - alpha * grad L_M(theta) (`_adapt_sym`, a `GradientDescentOptimizer` with
  `inner_learning_rate`), and meta-training minimises the loss of the adapted parameters on the K
  transitions that follow, by Adam (`post_loss`, `train_op`).

Parameters are a plain dict (`nets.mlp`), so the step is ordinary `jax` code. Single stream;
arrays of transitions carry a leading axis [N] and an optional weight per transition (0 leaves a
padded row out of the loss).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.nets.mlp import init_mlp_policy, mlp

EPS = 1e-10  # added to every standard deviation, as the reference's normalize / denormalize


class Normalizer(NamedTuple):
    """Means and standard deviations of observations, actions and state changes (each [dim])."""

    obs_mean: jax.Array
    obs_std: jax.Array
    act_mean: jax.Array
    act_std: jax.Array
    delta_mean: jax.Array
    delta_std: jax.Array


def identity_normalizer(obs_size: int, act_size: int) -> Normalizer:
    zeros, ones = jnp.zeros, jnp.ones
    return Normalizer(zeros(obs_size), ones(obs_size), zeros(act_size), ones(act_size), zeros(obs_size),
                      ones(obs_size))


def fit_normalizer(obs: jax.Array, act: jax.Array, next_obs: jax.Array, weight: jax.Array) -> Normalizer:
    """The weighted means and standard deviations over transitions [N, ...] (rows of weight 0 out)."""
    w = weight.astype(jnp.float32)
    total = jnp.maximum(jnp.sum(w), 1.0)

    def stats(x):
        mean = jnp.sum(w[:, None] * x, axis=0) / total
        var = jnp.sum(w[:, None] * (x - mean) ** 2, axis=0) / total
        return mean, jnp.sqrt(var)

    obs_mean, obs_std = stats(obs)
    act_mean, act_std = stats(act)
    delta_mean, delta_std = stats(next_obs - obs)
    return Normalizer(obs_mean, obs_std, act_mean, act_std, delta_mean, delta_std)


def init_model(key: jax.Array, obs_size: int, act_size: int, hidden: tuple[int, ...]) -> dict[str, jax.Array]:
    """Glorot-uniform weights and zero biases (the reference's `MLP` layers use TensorFlow's
    default Glorot-uniform initialiser) from (observation, action) to the change of observation."""
    return init_mlp_policy(key, obs_size + act_size, hidden, obs_size, continuous=False)


def predict_delta(params, norm: Normalizer, obs: jax.Array, act: jax.Array, activation: str = "relu") -> jax.Array:
    """The normalised change the network predicts at (obs [..., O], act [..., A])."""
    x = jnp.concatenate([(obs - norm.obs_mean) / (norm.obs_std + EPS), (act - norm.act_mean) / (norm.act_std + EPS)],
                        axis=-1)
    return mlp(params, x, activation)


def predict_next(params, norm: Normalizer, obs: jax.Array, act: jax.Array, activation: str = "relu") -> jax.Array:
    """The predicted next observation: obs + the de-normalised change."""
    return obs + predict_delta(params, norm, obs, act, activation) * (norm.delta_std + EPS) + norm.delta_mean


def loss(params, norm: Normalizer, obs, act, next_obs, weight=None, activation: str = "relu") -> jax.Array:
    """Mean squared error of the normalised change over the weighted transitions [N, ...] and the
    observation coordinates."""
    target = (next_obs - obs - norm.delta_mean) / (norm.delta_std + EPS)
    err = jnp.mean((predict_delta(params, norm, obs, act, activation) - target) ** 2, axis=-1)
    if weight is None:
        return jnp.mean(err)
    w = weight.astype(jnp.float32)
    return jnp.sum(w * err) / jnp.maximum(jnp.sum(w), 1.0)


def adapt(params, norm: Normalizer, obs, act, next_obs, weight, step_size: float, activation: str = "relu"):
    """One SGD step on the loss of the transitions [M, ...]: theta - step_size * grad L_M(theta)."""
    grads = jax.grad(loss)(params, norm, obs, act, next_obs, weight, activation)
    return jax.tree_util.tree_map(lambda p, g: p - step_size * g, params, grads)


class Window(NamedTuple):
    """M + K consecutive transitions of one episode: the first M adapt, the next K score."""

    obs: jax.Array  # [M + K, O]
    act: jax.Array  # [M + K, A]
    next_obs: jax.Array  # [M + K, O]


def meta_loss(params, norm: Normalizer, window: Window, adapt_steps: int, step_size: float,
              activation: str = "relu") -> jax.Array:
    """The loss on the last K transitions of the model adapted on the first M (`adapt_steps`)."""
    m = adapt_steps
    adapted = adapt(params, norm, window.obs[:m], window.act[:m], window.next_obs[:m], None, step_size, activation)
    return loss(adapted, norm, window.obs[m:], window.act[m:], window.next_obs[m:], None, activation)


def plain_loss(params, norm: Normalizer, window: Window, activation: str = "relu") -> jax.Array:
    """The unadapted loss over all of a window's transitions (the MB baseline's objective, and the
    reference's validation loss)."""
    return loss(params, norm, window.obs, window.act, window.next_obs, None, activation)


class Dynamics(NamedTuple):
    """A model family behind one interface (`make_dynamics`), single stream:

    init(key) -> params
    adapt(params, norm, obs [M, O], act [M, A], next_obs [M, O], weight [M] | None) -> adapted:
        what predictions use after reading the window (GrBAL: the parameters after one SGD step;
        ReBAL: the parameters and the recurrent summary of the window)
    unadapted(params) -> adapted: before any transition (GrBAL: the parameters; ReBAL: a zero summary)
    predict_next(adapted, norm, obs [..., O], act [..., A]) -> next observation [..., O]
    window_loss(params, norm, window) -> the meta-training loss of one window of M + K
    valid_loss(params, norm, window) -> the validation loss of one window
    """

    init: object
    adapt: object
    unadapted: object
    predict_next: object
    window_loss: object
    valid_loss: object


def make_dynamics(kind: str, obs_size: int, act_size: int, hidden: tuple[int, ...], activation: str,
                  adapt_steps: int, step_size: float, meta: bool, core_size: int = 0,
                  validate_adapted: bool = False) -> Dynamics:
    """'mlp' (GrBAL; with `meta` false, MB: fitted on whole windows, never adapted in training) or
    'recurrent' (ReBAL: a GRU reads the window of M transitions, and an MLP predicts from the
    observation, the action and the GRU's last output). GrBAL validates the unadapted loss, or
    with `validate_adapted` its training loss."""
    m = adapt_steps
    if kind == "mlp":
        def window_loss(params, norm, window):
            if meta:
                return meta_loss(params, norm, window, m, step_size, activation)
            return plain_loss(params, norm, window, activation)

        return Dynamics(
            init=lambda key: init_model(key, obs_size, act_size, hidden),
            adapt=lambda params, norm, obs, act, next_obs, weight: adapt(params, norm, obs, act, next_obs, weight,
                                                                         step_size, activation),
            unadapted=lambda params: params,
            predict_next=lambda adapted, norm, obs, act: predict_next(adapted, norm, obs, act, activation),
            window_loss=window_loss,
            valid_loss=(window_loss if meta and validate_adapted
                        else lambda params, norm, window: plain_loss(params, norm, window, activation)),
        )
    if kind != "recurrent":
        raise ValueError(f"model must be 'mlp' or 'recurrent', got {kind!r}")
    return _recurrent(obs_size, act_size, hidden, activation, m, core_size)


def _recurrent(obs_size: int, act_size: int, hidden: tuple[int, ...], activation: str, m: int,
               core_size: int) -> Dynamics:
    """ReBAL's model (Nagabandi, Clavera et al. 2019, Section 4.2: the update rule is a recurrent
    network over the past M transitions). The GRU reads each transition's normalised observation,
    action and change; its output after the window conditions the prediction of the next ones."""
    from metarlkit.nets.pure import pure_module
    from metarlkit.nets.recurrent import RecurrentCore

    core = pure_module(lambda rngs: RecurrentCore("gru", 2 * obs_size + act_size, core_size, rngs=rngs))

    def init(key):
        key_core, key_head = jax.random.split(key)
        head = init_mlp_policy(key_head, obs_size + act_size + core_size, hidden, obs_size, continuous=False)
        return {"core": core.init_params(key_core), "head": head}

    def features(norm, obs, act, next_obs):
        return jnp.concatenate([(obs - norm.obs_mean) / (norm.obs_std + EPS), (act - norm.act_mean) / (norm.act_std + EPS),
                                (next_obs - obs - norm.delta_mean) / (norm.delta_std + EPS)], axis=-1)

    def summary(params, norm, obs, act, next_obs, weight):
        x = features(norm, obs, act, next_obs)
        w = jnp.ones(x.shape[:1], bool) if weight is None else weight
        carry = core.apply(params["core"], method="initial_carry")

        def step(c, xw):
            xi, wi = xw
            new, _ = core.apply(params["core"], c, xi)
            return jnp.where(wi, new, c), None

        carry, _ = jax.lax.scan(step, carry, (x, w))
        return carry

    def predict_delta_h(head, norm, h, obs, act):
        x = jnp.concatenate([(obs - norm.obs_mean) / (norm.obs_std + EPS), (act - norm.act_mean) / (norm.act_std + EPS),
                             jnp.broadcast_to(h, obs.shape[:-1] + h.shape)], axis=-1)
        return mlp(head, x, activation)

    def adapt_fn(params, norm, obs, act, next_obs, weight):
        return {"head": params["head"], "h": summary(params, norm, obs, act, next_obs, weight)}

    def unadapted(params):
        return {"head": params["head"], "h": jnp.zeros((core_size,), jnp.float32)}

    def predict(adapted, norm, obs, act):
        delta = predict_delta_h(adapted["head"], norm, adapted["h"], obs, act)
        return obs + delta * (norm.delta_std + EPS) + norm.delta_mean

    def loss_after(adapted, norm, obs, act, next_obs):
        target = (next_obs - obs - norm.delta_mean) / (norm.delta_std + EPS)
        return jnp.mean((predict_delta_h(adapted["head"], norm, adapted["h"], obs, act) - target) ** 2)

    def window_loss(params, norm, window):
        adapted = adapt_fn(params, norm, window.obs[:m], window.act[:m], window.next_obs[:m], None)
        return loss_after(adapted, norm, window.obs[m:], window.act[m:], window.next_obs[m:])

    return Dynamics(init=init, adapt=adapt_fn, unadapted=unadapted, predict_next=predict, window_loss=window_loss,
                    valid_loss=window_loss)
