"""The Gittins-index agent for Bernoulli bandits (Gittins 1979; Gittins, Glazebrook & Weber 2011).

Which index. Each arm is treated as an independent Bernoulli arm with a uniform prior, so after s
successes and f failures its posterior is Beta(1 + s, 1 + f) with mean p = (s + 1) / (s + f + 2).
Its *discounted* Gittins index with discount g is found by calibration against a retirement
option (Gittins's "standard bandit process"): retiring pays lambda per step forever, in total
lambda / (1 - g), and

    V(s, f) = max(lambda / (1 - g),  p (1 + g V(s+1, f)) + (1 - p) g V(s, f+1))  (for each lambda),
    index(s, f) = the lambda at which pulling once more and retiring now are worth the same.

Pulling the arm of largest index (ties to the lowest arm) is Bayes-optimal for the infinite-horizon
discounted problem with independent arms. Our trials are finite and undiscounted, so the discount
is a knob, tuned on the validation task set like every other knob; its grid DISCOUNT_GRID spans
effective horizons 1 / (1 - g) from 10 to 1000 pulls.

How it is computed (numpy, on the host, once per (number of pulls, discount), then cached):
  * Truncation. States with s + f <= D = N + MARGIN, N the pulls in the trial (the agent never sees
    more than N - 1 observations when it acts) and MARGIN = 200 steps of look-ahead past them. At
    s + f = D the boundary value assumes the posterior stops moving: V = max(lambda, p) / (1 - g).
    This is a lower bound (it ignores the information still to come), so indices deep in the
    table are very slightly low.
  * Lambda grid. LAMBDA_POINTS = 1001 equally spaced retirement rewards in [0, 1]. One backward
    induction, diagonal by diagonal (s + f = D - 1, ..., 0) and vectorised over all lambdas, keeps
    the value in excess of retiring, W = V - lambda / (1 - g) >= 0, and its slope dW/dlambda.
    W is zero for lambda above a state's index, so each block of states only computes the
    lambdas up to the largest index of its successors (about half the work); float32 suffices for
    W (agreement with float64 to 3e-7).
  * Interpolation. C(lambda) = p - lambda + g (p W(s+1, f) + (1 - p) W(s, f+1)), continuing minus
    retiring, is convex, piecewise linear and decreasing in lambda; the index is its zero. Between
    the two grid points that bracket the zero we take the larger of the zeros of the tangents at
    the two ends. By convexity both are lower bounds, and the larger is exact when one kink of C
    lies in the bracket; here it is 3x (g = 0.99) to 50x (g = 0.9) more accurate than the chord
    (linear interpolation).
  * Accuracy. Grid: against a 32001-point grid (states with s + f < 150), the error is below
    1e-5 for g = 0.9, 1e-4 for g = 0.99 and 2.5e-4 for g = 0.999. Truncation: against a table
    1500 pulls deeper (N = 500, all its states), below 1.5e-4 for g = 0.99 but up to 2e-3 for
    g = 0.999, whose effective horizon (1000 pulls) exceeds the margin. Index(0, 0) is 0.70289 for
    g = 0.9 (Gittins tabulates 0.7029) and 0.86986 for g = 0.99.
  * Cost: one table per discount, [N, N] float32 (1 MB for 500 pulls), computed in time that
    grows with N (docs/baselines.md). Trials longer than MAX_PULLS are refused.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from metarlkit.agents import AdaptiveAgent
from metarlkit.baselines.bandit import _count_agent
from metarlkit.baselines.core import Baseline, Knob, register
from metarlkit.specs import SpecError
from metarlkit.tasks.base import TaskFamily

DISCOUNT_GRID = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
MARGIN = 200  # look-ahead past the last state the agent can be in
LAMBDA_POINTS = 1001  # retirement rewards on [0, 1], spacing 1e-3
MAX_PULLS = 1000  # larger trials need tables of (N + MARGIN)^2 x LAMBDA_POINTS work; refuse them
_ROWS_PER_BLOCK = 128  # states per vectorised block of a diagonal


def gittins_table(num_pulls: int, discount: float, *, margin: int = MARGIN,
                  lambda_points: int = LAMBDA_POINTS) -> np.ndarray:
    """Discounted Gittins indices of a Bernoulli arm with a Beta(1 + s, 1 + f) posterior.

    Calibration by backward induction over posterior states, vectorised over a grid of retirement
    rewards (see the module docstring for the truncation, grid and interpolation).

    Args:
      num_pulls: N, pulls in the trial; the table covers every state with s + f <= N - 1.
      discount: g in [0, 1).
      margin: extra depth of the truncated state space (D = N + margin).
      lambda_points: size of the retirement-reward grid on [0, 1].

    Returns:
      float32 [N, N] array, index[s, f] for s + f <= N - 1; entries with s + f >= N (never used)
      hold the posterior mean.
    """
    if not 0.0 <= discount < 1.0:
        raise ValueError(f"discount must be in [0, 1), got {discount!r}")
    if num_pulls < 1:
        raise ValueError(f"num_pulls must be >= 1, got {num_pulls!r}")
    return _cached_table(int(num_pulls), float(discount), int(margin), int(lambda_points)).copy()


@functools.lru_cache(maxsize=16)
def _cached_table(num_pulls: int, discount: float, margin: int, lambda_points: int) -> np.ndarray:
    depth = num_pulls + margin
    lam = np.linspace(0.0, 1.0, lambda_points)
    lam32 = lam.astype(np.float32)
    g = np.float32(discount)
    inv = 1.0 / (1.0 - discount)

    s = np.arange(depth + 1)
    p = (s + 1) / (depth + 2)
    # Boundary: the posterior stops moving, so continuing is worth p per step forever.
    w = (np.maximum(p[:, None] - lam, 0.0) * inv).astype(np.float32)
    dw = np.where(lam < p[:, None], -inv, 0.0).astype(np.float32)
    # positive[s]: grid points where continuing beats retiring (W > 0); W = 0 from there on.
    positive = np.count_nonzero(lam < p[:, None], axis=1)

    n_all = np.add.outer(np.arange(num_pulls), np.arange(num_pulls))
    s_all = np.arange(num_pulls)[:, None]
    table = (s_all + 1.0) / (n_all + 2.0)
    for n in range(depth - 1, -1, -1):  # n = s + f
        w_next, dw_next, pos_next = w, dw, positive
        w = np.zeros((n + 1, lambda_points), np.float32)
        dw = np.zeros((n + 1, lambda_points), np.float32)
        positive = np.zeros(n + 1, np.int64)
        p_n = np.arange(1, n + 2) / (n + 2)
        for r0 in range(0, n + 1, _ROWS_PER_BLOCK):
            r1 = min(r0 + _ROWS_PER_BLOCK, n + 1)
            # A state's index is at most its successors' largest, so beyond the grid point where
            # the successors' W vanish, C < 0 and W = 0: compute only up to there.
            cols = min(int(pos_next[r0:r1 + 1].max()) + 1, lambda_points)
            pb = p_n[r0:r1, None].astype(np.float32)
            fail, succ = w_next[r0:r1, :cols], w_next[r0 + 1:r1 + 1, :cols]
            c = succ - fail
            c *= pb
            c += fail
            c *= g
            c += pb
            c -= lam32[:cols]
            dfail, dsucc = dw_next[r0:r1, :cols], dw_next[r0 + 1:r1 + 1, :cols]
            dc = dsucc - dfail
            dc *= pb
            dc += dfail
            dc *= g
            dc -= 1.0
            go = c > 0
            k = np.minimum(np.count_nonzero(go, axis=1), cols - 1)  # first grid point with C <= 0
            positive[r0:r1] = k
            np.maximum(c, 0.0, out=w[r0:r1, :cols])
            np.copyto(dw[r0:r1, :cols], dc, where=go)
            if n < num_pulls:
                rows = np.arange(r1 - r0)
                left, right = np.maximum(k - 1, 0), k
                c_left = c[rows, left].astype(np.float64)
                c_right = c[rows, right].astype(np.float64)
                zero_left = lam[left] - c_left / dc[rows, left]
                zero_right = lam[right] - c_right / dc[rows, right]
                index = np.clip(np.maximum(zero_left, zero_right), lam[left], lam[right])
                states = np.arange(r0, r1)
                table[states, n - states] = index
    table = table.astype(np.float32)
    table.setflags(write=False)
    return table


def _check_pulls(family: TaskFamily, num_episodes: int) -> int:
    num_pulls = num_episodes * family.horizon
    if num_pulls > MAX_PULLS:
        raise SpecError(
            f"gittins index tables are limited to {MAX_PULLS} pulls per trial, this trial has "
            f"{num_pulls}; use ts or ucb1"
        )
    return num_pulls


def supports(family: TaskFamily) -> str | None:
    """None for families with Bernoulli rewards, else a one-line reason."""
    if family.reward_model != "bernoulli":
        return (
            f"its index is for Bernoulli rewards and {family.name} has {family.reward_model} "
            "rewards; use it on bernoulli-bandit, dependent-bandit or restless-bandit"
        )
    return None


def build(family: TaskFamily, num_episodes: int, knobs) -> AdaptiveAgent:
    """Pulls argmax_a index[successes_a, failures_a]; the table comes in params['index']."""
    del knobs
    _check_pulls(family, num_episodes)

    def choose(params, s, key):
        del key
        table = params["index"]
        last = table.shape[-1] - 1
        successes = jnp.clip(jnp.round(s.sums).astype(jnp.int32), 0, last)
        failures = jnp.clip(jnp.round(s.counts - s.sums).astype(jnp.int32), 0, last)
        return jnp.argmax(table[successes, failures])

    return _count_agent(family, choose)


def make_params(family: TaskFamily, num_episodes: int, *, discount: float):
    """{'index': float32 [N, N]}: stacking tables of several discounts makes a vmap-able sweep."""
    num_pulls = _check_pulls(family, num_episodes)
    return {"index": jnp.asarray(gittins_table(num_pulls, discount))}


register(
    Baseline(
        "gittins", "discounted Gittins index of each arm's Beta posterior (Bernoulli bandits)",
        build, make_params, supports,
        knobs={"discount": Knob(float, DISCOUNT_GRID, 0.0, 0.999, "discount of the Gittins index")},
    )
)
