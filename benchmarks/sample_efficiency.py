"""Test return against meta-training env steps: PEARL beside MAML and RL2 on dense 2D navigation.

    .venv/bin/python benchmarks/sample_efficiency.py [--out sample-efficiency-runs] [--num-tasks 500] \
        [--only pearl,maml,rl2] [--pearl-seeds 3] [--rl2-steps 10000000] [--json FILE] [--plot FILE]

Trains one run per algorithm on `point-navigation` (MAML's 2D navigation: goals in [-0.5, 0.5]^2,
100-step episodes) with `--snapshots`, so the trained parameters are kept after every chunk:
  pearl  `--preset cpu-point`, trials of 2 episodes (z from the prior in the first, from the
         posterior of that episode in the second), `--pearl-seeds` seeds;
  maml   its default setting on this family (the MAML paper's code), 20 episodes per inner step;
  rl2    the README's continuous-action RL2 (128 trials of 2 episodes per update, no entropy bonus),
         `--rl2-steps` env steps.
A run directory that exists is resumed (or reused when complete). Every snapshot of every seed is
then scored by the common evaluator on the same `--num-tasks` test goals, and each row gives the
env steps the snapshot had trained on and the return per episode of the trial (for MAML: before
adapting, then after each inner step). The plot draws the return of the first adapted episode
(PEARL's and RL2's second episode; MAML after one and after three inner steps) against env steps,
the mean over seeds with each seed faint; the legend says what each pays at test time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import finish

from metarlkit import evaluate
from metarlkit.experiment import load
from metarlkit.experiment.runner import read_run, snapshot_updates

TASK = "point-navigation"


def commands(args) -> dict[str, list[str]]:
    return {
        "pearl": ["pearl", "--task", TASK, "--episodes", "2", "--preset", "cpu-point", "--seeds", str(args.pearl_seeds)],
        "maml": ["maml", "--task", TASK, "--checkpoint-iterations", "10"],
        "rl2": ["rl2", "--task", TASK, "--episodes", "2", "--tasks-per-update", "128", "--entropy-coef", "0",
                "--total-steps", str(args.rl2_steps), "--checkpoint-steps", str(args.rl2_steps // 10)],
    }


def train(out: Path, name: str, argv: list[str]) -> Path:
    run = out / name
    command = [str(Path(sys.executable).parent / "metarlkit"), "train", argv[0], "--no-tensorboard", "--no-progress"]
    command += ["--resume", str(run)] if run.exists() else [*argv[1:], "--snapshots", "--out", str(run)]
    print("$ metarlkit", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return run


def score(run: Path, num_tasks: int) -> list[dict]:
    """One row per (snapshot, seed): env steps and the return per episode on the test goals (MAML:
    per round of the episodes one inner step uses)."""
    seeds = read_run(run)["config"].get("seeds", 1)
    rows = []
    for update in snapshot_updates(run):
        for seed in range(seeds):
            trained = load(run, seed=seed, update=update)
            res = evaluate(trained.agent, trained.family, trained.params, num_episodes=trained.num_episodes,
                           num_tasks=num_tasks, name=trained.name)
            rounds = trained.agent.parallel_episodes  # MAML: the episodes of one inner step, played at once
            per_round = res.returns.reshape(res.num_tasks, -1, rounds).mean(axis=2).mean(axis=0)
            rows.append({"algorithm": read_run(run)["algorithm_name"], "run": str(run), "seed": seed, "update": update,
                         "env_steps": trained.status["env_steps"], "train_wall_s": trained.status["train_wall_s"],
                         "per_episode_return": [float(x) for x in per_round]})
            print(f"{trained.name}: {trained.status['env_steps']:,} env steps, per-episode return "
                  + " ".join(f"{x:.2f}" for x in rows[-1]["per_episode_return"]), flush=True)
    return rows


CURVES = {  # algorithm -> [(episode index, label)]
    "pearl": [(1, "PEARL, 2nd episode (1 episode of the task first)")],
    "rl2": [(1, "RL2, 2nd episode (1 episode of the task first)")],
    "maml": [(1, "MAML, after 1 step (20 episodes of the task first)"),
             (3, "MAML, after 3 steps (60 episodes of the task first)")],
}


def plot(rows: list[dict], path: str, num_tasks: int, target: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    line = 0
    for algo, curves in CURVES.items():
        mine = [r for r in rows if r["algorithm"] == algo]
        if not mine:
            continue
        seeds = sorted({r["seed"] for r in mine})
        for index, label in curves:
            color = colors[line % len(colors)]
            line += 1
            by_seed = []
            for s in seeds:
                pts = sorted((r["env_steps"], r["per_episode_return"][index]) for r in mine if r["seed"] == s
                             and r["env_steps"] > 0)
                by_seed.append(pts)
                if len(seeds) > 1:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, lw=0.6, alpha=0.35)
            steps = [p[0] for p in by_seed[0]]
            mean = np.mean([[p[1] for p in pts] for pts in by_seed], axis=0)
            ax.plot(steps, mean, color=color, marker="o", ms=3, label=label + (f", mean of {len(seeds)} seeds"
                                                                                if len(seeds) > 1 else ""))
    if target is not None:
        ax.axhline(target, color="gray", ls="--", lw=0.8, label=f"{target:g}")
    ax.set_xscale("log")
    ax.set_xlabel("meta-training environment steps")
    ax.set_ylabel(f"return on {num_tasks} test goals")
    ax.set_title(f"{TASK}: return of the first adapted episode against training steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sample-efficiency-runs", help="directory of the run directories")
    parser.add_argument("--num-tasks", type=int, default=500)
    parser.add_argument("--only", default="pearl,maml,rl2", help="comma-separated algorithms to train and score")
    parser.add_argument("--pearl-seeds", type=int, default=3)
    parser.add_argument("--rl2-steps", type=int, default=10_000_000)
    parser.add_argument("--target", type=float, default=-5.2, help="a level drawn across the plot")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--plot", default="sample-efficiency.png")
    args = parser.parse_args()
    chosen = [a for a in args.only.split(",") if a]
    unknown = sorted(set(chosen) - set(CURVES))
    if unknown:
        parser.error(f"--only takes some of {', '.join(CURVES)}; got {unknown[0]!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    argv = commands(args)
    runs = [train(out, name, argv[name]) for name in chosen]
    rows = [row for run in runs for row in score(run, args.num_tasks)]
    plot(rows, args.plot, args.num_tasks, args.target)
    finish(rows, args.json, benchmark="sample_efficiency", task=TASK, num_tasks=args.num_tasks,
           pearl_seeds=args.pearl_seeds, rl2_steps=args.rl2_steps)


if __name__ == "__main__":
    main()
