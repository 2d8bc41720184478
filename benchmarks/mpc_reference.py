"""`mpc`'s episode return on the pendulum beside a random agent (and trained runs), with its cost.

    .venv/bin/python benchmarks/mpc_reference.py [--tasks 100] [--agents SPEC;SPEC] \
        [--families pendulum:nominal=true,pendulum] [--run RUN_DIR ...] [--json FILE]

Every agent is evaluated by `metarlkit.evaluate` (the one evaluator) on the first `--tasks` test
tasks of each family, one episode per trial: `pendulum:nominal=true` is every task at the nominal
mass and length (gymnasium's Pendulum-v1; tasks differ only in their start states), `pendulum` the
default test set (mass and length 1.5^U[-1, 1]). The first call's extra time over the second is
the compile; the second is the run, and its time per env step (tasks x episodes x 200 steps) is what
the agent costs. `--run` adds trained agents (RL2, MAML run directories, trained on the pendulum)
to the same table, each evaluated on trials as long as it was trained on: an RL2 agent's mean
episode return over its trial, a MAML agent's mean return after its last adaptation step. Mean episode return with its 95% half-width over tasks; every agent sees the same
tasks and start states (common random numbers).
"""

from __future__ import annotations

import argparse
import time

from _report import finish

from metarlkit import baselines, evaluate, load, tasks
from metarlkit.evaluation import mean_ci

AGENTS = (
    "random",
    "mpc",  # the defaults: CEM
    "mpc:method=random,horizon=10,candidates=1000",  # GrBAL's random shooting (Nagabandi et al. 2019)
    "mpc:method=random,horizon=20,candidates=1000",
)


def _timed(agent, family, params, num_tasks, episodes):
    start = time.perf_counter()
    result = evaluate(agent, family, params, num_episodes=episodes, num_tasks=num_tasks)
    return result, time.perf_counter() - start


def episode_return(result):
    """Per task: the mean episode return of the trial, or for agents adapting in rounds of parallel
    episodes (MAML) the mean return of the last round (after its adaptation steps)."""
    parallel = result.extra.get("parallel_episodes", 1)
    return result.returns.reshape(result.num_tasks, -1, parallel)[:, -1].mean(-1) if parallel > 1 \
        else result.returns.mean(-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--families", default="pendulum:nominal=true,pendulum")
    parser.add_argument("--agents", default=";".join(AGENTS), help="classic agent specs separated by ';'")
    parser.add_argument("--run", action="append", default=[], help="a trained run directory (repeatable)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = []
    print("| task | agent | mean episode return | compile s | run s | µs per env step |")
    print("|---|---|---|---|---|---|")
    for spec in args.families.split(","):
        family = tasks.from_spec(spec)
        entries = []
        for agent_spec in args.agents.split(";"):
            r = baselines.resolve(agent_spec, family, 1)
            entries.append((r.spec, r.agent, r.params, 1))
        for run_dir in args.run:
            trained = load(run_dir)
            entries.append((trained.name, trained.agent, trained.params, trained.num_episodes))
        for name, agent, params, episodes in entries:
            _, first = _timed(agent, family, params, args.tasks, episodes)
            result, run_s = _timed(agent, family, params, args.tasks, episodes)
            mean, half = mean_ci(episode_return(result))
            per_step = 1e6 * run_s / (args.tasks * episodes * family.horizon)
            rows.append({"task": spec, "agent": name, "mean_return": round(float(mean), 2),
                         "ci95": round(float(half), 2), "compile_s": round(max(0.0, first - run_s), 2),
                         "run_s": round(run_s, 2), "us_per_env_step": round(per_step, 1)})
            print(f"| `{spec}` | `{name}` | {mean:.1f} ± {half:.1f} | {max(0.0, first - run_s):.1f} | "
                  f"{run_s:.1f} | {per_step:.1f} |", flush=True)
    finish(rows, args.json, tasks=args.tasks)


if __name__ == "__main__":
    main()
