"""Sampling-based model-predictive planning over any model: random shooting and CEM.

A planner picks an action by trying action sequences of H steps in a model of the environment and
keeping the first action of the best one; called again at the next step it plans afresh (receding
horizon). The model is three closures over whatever they need (the true dynamics of a task, or a
learned network and its weights):

  dynamics(obs, action) -> next_obs
  reward(obs, action, next_obs) -> r              (scalar)
  terminated(obs, action, next_obs) -> bool       (optional: never, by default)

each written for ONE observation and ONE action; the planner `vmap`s them over candidates and
`scan`s them over the horizon. A sequence scores the (optionally discounted) sum of its rewards up
to and including the first step the model calls terminal (nothing counts after it).

Methods (`PlannerConfig.method`):
  'random'  random shooting (Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based Deep
            RL with Model-Free Fine-Tuning"; the controller of GrBAL, Nagabandi, Clavera et al. 2019,
            "Learning to Adapt in Dynamic, Real-World Environments through Meta-RL", code
            iclavera/learning_to_adapt, policies/mpc_controller.py `get_rs_action`): N sequences
            drawn uniformly (in the action box, or uniform action indices), the first action of
            the best one. No state is carried between calls.
  'cem'     the cross-entropy method (Rubinstein & Kroese 2004; as an MPC planner, PETS, Chua et
            al. 2018, and mbrl-lib's `CEMOptimizer`, Pineda et al. 2021): `iterations` rounds of
            drawing N sequences from a per-step distribution, keeping the `elites` best and
            refitting the distribution to them, each refit blended with the previous one by
            `smoothing` (GrBAL's and mbrl-lib's alpha). Continuous actions: independent Gaussians
            per step and action coordinate, samples clipped to the box, the standard deviation
            starting at `init_std` x the box's width at every call (PETS: variance (high - low)^2
            / 16, i.e. 0.25). Discrete actions: independent categorical distributions per step,
            refit to the elites' action frequencies. The returned action is the first of the best
            sequence evaluated in any round (mbrl-lib's default, not the final mean), and every
            round also evaluates the current mean (discrete: the most likely action per step) as
            one of its N candidates (a simplification of iCEM's kept elites, Pinneri et al. 2020),
            so with a deterministic model a warm-started plan is never lost.
            Warm start (`PlannerState`): the best sequence, shifted by one step, is the next call's
            initial mean (continuous; its last step the box's centre), or, for discrete actions,
            the next call's initial probabilities are half a one-hot of the shifted sequence and
            half uniform (the last step uniform), so a committed plan can still change.

Everything is pure and jit/vmap-friendly; `PlannerConfig` holds the static sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "METHODS", "ActionSpace", "Model", "Planner", "PlannerConfig", "PlannerState", "make_planner", "sequence_return",
    "sequence_returns",
]

METHODS = ("random", "cem")


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """Static settings of a planner (hashable: compiled programs close over it)."""

    method: str = "cem"
    """'random' (random shooting) or 'cem' (cross-entropy method)."""
    horizon: int = 20
    """H, the steps of every candidate action sequence."""
    candidates: int = 200
    """N, action sequences evaluated per round (random shooting has one round)."""
    iterations: int = 5
    """CEM rounds of sample, evaluate, refit (ignored by random shooting)."""
    elites: int = 20
    """CEM: the best sequences of a round the distribution is refit to (ignored by random shooting)."""
    smoothing: float = 0.1
    """CEM: weight of the previous distribution in each refit (0: the elites' fit alone)."""
    init_std: float = 0.25
    """CEM, continuous actions: the initial standard deviation as a fraction of the box's width."""
    discount: float = 1.0
    """Reward at step k of a sequence is weighted by discount^k (1: undiscounted, the default)."""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("horizon", "candidates", "iterations", "elites"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.method == "cem" and self.elites > self.candidates:
            raise ValueError(f"elites ({self.elites}) must be at most candidates ({self.candidates})")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing!r}")
        if not self.init_std > 0.0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {self.discount!r}")


class Model(NamedTuple):
    """What a planner plans in: closures for one observation and one action (module docstring)."""

    dynamics: Callable[[jax.Array, jax.Array], jax.Array]
    reward: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    terminated: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None


class ActionSpace(NamedTuple):
    """The actions a planner draws: a box (continuous; `low`, `high` tuples of D floats) or
    `num_actions` indices (discrete; `box` None). Hashable."""

    box: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    num_actions: int | None = None

    @property
    def continuous(self) -> bool:
        return self.box is not None

    @staticmethod
    def of(family: Any) -> ActionSpace:
        """The action space of a task family (`TaskFamily.action_box` / `num_actions`)."""
        if family.continuous:
            return ActionSpace(box=family.action_box())
        return ActionSpace(num_actions=family.num_actions)


class PlannerState(NamedTuple):
    """The warm start carried from one call of `plan` to the next (single planner, no batch axis).

    mean: continuous actions, float32 [H, D]: the initial Gaussian means of CEM's next call;
      discrete actions, float32 [H, A]: its initial categorical probabilities per step.
      Random shooting carries it unchanged.
    """

    mean: jax.Array


class Planner(NamedTuple):
    """Two pure functions (see `make_planner`).

    init() -> PlannerState
    plan(state, obs, key, model) -> (action, best_sequence [H, ...], best_return, next_state)
    """

    init: Callable[[], PlannerState]
    plan: Callable[..., tuple[jax.Array, jax.Array, jax.Array, PlannerState]]


def sequence_return(model: Model, obs: jax.Array, actions: jax.Array, discount: float = 1.0) -> jax.Array:
    """The model's return of one action sequence from `obs`.

    Args:
      model: the Model to roll out.
      obs: the start observation [*obs_shape].
      actions: [H, *action_shape].
      discount: weight discount^k on the reward of step k.

    Returns:
      Scalar: sum_k discount^k r_k over the steps up to and including the first terminal one.
    """

    def step(carry, action):
        obs, alive, weight = carry
        next_obs = model.dynamics(obs, action)
        reward = jnp.asarray(model.reward(obs, action, next_obs), jnp.float32)
        gained = jnp.where(alive, weight * reward, 0.0)
        if model.terminated is not None:
            alive = alive & ~jnp.asarray(model.terminated(obs, action, next_obs), bool)
        return (next_obs, alive, weight * discount), gained

    _, rewards = jax.lax.scan(step, (obs, jnp.bool_(True), jnp.float32(1.0)), actions)
    return rewards.sum()


def sequence_returns(model: Model, obs: jax.Array, actions: jax.Array, discount: float = 1.0) -> jax.Array:
    """`sequence_return` of N candidates at once: actions [N, H, *action_shape] -> returns [N]."""
    return jax.vmap(sequence_return, in_axes=(None, None, 0, None))(model, obs, actions, discount)


def _uniform_sequences(key, space: ActionSpace, shape: tuple[int, ...]) -> jax.Array:
    if space.continuous:
        low, high = (jnp.asarray(b, jnp.float32) for b in space.box)
        return jax.random.uniform(key, (*shape, low.shape[0]), jnp.float32, low, high)
    return jax.random.randint(key, shape, 0, space.num_actions, jnp.int32)


def make_planner(config: PlannerConfig, space: ActionSpace) -> Planner:
    """A planner of `config.method` over `space` (see the module docstring).

    Args:
      config: static sizes and settings.
      space: the action space (`ActionSpace.of(family)` for a task family's).

    Returns:
      Planner(init, plan). `plan(state, obs, key, model)` returns (the action to take, the best
      sequence [H, *action_shape], its return under the model, the next call's PlannerState).
      Call `plan` once per environment step with the state it returned last; start a new episode
      from `init()` or keep the state (a stale warm start costs nothing but a worse first guess).
    """
    horizon, num = config.horizon, config.candidates
    if space.continuous:
        low, high = (jnp.asarray(b, jnp.float32) for b in space.box)
        centre = 0.5 * (low + high)
        std0 = config.init_std * (high - low)
        shape0 = (horizon, low.shape[0])
    else:
        num_actions = space.num_actions
        uniform = jnp.full((num_actions,), 1.0 / num_actions, jnp.float32)
        shape0 = (horizon, num_actions)

    def init() -> PlannerState:
        if space.continuous:
            return PlannerState(jnp.broadcast_to(centre, shape0).astype(jnp.float32))
        return PlannerState(jnp.broadcast_to(uniform, shape0))

    def random_shooting(state, obs, key, model):
        sequences = _uniform_sequences(key, space, (num, horizon))
        returns = sequence_returns(model, obs, sequences, config.discount)
        best = jnp.argmax(returns)
        return sequences[best], returns[best], state

    def cem(state, obs, key, model):
        def sample(key, dist):
            if space.continuous:
                mean, std = dist
                noise = jax.random.normal(key, (num, *shape0), jnp.float32)
                draws = jnp.clip(mean + std * noise, low, high)
                return draws.at[0].set(jnp.clip(mean, low, high))
            draws = jax.random.categorical(key, jnp.log(dist), shape=(num, horizon))
            return draws.at[0].set(jnp.argmax(dist, axis=-1)).astype(jnp.int32)

        def refit(dist, elite):
            a = config.smoothing
            if space.continuous:
                mean, std = dist
                return (a * mean + (1 - a) * elite.mean(0), a * std + (1 - a) * elite.std(0))
            freq = jax.nn.one_hot(elite, num_actions, dtype=jnp.float32).mean(0)
            return a * dist + (1 - a) * freq

        def round_(carry, key):
            dist, best_seq, best_ret = carry
            sequences = sample(key, dist)
            returns = sequence_returns(model, obs, sequences, config.discount)
            top_returns, top = jax.lax.top_k(returns, config.elites)
            better = top_returns[0] > best_ret
            best_seq = jnp.where(better, sequences[top[0]], best_seq)
            best_ret = jnp.where(better, top_returns[0], best_ret)
            return (refit(dist, sequences[top]), best_seq, best_ret), None

        if space.continuous:
            dist = (state.mean, jnp.broadcast_to(std0, shape0))
            seq0 = jnp.zeros(shape0, jnp.float32)
        else:
            dist = state.mean
            seq0 = jnp.zeros((horizon,), jnp.int32)
        keys = jax.random.split(key, config.iterations)
        (_, best_seq, best_ret), _ = jax.lax.scan(round_, (dist, seq0, jnp.float32(-jnp.inf)), keys)
        # Warm start: the best sequence shifted by one step (module docstring).
        if space.continuous:
            mean = jnp.concatenate([best_seq[1:], centre[None]], axis=0)
        else:
            committed = 0.5 * jax.nn.one_hot(best_seq[1:], num_actions, dtype=jnp.float32) + 0.5 * uniform
            mean = jnp.concatenate([committed, uniform[None]], axis=0)
        return best_seq, best_ret, PlannerState(mean)

    search = random_shooting if config.method == "random" else cem

    def plan(state: PlannerState, obs: jax.Array, key: jax.Array, model: Model):
        best_seq, best_ret, state = search(state, obs, key, model)
        return best_seq[0], best_seq, best_ret, state

    return Planner(init, plan)
