"""Reinforcement-learning pieces shared by every algorithm: advantages and policy losses."""

from metarlkit.rl.losses import (
    masked_mean,
    normalize_advantages,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from metarlkit.rl.returns import discounted_returns, gae

__all__ = [
    "discounted_returns",
    "gae",
    "masked_mean",
    "normalize_advantages",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "value_loss",
]
