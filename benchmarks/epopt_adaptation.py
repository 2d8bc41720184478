"""EPOpt's source adaptation end to end: does training on from the adapted source help on the target?

    .venv/bin/python benchmarks/epopt_adaptation.py [--task pendulum:spread=2] \
        [--physics mass=1.8,length=1.6] [--out DIR] [--seeds 3] [--iterations 200] [--more 50] \
        [--episodes 5] [--num-tasks 500] [--retrain "--epsilon 1"] [--json FILE]

With the command line only (every step is a `metarlkit` command, printed as it runs):
  source     `train epopt` on TASK (`--seeds` seeds, `--iterations` iterations): the robust policy
             and its source distribution, whose mean is off the target;
  target     `record` of `--episodes` episodes of the source run's seed-0 policy on the target
             model (`--physics`; the learner is told nothing but the transitions);
  adapted    `train epopt --init-from source --adapt-to target.npz --iterations MORE`;
  continued  `train epopt --init-from source --iterations MORE`: the same extra budget on the
             unadapted source (the control: what the extra iterations alone buy).
`--retrain` adds options to both runs trained on (e.g. "--epsilon 1": plain ensemble TRPO on the
adapted source; its CVaR over a near-point posterior is a CVaR over start states). Existing run
directories are resumed or reused. Then, per seed: each parameter's source mean before
and after the update (from the adapted run's run.json) and the fraction of the way to the target
it moved; and each run's return on the target over `--num-tasks` test tasks (start states) through
the common evaluator, with the paired differences adapted − source and adapted − continued (95%
intervals over the tasks).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _report import finish

from metarlkit import evaluate, tasks
from metarlkit.evaluation import mean_ci
from metarlkit.experiment import load
from metarlkit.experiment.runner import read_status
from metarlkit.specs import parse_spec

METARLKIT = str(Path(sys.executable).parent / "metarlkit")


def run(*argv) -> None:
    print("$ metarlkit", " ".join(str(a) for a in argv), flush=True)
    subprocess.run([METARLKIT, *map(str, argv)], check=True)


def train(run_dir: Path, *argv) -> None:
    if (run_dir / "run.json").exists():
        if read_status(run_dir).get("state") != "complete":
            run("train", "epopt", "--resume", run_dir, "--no-progress", "--no-tensorboard")
        return
    run("train", "epopt", *argv, "--out", run_dir, "--no-progress", "--no-tensorboard")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pendulum:spread=2")
    parser.add_argument("--physics", default="mass=1.8,length=1.6")
    parser.add_argument("--out", default="epopt-adaptation")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--more", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--num-tasks", type=int, default=500)
    parser.add_argument("--retrain", default="", help="options added to both runs trained on, e.g. '--epsilon 1'")
    parser.add_argument("--json")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source, recording = out / "source", out / "target.npz"
    train(source, "--task", args.task, "--seeds", args.seeds, "--iterations", args.iterations)
    if not recording.exists():
        run("record", "--agent", source, "--task", args.task, "--physics", args.physics,
            "--episodes", args.episodes, "--seed", 1, "--out", recording)
    retrain = args.retrain.split()
    train(out / "adapted", "--init-from", source, "--adapt-to", recording, "--iterations", args.more, *retrain)
    train(out / "continued", "--init-from", source, "--iterations", args.more, *retrain)

    family = tasks.from_spec(args.task)
    target = {name: float(value) for name, value in parse_spec("physics:" + args.physics)[1].items()}
    on_target = family.default_distribution().fix(**target)
    adapted_info = json.loads((out / "adapted" / "run.json").read_text())["adapted_to"]

    def score(name, seed):
        trained = load(out / name, seed)
        return evaluate(trained.agent, family, trained.params, num_episodes=1, num_tasks=args.num_tasks,
                        distribution=on_target).total_reward

    rows = []
    print(f"\n{args.task}, target {args.physics}, {args.episodes} recorded episodes "
          f"({adapted_info['transitions']} transitions); {args.iterations} + {args.more} iterations {args.retrain}; "
          f"returns on the target over {args.num_tasks} start states; ± and [..] are 95% intervals")
    for seed in range(args.seeds):
        info = adapted_info["seeds"][seed]
        moved = {name: (info["mean_after"][name] - info["mean_before"][name]) / (value - info["mean_before"][name])
                 for name, value in target.items() if value != info["mean_before"][name]}
        r = {name: score(name, seed) for name in ("source", "continued", "adapted")}
        row = {"seed": seed, "ess": info["ess"], "mean_before": info["mean_before"], "mean_after": info["mean_after"],
               "fraction_moved": moved}
        for name, returns in r.items():
            m, h = mean_ci(returns)
            row[name] = {"mean": float(m), "ci95": float(h)}
        for other in ("source", "continued"):
            m, h = mean_ci(r["adapted"] - r[other])
            row[f"adapted_minus_{other}"] = {"mean": float(m), "ci95": float(h)}
        rows.append(row)
        means = ", ".join(f"{k} {info['mean_before'][k]:.3f} -> {info['mean_after'][k]:.3f} ({moved[k]:.0%} of the way)"
                          for k in moved)
        print(f"seed {seed}: source mean {means}; effective draws {info['ess']:.1f}")
        print("  on the target: " + ", ".join(f"{k} {v['mean']:.1f} ± {v['ci95']:.1f}"
                                             for k, v in row.items() if k in r)
              + "; adapted − source {0[mean]:+.1f} ± {0[ci95]:.1f}, adapted − continued {1[mean]:+.1f} ± {1[ci95]:.1f}"
              .format(row["adapted_minus_source"], row["adapted_minus_continued"]), flush=True)
    walls = {name: read_status(out / name).get("train_wall_s") for name in ("source", "adapted", "continued")}
    print("training wall time (s, all seeds at once): " + ", ".join(f"{k} {v}" for k, v in walls.items()))
    finish(rows, args.json, benchmark="epopt_adaptation", task=args.task, physics=args.physics, seeds=args.seeds,
           iterations=args.iterations, more=args.more, retrain=args.retrain, episodes=args.episodes, num_tasks=args.num_tasks,
           train_wall_s=walls)


if __name__ == "__main__":
    main()
