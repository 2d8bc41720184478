"""PEARL's posterior over the latent task variable, episode by episode, on the sparse point robot.

    .venv/bin/python benchmarks/pearl_posterior.py --run RUN [--update U] [--agent-options prior_episodes=5] \
        [--task point-navigation:variant=sparse] [--episodes 10] [--num-tasks 1000] [--show 3] \
        [--goal-fit] [--out pearl-posterior.png] [--json FILE]

Plays one trial of `--episodes` episodes on each of the first `--num-tasks` test tasks with the
trained agent (the rollout path of evaluation, `trial.run_trials`) and reads the agent's posterior
q(z | context) at the first step of every episode, i.e. after the episodes before it. It reports,
per episode, the posterior's spread (the mean over latent dimensions of its standard deviation)
averaged over the trials that have found the goal before that episode and over those that have
not, and the fraction of trials that have found it. The figure shows that spread (left) and, for
`--show` tasks, the posterior's mean ± one standard deviation per latent dimension episode by
episode, with the episodes in which the goal was reached marked (right). "Found" means a
positive sparse reward (within 0.2 of the goal) at some step. `--goal-fit` (families whose tasks
are goals) adds, per episode, how much of the goal the posterior's mean says: the R^2 of a least-
squares fit of each goal coordinate on the mean, its squares and a constant, over the test tasks.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from _report import finish

from metarlkit import tasks
from metarlkit.algos.pearl import context as C
from metarlkit.experiment import load
from metarlkit.specs import parse_spec
from metarlkit.tasks.tasksets import task_set
from metarlkit.trial import run_trials


def posteriors(trained, family, num_episodes: int, num_tasks: int, seed: int = 0):
    """(means [T, E, L], variances [T, E, L], success [T, E]) of the posterior at each episode's start."""
    probabilistic = bool(trained.hyperparameters["probabilistic"])

    def record(state, transition):
        del transition
        post = C.posterior(state.sums, probabilistic)
        return post.mean, post.var

    chosen = task_set(family, "test", num_tasks)
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * num_tasks)
    rec = jax.jit(lambda p, t: run_trials(family, trained.agent, p, t, keys[:num_tasks], keys[num_tasks:],
                                          num_episodes, record, transitions=True))(trained.params, chosen)
    mean, var = rec.extras
    valid = np.asarray(rec.valid)
    success = (np.asarray(rec.reward) > 0) & valid
    return np.asarray(mean[:, :, 0]), np.asarray(var[:, :, 0]), success.any(axis=2)


def summarise(mean, var, success):
    """Per episode: fraction found before it, mean posterior spread over found / not-found trials."""
    found_before = np.concatenate([np.zeros_like(success[:, :1]), np.cumsum(success, axis=1)[:, :-1] > 0], axis=1)
    spread = np.sqrt(var).mean(axis=2)  # [T, E]
    rows = []
    for e in range(mean.shape[1]):
        f = found_before[:, e]
        rows.append({
            "episode": e + 1,
            "found_before": float(f.mean()),
            "success": float(success[:, e].mean()),
            "spread_found": float(spread[f, e].mean()) if f.any() else None,
            "spread_not_found": float(spread[~f, e].mean()) if (~f).any() else None,
        })
    return rows


def goal_fit(mean, goals):
    """Per episode: R^2 (mean over the goal's coordinates) of goals [T, G] fitted on [z, z^2, 1]."""
    fits = []
    for e in range(mean.shape[1]):
        z = mean[:, e].astype(np.float64)
        x = np.concatenate([z, z**2, np.ones((len(z), 1))], axis=1)
        coef, *_ = np.linalg.lstsq(x, goals, rcond=None)
        r2 = 1 - ((x @ coef - goals) ** 2).sum(0) / ((goals - goals.mean(0)) ** 2).sum(0)
        fits.append(float(np.mean(r2)))
    return fits


