"""GMPS and MAML: the adapted policy's sampling spread chosen on validation goals, then scored on test goals.

    .venv/bin/python benchmarks/adapted_spread.py --run RUN [--scales 1,0.5,0.3,0.1,0.01] \
        [--validation-tasks 200] [--num-tasks 500] [--json FILE]

GMPS's reference code samples the adapted policy with its standard deviation times 1e-5;
metarlkit keeps the spread the policy learnt (`adapted_std_scale` 1) unless told. For every seed
of a trained GMPS or MAML run (continuous actions) this scores each scale of `--scales` (the
evaluation-only agent option `RUN:adapted_std_scale=S`) on the first `--validation-tasks` goals
of the validation split, keeps the one with the best return after one inner step, and scores it
and scale 1 on `--num-tasks` test goals: the test goals choose nothing. Each row: seed, scale, split, return before the step
and after it (mean over the episodes of each round, with the 95% half-width over tasks).
"""

from __future__ import annotations

import argparse

import numpy as np
from _report import finish

from metarlkit import evaluate
from metarlkit.experiment import load
from metarlkit.experiment.runner import read_run


def rounds(run: str, seed: int, scale: float, split: str, num_tasks: int) -> dict:
    trained = load(run, seed=seed, agent_options={"adapted_std_scale": scale})
    res = evaluate(trained.agent, trained.family, trained.params, num_episodes=trained.num_episodes,
                   num_tasks=num_tasks, split=split, name=trained.name)
    per_task = res.returns.reshape(res.num_tasks, -1, trained.agent.parallel_episodes).mean(axis=2)
    half = 1.96 * per_task.std(axis=0, ddof=1) / np.sqrt(res.num_tasks)
    return {"seed": seed, "adapted_std_scale": scale, "split": split, "num_tasks": num_tasks,
            "env_steps": trained.status["env_steps"],
            "per_round_return": [float(x) for x in per_task.mean(axis=0)], "per_round_ci95": [float(x) for x in half]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a GMPS or MAML run directory")
    parser.add_argument("--scales", default="1,0.5,0.3,0.1,0.01", help="comma-separated scales in (0, 1]")
    parser.add_argument("--validation-tasks", type=int, default=200)
    parser.add_argument("--num-tasks", type=int, default=500)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    try:
        scales = [float(s) for s in args.scales.split(",") if s]
    except ValueError:
        parser.error(f"--scales takes comma-separated numbers in (0, 1], got {args.scales!r}")
    if not scales or not all(0 < s <= 1 for s in scales):
        parser.error(f"--scales takes comma-separated numbers in (0, 1], got {args.scales!r}")
    info = read_run(args.run)
    if info.get("algorithm_name") not in ("gmps", "maml"):
        parser.error(f"{args.run} is a {info.get('algorithm_name')!r} run; this benchmark scores GMPS and MAML runs")
    rows = []
    for seed in range(info["config"].get("seeds", 1)):
        tried = [rounds(args.run, seed, s, "validation", args.validation_tasks) for s in scales]
        for row in tried:
            print(f"seed {seed} validation scale {row['adapted_std_scale']:g}: after 1 step "
                  f"{row['per_round_return'][1]:.2f} ± {row['per_round_ci95'][1]:.2f}", flush=True)
        best = max(tried, key=lambda r: r["per_round_return"][1])
        rows += tried
        for scale in sorted({1.0, best["adapted_std_scale"]}, reverse=True):
            row = {**rounds(args.run, seed, scale, "test", args.num_tasks), "chosen": scale == best["adapted_std_scale"]}
            rows.append(row)
            print(f"seed {seed} test scale {scale:g}{' (chosen)' if row['chosen'] else ''}: "
                  + " ".join(f"{m:.2f} ± {h:.2f}" for m, h in zip(row["per_round_return"], row["per_round_ci95"])),
                  flush=True)
    finish(rows, args.json, run=args.run, scales=scales, validation_tasks=args.validation_tasks,
           num_tasks=args.num_tasks)


if __name__ == "__main__":
    main()
