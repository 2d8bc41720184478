"""RL2 time-to-quality: when does a training run pass the classic agents?

    .venv/bin/python benchmarks/rl2_time_to_quality.py RUN_DIR [RUN_DIR ...] [--agents ts,ucb1,gittins] [--json FILE]

For each run (trained by `metarlkit train rl2 ...`), the training curve is the mean expected
total reward of the training trials of each update: fresh tasks from the family's distribution, actions
sampled from the current policy, exactly what the evaluator measures on test tasks. It is
smoothed over 10 updates and compared with the classic agents' mean expected total reward on
the first 1000 test tasks (knobs tuned on 200 validation tasks). Printed: training wall time
(compile excluded) and env steps at which each seed's smoothed curve first reaches each agent,
and where it ends.
"""

from __future__ import annotations

import argparse

import numpy as np
from _report import finish

from metarlkit import baselines, evaluate, tasks
from metarlkit.experiment.metrics import curve, read
from metarlkit.experiment.runner import read_run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--agents", default="ts,ucb1,gittins")
    parser.add_argument("--smooth", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows, refs = [], {}
    for run_dir in args.run_dirs:
        info = read_run(run_dir)
        family, episodes = tasks.from_spec(info["task"]), info["episodes"]
        key = (info["task"], episodes)
        if key not in refs:
            refs[key] = {}
            for spec in args.agents.split(","):
                r = baselines.resolve(spec, family, episodes, tune_tasks=200)
                res = evaluate(r.agent, family, r.params, num_episodes=episodes, num_tasks=1000)
                refs[key][r.spec] = float(res.expected_total_reward.mean())
        data = read(run_dir)
        seeds = info["config"]["seeds"]
        steps, values = curve(data, "trial_expected_return", seeds)
        _, wall = curve(data, "wall_time_s", seeds)
        kernel = np.ones(args.smooth) / args.smooth
        for s in range(seeds):
            smooth = np.convolve(values[:, s], kernel, mode="valid")
            at = slice(args.smooth - 1, None)
            row = {"run": run_dir, "task": info["task"], "episodes": episodes, "seed": s,
                   "final_smoothed": round(float(smooth[-1]), 2), "env_steps": int(steps[-1]),
                   "train_wall_s": round(float(wall[-1, s]), 1), "reached": {}}
            for name, value in refs[key].items():
                hit = np.nonzero(smooth >= value)[0]
                row["reached"][name] = None if not len(hit) else {
                    "reference": round(value, 2), "wall_s": round(float(wall[at][hit[0], s]), 1),
                    "env_steps": int(steps[at][hit[0]])}
            rows.append(row)
            reached = ", ".join(f"{n} ({v['reference'] if v else refs[key][n]:.1f}) at "
                                + (f"{v['wall_s'] / 60:.1f} min / {v['env_steps'] / 1e6:.1f}M steps" if v else "never")
                                for n, v in row["reached"].items())
            print(f"{run_dir} seed {s}: ends at {row['final_smoothed']:.2f} after {row['train_wall_s'] / 60:.1f} min; "
                  f"reaches {reached}")
    finish(rows, args.json, references={f"{k[0]} x {k[1]}": v for k, v in refs.items()})


if __name__ == "__main__":
    main()