def plot(rows, mean, var, success, show: int, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = np.arange(1, mean.shape[1] + 1)
    fig, axes = plt.subplots(1, 1 + show, figsize=(4.2 * (1 + show), 3.8), squeeze=False)
    ax = axes[0, 0]
    for key, label in (("spread_not_found", "goal not found yet"), ("spread_found", "goal found before")):
        ys = [np.nan if r[key] is None else r[key] for r in rows]
        ax.plot(episodes, ys, marker="o", label=label)
    ax.set_xlabel("episode (posterior from the episodes before it)")
    ax.set_ylabel("posterior std (mean over latent dims)")
    ax.set_title("spread of q(z | context)")
    ax.legend(fontsize=8)
    for i in range(show):
        ax = axes[0, 1 + i]
        for d in range(mean.shape[2]):
            m, s = mean[i, :, d], np.sqrt(var[i, :, d])
            line, = ax.plot(episodes, m, lw=1.2)
            ax.fill_between(episodes, m - s, m + s, color=line.get_color(), alpha=0.15)
        for e in np.flatnonzero(success[i]):
            ax.axvspan(e + 0.6, e + 1.4, color="tab:green", alpha=0.12, lw=0)
        ax.set_xlabel("episode")
        ax.set_title(f"test task {i}: mean ± std per latent dim\n(green: goal reached)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a PEARL run directory")
    parser.add_argument("--seed-index", type=int, default=0, help="which seed of the run")
    parser.add_argument("--update", type=int, help="a snapshot of a run trained with --snapshots")
    parser.add_argument("--goal-fit", action="store_true", help="add the R^2 of the goal from the posterior mean")
    parser.add_argument("--agent-options", default="", help="evaluation-only options, e.g. prior_episodes=2")
    parser.add_argument("--task", default="point-navigation:variant=sparse")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--num-tasks", type=int, default=1000)
    parser.add_argument("--show", type=int, default=3, help="tasks whose posterior is drawn dimension by dimension")
    parser.add_argument("--out", default="pearl-posterior.png")
    parser.add_argument("--json", help="write the per-episode rows here")
    args = parser.parse_args()

    _, options = parse_spec("x:" + args.agent_options if args.agent_options else "x")
    trained = load(args.run, seed=args.seed_index, agent_options=options, update=args.update)
    if trained.info["algorithm_name"] != "pearl":
        parser.error(f"{args.run} is a {trained.info['algorithm_name']} run; give a PEARL run")
    family = tasks.from_spec(args.task)
    mean, var, success = posteriors(trained, family, args.episodes, args.num_tasks)
    rows = summarise(mean, var, success)
    if args.goal_fit:
        chosen = task_set(family, "test", args.num_tasks)
        if not isinstance(chosen, dict) or "goal" not in chosen:
            parser.error(f"--goal-fit needs a family whose tasks are goals; {family.spec()}'s are not")
        for row, r2 in zip(rows, goal_fit(mean, np.asarray(chosen["goal"], np.float64))):
            row["goal_r2"] = r2
    print(f"{trained.name} on {family.spec()}, {args.num_tasks} test tasks")
    columns = ("found_before", "success", "spread_found", "spread_not_found") + (("goal_r2",) if args.goal_fit else ())
    print("| episode | found before | success | posterior std, found before | not found |"
          + (" goal R^2 from the mean |" if args.goal_fit else ""))
    print("|---" * (len(columns) + 1) + "|")
    for r in rows:
        cells = [f"{r[k]:.3f}" if r[k] is not None else "-" for k in columns]
        print(f"| {r['episode']} | " + " | ".join(cells) + " |")
    from metarlkit.plotting import short_agent_name

    plot(rows, mean, var, success, min(args.show, args.num_tasks), args.out,
         f"{short_agent_name(trained.name)} on {family.spec()}, {args.num_tasks} test tasks")
    finish(rows, args.json, benchmark="pearl_posterior", run=args.run, agent=trained.name, task=family.spec(),
           episodes=args.episodes, num_tasks=args.num_tasks)


if __name__ == "__main__":
    main()
