"""PEARL throughput per preset: gradient steps/s, and env steps/s of one whole training iteration.

    .venv/bin/python benchmarks/pearl_throughput.py [--task point-navigation:variant=sparse,goals=oyster] \
        [--presets cpu-sparse,paper-sparse] [--steps 50] [--repeats 3] [--json FILE]

Per preset: `make_train`, the initial phase run once (so the buffers hold data), then
  gradient   `--steps` gradient steps of the preset (context batch, SAC batch, encoder + critic,
             value and policy steps) compiled as one scan and timed `--repeats` times: steps/s;
  iteration  one training iteration (collection of `tasks_per_iteration` trials, then the
             preset's `train_steps` gradient steps) compiled and timed once: env steps/s and
             seconds per iteration.
The best of the repeats is reported (the machine is shared: the least disturbed run).
"""

from __future__ import annotations

import argparse
import time

import jax
from _report import best_time, finish

from metarlkit import tasks
from metarlkit.algos.pearl import PRESETS, PEARLConfig, make_train
from metarlkit.experiment.config import build
from metarlkit.trial import TaskSource


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="point-navigation:variant=sparse,goals=oyster")
    parser.add_argument("--presets", default="cpu-sparse,paper-sparse")
    parser.add_argument("--steps", type=int, default=50, help="gradient steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    family = tasks.from_spec(args.task)
    rows = []
    print(f"{args.task}: | preset | gradient steps/s | iteration (s) | env steps/s | compile (s) |")
    for name in args.presets.split(","):
        config = build(PEARLConfig, PRESETS[name], source=f"pearl preset {name}")
        train = make_train(config, family, None, TaskSource(family, config.train_tasks))
        state = jax.jit(train.init)(jax.random.PRNGKey(0))
        state, _ = jax.jit(lambda s: train.phases[0].run_chunk(s, 1))(state)
        step = train.extras["gradient_step"]
        scan = jax.jit(lambda carry, key: jax.lax.scan(step, carry, jax.random.split(key, args.steps)))
        carry = (state.nets, state.opt, state.rl_buffer, state.enc_buffer)
        start = time.perf_counter()
        compiled = scan.lower(carry, jax.random.PRNGKey(1)).compile()
        compile_s = time.perf_counter() - start
        steps_per_s = args.steps / best_time(compiled, (carry, jax.random.PRNGKey(1)), args.repeats)
        iteration = jax.jit(lambda s: train.phases[-1].run_chunk(s, 1)).lower(state).compile()
        jax.block_until_ready(iteration(state))  # warm
        start = time.perf_counter()
        jax.block_until_ready(iteration(state))
        seconds = time.perf_counter() - start
        env_steps = train.phases[-1].steps_per_update
        row = {"preset": name, "gradient_steps_per_s": round(steps_per_s, 1), "iteration_s": round(seconds, 2),
               "env_steps_per_iteration": env_steps, "env_steps_per_s": round(env_steps / seconds),
               "gradient_steps_per_iteration": config.train_steps, "compile_s": round(compile_s, 1)}
        rows.append(row)
        print(f"| {name} | {row['gradient_steps_per_s']} | {row['iteration_s']} | {row['env_steps_per_s']:,} | "
              f"{row['compile_s']} |", flush=True)
    finish(rows, args.json, benchmark="pearl_throughput", task=args.task, steps=args.steps, repeats=args.repeats)


if __name__ == "__main__":
    main()
