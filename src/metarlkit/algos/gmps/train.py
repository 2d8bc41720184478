"""GMPS meta-training (Mendonca, Gupta, Kralev, Abbeel, Levine & Finn 2019, "Guided Meta-Policy
Search"; reference code russellmendonca/GMPS): experts solve the training tasks, then one policy is
meta-trained by supervised imitation through MAML's inner policy-gradient step.

Up to three phases, each compiled whole:

  experts-sac  (experts=sac) `expert_iterations` updates of the SAC expert (`experts.py`): one
             episode of every training task into its replay buffer, then SAC gradient steps;
  experts    one update, when the imitation needs the experts' own trajectories: every training
             task's expert plays (the oracle, or the SAC expert acting deterministically) or is
             read (experts=demos: the first `expert_episodes` episodes per task of a task-set
             recording) into the train state, `expert_episodes` per task;
             every expert env step counts; a run started from another's state (`--init-from`)
             has its experts and skips both;
  imitation  `iterations` updates, each:
             0. with `validation_tasks` N > 0, the current theta's return after one inner step on
                the first N validation tasks (the best theta so far is the trained agent's); with
                experts=sac and `expert_improvement` k > 0, k more SAC expert iterations (the
                paper's alternation of expert improvement and meta-imitation);
             1. `meta_batch` distinct training tasks; on each, the MAML agent (`rl.adaptation_agent`,
                the agent evaluation scores) plays `trajectories` episodes with theta (and, with
                imitation_states=dagger, `trajectories` more with the adapted policy);
             2. `adam_steps` Adam steps on the outer loss with these rollouts fixed: per task,
                phi(theta) = theta - alpha * grad L_inner(theta), the inner VPG loss on the
                pre-update episodes weighted by pi_theta / pi_theta_old (the rollouts' policy), then
                the imitation loss of phi on the expert's states and actions (the experts'
                trajectories) or on the adapted policy's states relabelled with the expert's
                action (DAgger). The inner step is recomputed at every Adam step, so theta, the
                learnt step sizes and the bias input all get second-order meta-gradients.

Where this follows the reference code: the inner loss with its importance ratio (maml_il.py,
`-mean(logli * ratio * adv)` with the ratio's theta stopped), the per-task linear baseline and
centred advantages (rllab's sampler, base.py), the squared distance of the adapted mean to the
expert action as the outer loss (maml_il.py) and a fixed feed of rollouts for all 500 Adam steps
(quad_dist_expert_optimizer.py); learnt per-parameter step sizes initialised to the inner step
size and the bias transformation, a vector of ones appended to the observation
(maml_minimal_gauss_mlp_policy_adaptivestep_biastransform.py). Where it follows the paper
instead, as options: DAgger relabelling and the log-likelihood loss (the code's DAgger arguments
are never read). The code updates on every other iteration and logs the others; here every
iteration updates.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metarlkit.algos.gmps import experts as X
from metarlkit.algos.gmps.config import GMPSConfig
from metarlkit.rl.adaptation_agent import check_rounds, make_agent, record
from metarlkit.algos.registry import Phase, Train
from metarlkit.nets.mlp import init_mlp_policy, policy_action
from metarlkit.rl import replay
from metarlkit.rl.adaptation import Episodes, Processed, distribution, gradient_step, log_prob, process, step_mean
from metarlkit.tasks.base import TaskFamily
from metarlkit.trial import TaskSource, run_trials

EVAL_STEPS = 3  # inner steps of the default evaluation trial (returns after 0..3 steps, as MAML's)


class Demonstrations(NamedTuple):
    """The experts' trajectories, [T, E, H, ...] over the training tasks (policy action units)."""

    obs: jax.Array
    action: jax.Array
    valid: jax.Array


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly (one seed; the runner adds a leading axis)."""

    params: dict  # {"policy": theta} plus "step_sizes" (learned_step_sizes)
    opt_state: Any  # Adam's
    experts: Demonstrations | None  # None with imitation_states=dagger (the expert labels on the fly)
    expert: X.ExpertState | None  # the SAC expert (experts=sac), else None
    key: jax.Array
    update: jax.Array  # int32, imitation iterations done
    best_params: dict  # the params with the best validation return after the step (validation_tasks)
    best_return: jax.Array  # float32, that return (-inf before the first validation)


def _sizes(family: TaskFamily) -> tuple[int, int]:
    return math.prod(family.obs_shape), family.action_size


def agent_args(config: GMPSConfig, family: TaskFamily, trajectories: int) -> dict:
    """The MAML agent's arguments for GMPS's policy (`rl.adaptation_agent.make_agent`)."""
    obs_size, action_size = _sizes(family)
    return {"obs_size": obs_size, "num_actions": action_size, "horizon": family.horizon, "continuous": True,
            "activation": config.activation, "trajectories": trajectories, "inner_lrs": (config.inner_lr,),
            "inner_estimator": "vpg", "gamma": config.gamma, "gae_lambda": config.gae_lambda,
            "action_bounds": family.action_box(), "weighting": config.weighting,
            "normalize_actions": bool(config.normalize_actions), "learned_step_sizes": bool(config.learned_step_sizes),
            "adapted_std_scale": float(config.adapted_std_scale)}


def default_episodes(config: GMPSConfig | None = None) -> int:
    """Episodes per evaluation trial when none are given: returns after 0..3 inner steps."""
    return (EVAL_STEPS + 1) * (config or GMPSConfig()).eval_trajectories


def agent_params(config: GMPSConfig, params: dict):
    """What the agent runs: theta, or theta and its learnt step sizes."""
    return params if config.learned_step_sizes else params["policy"]


def inner_loss(theta, data: Processed, old_logp: jax.Array, *, activation: str, weighting: str,
               importance_weights: bool) -> jax.Array:
    """The inner policy-gradient loss -mean(log pi_theta(a|s) w A), w = pi_theta / pi_old with
    theta stopped (1 at the rollouts' own theta: REINFORCE's loss) or 1."""
    ep = data.episodes
    logp = log_prob(distribution(theta, ep.obs, activation), ep.action)
    w = jnp.exp(jax.lax.stop_gradient(logp) - old_logp) if importance_weights else 1.0
    return -step_mean(logp * w * data.advantage, ep.valid, weighting)


def imitation_loss(phi, obs: jax.Array, action: jax.Array, valid: jax.Array, *, activation: str, kind: str,
                   weighting: str) -> jax.Array:
    """The adapted policy's imitation loss on [N, H] states and expert actions: the mean squared
    distance of its mean action to the expert's, or minus the expert action's log-density."""
    dist = distribution(phi, obs, activation)
    if kind == "likelihood":
        per_step = -log_prob(dist, action)
    else:
        per_step = jnp.mean((dist.mean - action) ** 2, axis=-1)
    return step_mean(per_step, valid, weighting)


def task_loss(params: dict, data: Processed, old_logp, obs, action, valid, config: GMPSConfig) -> jax.Array:
    """One task's outer loss at params = {"policy": theta, ("step_sizes")}: the imitation loss of
    phi = theta - alpha * grad L_inner(theta), differentiable in theta and alpha."""
    theta = params["policy"]
    grads = jax.grad(inner_loss)(theta, data, old_logp, activation=config.activation, weighting=config.weighting,
                                 importance_weights=config.importance_weights)
    phi = gradient_step(theta, grads, params["step_sizes"] if config.learned_step_sizes else config.inner_lr)
    return imitation_loss(phi, obs, action, valid, activation=config.activation, kind=config.imitation_loss,
                          weighting=config.weighting)


def check(config: GMPSConfig, family: TaskFamily, num_episodes: int) -> None:
    """Raises a one-line ValueError before anything is written: the trial must be whole rounds, the
    family must hold the training tasks, an oracle expert must exist, demonstrations must fit."""
    from metarlkit.tasks.tasksets import check_split

    check_rounds(config.eval_trajectories, family, num_episodes)
    check_split("train", config.train_tasks, family)
    if config.experts == "oracle" and not family.defines_optimum:
        raise ValueError(f"{family.spec()} has no oracle_action to take experts from; use experts=demos with "
                         f"--demos FILE.npz")
    if config.experts == "demos":
        load_demos(config, family)


def load_demos(config: GMPSConfig, family: TaskFamily) -> Demonstrations:
    """The first `expert_episodes` episodes of each of the first `train_tasks` tasks of the
    recording `config.demos`, actions in the policy's units; a one-line ValueError otherwise."""
    from metarlkit import recording

    rec = recording.load_task_set(config.demos, family, config.train_tasks)
    if rec.valid.shape[1] < config.expert_episodes:
        raise ValueError(f"{config.demos} records {rec.valid.shape[1]} episodes per task; expert_episodes is "
                         f"{config.expert_episodes}: give --expert-episodes {rec.valid.shape[1]} or record more")
    e = config.expert_episodes
    bounds = family.action_box()
    with jax.ensure_compile_time_eval():  # data, also when read while the experts phase is traced
        action = np.asarray(policy_action(jnp.asarray(rec.action[:, :e]), bounds, bool(config.normalize_actions)))
    obs = rec.obs[:, :e]
    return Demonstrations(obs.reshape(obs.shape[:3] + (-1,)), action, rec.valid[:, :e])


