"""How much do tabular-MDP transitions matter? The optimal return against the best myopic policy.

    .venv/bin/python benchmarks/mdp_structure.py [--tasks 4000] [--json FILE]

For tasks drawn from `tabular-mdp` (10 states, 5 actions, 10-step episodes), prints the mean
optimal episode return (finite-horizon value iteration) and the exact expected episode return of
the task-aware policy that takes the action of highest mean reward in every state and ignores
where it leads. A small gap means the family is nearly a contextual bandit: what an agent has to
learn is each state-action pair's reward, looked up by the current state.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _report import finish

from metarlkit import tasks


def myopic_return(family, task) -> jax.Array:
    """Expected return of one episode from state 0 under a = argmax_a R(s, a) in every state."""
    p, r = task["transitions"], task["rewards"]
    states = jnp.arange(family.states)
    best = r.argmax(-1)
    p_pi, r_pi = p[states, best], r[states, best]

    def step(dist, _):
        return dist @ p_pi, dist @ r_pi

    _, rewards = jax.lax.scan(step, jax.nn.one_hot(0, family.states), None, length=family.steps)
    return rewards.sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    family = tasks.make("tabular-mdp")
    sampled = jax.vmap(family.sample_task)(jax.random.split(jax.random.PRNGKey(0), args.tasks))
    optimal = jax.jit(jax.vmap(family.optimal_return))(sampled)
    myopic = jax.jit(jax.vmap(lambda t: myopic_return(family, t)))(sampled)
    rows = [{"policy": "optimal", "episode_return": round(float(optimal.mean()), 3)},
            {"policy": "myopic (best immediate reward)", "episode_return": round(float(myopic.mean()), 3)}]
    for row in rows:
        print(f"{row['policy']:32s} {row['episode_return']:8.3f}")
    finish(rows, args.json, task=family.spec(), tasks=args.tasks)


if __name__ == "__main__":
    main()
