"""`posterior-sampling`: exact posterior sampling over goals on the sparse point robot.

The reference that PEARL's exploration is judged against (Rakelly et al. 2019, "Efficient
Off-Policy Meta-Reinforcement Learning via Probabilistic Context Variables", sections 4-5: sample a
task hypothesis from the posterior once per episode, act optimally for it). On
`point-navigation:variant=sparse` (`goals=random` or `goals=oyster`) the agent knows the goal prior
(an angle uniform on [0, pi] on the circle of radius 1) and the reward (1 - distance within 0.2 of
the goal, 0 elsewhere), so the posterior needs no learning:

- Hypotheses are GRID_SIZE cells of the arc: cell i holds the goals at angles within half a spacing
  of theta_i = i pi / (GRID_SIZE - 1). Rewards are deterministic, so the posterior is the prior
  restricted to the cells not ruled out: uniform over them (a bool mask in the state).
- A step ending at position p (the transition's `next_obs`: the environment scores the position
  after the step) with reward 0 rules out the cells all of whose goals lie within 0.2 of p; with
  reward r > 0 it rules out the cells holding no goal at distance 1 - r from p. A cell is ruled out
  only when every goal in it is (the cell's half-width and a float margin are added to the tests,
  `consistent`), so the cell of the true goal is never ruled out; once a positive reward is seen,
  the remaining cells are those at the right distance from every rewarded position (a few cells
  around the goal, or two mirror-image groups until a second position separates them).
- At the start of every episode (and at the trial's start) the agent draws one cell uniformly
  from those remaining (its key) and drives toward the cell's centre with the family's optimal
  task-aware controller (`oracle_action`: each coordinate toward the goal by min(0.1, remaining)).
- `resample` (a fixed default, set it in the spec): 'step' (default) draws a new cell at the next
  step once the current one is ruled out, so one episode can visit several hypotheses (the stronger
  agent); 'episode' keeps the draw for the whole episode, as PEARL holds its z, and after ruling
  its goal out drives on to it anyway.

If floating-point error ever emptied the set, draws fall back to the whole prior. Measured success
per episode: docs/baselines.md.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.agents import AdaptiveAgent
from metarlkit.baselines.core import Baseline, Knob, no_params, register
from metarlkit.tasks.base import TaskFamily
from metarlkit.tasks.navigation import SPARSE_GOAL_RADIUS, SPARSE_RADIUS

GRID_SIZE = 512  # goal-angle cells on [0, pi]: cell i is centred at i pi / (GRID_SIZE - 1)
CELL_HALF_WIDTH = np.pi / (2 * (GRID_SIZE - 1))  # half a cell, as an arc length: >= any chord inside it
MARGIN = 1e-4  # float32 slack on every distance test (positions and rewards carry ~1e-6 rounding)
RESAMPLE = ("step", "episode")
FAMILY, VARIANT = "point-navigation", "sparse"


class PosteriorSamplingState(NamedTuple):
    """The remaining hypotheses and the one being followed (single task, no batch axis)."""

    alive: jax.Array  # bool [GRID_SIZE]: cells not ruled out by any reward seen in this trial
    target: jax.Array  # int32, the cell drawn for the current episode


def grid_goals() -> jax.Array:
    """The centres of the goal cells, float32 [GRID_SIZE, 2] on the circle of radius 1."""
    angles = np.linspace(0.0, np.pi, GRID_SIZE)
    return jnp.asarray(SPARSE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1), jnp.float32)


def consistent(goals: jax.Array, position: jax.Array, reward: jax.Array) -> jax.Array:
    """Which cells may still hold the goal after `reward` was received at `position`.

    A goal g in cell i (centre c_i) has |p - g| within CELL_HALF_WIDTH of |p - c_i|, so:
      reward 0 (the goal is farther than 0.2 from p): the cell stays unless
        |p - c_i| + half-width + margin <= 0.2;
      reward r > 0 (the goal is at distance 1 - r from p): the cell stays if
        | |p - c_i| - (1 - r) | <= half-width + margin.

    Args:
      goals: [G, 2] cell centres.
      position: [2] the position the reward was computed at (after the step).
      reward: scalar sparse reward.

    Returns:
      bool [G].
    """
    distance = jnp.sqrt(jnp.sum((goals - position) ** 2, axis=-1))
    slack = CELL_HALF_WIDTH + MARGIN
    far_enough = distance + slack > SPARSE_GOAL_RADIUS
    at_distance = jnp.abs(distance - (1.0 - reward)) <= slack
    return jnp.where(reward > 0.0, at_distance, far_enough)


def draw(key: jax.Array, alive: jax.Array) -> jax.Array:
    """A cell uniformly among those alive (among all if none is: see the module docstring)."""
    alive = jnp.where(jnp.any(alive), alive, True)
    return jax.random.categorical(key, jnp.where(alive, 0.0, -jnp.inf)).astype(jnp.int32)


@functools.lru_cache(maxsize=8)
def posterior_sampling_agent(family: TaskFamily, resample: str) -> AdaptiveAgent:
    """The agent of the module docstring on the sparse point robot `family`."""
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLE)}, got {resample!r}")
    goals = grid_goals()

    def init(params, key, num_episodes):
        del params, num_episodes
        alive = jnp.ones(GRID_SIZE, bool)
        return PosteriorSamplingState(alive, draw(key, alive))

    def act(params, state, obs, key):
        del params
        target = state.target
        if resample == "step":
            target = jnp.where(state.alive[target], target, draw(key, state.alive))
        action = family.oracle_action({"goal": goals[target]}, obs, None)
        return action, state._replace(target=target)

    def observe(params, state, transition):
        del params
        # ATTENTION: the reward is that of the position after the step, i.e. `next_obs`.
        keep = consistent(goals, transition.next_obs, transition.reward)
        return state._replace(alive=state.alive & keep)

    def end_episode(params, state, episode_index, key):
        del params, episode_index
        # Posterior sampling: a fresh hypothesis for every episode; what was learnt (alive) stays
        # for the rest of the trial.
        return state._replace(target=draw(key, state.alive))

    return AdaptiveAgent(init, act, observe, end_episode)


def build(family: TaskFamily, num_episodes: int, knobs) -> AdaptiveAgent:
    del num_episodes
    (resample,) = knobs["resample"]  # a fixed knob: one supported value
    return posterior_sampling_agent(family, resample)


def supports(family: TaskFamily) -> str | None:
    if family.name != FAMILY:
        return (f"it samples goals of the sparse point robot; use it on {FAMILY}:variant={VARIANT} "
                "(goals=random or goals=oyster)")
    if family.variant != VARIANT:
        return (f"it samples goals of the sparse point robot, not variant={family.variant}; "
                f"use variant={VARIANT} (goals=random or goals=oyster)")
    return None


KNOBS = {
    "resample": Knob(str, (RESAMPLE[0],), 0, 0,
                     "'step': draw a new goal as soon as the current one is ruled out; 'episode': keep it "
                     "for the whole episode (as PEARL holds z)", choices=RESAMPLE),
}


register(
    Baseline(
        "posterior-sampling",
        "sparse point robot: samples a goal from the exact posterior every episode, drives to it",
        build, no_params, supports, knobs=KNOBS, static_knobs=tuple(KNOBS),
    )
)
