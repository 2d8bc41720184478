"""`mpc`: model-predictive control in the task's true model, a reference beside learned agents.

The agent knows the task (`task_aware`): at every step it plans with `metarlkit.planning` (random
shooting or CEM) in the family's own model, `dynamics_fn`, `reward_fn` and `terminated_fn`, under
the parameters in force at the current trial step, `family.task_at(task, e * horizon + t)`, so
after a change of dynamics inside a trial (`change_at`) it plans with the new parameters at once.
Within a plan the parameters stay those of the current step (a change later in the horizon is not
anticipated). Its state counts the trial step itself: +1 per observed step, and at the end of
episode e it jumps to (e + 1) * horizon, which is where the next episode starts even when the
episode ended early.

It is a reference, not an optimum: a finite-horizon plan from sampled sequences, so it neither
defines nor enters regret (the family's optimum does), and learned agents may beat it. Families
without a model (`defines_model` False) are refused with one line.

Knobs are fixed defaults, not tuned (one-value grids, `baselines.core`); give them in the spec:
`mpc:method=random,horizon=10,candidates=1000`. Measured returns and costs: docs/baselines.md.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent
from metarlkit.baselines.core import Baseline, Knob, no_params, register
from metarlkit.planning import METHODS, ActionSpace, Model, PlannerConfig, PlannerState, make_planner
from metarlkit.specs import SpecError
from metarlkit.tasks.base import TaskFamily

DEFAULTS = {"method": "cem", "horizon": 20, "candidates": 100, "iterations": 4, "elites": 10}


class MPCState(NamedTuple):
    """The task, the trial step and the planner's warm start (single task, no batch axis)."""

    task: Any  # the task pytree as the trial gave it (with its change, if any)
    step: jax.Array  # int32, trial step of the next action: e * horizon + t
    planner: PlannerState


def true_model(family: TaskFamily, task: Any) -> Model:
    """The family's own model under the parameters `task` (one set, as `task_at` returns it)."""
    return Model(
        dynamics=lambda obs, action: family.dynamics_fn(obs, action, task),
        reward=lambda obs, action, next_obs: family.reward_fn(obs, action, next_obs, task),
        terminated=lambda obs, action, next_obs: family.terminated_fn(obs, action, next_obs, task),
    )


@functools.lru_cache(maxsize=32)
def mpc_agent(family: TaskFamily, config: PlannerConfig) -> AdaptiveAgent:
    """The task-aware MPC agent of `family` planning with `config` (see the module docstring)."""
    planner = make_planner(config, ActionSpace.of(family))
    horizon = family.horizon

    def init(params, key, num_episodes, task):
        del params, key, num_episodes
        return MPCState(task, jnp.int32(0), planner.init())

    def act(params, state, obs, key):
        del params
        current = family.task_at(state.task, state.step)
        action, _, _, planner_state = planner.plan(state.planner, obs, key, true_model(family, current))
        return action.astype(family.action_dtype), state._replace(planner=planner_state)

    def observe(params, state, transition):
        del params, transition
        return state._replace(step=state.step + 1)

    def end_episode(params, state, episode_index, key):
        del params, key
        # A new episode starts elsewhere: the shifted plan of the last one is no warm start.
        return state._replace(step=(episode_index + 1) * horizon, planner=planner.init())

    return AdaptiveAgent(init, act, observe, end_episode, task_aware=True)


def _value(knobs: dict, name: str):
    (value,) = knobs[name]  # every knob is fixed (one-value grids): one supported value each
    return value


def build(family: TaskFamily, num_episodes: int, knobs) -> AdaptiveAgent:
    del num_episodes
    try:
        config = PlannerConfig(**{name: _value(knobs, name) for name in DEFAULTS})
    except ValueError as err:
        raise SpecError(f"agent 'mpc': {err}") from None
    return mpc_agent(family, config)


def supports(family: TaskFamily) -> str | None:
    if not family.defines_model:
        return f"{family.name} declares no model of its dynamics (defines_model); mpc plans in the true model"
    return None


KNOBS = {
    "method": Knob(str, (DEFAULTS["method"],), 0, 0, "'cem' (cross-entropy method) or 'random' (random shooting)",
                   choices=METHODS),
    "horizon": Knob(int, (DEFAULTS["horizon"],), 1, 1000, "steps of every planned action sequence"),
    "candidates": Knob(int, (DEFAULTS["candidates"],), 1, 100_000, "action sequences evaluated per round"),
    "iterations": Knob(int, (DEFAULTS["iterations"],), 1, 100, "CEM rounds per step (random shooting: ignored)"),
    "elites": Knob(int, (DEFAULTS["elites"],), 1, 100_000, "CEM: best sequences the distribution is refit to"),
}


register(
    Baseline(
        "mpc", "knows the task; plans in its true model by CEM or random shooting (a reference, not an optimum)",
        build, no_params, supports, knobs=KNOBS, static_knobs=tuple(KNOBS),
    )
)
