"""What memory is worth on `point-robot-wind`: RL2 against a feed-forward policy and one told the wind.

    .venv/bin/python benchmarks/wind_memory.py [--out DIR] [--steps 20000000] [--seeds 3] \
        [--hidden-size 64] [--episodes 2] [--num-tasks 1000] [--also RUN[:options]]... [--json FILE]

Trains three RL2 runs with the same PPO settings (`metarlkit train rl2`, `--seeds` seeds each,
vmapped), differing only in what the policy can know:
  rl2          GRU core on `point-robot-wind` (memory: it can infer the wind from its transitions);
  feedforward  `--core mlp` on `point-robot-wind` (no memory: the wind is unknowable);
  told         GRU core on `point-robot-wind:observe_wind=true` (the wind is in the observation: the
               same agent as rl2, with nothing left to infer).
A run directory that exists is resumed (or reused when complete), so a stopped benchmark goes on
where it stopped. Every seed is then scored by the common evaluator on the same test tasks (the
`observe_wind` option does not change the tasks: checked), and per seed it reports the fraction of
the feed-forward-to-told gap that memory closes, (rl2 - feedforward) / (told - feedforward), with a
95% interval from a paired bootstrap over tasks, beside the paired differences, the oracle (told
the wind, optimal) and a hand-written memoryless controller (move by clip(1.9 (goal - position)),
ignoring the wind), which shows how much of the gap a perfect memoryless policy could close.
`--also RUN[:option=value,...]` (repeatable) scores another trained run on the same tasks, seed by
seed (e.g. PEARL, with evaluation-only options such as `prior_episodes=0,posterior_update=step`),
and reports its own fraction of the same gap, (run - feedforward) / (told - feedforward).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import finish, gap_closed

from metarlkit import baselines, evaluate, tasks
from metarlkit.evaluation import mean_ci
from metarlkit.experiment import load
from metarlkit.experiment.runner import read_run
from metarlkit.specs import parse_spec
from metarlkit.tasks.tasksets import task_set

VARIANTS = {  # name -> (task spec, core)
    "rl2": ("point-robot-wind", "gru"),
    "feedforward": ("point-robot-wind", "mlp"),
    "told": ("point-robot-wind:observe_wind=true", "gru"),
}


def train(out: Path, name: str, args) -> Path:
    spec, core = VARIANTS[name]
    run = out / name
    command = [str(Path(sys.executable).parent / "metarlkit"), "train", "rl2", "--no-tensorboard", "--no-progress"]
    if run.exists():
        command += ["--resume", str(run)]
    else:
        command += ["--task", spec, "--episodes", str(args.episodes), "--out", str(run), "--core", core,
                    "--hidden-size", str(args.hidden_size), "--total-steps", str(args.steps),
                    "--seeds", str(args.seeds), "--seed", str(args.seed)]
    print("$ metarlkit", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return run


def proportional_controller(gain: float = 1.9):
    """A memoryless, deterministic agent: clip(gain * (goal - position)) in the action box."""
    import jax.numpy as jnp

    from metarlkit.agents import AdaptiveAgent, no_end_episode
    from metarlkit.tasks.navigation import MAX_SPEED, WIND_GOAL

    def act(params, state, obs, key):
        del params, key
        return jnp.clip(gain * (jnp.asarray(WIND_GOAL) - obs[:2]), -MAX_SPEED, MAX_SPEED), state

    return AdaptiveAgent(init=lambda params, key, num_episodes: (), act=act,
                         observe=lambda params, state, transition: state, end_episode=no_end_episode)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="wind-memory-runs", help="directory of the three run directories")
    parser.add_argument("--steps", type=int, default=20_000_000, help="training env steps per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=2, help="episodes per trial (training and test)")
    parser.add_argument("--num-tasks", type=int, default=1000)
    parser.add_argument("--also", action="append", default=[], metavar="RUN[:options]",
                        help="another trained run to score beside rl2 (evaluation-only options after ':')")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {name: train(out, name, args) for name in VARIANTS}

    plain, told_family = (tasks.from_spec(VARIANTS[k][0]) for k in ("rl2", "told"))
    same = [np.array_equal(a, b) for a, b in zip(*(
        [np.asarray(x) for x in (task_set(f, "test", args.num_tasks)[k] for k in ("wind_angle", "wind_speed"))]
        for f in (plain, told_family)))]
    assert all(same), "observe_wind changed the test tasks"

    def score(name, seed):
        if name not in VARIANTS:  # an --also run
            path, _, rest = name.partition(":")
            _, options = parse_spec("run:" + rest if rest else "run")
            trained = load(path, min(seed, read_run(path)["config"].get("seeds", 1) - 1), agent_options=options)
            res = evaluate(trained.agent, plain, trained.params, num_episodes=args.episodes, num_tasks=args.num_tasks,
                           name=trained.name)
            return res.total_reward
        trained = load(runs[name], seed)
        family = told_family if name == "told" else plain
        res = evaluate(trained.agent, family, trained.params, num_episodes=args.episodes, num_tasks=args.num_tasks,
                       name=f"{name}:seed={seed}")
        return res.total_reward

    oracle = baselines.resolve("oracle", plain, args.episodes)
    opt = evaluate(oracle.agent, plain, oracle.params, num_episodes=args.episodes, num_tasks=args.num_tasks).total_reward
    controller = evaluate(proportional_controller(), plain, None, num_episodes=args.episodes,
                          num_tasks=args.num_tasks).total_reward
    rows = []
    print(f"\npoint-robot-wind, {args.episodes} episodes x 20 steps, {args.num_tasks} test tasks, "
          f"{args.steps:,} training steps per seed; ± is a 95% interval")
    print(f"references: oracle {opt.mean():.2f} ± {mean_ci(opt)[1]:.2f}, memoryless controller "
          f"{controller.mean():.2f} ± {mean_ci(controller)[1]:.2f}")
    print("| seed | rl2 | feed-forward | told | rl2 - feed-forward | told - feed-forward | gap closed |")
    print("|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        r = {name: score(name, seed) for name in VARIANTS}
        others = {name: score(name, seed) for name in args.also}
        ratio, low, high = gap_closed(r["rl2"], r["feedforward"], r["told"], seed=seed)
        stats = {name: mean_ci(x) for name, x in r.items()}
        d_mem, d_told = mean_ci(r["rl2"] - r["feedforward"]), mean_ci(r["told"] - r["feedforward"])
        row = {"seed": seed, **{name: {"mean": float(m), "ci95": float(h)} for name, (m, h) in stats.items()},
               "oracle": float(opt.mean()), "memoryless_controller": float(controller.mean()), "rl2_minus_feedforward": [float(d_mem[0]), float(d_mem[1])],
               "told_minus_feedforward": [float(d_told[0]), float(d_told[1])],
               "gap_closed": ratio, "gap_closed_ci95": [low, high]}
        for name, x in others.items():
            ratio_x, low_x, high_x = gap_closed(x, r["feedforward"], r["told"], seed=seed)
            m, h = mean_ci(x)
            row.setdefault("also", {})[name] = {"mean": float(m), "ci95": float(h), "gap_closed": ratio_x,
                                                "gap_closed_ci95": [low_x, high_x]}
            print(f"  seed {seed}, {name}: {m:.2f} ± {h:.2f}, gap closed {ratio_x:.2f} [{low_x:.2f}, {high_x:.2f}]",
                  flush=True)
        rows.append(row)
        cells = " | ".join(f"{stats[n][0]:.2f} ± {stats[n][1]:.2f}" for n in VARIANTS)
        print(f"| {seed} | {cells} | {d_mem[0]:+.2f} ± {d_mem[1]:.2f} | "
              f"{d_told[0]:+.2f} ± {d_told[1]:.2f} | {ratio:.2f} [{low:.2f}, {high:.2f}] |", flush=True)
    finish(rows, args.json, benchmark="wind_memory", steps=args.steps, seeds=args.seeds,
           hidden_size=args.hidden_size, episodes=args.episodes, num_tasks=args.num_tasks)


if __name__ == "__main__":
    main()
