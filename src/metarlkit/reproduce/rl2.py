"""`metarlkit reproduce rl2-bandits` / `rl2-mdps`: the RL2 paper's Tables 1 and 2 with our agents.

Every cell runs each classic agent on the first `num_tasks` test tasks of its family (one trial
of n episodes each) through `metarlkit.evaluate`; knobs are tuned on the validation split first.
The paper's numbers are kept as data (`data/rl2_paper.json`, with their source) and printed
beside ours. For the fully specified agents (random, Thompson sampling) we check agreement:
|ours - paper| <= 3 sqrt(SE_ours^2 + SE_paper^2) + 0.05, where SE_paper, which the paper does not
give, is estimated as our per-task standard deviation over sqrt(1000) (its 1000-task mean).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from importlib import resources
from typing import Any, Callable

import numpy as np

from metarlkit import baselines, tasks
from metarlkit.evaluation import compile_in_background, evaluate, mean_ci

PAPER_TASKS = 1000  # tasks behind each published mean
CHECKED_AGENTS = ("random", "ts")  # fully specified: must agree with the paper


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    table: str  # key in the paper data
    task: Callable[[int], str]  # k -> task spec
    agents: tuple[str, ...]
    ns: tuple[int, ...]
    ks: tuple[int | None, ...]
    description: str


EXPERIMENTS = {
    "rl2-bandits": Experiment(
        "rl2-bandits", "bandits", lambda k: f"bernoulli-bandit:arms={k}",
        ("random", "gittins", "ts", "ots", "ucb1", "egreedy", "greedy", "oracle"),
        (10, 100, 500), (5, 10, 50),
        "RL2 Table 1: Bernoulli bandits, n pulls (one per episode) x k arms",
    ),
    "rl2-mdps": Experiment(
        "rl2-mdps", "mdps", lambda k: "tabular-mdp",
        ("random", "psrl", "opsrl", "ucrl2", "beb", "egreedy", "greedy", "oracle"),
        (10, 25, 50, 75, 100), (None,),
        "RL2 Table 2: random tabular MDPs (|S|=10, |A|=5, 10 steps), n episodes",
    ),
}


PAPERS = ("rl2_paper.json", "snail_paper.json")  # the RL2 paper's tables; SNAIL's MAML row


def paper_data(file: str = "rl2_paper.json") -> dict[str, Any]:
    text = resources.files("metarlkit.reproduce").joinpath(f"data/{file}").read_text()
    return json.loads(text)


def paper_value(table: str, agent: str, n: int, k: int | None) -> float | None:
    """The published number for `agent` in a cell: the RL2 paper's, or for a column it lacks
    (MAML) the number another paper reports on the same tasks (SNAIL); None if none."""
    for file in PAPERS:
        data = paper_data(file).get(table)
        if not data or agent not in data["columns"]:
            continue
        for row in data["rows"]:
            if row["n"] == n and row.get("k") == k:
                return row["values"][data["columns"].index(agent)]
    return None


def run(
    name: str,
    *,
    num_tasks: int = 1000,
    tune_tasks: int = 500,
    seed: int = 0,
    agents: tuple[str, ...] | None = None,
    ns: tuple[int, ...] | None = None,
    ks: tuple[int, ...] | None = None,
    progress: Callable[[str], None] | None = None,
    runs: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Runs an experiment of EXPERIMENTS; returns one row per (cell, agent).

    `runs` are training-run directories (RL2, MAML): each is placed in the cell it was trained for
    and every one of its seeds is evaluated on the same test tasks as the classic agents, giving
    the table's column for its algorithm (mean over seeds; `seeds` lists each seed's mean and ci95).

    Row keys: table, n, k (None for MDPs), agent (the resolved spec), mean, ci95 (of the total
    reward), expected_mean (mean expected total reward), paper, agrees (for random and TS: within
    the tolerance of the module docstring; otherwise None), tolerance, hyperparameters, tuning,
    wall_time_s.
    """
    exp = EXPERIMENTS[name]
    agents = agents or exp.agents
    ns = ns or exp.ns
    ks = ks or exp.ks
    cells = [(n, k, tasks.from_spec(exp.task(k))) for n in ns for k in ks]
    placed = place_runs(name, runs, [(n, k) for n, k, _ in cells])
    # Check every agent on every cell first (bad input fails before any work), and start
    # compiling every program in the order they will run: compiling (one core) overlaps running.
    jobs = [(n, family, baselines.prepare(a, family, n)) for n, _, family in cells for a in agents]
    for n, family, prepared in jobs:
        compile_in_background(prepared.agent, family, prepared.template_params, num_episodes=n)
    rows = []
    for n, k, family in cells:
        for agent_name in agents:
            start = time.perf_counter()
            resolved = baselines.resolve(agent_name, family, n, tune_tasks=tune_tasks, seed=seed)
            result = evaluate(
                resolved.agent, family, resolved.params, num_episodes=n, num_tasks=num_tasks,
                seed=seed, name=resolved.spec, hyperparameters=resolved.hyperparameters,
            )
            total = result.total_reward
            mean, half = mean_ci(total)
            paper = paper_value(exp.table, agent_name, n, k)
            se_ours = float(np.std(total, ddof=1) / math.sqrt(len(total)))
            se_paper = float(np.std(total, ddof=1) / math.sqrt(PAPER_TASKS))
            tolerance = 3.0 * math.hypot(se_ours, se_paper) + 0.05
            agrees = None
            if paper is not None and agent_name in CHECKED_AGENTS:
                agrees = bool(abs(float(mean) - paper) <= tolerance)
            row = {
                "table": exp.table,
                "n": n,
                "k": k,
                "agent": resolved.spec,
                "mean": float(mean),
                "ci95": float(half),
                "expected_mean": float(result.expected_total_reward.mean()),
                "paper": paper,
                "agrees": agrees,
                "tolerance": tolerance,
                "hyperparameters": resolved.hyperparameters,
                "tuning": resolved.tuning,
                "wall_time_s": round(time.perf_counter() - start, 2),
            }
            rows.append(row)
            _report(progress, row)
        for run_dir in placed.get((n, k), ()):
            row = _run_row(exp, run_dir, family, n, k, num_tasks, seed)
            rows.append(row)
            _report(progress, row)
    return rows


