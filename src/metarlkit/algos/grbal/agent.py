"""The GrBAL agent as an AdaptiveAgent: model-predictive control on a model adapted every step.

Its state keeps the last M transitions of the trial (a window that slides by one per observed
step). Before every action, when M transitions are in, the model is adapted on them by one SGD
step (`model.adapt`; the reference code adapts once its running path holds M transitions:
samplers/sampler.py `obtain_samples`) — or, for ReBAL, its GRU reads the transitions the window
holds — and the planner (`metarlkit.planning`: random shooting, as
the paper, or CEM) picks the action in the adapted model, scoring predicted observations with the
family's own reward function. With `online_adaptation` false the model is never adapted (MB).

Unlike the reference, which starts every path with the unadapted model, the window carries over
episode boundaries inside a trial (the task does not change at a boundary; the first M steps of
a trial still plan with the unadapted model). The model's parameters and data statistics are
the agent's `params`: {"model": ..., "norm": model.Normalizer}.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metarlkit.agents import AdaptiveAgent
from metarlkit.algos.grbal import model as M
from metarlkit.planning import ActionSpace, Model, PlannerConfig, PlannerState, make_planner


class GrBALState(NamedTuple):
    obs: jax.Array  # [M, O]: the last M transitions, oldest first
    act: jax.Array  # [M, A]
    next_obs: jax.Array  # [M, O]
    count: jax.Array  # int32: transitions observed in the trial (the window is full from M on)
    planner: PlannerState


def current_model(dyn: M.Dynamics, params, state: GrBALState, online: bool, recurrent: bool):
    """What the next action plans with: the model adapted on the window. GrBAL adapts once the
    window is full (before, the unadapted model); ReBAL reads whatever part of it is filled."""
    if not online:
        return dyn.unadapted(params["model"])
    m = state.obs.shape[0]
    filled = jnp.arange(m) >= m - state.count  # the window fills from its end
    if recurrent:
        return dyn.adapt(params["model"], params["norm"], state.obs, state.act, state.next_obs, filled)
    adapted = dyn.adapt(params["model"], params["norm"], state.obs, state.act, state.next_obs, None)
    return jax.tree_util.tree_map(lambda a, p: jnp.where(state.count >= m, a, p), adapted,
                                  dyn.unadapted(params["model"]))


@functools.lru_cache(maxsize=32)
def make_agent(task: str, obs_size: int, action_size: int, adapt_steps: int, step_size: float, online: bool,
               activation: str, method: str, horizon: int, candidates: int, cem_iterations: int, elites: int,
               discount: float, model: str = "mlp", hidden_sizes: tuple = (), core_size: int = 0,
               random_actions: bool = False) -> AdaptiveAgent:
    """The GrBAL agent on the family of `task` (a spec: its reward function and action box).

    `random_actions` makes the agent act uniformly at random in the box (the first data collection).
    """
    from metarlkit import tasks

    family = tasks.from_spec(task)
    reference = family.nominal_task()  # the reward of these families does not read the hidden parameters
    space = ActionSpace.of(family)
    config = PlannerConfig(method=method, horizon=horizon, candidates=candidates, iterations=cem_iterations,
                           elites=min(elites, candidates), discount=discount)
    planner = make_planner(config, space)
    dyn = M.make_dynamics(model, obs_size, action_size, tuple(hidden_sizes), activation, adapt_steps, step_size, True,
                          core_size)
    low, high = (jnp.asarray(b, jnp.float32) for b in family.action_box())

    def init(params, key, num_episodes):
        del params, key, num_episodes
        zeros = jnp.zeros
        return GrBALState(zeros((adapt_steps, obs_size), jnp.float32), zeros((adapt_steps, action_size), jnp.float32),
                          zeros((adapt_steps, obs_size), jnp.float32), jnp.int32(0), planner.init())

    def act(params, state, obs, key):
        if random_actions:
            return jax.random.uniform(key, low.shape, jnp.float32, low, high), state
        theta = current_model(dyn, params, state, online, model == "recurrent")
        plan_model = Model(
            dynamics=lambda o, a: dyn.predict_next(theta, params["norm"], o, a),
            reward=lambda o, a, n: family.reward_fn(o, a, n, reference),
            terminated=lambda o, a, n: family.terminated_fn(o, a, n, reference),
        )
        action, _, _, planner_state = planner.plan(state.planner, jnp.ravel(obs).astype(jnp.float32), key, plan_model)
        return action.astype(jnp.float32), state._replace(planner=planner_state)

    def observe(params, state, transition):
        del params

        def push(window, x):
            return jnp.concatenate([window[1:], jnp.ravel(x).astype(jnp.float32)[None]], axis=0)

        return state._replace(obs=push(state.obs, transition.obs), act=push(state.act, transition.action),
                              next_obs=push(state.next_obs, transition.next_obs), count=state.count + 1)

    def end_episode(params, state, episode_index, key):
        del params, episode_index, key
        return state._replace(planner=planner.init())  # a new start: the shifted plan is no warm start

    return AdaptiveAgent(init=init, act=act, observe=observe, end_episode=end_episode)