def make_train(config: GMPSConfig, family: TaskFamily, num_episodes: int | None = None,
               train_tasks: TaskSource | None = None) -> Train:
    """Builds GMPS meta-training on `family`'s first `config.train_tasks` training tasks."""
    num_episodes = num_episodes or default_episodes(config)
    source = train_tasks if train_tasks is not None and train_tasks.num_fixed else TaskSource(family, config.train_tasks)
    obs_size, action_size = _sizes(family)
    T, M, P, H, E = config.train_tasks, config.meta_batch, config.trajectories, family.horizon, config.expert_episodes
    dagger, sac = config.dagger, config.experts == "sac"
    expert_chunk = min(config.expert_iterations, 25)
    expert_updates = math.ceil(config.expert_iterations / expert_chunk) * expert_chunk
    per_chunk = min(config.checkpoint_iterations, config.iterations)
    num_updates = math.ceil(config.iterations / per_chunk) * per_chunk
    # every task gets one episode per expert iteration (its phase's and the improvement's between
    # imitation iterations): its buffer holds them all, up to oyster's 1e6
    expert_capacity = replay.capacity_for((expert_updates + config.expert_improvement * num_updates) * T * H, T,
                                          10**6, slack=1.0)
    rounds = 2 if dagger else 1
    bounds, normalize = family.action_box(), bool(config.normalize_actions)
    train_agent = make_agent(**agent_args(config, family, P))
    eval_args = agent_args(config, family, config.eval_trajectories)
    eval_agent = make_agent(**eval_args)
    optimizer = optax.adam(config.meta_lr)

    def init(key) -> TrainState:
        key_params, key = jax.random.split(key)
        theta = init_mlp_policy(key_params, obs_size, config.hidden_sizes, action_size, continuous=True,
                                init_log_std=config.init_log_std, bias_input=config.bias_transform)
        params = {"policy": theta}
        if config.learned_step_sizes:
            params["step_sizes"] = jax.tree_util.tree_map(lambda x: jnp.full_like(x, config.inner_lr), theta)
        experts = None if dagger else Demonstrations(jnp.zeros((T, E, H, obs_size), jnp.float32),
                                                     jnp.zeros((T, E, H, action_size), jnp.float32),
                                                     jnp.zeros((T, E, H), bool))
        expert = None
        if sac:
            key_expert, key = jax.random.split(key)
            task_size = X.task_features(jax.tree_util.tree_map(lambda x: x[0], source.tasks(jnp.zeros(1, jnp.uint32))))
            expert = X.init_expert(key_expert, obs_size, task_size.shape[0], action_size,
                                   tuple(config.expert_hidden_sizes), T, expert_capacity)
        return TrainState(params, optimizer.init(params), experts, expert, key, jnp.int32(0), params,
                          jnp.float32(-jnp.inf))

    def expert_label(state: TrainState, task, obs, t):
        """The expert's action at a visited state, in the policy's units (DAgger)."""
        if sac:
            action = X.expert_action(state.expert.nets["policy"], task, obs, bounds)
        else:
            action = family.oracle_action(task, obs, t)
        return policy_action(action, bounds, normalize)

    def every_task():
        """All training tasks, batched (the experts' trials cover each)."""
        return source.tasks(jnp.arange(T, dtype=jnp.uint32))

    def sac_update(state: TrainState, _):
        """One iteration of the SAC expert: an episode of every training task, then gradient steps."""
        key, key_env, key_agent, key_steps = jax.random.split(state.key, 4)
        every = every_task()
        rec = run_trials(family, X.make_expert_agent(bounds, False), state.expert.nets["policy"], every,
                         jax.random.split(key_env, T), jax.random.split(key_agent, T), 1, transitions=True)
        if family.reports_dense_reward:  # the expert learns from the dense reward, as PEARL's critic
            rec = rec._replace(reward=rec.dense_reward)
        expert = X.add_episodes(state.expert, rec, bounds)
        feats = jax.vmap(X.task_features)(every)

        def step(e, k):
            return X.gradient_step(e, k, feats, batch_size=config.expert_batch_size, discount=config.expert_discount,
                                   reward_scale=config.expert_reward_scale)

        expert, metrics = jax.lax.scan(step, expert, jax.random.split(key_steps, config.expert_train_steps))
        metrics = {name: jnp.mean(value) for name, value in metrics.items()}
        return state._replace(key=key, expert=expert), {"expert_return": jnp.mean(jnp.sum(rec.reward, -1)), **metrics}

    def experts_update(state: TrainState, _):
        metrics = {}
        if config.experts == "demos":
            demos = jax.tree_util.tree_map(jnp.asarray, load_demos(config, family))
        else:
            from metarlkit import baselines

            if sac:
                expert, expert_params = X.make_expert_agent(bounds, True), state.expert.nets["policy"]
            else:
                oracle = baselines.resolve("oracle", family, E)
                expert, expert_params = oracle.agent, oracle.params
            key, key_env, key_agent = jax.random.split(state.key, 3)
            state = state._replace(key=key)
            rec = run_trials(family, expert, expert_params, every_task(),
                             jax.random.split(key_env, T), jax.random.split(key_agent, T), E, transitions=True)
            demos = Demonstrations(rec.obs.reshape(rec.obs.shape[:3] + (-1,)),
                                   policy_action(rec.action.astype(jnp.float32), bounds, normalize), rec.valid)
            metrics["expert_return"] = jnp.mean(jnp.sum(rec.reward, -1))
        return state._replace(experts=demos), {"expert_steps": jnp.sum(demos.valid).astype(jnp.float32), **metrics}

    def collect(state: TrainState, key):
        """The iteration's fixed data: per task [M], the pre-update episodes (processed), their
        log-probabilities under theta, the imitation data (states, expert actions, valid), every
        episode's return [M, rounds * P], and the tasks' indices in the training set."""
        key_tasks, key_env, key_agent = jax.random.split(key, 3)
        index = source.sample_indices(key_tasks, M)
        tasks = source.tasks(index)
        theta0 = state.params["policy"]
        rec = run_trials(family, train_agent, agent_params(config, state.params), tasks, jax.random.split(key_env, M),
                         jax.random.split(key_agent, M), rounds * P, record=record)
        obs, action = rec.extras  # the policy's own actions (its units), which the inner step uses
        pre = Episodes(obs[:, :P], action[:, :P], rec.reward[:, :P], rec.valid[:, :P])
        data = jax.vmap(lambda e: process(e, config.gamma, config.gae_lambda, config.weighting))(pre)
        old_logp = jax.vmap(lambda e: log_prob(distribution(theta0, e.obs, config.activation), e.action))(pre)
        if dagger:
            states, valid = obs[:, P:], rec.valid[:, P:]
            steps = jnp.broadcast_to(jnp.arange(H), valid.shape[1:])
            labels = jax.vmap(lambda task, o: jax.vmap(jax.vmap(lambda x, t: expert_label(state, task, x, t)))(
                o, steps))(tasks, states)
        else:
            states, labels, valid = (x[index] for x in state.experts)
        return data, old_logp, Demonstrations(states, labels, valid), jnp.sum(rec.reward, axis=-1), index

    def validate(state: TrainState, key):
        """The return after one inner step of the current params on the validation tasks, and the
        state with the best params so far."""
        from metarlkit.tasks.tasksets import split_tasks

        n = config.validation_tasks
        key_env, key_agent = jax.random.split(key)
        rec = run_trials(family, train_agent, agent_params(config, state.params),
                         split_tasks(family, "validation", jnp.arange(n, dtype=jnp.uint32)),
                         jax.random.split(key_env, n), jax.random.split(key_agent, n), 2 * P)
        after = jnp.mean(jnp.sum(rec.reward[:, P:], axis=-1))
        better = after > state.best_return
        best = jax.tree_util.tree_map(lambda b, p: jnp.where(better, p, b), state.best_params, state.params)
        return state._replace(best_params=best, best_return=jnp.maximum(after, state.best_return)), after

    def imitation_update(state: TrainState, _):
        if config.validation_tasks:  # this iteration's theta, before its update
            key, key_valid = jax.random.split(state.key)
            state, valid_return = validate(state._replace(key=key), key_valid)
        if config.expert_improvement:  # the paper's alternation: the experts improve, then imitation
            state, expert_metrics = jax.lax.scan(sac_update, state, None, length=config.expert_improvement)
        key, key_collect = jax.random.split(state.key)
        data, old_logp, imitate, returns, _ = collect(state, key_collect)
        states, labels, valid = imitate

        def loss(params):
            per_task = jax.vmap(lambda d, lp, o, a, ok: task_loss(params, d, lp, o, a, ok, config))(
                data, old_logp, states, labels, valid)
            return jnp.mean(per_task)

        def adam_step(carry, _):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (value, optax.tree.norm(grads))

        (params, opt_state), (values, norms) = jax.lax.scan(adam_step, (state.params, state.opt_state), None,
                                                            length=config.adam_steps)
        metrics = {"loss": values[0], "loss_after": loss(params), "grad_norm": norms[0],
                   "return_before": jnp.mean(returns[:, :P])}
        if dagger:
            metrics["return_after"] = jnp.mean(returns[:, P:])
        if config.expert_improvement:
            metrics["expert_return"] = expert_metrics["expert_return"][-1]
        if config.validation_tasks:
            metrics["validation_return"] = valid_return
        return state._replace(params=params, opt_state=opt_state, key=key, update=state.update + 1), metrics

    def chunk_of(update):
        def run_chunk(state: TrainState, num: int):
            return jax.lax.scan(update, state, None, length=num)
        return run_chunk

    phases = []
    if sac:
        phases.append(Phase("experts-sac", chunk_of(sac_update), expert_updates, expert_chunk, T * H,
                            first_start_only=True))
    if not dagger:
        phases.append(Phase("experts", chunk_of(experts_update), 1, 1, T * E * H, first_start_only=True))
    phases.append(Phase("imitation", chunk_of(imitation_update), num_updates, per_chunk,
                        M * rounds * P * H + config.expert_improvement * T * H + config.validation_tasks * 2 * P * H))

    return Train(init, tuple(phases), eval_agent, eval_args,
                 trained_params=lambda state: agent_params(
                     config, state.best_params if config.validation_tasks else state.params),
                 current_params=lambda state: state.params,
                 extras={"train_agent": train_agent, "collect": collect})
