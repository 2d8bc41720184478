"""Same seeds, same results, same speed? Compares this checkout with an earlier revision.

    .venv/bin/python benchmarks/revision_check.py REV [--out DIR] [--speed]

Checks REV out into a temporary git worktree and, with each tree's own source on PYTHONPATH (the
same virtual environment), runs the same short trainings: RL2 with a 64-unit GRU on 5-armed
bandits (100 pulls; 10M env steps, the `demo` preset until 2026-12-05) and MAML's `paper-code` preset on 2D navigation for 4 meta-iterations,
then evaluates each run (1000 and 100 test tasks). It reports whether the checkpoints (every
array), the metric rows (all but wall time) and the evaluations are identical. With `--speed`
it also runs each tree's `rl2_throughput.py` and `maml_point_navigation.py` twice, interleaved
(before, after, before, after), and prints the best of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from flax import serialization

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "metarlkit.cli"]
RUNS = {
    "rl2": (["train", "rl2", "--task", "bernoulli-bandit:arms=5", "--episodes", "100", "--hidden-size", "64",
             "--total-steps", "10000000"],
            ["--num-tasks", "1000"]),
    "maml": (["train", "maml", "--task", "point-navigation", "--preset", "paper-code", "--meta-iterations", "4",
              "--checkpoint-iterations", "2"], ["--num-tasks", "100"]),
}


def run(tree: Path, args, log: Path, script=None) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, str(script)] + args if script else CLI + args
    with open(log, "w") as f:
        subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True, cwd=tree)


def train_and_evaluate(tree: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (train_args, eval_args) in RUNS.items():
        run(tree, train_args + ["--no-progress", "--no-tensorboard", "--out", str(out / name)], out / f"{name}.log")
        run(tree, ["evaluate", "--agent", str(out / name), *eval_args, "--json", str(out / f"{name}-eval.json")],
            out / f"{name}-eval.log")


def compare(before: Path, after: Path) -> bool:
    ok = True
    for name in RUNS:
        a, b = (serialization.msgpack_restore((d / name / "checkpoint.msgpack").read_bytes())["leaves"]
                for d in (before, after))
        arrays = len(a) == len(b) and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
        rows = [[{k: v for k, v in json.loads(line).items() if k != "wall_time_s"}
                 for line in open(d / name / "metrics.jsonl")] for d in (before, after)]
        evals = [json.load(open(d / f"{name}-eval.json")) for d in (before, after)]
        keys = ("total_reward", "regret", "per_episode_return", "return_after_steps")
        same_eval = all(evals[0].get(k) == evals[1].get(k) for k in keys)
        print(f"{name}: checkpoint arrays identical {arrays} ({len(a)} arrays), metric rows identical "
              f"{rows[0] == rows[1]} ({len(rows[0])} rows), evaluation identical {same_eval} "
              f"(total reward {evals[0]['total_reward']['mean']:.4f} / {evals[1]['total_reward']['mean']:.4f})")
        ok &= arrays and rows[0] == rows[1] and same_eval
    return ok


def speed(trees: dict[str, Path], out: Path) -> None:
    benches = {"rl2": ["--json"], "maml": ["--iterations", "2", "--repeats", "3", "--json"]}
    scripts = {"rl2": "rl2_throughput.py", "maml": "maml_point_navigation.py"}
    results: dict = {}
    for round_ in (1, 2):
        for label, tree in trees.items():
            for bench, args in benches.items():
                path = out / f"{bench}-{label}-{round_}.json"
                run(tree, args + [str(path)], out / f"{bench}-{label}-{round_}.log",
                    script=tree / "benchmarks" / scripts[bench])
                rows = json.load(open(path))["rows"]
                results.setdefault((bench, label), []).append(rows)
    for label in trees:
        rl2 = [max(r[i]["env_steps_per_s"] for r in results[("rl2", label)]) for i in range(3)]
        maml = min(r[0]["s_per_iteration"] for r in results[("maml", label)])
        print(f"{label}: RL2 env steps/s (GRU 64/128/256, best of 2 runs) {rl2}; MAML s per meta-iteration {maml}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--out", default=None, help="where the runs go (default: a temporary directory)")
    parser.add_argument("--speed", action="store_true", help="also compare throughput")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="revision-check-"))
    base = out / "tree"
    if not base.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.rev], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    try:
        train_and_evaluate(base, out / "before")
        train_and_evaluate(ROOT, out / "after")
        same = compare(out / "before", out / "after")
        if args.speed:
            speed({"before": base, "after": ROOT}, out)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    print(f"runs in {out}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
