"""Throughput of the exact Gamma / Beta samplers under vmap over tasks, against jax.random.

    .venv/bin/python benchmarks/sampling_throughput.py [--tasks 50] [--shape 20x50] [--repeats 5]

Draws Beta(a, b) posterior samples the way OTS does: `tasks` independent keys (vmap), each a
[samples, arms] array whose parameters are Bernoulli posteriors (1 + successes, 1 + failures)
with counts drawn once. Reports compile time and the best of `repeats` timed calls (the machine
is shared: the best is the least disturbed), in ns per sample.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import best_time, finish

from metarlkit.baselines import sampling


def bench(fn, args, repeats):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    return compile_s, best_time(compiled, args, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--shape", default="20x50", help="samples x arms per task")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    samples, arms = (int(x) for x in args.shape.split("x"))
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 40, (args.tasks, arms))
    successes = rng.binomial(counts, rng.uniform(size=(args.tasks, arms)))
    a = jnp.asarray(1 + successes, jnp.float32)
    b = jnp.asarray(1 + counts - successes, jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), args.tasks)
    full = (samples, arms)

    def ours_beta(key, a, b):
        return sampling.beta(key, jnp.broadcast_to(a, full), jnp.broadcast_to(b, full))

    def jax_beta(key, a, b):
        return jax.random.beta(key, jnp.broadcast_to(a, full), jnp.broadcast_to(b, full))

    def ours_gamma(key, a, b):
        del b
        return sampling.gamma(key, jnp.broadcast_to(a, full))

    def jax_gamma(key, a, b):
        del b
        return jax.random.gamma(key, jnp.broadcast_to(a, full))

    n = args.tasks * samples * arms
    rows = []
    for name, fn in (("metarlkit beta", ours_beta), ("jax.random.beta", jax_beta),
                     ("metarlkit gamma", ours_gamma), ("jax.random.gamma", jax_gamma)):
        compile_s, run_s = bench(jax.vmap(fn), (keys, a, b), args.repeats)
        rows.append({"sampler": name, "compile_s": round(compile_s, 2), "ns_per_sample": round(run_s / n * 1e9, 1)})
        print(f"{name:18s} compile {compile_s:5.2f} s   {run_s / n * 1e9:7.1f} ns/sample")
    finish(rows, args.json, tasks=args.tasks, shape=args.shape)


if __name__ == "__main__":
    main()
