"""MAML-RL meta-iteration time on 2D point navigation, compile apart.

    .venv/bin/python benchmarks/maml_point_navigation.py [--iterations 2] [--repeats 3] \
        [--set line_search=vmapped --set inner_estimator=lvc ...] [--json FILE]

Builds `make_train` for the standard configuration (the MAMLConfig defaults: 20 tasks x 20
trajectories x 100 steps, one inner step, TRPO with 10 CG iterations), with `--set NAME=VALUE`
overrides; compiles a chunk of `iterations` meta-iterations ahead of time (the compile column),
then times `repeats` calls and reports the best (the least disturbed on a shared machine), with
the last chunk's accepted step fraction and returns before and after adaptation.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import finish

from metarlkit import tasks
from metarlkit.algos import maml
from metarlkit.experiment.config import build


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="point-navigation")
    parser.add_argument("--iterations", type=int, default=2, help="meta-iterations per timed chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a MAMLConfig override")
    parser.add_argument("--json", help="write the row here")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    config = build(maml.Config, overrides, source="--set")
    family = tasks.from_spec(args.task)
    train = maml.make_train(config, family)
    init, run_chunk = maml.seeded(train)
    state = init(jnp.stack([jax.random.PRNGKey(0)]))
    start = time.perf_counter()
    chunk = run_chunk.lower(state, args.iterations).compile()
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        state, metrics = chunk(state)
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - start)
    last = {k: float(np.asarray(v)[-1, 0]) for k, v in metrics.items()}
    row = {"overrides": overrides, "compile_s": round(compile_s, 2), "s_per_iteration": round(best / args.iterations, 3),
           "step_fraction": last["step_fraction"], "return_before": last["return_before"],
           "return_after": last["return_after"]}
    print(f"compile {compile_s:.2f} s, {best / args.iterations:.3f} s per meta-iteration "
          f"(best of {args.repeats} chunks of {args.iterations}); last: step fraction {last['step_fraction']:.3f}, "
          f"return before {last['return_before']:.2f}, after {last['return_after']:.2f}")
    finish([row], args.json, task=args.task, iterations=args.iterations)


if __name__ == "__main__":
    main()
