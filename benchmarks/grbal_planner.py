"""GrBAL's planner throughput: candidate rollouts per second and milliseconds per env step.

    .venv/bin/python benchmarks/grbal_planner.py [--task pendulum] [--presets cpu,paper,rebal-cpu] \
        [--tasks 100] [--repeats 3] [--json FILE]

Per preset: the GrBAL agent (untrained model of the preset's sizes: the cost does not depend on
the weights) plays one episode on each of `--tasks` tasks at once, as the
evaluator runs it (compiled, `vmap`ped over tasks); every step adapts the model on the last M
transitions (ReBAL: reads them with its GRU) and plans with the preset's planner. Reported: ms per
env step of one task (the batch's wall time / steps / tasks), candidate rollouts per second
(candidates x planning horizon x CEM rounds model steps per plan, counted as rollouts of the
whole horizon), and the best of `--repeats` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse

import jax
from _report import best_time, finish

from metarlkit import tasks
from metarlkit.algos.grbal import PRESETS, GrBALConfig
from metarlkit.algos.grbal.train import make_train
from metarlkit.experiment.config import build
from metarlkit.tasks.tasksets import task_set
from metarlkit.trial import run_trials


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--presets", default="cpu,paper,rebal-cpu")
    parser.add_argument("--tasks", type=int, default=100, help="tasks played at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    family = tasks.from_spec(args.task)
    rows = []
    print(f"{family.spec()}, {args.tasks} tasks x one episode of {family.horizon} steps")
    print("| preset | model | candidates x horizon (x rounds) | ms per env step | candidate rollouts/s |")
    print("|---|---|---|---|---|")
    for name in args.presets.split(","):
        config = build(GrBALConfig, PRESETS[name], source=f"grbal preset {name}")
        train = make_train(config, family)
        state = jax.jit(train.init)(jax.random.PRNGKey(0))
        params = train.trained_params(state)
        chosen = task_set(family, "test", args.tasks)
        keys = jax.random.split(jax.random.PRNGKey(1), 2 * args.tasks)
        play = jax.jit(lambda p, t: run_trials(family, train.agent, p, t, keys[:args.tasks], keys[args.tasks:], 1))
        compiled = play.lower(params, chosen).compile()
        seconds = best_time(compiled, (params, chosen), args.repeats)
        steps = args.tasks * family.horizon
        rounds = config.cem_iterations if config.method == "cem" else 1
        rollouts = steps * config.candidates * rounds
        model = "GRU + MLP" if config.model == "recurrent" else "MLP"
        row = {"preset": name, "model": f"{model} {config.hidden_sizes}", "method": config.method,
               "candidates": config.candidates, "horizon": config.horizon, "rounds": rounds,
               "ms_per_env_step": round(1e3 * seconds / steps, 3), "candidate_rollouts_per_s": round(rollouts / seconds),
               "model_steps_per_s": round(rollouts * config.horizon / seconds)}
        rows.append(row)
        print(f"| {name} | {row['model']} | {config.candidates} x {config.horizon}"
              + (f" x {rounds}" if rounds > 1 else "") + f" | {row['ms_per_env_step']} | "
              f"{row['candidate_rollouts_per_s']:,} |", flush=True)
    finish(rows, args.json, benchmark="grbal_planner", task=family.spec(), tasks=args.tasks)


if __name__ == "__main__":
    main()
