"""Plots of evaluation results: per-episode adaptation curves and cumulative regret."""

from __future__ import annotations

import io
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ret, ax_reg) = plt.subplots(1, 2, figsize=(12, 4.5))
    first = results[0]
    if first.num_episodes > 1:
        episodes = np.arange(1, first.num_episodes + 1)
        for res in results:
            mean, half = mean_ci(res.returns)
            (line,) = ax_ret.plot(episodes, mean, label=res.agent_name, lw=1.2)
            ax_ret.fill_between(episodes, mean - half, mean + half, color=line.get_color(), alpha=0.2)
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
        names = [r.agent_name for r in results]
        x = np.arange(len(results))
        for ax, metric, label in ((ax_ret, "total_reward", "total reward"), (ax_reg, "regret", "regret")):
            stats = [mean_ci(getattr(r, metric)) for r in results]
            ax.bar(x, [m for m, _ in stats], yerr=[h for _, h in stats], capsize=3)
            ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(label)
    fig.suptitle(title or f"{first.family.spec()} - {first.num_episodes} episodes, {first.num_tasks} {first.split} tasks")
    fig.tight_layout()
    buf = io.BytesIO()
    fmt = os.path.splitext(str(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
