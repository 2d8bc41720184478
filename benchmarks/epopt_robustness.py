"""EPOpt-0.1 against the ensemble average (epsilon = 1) and TRPO on the nominal model, same budget.

    .venv/bin/python benchmarks/epopt_robustness.py [--task pendulum] [--out DIR] [--seeds 3] \
        [--iterations 200] [--num-tasks 1000] [--param mass --values 0.3:3:10] [--json FILE] [--plot FILE]

Trains three runs with `metarlkit train epopt` (`--seeds` seeds each, vmapped), all with the same
number of iterations of N source models (the same env-step budget):
  epopt     the defaults: epsilon 0.1 after a warm-up at epsilon 1;
  ensemble  `--preset ensemble`: epsilon 1 throughout (the ensemble average);
  nominal   `--preset ensemble` on TASK:nominal=true: TRPO on the nominal model alone.
A run directory that exists is resumed (or reused when complete). Every seed is scored by the
common evaluator on the same `--num-tasks` test tasks of TASK (masses and lengths varied), one
episode per trial, and the script prints per seed the mean, the 10th percentile and the CVaR (mean
of the worst 10% of tasks), and epopt's paired differences from each baseline in the 10th
percentile and the CVaR, with 95% intervals from a paired bootstrap over tasks. `--plot` adds the
sweep of seed 0 of each run against `--param` (`metarlkit sweep`), beyond the training range.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import finish

from metarlkit import evaluate, tasks
from metarlkit.evaluation import cvar, mean_ci
from metarlkit.experiment import load

VARIANTS = ("epopt", "ensemble", "nominal")


def train(out: Path, name: str, args) -> Path:
    run = out / name
    command = [str(Path(sys.executable).parent / "metarlkit"), "train", "epopt", "--no-tensorboard", "--no-progress"]
    if run.exists():
        command += ["--resume", str(run)]
    else:
        task = args.task + (",nominal=true" if ":" in args.task else ":nominal=true") if name == "nominal" else args.task
        command += ["--task", task, "--out", str(run), "--iterations", str(args.iterations),
                    "--seeds", str(args.seeds), "--seed", str(args.seed)]
        if name != "epopt":
            command += ["--preset", "ensemble"]
    print("$ metarlkit", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return run


def paired(a: np.ndarray, b: np.ndarray, stat, draws: int = 2000, seed: int = 0):
    """stat(a) - stat(b) over the same tasks, with a 95% paired-bootstrap interval."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (draws, len(a)))
    diffs = stat(a[idx]) - stat(b[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(stat(a[None])[0] - stat(b[None])[0]), float(low), float(high)


def p10(x):
    return np.percentile(x, 10, axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--out", default="epopt-runs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--num-tasks", type=int, default=1000)
    parser.add_argument("--param", help="the parameter the plot sweeps (default: none)")
    parser.add_argument("--values", default="0.3:3:10", help="A:B:N of the sweep")
    parser.add_argument("--plot", help="write the sweep plot here (with --param)")
    parser.add_argument("--json")
    args = parser.parse_args()
    out = Path(args.out) / args.task.replace(":", "_").replace(",", "_").replace("=", "-")
    out.mkdir(parents=True, exist_ok=True)
    runs = {name: train(out, name, args) for name in VARIANTS}
    family = tasks.from_spec(args.task)

    def score(name, seed):
        trained = load(runs[name], seed)
        return evaluate(trained.agent, family, trained.params, num_episodes=1, num_tasks=args.num_tasks).total_reward

    rows = []
    print(f"\n{args.task}, {args.num_tasks} test tasks, {args.iterations} iterations per run; ± and [..] are 95% intervals")
    print("| seed | agent | mean | 10th percentile | CVaR (worst 10%) | epopt − it, 10th pct. | epopt − it, CVaR |")
    print("|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        r = {name: score(name, seed) for name in VARIANTS}
        for name in VARIANTS:
            m, h = mean_ci(r[name])
            row = {"seed": seed, "agent": name, "mean": float(m), "ci95": float(h), "p10": float(p10(r[name])),
                   "cvar": float(cvar(r[name]))}
            cells = ["", ""]
            if name != "epopt":
                d10, d_cvar = paired(r["epopt"], r[name], p10), paired(r["epopt"], r[name], lambda x: cvar(x, axis=-1))
                row.update(p10_diff=d10, cvar_diff=d_cvar)
                cells = [f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]" for d in (d10, d_cvar)]
            rows.append(row)
            print(f"| {seed} | {name} | {m:.1f} ± {h:.1f} | {row['p10']:.1f} | {row['cvar']:.1f} | {cells[0]} | {cells[1]} |",
                  flush=True)
    if args.plot and args.param:
        command = [str(Path(sys.executable).parent / "metarlkit"), "sweep", "--task", args.task, "--episodes", "1",
                   "--param", args.param, "--values", args.values, "--plot", args.plot,
                   "--json", str(Path(args.plot).with_suffix(".json"))]
        for name in VARIANTS:
            command += ["--agent", str(runs[name])]
        subprocess.run(command, check=True)
    finish(rows, args.json, benchmark="epopt_robustness", task=args.task, iterations=args.iterations,
           seeds=args.seeds, num_tasks=args.num_tasks)


if __name__ == "__main__":
    main()
