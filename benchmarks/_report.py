"""Shared ending of the benchmark scripts: print the machine and write the rows as JSON."""

from __future__ import annotations

import json

import jax


def finish(rows: list[dict], json_path: str | None, **setting) -> None:
    """Prints `setting` with the device and jax version; writes {"meta", "rows"} to `json_path`."""
    device = jax.devices()[0]
    meta = {**setting, "device": f"{device.platform}:{device.device_kind}", "jax": jax.__version__}
    print(json.dumps(meta))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


def best_time(compiled, args, repeats: int) -> float:
    """Best wall seconds of `repeats` calls of a compiled function (after one warm-up call): on a
    shared machine the best is the least disturbed run."""
    import time

    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best


def time_chunks(run_chunk, state, num: int, repeats: int):
    """Compiles `run_chunk(state, num)` (a training chunk that donates its state) and times
    `repeats` calls, threading the state through. Returns (compile s, best s, state, metrics)."""
    import time

    start = time.perf_counter()
    chunk = run_chunk.lower(state, num).compile()
    compile_s = time.perf_counter() - start
    best, metrics = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        state, metrics = chunk(state)
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - start)
    return compile_s, best, state, metrics


def gap_closed(x, low, high, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(x - low) / (high - low) over paired per-task arrays, and its 95% percentile interval from
    a bootstrap over tasks: the fraction of the gap between two references that `x` closes."""
    import numpy as np

    x, low, high = (np.asarray(a, np.float64) for a in (x, low, high))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (draws, len(x)))
    boot = (x[idx].mean(1) - low[idx].mean(1)) / (high[idx].mean(1) - low[idx].mean(1))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float((x.mean() - low.mean()) / (high.mean() - low.mean())), float(lo), float(hi)
