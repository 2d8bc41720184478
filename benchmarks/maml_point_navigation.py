"""MAML-RL meta-iteration time on 2D point navigation, compile apart.

    .venv/bin/python benchmarks/maml_point_navigation.py [--iterations 2] [--repeats 3] \
        [--set line_search=vmapped --set inner_estimator=lvc ...] [--profile] [--json FILE]

Builds `make_train` for the standard configuration (the MAMLConfig defaults: 20 tasks x 20
trajectories x 100 steps, one inner step, TRPO with 10 CG iterations), with `--set NAME=VALUE`
overrides; compiles a chunk of `iterations` meta-iterations ahead of time (the compile column),
then times `repeats` calls and reports the best (the least disturbed on a shared machine), with
the last chunk's accepted step fraction and returns before and after adaptation.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _report import best_time, finish, time_chunks

from metarlkit import tasks
from metarlkit.algos import maml
from metarlkit.algos.common import seeded
from metarlkit.experiment.config import build


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="point-navigation")
    parser.add_argument("--iterations", type=int, default=2, help="meta-iterations per timed chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a MAMLConfig override")
    parser.add_argument("--profile", action="store_true",
                        help="also time the meta-iteration's stages, each compiled alone")
    parser.add_argument("--json", help="write the row here")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    config = build(maml.Config, overrides, source="--set")
    family = tasks.from_spec(args.task)
    train = maml.make_train(config, family)
    init, run_chunk = seeded(train)
    state = init(jnp.stack([jax.random.PRNGKey(0)]))
    compile_s, best, state, metrics = time_chunks(run_chunk, state, args.iterations, args.repeats)
    last = {k: float(np.asarray(v)[-1, 0]) for k, v in metrics.items()}
    row = {"overrides": overrides, "compile_s": round(compile_s, 2), "s_per_iteration": round(best / args.iterations, 3),
           "step_fraction": last["step_fraction"], "return_before": last["return_before"],
           "return_after": last["return_after"]}
    print(f"compile {compile_s:.2f} s, {best / args.iterations:.3f} s per meta-iteration "
          f"(best of {args.repeats} chunks of {args.iterations}); last: step fraction {last['step_fraction']:.3f}, "
          f"return before {last['return_before']:.2f}, after {last['return_after']:.2f}")
    if args.profile:
        row["profile"] = profile(train, jax.tree_util.tree_map(lambda x: x[0], state.params), config, args.repeats)
    finish([row], args.json, task=args.task, iterations=args.iterations)


def profile(train, params, config, repeats):
    """Seconds of each stage of one TRPO meta-iteration, compiled and timed alone (best of
    `repeats`); stages that share work are timed as prefixes and differenced."""
    from metarlkit.algos.maml import losses

    pieces = train.extras["internals"]
    lrs, common = pieces["lrs"], pieces["common"]

    flops = {}

    def timed(fn, *args, name=None):
        compiled = jax.jit(fn).lower(*args).compile()
        if name:
            cost = compiled.cost_analysis()
            flops[name] = (cost[0] if isinstance(cost, list) else cost or {}).get("flops", float("nan"))
        return best_time(compiled, args, repeats)

    key = jax.random.PRNGKey(1)
    inner, outer, _, _ = jax.jit(pieces["collect"])(params, key)
    data = losses.OuterData(inner, outer, None, None)
    v = jax.tree_util.tree_map(jnp.ones_like, params)

    def products(p, v, n):
        loss, grad, fvp, _ = losses.outer_gradient_and_fvp(p, data, lrs, **common)
        for _ in range(n):
            v = fvp(v)
        return loss, grad, v

    # the line search evaluates the objective with the old policy already known
    filled = jax.jit(lambda p: losses.outer_gradient_and_fvp(p, data, lrs, **common)[3])(params)

    stages = {
        "rollout and advantages (collect)": timed(pieces["collect"], params, key, name="collect"),
        "linearise, loss and gradient": timed(lambda p, v: products(p, v, 0), params, v, name="linearise"),
    }
    with_products = timed(lambda p, v: products(p, v, config.cg_iterations), params, v, name="products")
    stages["one KL-Hessian product"] = (with_products - stages["linearise, loss and gradient"]) / config.cg_iterations
    gflop = {"rollout and advantages (collect)": flops["collect"] / 1e9,
             "linearise, loss and gradient": flops["linearise"] / 1e9,
             "one KL-Hessian product": (flops["products"] - flops["linearise"]) / config.cg_iterations / 1e9}
    stages["one line-search evaluation"] = timed(pieces["objective"], params, filled)
    for name, seconds in stages.items():
        g = gflop.get(name)
        rate = f" {g:7.2f} GFLOP (XLA's count), {g / seconds:5.1f} GFLOP/s" if g is not None else ""
        print(f"  {name:36s} {seconds * 1e3:8.1f} ms{rate}")
    print(f"  (a meta-iteration: collect + linearise + {config.cg_iterations} products + the line search's "
          f"evaluations, one per fraction tried)")
    return {name: {"s": round(seconds, 4), "gflop": round(gflop[name], 3) if name in gflop else None}
            for name, seconds in stages.items()}


if __name__ == "__main__":
    main()
