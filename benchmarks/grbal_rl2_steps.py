"""The env steps RL2 needs to reach GrBAL's reward after a change of dynamics.

    .venv/bin/python benchmarks/grbal_rl2_steps.py --grbal-json grbal.json [--rl2-steps 10000000] \
        [--out grbal-rl2-runs] [--json FILE]

Reads a `benchmarks/grbal_adaptation.py` report (`--grbal-json`): its test family (with the
change), episodes per trial, scored episode and step range, number of test tasks, and GrBAL's
reward per step over the range (the mean over its seeds). Trains RL2 (or resumes, or reuses when
complete) on that same family, changes included — RL2 learns from trials like the test ones —
with the README's continuous-action settings (128 trials per update, no entropy bonus), at most
`--rl2-steps` env steps, and `--snapshots` every tenth of them. Every snapshot is scored by the
common evaluator on the same test tasks and step range; printed: each snapshot's env steps and
reward per step (95% interval over tasks), and the first snapshot whose mean reaches GrBAL's
("not reached" if none does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import finish

from metarlkit import evaluate
from metarlkit.evaluation import mean_ci
from metarlkit.experiment import load
from metarlkit.experiment.runner import snapshot_updates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grbal-json", required=True, help="a report of benchmarks/grbal_adaptation.py")
    parser.add_argument("--rl2-steps", type=int, default=10_000_000, help="the cap on RL2's env steps")
    parser.add_argument("--out", default="grbal-rl2-runs", help="directory of the RL2 run")
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        report = json.loads(Path(args.grbal_json).read_text())
        meta = report["meta"]
        task, steps, num_tasks = meta["task"], tuple(meta["steps"]), meta["num_tasks"]
        episodes, scored = meta.get("episodes", 1), meta.get("scored_episode", 0)
        grbal = [r["mean"] for r in report["rows"] if r["agent"] == "GrBAL"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--grbal-json {args.grbal_json}: not a grbal_adaptation report ({exc})")
    if not grbal:
        parser.error(f"--grbal-json {args.grbal_json}: no GrBAL rows")
    target = float(np.mean(grbal))
    run = Path(args.out) / f"rl2-{task.replace(':', '_').replace(',', '_').replace('=', '')}"
    command = [str(Path(sys.executable).parent / "metarlkit"), "train", "rl2", "--no-tensorboard", "--no-progress"]
    command += ["--resume", str(run)] if run.exists() else [
        "--task", task, "--episodes", str(episodes), "--tasks-per-update", "128", "--entropy-coef", "0",
        "--total-steps", str(args.rl2_steps), "--checkpoint-steps", str(args.rl2_steps // 10), "--snapshots",
        "--out", str(run)]
    print("$ metarlkit", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)

    rows, reached = [], None
    for update in snapshot_updates(run):
        trained = load(run, update=update)
        res = evaluate(trained.agent, trained.family, trained.params, num_episodes=episodes, num_tasks=num_tasks,
                       name=trained.name, step_range=steps)
        m, h = mean_ci(res.range_reward[:, scored])
        env_steps = int(trained.status["env_steps"])
        rows.append({"update": update, "env_steps": env_steps, "mean": float(m), "ci95": float(h)})
        print(f"{env_steps:>10,} env steps: {m:.4f} ± {h:.4f}", flush=True)
        if reached is None and m >= target:
            reached = env_steps
    print(f"\n{task}, steps {steps[0]}-{steps[1] - 1} of episode {scored + 1}: GrBAL {target:.4f} "
          f"(mean of {len(grbal)} seeds); RL2 reaches it at "
          + (f"{reached:,} env steps" if reached is not None else f"not reached in {rows[-1]['env_steps']:,} env steps"))
    finish(rows, args.json, benchmark="grbal_rl2_steps", task=task, steps=list(steps), grbal=target,
           reached_env_steps=reached, rl2_steps=args.rl2_steps, run=str(run))


if __name__ == "__main__":
    main()
