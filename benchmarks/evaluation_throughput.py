"""Evaluation throughput of every classic agent: compile time and steady-state env steps/s.

    .venv/bin/python benchmarks/evaluation_throughput.py [--tasks 1000] [--repeats 3] [--json FILE]

Each agent (knobs fixed, no tuning) is evaluated by `metarlkit.evaluate` on the first `tasks`
test tasks; the first call's extra time is the compile, the steady state is the best of
`repeats` further calls (the machine is shared: the best is the least disturbed run).
Env steps = tasks x episodes x horizon.
"""

from __future__ import annotations

import argparse
import time

from _report import finish

from metarlkit import baselines, evaluate, tasks

CASES = [
    ("bernoulli-bandit:arms=5", 100, ["random", "greedy", "egreedy:epsilon=0.1", "ucb1:c=0.2", "ts",
                                      "ots:samples=20", "gittins:discount=0.99", "oracle"]),
    ("bernoulli-bandit:arms=50", 100, ["ucb1:c=0.2", "ts", "ots:samples=20", "gittins:discount=0.99"]),
    ("bernoulli-bandit:arms=2", 100, ["bayes-optimal"]),
    ("tabular-mdp", 10, ["random", "greedy", "psrl", "opsrl:samples=20", "ucrl2:scale=0.1",
                         "beb:beta=1.0", "oracle"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = []
    print(f"{'task':26s} {'n':>4s} {'agent':24s} {'compile s':>9s} {'run s':>7s} {'env steps/s':>12s}")
    for spec, episodes, agents in CASES:
        family = tasks.from_spec(spec)
        steps = args.tasks * episodes * family.horizon
        for agent_spec in agents:
            resolved = baselines.resolve(agent_spec, family, episodes)

            def run():
                start = time.perf_counter()
                evaluate(resolved.agent, family, resolved.params, num_episodes=episodes, num_tasks=args.tasks)
                return time.perf_counter() - start

            first = run()
            best = min(run() for _ in range(args.repeats))
            row = {"task": spec, "episodes": episodes, "agent": agent_spec, "compile_s": round(max(0.0, first - best), 2),
                   "run_s": round(best, 3), "env_steps_per_s": round(steps / best)}
            rows.append(row)
            print(f"{spec:26s} {episodes:4d} {agent_spec:24s} {row['compile_s']:9.2f} {best:7.3f} {row['env_steps_per_s']:12,d}")
    finish(rows, args.json, tasks=args.tasks)


if __name__ == "__main__":
    main()
