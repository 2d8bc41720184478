"""Plots of evaluation results: per-episode adaptation curves and cumulative regret."""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import numpy as np

from metarlkit.evaluation import EvalResult, mean_ci
from metarlkit.utils import write_atomic


def plot_results(results: Sequence[EvalResult], path: str | os.PathLike, title: str | None = None) -> None:
    """Writes a PNG (or any matplotlib format, by extension) comparing agents on one task set.

    Multi-episode trials: left, mean return per episode with its 95% band (the adaptation curve);
    right, mean cumulative regret over episodes. One-episode trials: mean total reward and regret
    per agent as bars with 95% intervals.
    """
    plt = _pyplot()
    aligned = [r for r in results if r.aligned_reward is not None]
    fig, axes = plt.subplots(1, 3 if aligned else 2, figsize=(18 if aligned else 12, 4.5))
    ax_ret, ax_reg = axes[0], axes[1]
    first = results[0]
    _draw_results(ax_ret, ax_reg, results)
    if aligned:
        _draw_aligned(axes[2], aligned)
    fig.suptitle(title or f"{first.family.spec()} - {first.num_episodes} episodes, {first.num_tasks} {first.split} tasks")
    _save(fig, path)


def _draw_aligned(ax, results: Sequence[EvalResult]) -> None:
    """Mean reward per step with its 95% band against the step relative to each task's change of
    dynamics (`evaluate(per_step=True)` on a family that changes inside a trial)."""
    for res in results:
        rew = res.aligned_reward
        trial = rew.count.shape[1] // 2
        keep = rew.count[0] > 0
        steps = np.arange(-trial, trial)[keep]
        mean, half = rew.mean[0][keep], np.nan_to_num(rew.ci95[0][keep])
        (line,) = ax.plot(steps, mean, lw=1.0, label=short_agent_name(res.agent_name))
        ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.15)
    ax.axvline(0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("step relative to the change of dynamics")
    ax.set_ylabel("mean reward per step")
    ax.set_title("aligned on each task's change")
    ax.legend(fontsize=7)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fmt = os.path.splitext(str(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def _draw_results(ax_ret, ax_reg, results: Sequence[EvalResult]) -> None:
    """Adaptation curve (left axis) and cumulative regret (right axis), or bars for 1-episode trials."""
    first = results[0]
    if first.regret is None:
        ax_reg.text(0.5, 0.5, f"regret not defined:\n{first.not_defined()['regret']}", ha="center", va="center",
                    transform=ax_reg.transAxes)
    if first.num_episodes > 1:
        episodes = np.arange(1, first.num_episodes + 1)
        for res in results:
            mean, half = mean_ci(res.returns)
            (line,) = ax_ret.plot(episodes, mean, label=short_agent_name(res.agent_name), lw=1.2)
            ax_ret.fill_between(episodes, mean - half, mean + half, color=line.get_color(), alpha=0.2)
            if res.regret is None:  # the family declares no optimum
                continue
            regret = np.cumsum(res.optimal_return[:, None] - res.returns, axis=1)
            mean_r, half_r = mean_ci(regret)
            ax_reg.plot(episodes, mean_r, color=line.get_color(), lw=1.2)
            ax_reg.fill_between(episodes, mean_r - half_r, mean_r + half_r, color=line.get_color(), alpha=0.2)
        ax_ret.set_xlabel("episode in trial")
        ax_ret.set_ylabel("mean return")
        ax_reg.set_xlabel("episode in trial")
        ax_reg.set_ylabel("cumulative regret")
        ax_ret.legend(fontsize=8)
    else:
        names = [short_agent_name(r.agent_name) for r in results]
        x = np.arange(len(results))
        for ax, metric, label in ((ax_ret, "total_reward", "total reward"), (ax_reg, "regret", "regret")):
            if getattr(first, metric) is None:
                continue
            stats = [mean_ci(getattr(r, metric)) for r in results]
            ax.bar(x, [m for m, _ in stats], yerr=[h for _, h in stats], capsize=3)
            ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(label)


DEFAULT_BASELINES = ("gittins", "bayes-optimal", "ts", "ucb1", "psrl", "ucrl2", "greedy", "random")


def default_baselines(family) -> list[str]:
    """The classic agents a trained run is plotted beside: those of DEFAULT_BASELINES that support it."""
    from metarlkit import baselines

    return [b for b in DEFAULT_BASELINES if baselines.get(b).supports(family) is None][:6]


def plot_run(run_dirs: Sequence[str], out: str | None = None, *, num_tasks: int = 500,
             baselines: Sequence[str] | None = None, tune_tasks: int = 200, seed: int = 0) -> list[str]:
    """Plots training runs of one task: training curve, adaptation curve and regret beside baselines.

    Every seed of every run and each classic agent (knobs tuned on `tune_tasks` validation tasks)
    is evaluated on the first `num_tasks` test tasks with the same draws (`metarlkit.evaluate`).
    `baselines=[]` plots the runs alone. Returns the written paths (default
    RUN_DIR/plots/summary.png of the first run).
    """
    from metarlkit import algos
    from metarlkit import baselines as classic
    from metarlkit.evaluation import evaluate
    from metarlkit.experiment import load
    from metarlkit.experiment.metrics import curve, read
    from metarlkit.experiment.runner import budget_text, read_run

    infos = [read_run(d) for d in run_dirs]
    task, episodes = infos[0]["task"], infos[0]["episodes"]
    for d, info in zip(run_dirs, infos):
        if (info["task"], info["episodes"]) != (task, episodes):
            raise ValueError(f"{d} was trained on {info['task']} x {info['episodes']} episodes, {run_dirs[0]} on "
                             f"{task} x {episodes}; plot runs of one task together")
    results = []
    for d, info in zip(run_dirs, infos):
        for s in range(info["config"].get("seeds", 1)):
            trained = load(d, seed=s)
            results.append(evaluate(trained.agent, trained.family, trained.params, num_episodes=episodes,
                                    num_tasks=num_tasks, name=trained.name, seed=seed))
    family = results[0].family
    for spec in default_baselines(family) if baselines is None else baselines:
        r = classic.resolve(spec, family, episodes, tune_tasks=tune_tasks, seed=seed)
        results.append(evaluate(r.agent, family, r.params, num_episodes=episodes, num_tasks=num_tasks,
                                name=r.spec, seed=seed))

    plt = _pyplot()
    fig, (ax_train, ax_ret, ax_reg) = plt.subplots(1, 3, figsize=(17, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ylabel = None
    for i, (d, info) in enumerate(zip(run_dirs, infos)):
        seeds = info["config"].get("seeds", 1)
        color = colors[i % len(colors)]
        for name, what, style in algos.get(info["algorithm_name"]).curves:
            steps, values = curve(read(d), name, seeds)
            if len(steps) == 0:
                continue
            ylabel = ylabel or what
            for s in range(seeds):
                ax_train.plot(steps / 1e6, values[:, s], color=color, lw=0.6, alpha=0.35, ls=style)
            width = min(10, len(steps))
            smooth = np.convolve(np.nanmean(values, axis=1), np.ones(width) / width, mode="valid")
            label = f"{d} {name}: " + (f"mean of {seeds} seeds, " if seeds > 1 else "") + f"{width}-update average"
            ax_train.plot(steps[width - 1:] / 1e6, smooth, color=color, lw=1.6, ls=style,
                          label=f"{label}\n({budget_text(d)})")
    ax_train.set_xlabel("environment steps (millions)")
    ax_train.set_ylabel(ylabel or "training metric")
    ax_train.legend(fontsize=7)
    ax_train.set_title("training")
    _draw_results(ax_ret, ax_reg, results)
    ax_ret.set_title(f"{num_tasks} test tasks")
    fig.suptitle(f"{family.spec()} - {episodes} episodes per trial")
    path = out or os.path.join(run_dirs[0], "plots", "summary.png")
    _save(fig, path)
    return [path]


def short_agent_name(name: str) -> str:
    """A legend label: a run's agent name `algo(path/to/run):seed=N` as `algo(run):seed=N`."""
    import re

    return re.sub(r"\(([^()]*/)([^()/]+)\)", r"(\2)", name)


def plot_sweep(sweep: dict, path: str | os.PathLike) -> None:
    """Writes the plot of `metarlkit sweep`'s JSON: each agent's mean total reward (solid, with its
    95% band) and CVaR of the worst 10% of tasks (dashed) against the swept parameter, the
    default distribution's range of it shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    low, high = sweep["default_range"]
    ax.axvspan(low, high, color="0.9", label=f"default range of {sweep['param']}")
    for i, agent in enumerate(sweep["agents"]):
        color = f"C{i}"
        x = np.array([p["value"] for p in agent["points"]])
        mean = np.array([p["total_reward"]["mean"] for p in agent["points"]])
        half = np.array([p["total_reward"]["ci95"] or 0.0 for p in agent["points"]])
        cvar = np.array([p["cvar"]["value"] for p in agent["points"]])
        name = short_agent_name(agent["agent"])
        ax.plot(x, mean, "o-", color=color, label=f"{name} (mean)")
        ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.2)
        ax.plot(x, cvar, "--", color=color, label=f"{name} (worst 10%)")
    ax.set_xlabel(sweep["param"])
    ax.set_ylabel(f"total reward ({sweep['episodes']} episode(s))")
    ax.set_title(f"{sweep['task']}: {sweep['num_tasks']} {sweep['split']} tasks per value")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_paths(paths: dict, path: str | os.PathLike) -> None:
    """Writes the plot of `metarlkit paths`: one panel per task, the robot's path in each episode
    coloured by the episode's index (early episodes dark, late ones light), the goal starred, and
    for the sparse point robot the circle of possible goals dotted and the goal's reward zone."""
    plt = _pyplot()
    tasks = paths["tasks"]
    cols = min(len(tasks), 4)
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows + 0.4), squeeze=False)
    cmap = plt.get_cmap("viridis")
    episodes = paths["episodes"]
    for ax, task in zip(axes.ravel(), tasks):
        if paths.get("goal_circle"):
            angle = np.linspace(0.0, np.pi, 200)
            ax.plot(np.cos(angle), np.sin(angle), ":", color="0.6", lw=1)
            ax.add_patch(plt.Circle(task["goal"], paths["goal_circle"], color="0.85", zorder=0))
        for e, positions in enumerate(task["positions"]):
            xy = np.asarray(positions)
            ax.plot(xy[:, 0], xy[:, 1], "-", color=cmap(e / max(episodes - 1, 1)), lw=1.2)
        ax.plot(*task["goal"], "*", color="crimson", ms=12)
        ax.plot(0.0, 0.0, "k.", ms=5)
        success = task.get("success")
        label = f"task {task['index']}" + (f": first success in episode {success}" if success else "")
        ax.set_title(label, fontsize=8)
        ax.set_aspect("equal")
    for ax in axes.ravel()[len(tasks):]:
        ax.axis("off")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, episodes))
    fig.colorbar(sm, ax=axes.ravel().tolist(), shrink=0.8, label="episode")
    fig.suptitle(f"{paths['agent']} on {paths['task']}", fontsize=9)
    _save_untight(fig, path)


def _save_untight(fig, path) -> None:
    """`_save` without tight_layout (a colorbar spanning several axes)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fmt = os.path.splitext(str(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buf.getvalue())
