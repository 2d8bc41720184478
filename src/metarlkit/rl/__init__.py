"""Reinforcement-learning pieces shared by every algorithm: advantages, policy losses, the
optimisation pieces of TRPO-style algorithms, policy-gradient adaptation (`rl.adaptation`), and
the off-policy pieces: soft actor-critic losses (`rl.sac`) and per-task replay buffers (`rl.replay`)."""

from metarlkit.rl.losses import (
    masked_mean,
    normalize_advantages,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from metarlkit.rl.optim import (
    conjugate_gradient,
    fit_linear_baseline,
    linear_baseline_features,
    linear_baseline_values,
    trpo_step,
)
from metarlkit.rl.returns import discounted_returns, gae

__all__ = [
    "conjugate_gradient",
    "discounted_returns",
    "fit_linear_baseline",
    "gae",
    "linear_baseline_features",
    "linear_baseline_values",
    "masked_mean",
    "normalize_advantages",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "trpo_step",
    "value_loss",
]
