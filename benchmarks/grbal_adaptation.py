"""GrBAL against MB, MB+DE, ReBAL and the true-model planner after a change of dynamics.

    .venv/bin/python benchmarks/grbal_adaptation.py [--task pendulum] [--change-at 100] \
        [--steps 125:175] [--num-tasks 100] [--seeds 3] [--out grbal-runs] [--skip rebal] [--spread S] [--json FILE] \
        [--meta-options step_size=0.02]
    .venv/bin/python benchmarks/grbal_adaptation.py --task point-robot-wind --presets wind --reverse \
        --episodes 2 --change-at 10 --score-episode 1 --steps 0:20 --out grbal-wind-runs \
        --planner method=cem,cem_iterations=4,elites=20

Trains (or resumes, or reuses when complete) with `metarlkit train grbal`, on the family with no
change inside an episode: GrBAL (`--preset cpu`, `--seeds` seeds), ReBAL (`--preset rebal-cpu`,
`--seeds` seeds) and MB (`--preset mb-cpu`, one seed); `--presets wind` takes the `-wind`
presets (`cpu-wind`, `rebal-cpu-wind`, `mb-cpu-wind`: windows that fit point-robot-wind's 20-step
episodes). Then every agent is scored by the common
evaluator on `--num-tasks` test tasks of `TASK:change_at=N` (1-episode trials; the dynamics
change at trial step N to a second draw from the family's distribution, or with `--reverse` the
wind reversed; `--episodes` episodes per trial), with `--step-range`, which gives each task's mean
reward over the steps after the change in episode `--score-episode` (`--planner` sets the
learned agents' evaluation-only planner options, and mpc's to match): MB, MB+DE (the MB run with
`online_adaptation=true`), every seed of GrBAL and ReBAL, and `mpc` planning in the true model with
the same planner as the learned agents (random shooting, the cpu preset's candidates and horizon).
`--meta-options` adds evaluation-only options to the meta-trained runs (GrBAL and ReBAL) only,
e.g. the inner step size they adapt with.
Per seed: the mean reward per step over the range; the paired difference with MB and its 95%
interval (over tasks); and (agent - MB) / (true-model mpc - MB) with a 95% percentile interval
from a paired bootstrap over tasks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import finish, gap_closed

from metarlkit import baselines, evaluate, tasks
from metarlkit.algos.grbal import PRESETS
from metarlkit.evaluation import mean_ci
from metarlkit.experiment import load


def train(out: Path, name: str, preset: str, task: str, seeds: int) -> Path:
    run = out / name
    command = [str(Path(sys.executable).parent / "metarlkit"), "train", "grbal", "--no-tensorboard", "--no-progress"]
    command += ["--resume", str(run)] if run.exists() else ["--task", task, "--preset", preset, "--seeds", str(seeds),
                                                           "--out", str(run)]
    print("$ metarlkit", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pendulum", help="the family (a spec: pendulum:spread=2), trained without a "
                                                           "change")
    parser.add_argument("--change-at", type=int, default=100, help="the trial step of the change")
    parser.add_argument("--reverse", action="store_true", help="point-robot-wind: the wind reverses at the change")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per test trial")
    parser.add_argument("--score-episode", type=int, default=0, help="the episode whose steps are scored")
    parser.add_argument("--presets", default="", help="'wind': the cpu-wind presets")
    parser.add_argument("--planner", default="", help="planner options for every agent at evaluation, e.g. "
                                                      "method=cem,cem_iterations=4,elites=20")
    parser.add_argument("--meta-options", default="", help="evaluation-only options of the GrBAL and ReBAL runs "
                                                           "only, e.g. step_size=0.02")
    parser.add_argument("--spread", type=float, help="score on tasks of this parameter spread (training keeps the "
                                                     "family's own): larger changes, beyond the training range")
    parser.add_argument("--steps", default="125:175", help="START:STOP, the steps scored after the change")
    parser.add_argument("--num-tasks", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="grbal-runs")
    parser.add_argument("--skip", default="", help="comma-separated: rebal")
    parser.add_argument("--json")
    args = parser.parse_args()
    start, _, stop = args.steps.partition(":")
    step_range = (int(start), int(stop))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.presets}" if args.presets else ""
    runs = {"mb": train(out, "mb", f"mb-cpu{suffix}", args.task, 1),
            "grbal": train(out, "grbal", f"cpu{suffix}", args.task, args.seeds)}
    if "rebal" not in args.skip.split(","):
        runs["rebal"] = train(out, "rebal", f"rebal-cpu{suffix}", args.task, args.seeds)

    extra = ("" if args.spread is None else f",spread={args.spread:g}") + (",reverse=true" if args.reverse else "")
    family = tasks.from_spec(f"{args.task}{',' if ':' in args.task else ':'}change_at={args.change_at}{extra}")
    cpu = PRESETS[f"cpu{suffix}"]
    scored_episode = args.score_episode
    try:
        planner = dict(kv.split("=", 1) for kv in args.planner.split(",") if kv)
        meta_options = dict(kv.split("=", 1) for kv in args.meta_options.split(",") if kv)
    except ValueError:
        parser.error(f"--planner and --meta-options take KEY=VALUE,...; got {args.planner!r}, {args.meta_options!r}")
    mpc_options = {"method": "random", "horizon": 10, "candidates": cpu["candidates"]}
    mpc_options.update({"iterations" if k == "cem_iterations" else k: v for k, v in planner.items()})
    reference = baselines.resolve("mpc:" + ",".join(f"{k}={v}" for k, v in mpc_options.items()), family, 1)

    def scored(agent, params, name):
        res = evaluate(agent, family, params, num_episodes=args.episodes, num_tasks=args.num_tasks, name=name,
                       step_range=step_range)
        return res.range_reward[:, scored_episode]

    def run_agent(path, seed=0, **options):
        trained = load(path, seed=seed, agent_options={**planner, **options})
        return scored(trained.agent, trained.params, trained.name)

    mpc = scored(reference.agent, reference.params, "mpc")
    mb = run_agent(runs["mb"])
    rows = [("mpc (true model)", None, mpc), ("MB", 0, mb), ("MB+DE", 0, run_agent(runs["mb"], online_adaptation="true"))]
    for name in ("grbal", "rebal"):
        if name in runs:
            rows += [(name.replace("grbal", "GrBAL").replace("rebal", "ReBAL"), s,
                      run_agent(runs[name], s, **meta_options))
                     for s in range(args.seeds)]
    print(f"\n{family.spec()}, {args.num_tasks} test tasks, mean reward per step over steps "
          f"{step_range[0]}-{step_range[1] - 1} of episode {scored_episode + 1} of {args.episodes}; "
          "± is a 95% interval over tasks")
    print("| agent | seed | reward per step | - MB (paired) | (agent - MB) / (mpc - MB) |")
    print("|---|---|---|---|---|")
    report = []
    for name, seed, x in rows:
        m, h = mean_ci(x)
        d = mean_ci(x - mb)
        r = gap_closed(x, mb, mpc, seed=seed or 0) if name not in ("MB", "mpc (true model)") else None
        report.append({"agent": name, "seed": seed, "mean": float(m), "ci95": float(h), "minus_mb": [float(d[0]), float(d[1])],
                       **({"gap_closed": r[0], "gap_closed_ci95": [r[1], r[2]]} if r else {})})
        gap = f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]" if r else "-"
        print(f"| {name} | {'-' if seed is None else seed} | {m:.4f} ± {h:.4f} | {d[0]:+.4f} ± {d[1]:.4f} | {gap} |",
              flush=True)
    finish(report, args.json, benchmark="grbal_adaptation", task=family.spec(), steps=list(step_range),
           episodes=args.episodes, scored_episode=scored_episode, planner=planner, meta_options=meta_options,
           mpc=reference.spec,
           num_tasks=args.num_tasks, seeds=args.seeds, runs={k: str(v) for k, v in runs.items()})


if __name__ == "__main__":
    main()
