"""One-step prediction error of trained GrBAL / MB models, unadapted and adapted, on real trajectories.

    .venv/bin/python benchmarks/grbal_model_error.py --data RUN --run RUN [--run RUN ...] \
        [--task pendulum:change_at=100] [--num-tasks 50] [--json FILE]

Plays the `--data` run's agent for one episode on `--num-tasks` test tasks (the trajectories, with
their change of dynamics), then for every `--run` (every seed) predicts each step t >= M of those
trajectories from the observation and action at t, with the model as trained (unadapted) and
after its inner step on the M transitions before t (the run's own step size), and reports the
mean squared error of the predicted next observation before the change and from 10 steps after it
on. It separates the model's accuracy from the planner's use of it.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _report import finish

from metarlkit import tasks
from metarlkit.algos.grbal import model as M
from metarlkit.experiment import load
from metarlkit.experiment.runner import read_run
from metarlkit.tasks.tasksets import task_set
from metarlkit.trial import run_trials


def trajectories(run: str, family, num_tasks: int):
    trained = load(run)
    keys = jax.random.split(jax.random.PRNGKey(0), 2 * num_tasks)
    rec = jax.jit(lambda p, t: run_trials(family, trained.agent, p, t, keys[:num_tasks], keys[num_tasks:], 1,
                                          transitions=True))(trained.params, task_set(family, "test", num_tasks))
    shape = (num_tasks, family.horizon, -1)
    return tuple(jnp.asarray(x[:, 0]).reshape(shape) for x in (rec.obs, rec.action, rec.next_obs)), rec.valid[:, 0]


def errors(params, norm, data, m: int, step_size: float):
    """[tasks, horizon - m] squared error of the next observation at steps m .. horizon - 1."""
    obs, act, nxt = data
    horizon = obs.shape[1]

    def one(o, a, n):
        def at(t):
            window = [jax.lax.dynamic_slice_in_dim(x, t - m, m) for x in (o, a, n)]
            theta = M.adapt(params, norm, *window, None, step_size) if step_size > 0 else params
            return jnp.mean((M.predict_next(theta, norm, o[t], a[t]) - n[t]) ** 2)
        return jax.vmap(at)(jnp.arange(m, horizon))

    return np.asarray(jax.jit(jax.vmap(one))(obs, act, nxt))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the run whose agent plays the trajectories")
    parser.add_argument("--run", action="append", required=True, help="a GrBAL or MB run (every seed is scored)")
    parser.add_argument("--task", default="pendulum:change_at=100")
    parser.add_argument("--num-tasks", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    family = tasks.from_spec(args.task)
    data, valid = trajectories(args.data, family, args.num_tasks)
    if not bool(jnp.all(valid)):
        parser.error("the trajectories ended early; give a family whose episodes run to the horizon")
    change = getattr(family, "change_at", 0) or family.horizon
    rows = []
    print(f"{family.spec()}, trajectories of {args.data} on {args.num_tasks} test tasks; mean squared error of the "
          f"predicted next observation")
    print("| run | seed | unadapted, before the change | unadapted, after | adapted, before | adapted, after |")
    print("|---|---|---|---|---|---|")
    for run in args.run:
        info = read_run(run)
        config = info["config"]
        m, step = config["adapt_steps"], config["step_size"]
        for seed in range(config.get("seeds", 1)):
            trained = load(run, seed=seed)
            p, norm = trained.params["model"], trained.params["norm"]
            cols = {}
            for name, size in (("unadapted", 0.0), ("adapted", step)):
                e = errors(p, norm, data, m, size)
                steps = np.arange(m, family.horizon)
                cols[f"{name}_before"] = float(e[:, steps < change].mean())
                cols[f"{name}_after"] = float(e[:, steps >= change + 10].mean())
            rows.append({"run": run, "algorithm_meta": config.get("meta"), "seed": seed, **cols})
            print(f"| {run} | {seed} | {cols['unadapted_before']:.5f} | {cols['unadapted_after']:.5f} | "
                  f"{cols['adapted_before']:.5f} | {cols['adapted_after']:.5f} |", flush=True)
    finish(rows, args.json, benchmark="grbal_model_error", task=family.spec(), data=args.data, num_tasks=args.num_tasks)


if __name__ == "__main__":
    main()
