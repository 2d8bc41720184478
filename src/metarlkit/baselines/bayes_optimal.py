"""Exact Bayes-optimal bandit agents: policies from dynamic programming, stored as lookup tables.

The trial's objective is the undiscounted expected total reward over N = episodes x horizon
pulls under the family's prior over tasks; episode boundaries do not matter to a bandit, so the
Bayes-optimal policy is a function of the posterior state and the pulls left. It is computed on
the host with numpy, once per N (cached), and the agent only looks its action up.

  bernoulli-bandit, 2 arms (means ~ U[0, 1] independently, i.e. Beta(1, 1) priors). The posterior
    state is (s1, f1, s2, f2); after t pulls, N - t remain. Backward induction over t = N-1, ..., 0
        V_t(x) = max_a  p_a (1 + V_{t+1}(x + success_a)) + (1 - p_a) V_{t+1}(x + failure_a),
        p_a = (s_a + 1) / (n_a + 2),
    ties to arm 0 (a difference under 1e-9 per remaining pull counts as a tie). There are
    C(N + 3, 4) states with t <= N - 1 (6.9e7 at N = 200): the policy is stored as one bit per
    state, ranked by (t, n1, s1, s2) with n1 = s1 + f1:
        rank = offsets[t, n1] + s1 (t - n1 + 1) + s2.
    Up to TWO_ARM_MAX_PULLS = 200 pulls: about 1 s of CPU, 80 MB while building, 8.6 MB of bits
    kept; beyond that `build` refuses (the work grows as N^4). For k > 2 arms the state space
    grows as N^(2k): use gittins.
  dependent-bandit (means p and 1 - p). A success on arm 0 and a failure on arm 1 are both
    evidence for p (likelihood p), the other two outcomes evidence against it (likelihood 1 - p),
    so the posterior is fixed by alpha (evidence for) and beta (against) counts. Both arms lead
    to alpha + 1 with the same probability m = E[p | alpha, beta] and to beta + 1 otherwise, so
    they carry the same information, the continuation values of the two arms are equal, and the
    DP over (alpha, beta) reduces to greedy on the posterior mean: pull arm 1 iff m < 1/2 (ties to
    arm 0). tests/test_bayes_optimal.py checks this against the DP for every variant. With the
    uniform prior m < 1/2 iff alpha < beta; with the two-point prior {q0, q1} (each 1/2),
    m < 1/2 iff alpha log(q1/q0) + beta log((1-q1)/(1-q0)) < log((1/2 - q0) / (q1 - 1/2)).
  eleven-arm-bandit. Pull the informative arm 10 once (it pays 0.1 x the target's 1-based index),
    then the revealed target for the remaining pulls: 0.55 + 4 x 5 = 20.55 in expectation. The
    test verifies optimality by exact search over the belief states (sets of possible targets).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.agents import AdaptiveAgent, no_end_episode
from metarlkit.baselines.bandit import _count_agent
from metarlkit.baselines.core import Baseline, register
from metarlkit.specs import SpecError
from metarlkit.tasks.base import TaskFamily

TWO_ARM_MAX_PULLS = 200
SUPPORTED = ("bernoulli-bandit:arms=2", "dependent-bandit", "eleven-arm-bandit")
_TIE = 1e-9  # per remaining pull: closer action values count as a tie (float rounding)


# --- 2-arm Bernoulli bandit -------------------------------------------------------------------


class TwoArmPolicy(NamedTuple):
    """Bayes-optimal policy of the 2-arm Beta(1, 1) Bernoulli bandit over N pulls.

    bits: uint8 [ceil(C(N+3, 4) / 8)]; bit r (little-endian within bytes) is the action (0 or 1)
      in the state of rank r (see the module docstring).
    offsets: int32 [N, N]; offsets[t, n1] = rank of (t pulls, n1 on arm 0, s1 = s2 = 0).
    value: Bayes-optimal expected total reward of the N pulls (from the empty state).
    """

    bits: np.ndarray
    offsets: np.ndarray
    value: float


def two_arm_rank(offsets, t, n1, s1, s2):
    """Rank of the state (t pulls, n1 on arm 0, s1 and s2 successes); numpy or jax integers."""
    return offsets[t, n1] + s1 * (t - n1 + 1) + s2


def _slab_offsets(t: int) -> np.ndarray:
    # Within the states after t pulls, the slab of n1 holds (n1 + 1) x (t - n1 + 1) states.
    sizes = (np.arange(t + 1) + 1) * (t - np.arange(t + 1) + 1)
    return np.concatenate([[0], np.cumsum(sizes)])


@functools.lru_cache(maxsize=8)
def two_arm_policy(num_pulls: int) -> TwoArmPolicy:
    """Backward induction for the 2-arm Bernoulli bandit with independent U[0, 1] means.

    Args:
      num_pulls: N, the total pulls of the trial (1 <= N <= TWO_ARM_MAX_PULLS).

    Returns:
      TwoArmPolicy (cached; do not modify its arrays).
    """
    if not 1 <= num_pulls <= TWO_ARM_MAX_PULLS:
        raise ValueError(f"num_pulls must be in [1, {TWO_ARM_MAX_PULLS}], got {num_pulls!r}")
    layer_start = [math.comb(t + 3, 4) for t in range(num_pulls + 1)]
    pick = np.zeros(layer_start[num_pulls], np.bool_)
    offsets = np.zeros((num_pulls, num_pulls), np.int32)
    after = np.zeros(math.comb(num_pulls + 3, 3))  # values with no pulls left
    for t in range(num_pulls - 1, -1, -1):
        slab_next, slab = _slab_offsets(t + 1), _slab_offsets(t)
        offsets[t, : t + 1] = layer_start[t] + slab[:-1]
        now = np.empty(slab[-1])
        tie = _TIE * (num_pulls - t)
        for n1 in range(t + 1):
            n2 = t - n1
            # Successors after pulling arm 0 have n1 + 1 pulls on it; after arm 1, n1.
            arm0 = after[slab_next[n1 + 1]:slab_next[n1 + 2]].reshape(n1 + 2, n2 + 1)
            arm1 = after[slab_next[n1]:slab_next[n1 + 1]].reshape(n1 + 1, n2 + 2)
            p0 = (np.arange(1, n1 + 2) / (n1 + 2))[:, None]
            p1 = (np.arange(1, n2 + 2) / (n2 + 2))[None, :]
            q0 = arm0[1:] - arm0[:-1]
            q0 += 1.0
            q0 *= p0
            q0 += arm0[:-1]
            q1 = arm1[:, 1:] - arm1[:, :-1]
            q1 += 1.0
            q1 *= p1
            q1 += arm1[:, :-1]
            choose1 = q1 - q0 > tie
            now[slab[n1]:slab[n1 + 1]] = np.where(choose1, q1, q0).ravel()
            start = layer_start[t] + slab[n1]
            pick[start:start + choose1.size] = choose1.ravel()
        after = now
    bits = np.packbits(pick, bitorder="little")
    bits.setflags(write=False)
    offsets.setflags(write=False)
    return TwoArmPolicy(bits, offsets, float(after[0]))


def _build_two_arm(family, num_episodes):
    _two_arm_pulls(family, num_episodes)

    def choose(params, s, key):
        del key
        offsets = params["offsets"]
        t = jnp.minimum(s.t, offsets.shape[0] - 1)
        n1 = jnp.round(s.counts[0]).astype(jnp.int32)
        s1 = jnp.round(s.sums[0]).astype(jnp.int32)
        s2 = jnp.round(s.sums[1]).astype(jnp.int32)
        rank = two_arm_rank(offsets, t, n1, s1, s2)
        return ((params["bits"][rank >> 3] >> (rank & 7).astype(jnp.uint8)) & 1).astype(jnp.int32)

    return _count_agent(family, choose)


def _two_arm_pulls(family, num_episodes) -> int:
    num_pulls = num_episodes * family.horizon
    if num_pulls > TWO_ARM_MAX_PULLS:
        raise SpecError(
            f"bayes-optimal on {family.name} is exact dynamic programming limited to "
            f"{TWO_ARM_MAX_PULLS} pulls per trial (work grows as N^4), this trial has {num_pulls}; "
            "use gittins"
        )
    return num_pulls


# --- dependent bandit -------------------------------------------------------------------------


def dependent_rule(family: TaskFamily) -> tuple[float, float, float]:
    """(A, B, C) such that the Bayes-optimal action is arm 1 iff A alpha + B beta < C.

    alpha / beta count the outcomes with likelihood p / 1 - p; the rule is "arm 1 iff
    E[p | alpha, beta] < 1/2" (see the module docstring), written in a form that is exact for
    integer counts under the uniform prior and for the symmetric two-point priors.
    """
    support = family.support()
    if support is None:
        return 1.0, -1.0, 0.0
    q0, q1 = sorted(float(q) for q in support)
    if q0 >= 0.5:
        return 0.0, 0.0, -1.0  # E[p] >= 1/2 whatever is seen: always arm 0
    if q1 <= 0.5:
        return 0.0, 0.0, 1.0  # E[p] < 1/2 whatever is seen: always arm 1
    return (
        math.log(q1 / q0),
        math.log((1.0 - q1) / (1.0 - q0)),
        math.log((0.5 - q0) / (q1 - 0.5)),
    )


def _build_dependent(family, num_episodes):
    del num_episodes
    a, b, c = dependent_rule(family)

    def choose(params, s, key):
        del params, key
        failures = s.counts - s.sums
        alpha = s.sums[0] + failures[1]
        beta = failures[0] + s.sums[1]
        score = a * alpha + b * beta - c
        # float32 rounding is far below the smallest nonzero |score| for integer counts, so a
        # relative tolerance separates true ties (to arm 0) from decisions.
        scale = abs(a) * alpha + abs(b) * beta + abs(c) + 1.0
        return (score < -1e-5 * scale).astype(jnp.int32)

    return _count_agent(family, choose)


# --- eleven-arm bandit ------------------------------------------------------------------------


class ElevenArmState(NamedTuple):
    target: jax.Array  # int32: the paying arm once arm 10 revealed it, else -1


def _build_eleven(family, num_episodes):
    del family, num_episodes

    def init(params, key, num_episodes):
        del params, key, num_episodes
        return ElevenArmState(jnp.int32(-1))

    def act(params, state, obs, key):
        del params, obs, key
        return jnp.where(state.target < 0, 10, state.target).astype(jnp.int32), state

    def observe(params, state, transition):
        del params
        # Arm 10 pays 0.1 x (target + 1).
        revealed = jnp.round(transition.reward * 10.0).astype(jnp.int32) - 1
        return ElevenArmState(jnp.where(transition.action == 10, revealed, state.target))

    return AdaptiveAgent(init, act, observe, no_end_episode)


# --- registration -----------------------------------------------------------------------------


def supports(family: TaskFamily) -> str | None:
    """None where an exact policy is implemented, else a one-line reason."""
    if family.name == "bernoulli-bandit":
        if family.num_actions != 2:
            return (
                "exact dynamic programming is implemented for 2 arms (states grow as N^(2k)); "
                "use gittins for k arms"
            )
        return None
    if family.name in ("dependent-bandit", "eleven-arm-bandit"):
        return None
    return "exact Bayes-optimal policies are implemented for " + ", ".join(SUPPORTED) + " only"


def build(family: TaskFamily, num_episodes: int, knobs) -> AdaptiveAgent:
    """The Bayes-optimal agent of `family` for trials of `num_episodes` episodes."""
    del knobs
    reason = supports(family)
    if reason:
        raise SpecError(f"agent 'bayes-optimal' cannot run on {family.name}: {reason}")
    if family.name == "bernoulli-bandit":
        return _build_two_arm(family, num_episodes)
    if family.name == "dependent-bandit":
        return _build_dependent(family, num_episodes)
    return _build_eleven(family, num_episodes)


def make_params(family: TaskFamily, num_episodes: int, **knobs):
    """The 2-arm policy table (bits, offsets) for Bernoulli bandits; {} elsewhere."""
    del knobs
    if family.name != "bernoulli-bandit":
        return {}
    policy = two_arm_policy(_two_arm_pulls(family, num_episodes))
    return {"bits": jnp.asarray(policy.bits), "offsets": jnp.asarray(policy.offsets)}


register(
    Baseline(
        "bayes-optimal",
        "exact Bayes-optimal policy by dynamic programming (2-arm Bernoulli, dependent, 11-arm)",
        build, make_params, supports, aliases=("bayes",),
    )
)