def _report(progress, row) -> None:
    if progress:
        cell = f"n={row['n']}" + (f" k={row['k']}" if row["k"] is not None else "")
        paper_txt = f" (paper {row['paper']})" if row["paper"] is not None else ""
        progress(f"{cell:12s} {row['agent']:24s} {row['mean']:9.2f} ± {row['ci95']:5.2f}{paper_txt}"
                 f"  [{row['wall_time_s']:.1f}s]")


def place_runs(name: str, runs, cells) -> dict[tuple, list[str]]:
    """{(n, k): [run dirs]}; ValueError for a run that is not of this experiment or of these cells."""
    from metarlkit.experiment.runner import read_run

    exp = EXPERIMENTS[name]
    placed: dict[tuple, list[str]] = {}
    for run_dir in runs:
        info = read_run(run_dir)
        family = tasks.from_spec(info["task"])
        k = getattr(family, "arms", None) if exp.ks != (None,) else None
        if family != tasks.from_spec(exp.task(k)):
            raise ValueError(f"{run_dir} was trained on {family.spec()}, which is not a task of {name}")
        cell = (info["episodes"], k)
        if cell not in cells:
            where = f"n={cell[0]}" + (f", k={k}" if k is not None else "")
            raise ValueError(f"{run_dir} is for {where}, not a cell of this table; add it with --n/--k or drop the run")
        placed.setdefault(cell, []).append(str(run_dir))
    return placed


def _run_row(exp, run_dir, family, n, k, num_tasks, seed) -> dict[str, Any]:
    from metarlkit.experiment import load
    from metarlkit.experiment.runner import budget_text

    start = time.perf_counter()
    per_seed, totals, expected = [], [], []
    trained = load(run_dir)
    algorithm = trained.info["algorithm_name"]
    for s in range(trained.info["config"]["seeds"]):
        trained = load(run_dir, seed=s)
        result = evaluate(trained.agent, family, trained.params, num_episodes=n, num_tasks=num_tasks,
                          seed=seed, name=trained.name)
        m, h = mean_ci(result.total_reward)
        per_seed.append({"seed": s, "mean": float(m), "ci95": float(h)})
        totals.append(result.total_reward)
        expected.append(result.expected_total_reward.mean())
    # ci95 over tasks of the per-task mean over seeds; the spread between seeds is in `seeds`.
    mean, half = mean_ci(np.mean(totals, axis=0))
    return {
        "table": exp.table, "n": n, "k": k, "agent": f"{algorithm}({run_dir})", "algorithm": algorithm,
        "mean": float(mean), "ci95": float(half), "expected_mean": float(np.mean(expected)),
        "paper": paper_value(exp.table, algorithm, n, k), "agrees": None, "tolerance": None,
        "hyperparameters": trained.hyperparameters, "tuning": None, "seeds": per_seed,
        "training_budget": budget_text(run_dir), "wall_time_s": round(time.perf_counter() - start, 2),
    }


def oracle_violations(rows: list[dict[str, Any]]) -> list[str]:
    """Agents whose mean expected total reward exceeds the oracle's in the same cell (a bug)."""
    out = []
    oracle = {(r["n"], r["k"]): r["expected_mean"] for r in rows if r["agent"] == "oracle"}
    for r in rows:
        best = oracle.get((r["n"], r["k"]))
        if best is not None and r["expected_mean"] > best + 1e-6 * max(1.0, abs(best)):
            out.append(f"n={r['n']} k={r['k']} {r['agent']}: {r['expected_mean']:.3f} > oracle {best:.3f}")
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """One block per cell: our mean ± ci95 per agent, the paper's number under it.

    A '!' marks a checked agent (random, TS) outside the agreement tolerance.
    """
    lines = []
    cells = []
    for r in rows:
        if (r["n"], r["k"]) not in cells:
            cells.append((r["n"], r["k"]))
    for n, k in cells:
        cell_rows = [r for r in rows if (r["n"], r["k"]) == (n, k)]
        names = [r.get("algorithm") or r["agent"].split(":")[0] for r in cell_rows]
        width = 16
        head = f"n={n}" + (f" k={k}" if k is not None else "")
        lines.append(f"{head:10s}" + "".join(f"{a:>{width}s}" for a in names))
        ours = "".join(
            f"{('%.1f±%.1f' % (r['mean'], r['ci95'])) + ('!' if r['agrees'] is False else ''):>{width}s}"
            for r in cell_rows
        )
        paper = "".join(
            f"{('%.1f' % r['paper']) if r['paper'] is not None else '-':>{width}s}" for r in cell_rows
        )
        lines.append(f"{'  ours':10s}{ours}")
        lines.append(f"{'  paper':10s}{paper}")
    return "\n".join(lines)
