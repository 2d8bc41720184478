"""Task-family env steps/s with random actions, per number of parallel tasks, compile apart.

    .venv/bin/python benchmarks/family_throughput.py [--tasks pendulum,point-navigation | --tasks "A:x=1;B"] \
        [--parallel 1,64,512] [--steps 2000] [--repeats 3] [--json FILE]

For each family and each number N of parallel tasks: N tasks drawn from the family's default
distribution, one `lax.scan` of `--steps` steps of `family.step` under uniform random actions in
the action box (auto-reset at the horizon; rewards and observations summed so nothing is optimised away), `vmap`ped
over the N tasks and compiled once (the compile column); then the best of `--repeats` calls.
Env steps/s = N x steps / best seconds.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from _report import best_time, finish

from metarlkit import tasks


def program(family, steps: int):
    def random_action(key):
        if family.continuous:
            low, high = family.action_bounds
            return jax.random.uniform(key, family.action_shape, jnp.float32, low, high)
        return jax.random.randint(key, (), 0, family.num_actions)

    def one(key):
        key_task, key_reset, key = jax.random.split(key, 3)
        task = family.sample_task(key_task)
        _, state = family.reset(key_reset, task)

        def body(carry, inputs):
            state, total = carry
            key, t = inputs
            key_act, key_step, key_reset = jax.random.split(key, 3)
            current = family.task_at(task, t)  # as trials do (families whose dynamics change)
            obs, state, reward, done, _ = family.step(key_step, state, random_action(key_act), current)
            fresh = family.reset(key_reset, current)[1]
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, state)
            # observations too: a constant reward (cart-pole's) would let XLA drop the physics
            return (state, total + reward + jnp.sum(obs)), None

        inputs = (jax.random.split(key, steps), jnp.arange(steps))
        (_, total), _ = jax.lax.scan(body, (state, jnp.float32(0.0)), inputs)
        return total

    return jax.jit(jax.vmap(one))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="pendulum,point-navigation",
                        help="task specs separated by ',' (or by ';' when a spec has options of its own)")
    parser.add_argument("--parallel", default="1,64,512")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    print(f"{'task':46s} {'tasks':>6s} {'compile s':>9s} {'run s':>8s} {'env steps/s':>13s}")
    for spec in args.tasks.split(";" if ";" in args.tasks else ","):
        family = tasks.from_spec(spec)
        run = program(family, args.steps)
        for n in (int(x) for x in args.parallel.split(",")):
            keys = jax.random.split(jax.random.PRNGKey(0), n)
            start = time.perf_counter()
            compiled = run.lower(keys).compile()
            compile_s = time.perf_counter() - start
            best = best_time(compiled, (keys,), args.repeats)
            rate = n * args.steps / best
            rows.append({"task": spec, "parallel": n, "compile_s": round(compile_s, 2), "run_s": round(best, 4),
                         "env_steps_per_s": round(rate)})
            print(f"{spec:46s} {n:6d} {compile_s:9.2f} {best:8.4f} {rate:13,.0f}", flush=True)
    finish(rows, args.json, steps=args.steps, repeats=args.repeats)


if __name__ == "__main__":
    main()
