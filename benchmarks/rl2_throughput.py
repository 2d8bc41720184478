"""RL2 training throughput: compile time and steady-state env steps/s per core size.

    .venv/bin/python benchmarks/rl2_throughput.py [--sizes 64,128,256] [--repeats 3] [--json FILE]
    .venv/bin/python benchmarks/rl2_throughput.py --task tabular-mdp --episodes 10 --preset mdp \
        --cores gru,transformer --sizes 64,128

Each setting builds `make_train` (by default for 5-armed Bernoulli bandits with 100-pull trials
and the default config: 512 trials per update, PPO 4 epochs x 4 minibatches; `--preset` starts
from a named preset instead, the core and size still set per row), compiles a chunk of `updates`
updates ahead of time (the compile column), then times `repeats` calls of it and reports the best
(the machine is shared: the best is the least disturbed run). Env steps = updates x trials per
update x steps per trial.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _report import finish, time_chunks

from metarlkit import tasks
from metarlkit.algos import rl2
from metarlkit.algos.common import seeded


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bernoulli-bandit:arms=5")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--cores", default="gru")
    parser.add_argument("--preset", default="default", choices=sorted(rl2.PRESETS))
    parser.add_argument("--updates", type=int, default=5, help="updates per timed chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    family = tasks.from_spec(args.task)
    rows = []
    print(f"{'core':11s} {'hidden':>6s} {'compile s':>9s} {'s/update':>9s} {'env steps/s':>12s}")
    for core in args.cores.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            config = rl2.RL2Config(**{**rl2.PRESETS[args.preset], "core": core, "hidden_size": size})
            train = rl2.make_train(config, family, args.episodes)
            init, run_chunk = seeded(train)
            state = init(jnp.stack([jax.random.PRNGKey(0)]))
            compile_s, best, state, _ = time_chunks(run_chunk, state, args.updates, args.repeats)
            steps = args.updates * train.phases[0].steps_per_update
            row = {"core": core, "hidden": size, "compile_s": round(compile_s, 2),
                   "s_per_update": round(best / args.updates, 3), "env_steps_per_s": round(steps / best)}
            rows.append(row)
            print(f"{core:11s} {size:6d} {compile_s:9.2f} {best / args.updates:9.3f} {steps / best:12,.0f}", flush=True)
    finish(rows, args.json, task=args.task, episodes=args.episodes, preset=args.preset,
           trials_per_update=config.tasks_per_update, updates=args.updates)


if __name__ == "__main__":
    main()
