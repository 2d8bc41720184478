"""PEARL configuration: a frozen dataclass, one docstring per field (shown by `metarlkit train pearl --help`).

The defaults are oyster's (katerakelly/oyster configs/default.py, `default_config`: latent 5, 300-unit
layers, KL weight 0.1, learning rates 3e-4, reward scale 5, SAC batch 256, context batch 64,
meta-batch 16, discount 0.99, tau 0.005, 2000 gradient steps per iteration, 5 tasks sampled per
iteration with 400 prior and 400 extra posterior steps each, 2000 initial steps per task) with the
encoder of the paper (three layers of 200, oyster launch_experiment.py); per-family settings from
oyster's configs/*.json are presets (PRESETS).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

NEXT_OBS = ("auto", "true", "false")
POSTERIOR_UPDATES = ("episode", "step")


@dataclasses.dataclass(frozen=True)
class PEARLConfig:
    """Options of PEARL training (Rakelly et al. 2019)."""

    LIMITS: ClassVar[dict[str, int]] = {
        "latent_size": 256, "hidden_sizes": 4096, "encoder_sizes": 4096, "batch_size": 65_536,
        "context_batch_size": 65_536, "meta_batch": 1024, "train_steps": 1_000_000, "iterations": 1_000_000,
        "train_tasks": 100_000, "tasks_per_iteration": 100_000, "initial_steps": 10_000_000, "prior_steps": 10_000_000,
        "posterior_steps": 10_000_000, "extra_rl_steps": 10_000_000, "buffer_capacity": 1_000_000,
        "prior_episodes": 100_000, "seed": 2**31 - 1, "seeds": 1024, "checkpoint_iterations": 1_000_000,
    }

    latent_size: int = 5
    """Dimension of the latent task variable z."""
    hidden_sizes: tuple[int, ...] = (300, 300, 300)
    """Units of the hidden layers of the policy, the two Q networks and the value network."""
    encoder_sizes: tuple[int, ...] = (200, 200, 200)
    """Units of the context encoder's hidden layers."""
    probabilistic: bool = True
    """z from a Gaussian posterior (product of per-transition factors, KL to the prior); false: the
    deterministic context of the paper's ablation (the mean of per-transition outputs)."""
    kl_weight: float = 0.1
    """Weight of KL(q(z | c) || N(0, I)) in the encoder's loss."""
    next_obs_in_context: str = "auto"
    """Feed s' to the encoder beside (s, a, r): 'true', 'false', or 'auto' (true on families whose
    dynamics vary: pendulum, cartpole, point-robot-wind)."""
    learning_rate: float = 3e-4
    """Adam step size of the policy, Q, value and encoder updates."""
    reward_scale: float = 5.0
    """Rewards are multiplied by this in the Q target (the temperature is 1: a larger scale is a
    smaller entropy bonus)."""
    discount: float = 0.99
    """Discount per step."""
    target_tau: float = 0.005
    """Polyak step of the target value network."""
    batch_size: int = 256
    """Transitions per task in each SAC batch."""
    context_batch_size: int = 64
    """Transitions per task in each context batch (sampled apart from the SAC batch)."""
    meta_batch: int = 16
    """Tasks per gradient step."""
    train_steps: int = 2000
    """Gradient steps per iteration."""
    iterations: int = 500
    """Iterations (data collection, then gradient steps)."""
    train_tasks: int = 100
    """Fixed training tasks: the first N of the family's 'train' split."""
    tasks_per_iteration: int = 5
    """Training tasks sampled for data collection each iteration."""
    initial_steps: int = 2000
    """Steps collected on every training task with z from the prior before the first iteration."""
    prior_steps: int = 400
    """Steps per sampled task and iteration with z from the prior (to both buffers)."""
    posterior_steps: int = 0
    """Steps per sampled task and iteration with z from the posterior (to both buffers)."""
    extra_rl_steps: int = 400
    """Steps per sampled task and iteration with z from the posterior, to the SAC buffer only."""
    buffer_capacity: int = 1_000_000
    """Most transitions kept per task in the SAC buffer (oyster's 1e6); the run allocates only what
    its budget can fill (`rl.replay.capacity_for`)."""
    prior_episodes: int = 1
    """Evaluation: episodes played with z from the prior before the first posterior update
    (oyster's num_exp_traj_eval)."""
    posterior_update: str = "episode"
    """Evaluation: update the posterior after every 'episode' (oyster) or every 'step'."""
    deterministic_eval: bool = True
    """Evaluation: act with tanh of the policy's mean (oyster's eval_deterministic); false: sample
    actions as in training."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""
    checkpoint_iterations: int = 10
    """Iterations per compiled chunk; metrics, progress and a checkpoint follow each chunk."""

    def __post_init__(self):
        def fail(msg):
            raise ValueError(msg)

        for name in ("hidden_sizes", "encoder_sizes"):
            value = getattr(self, name)
            if isinstance(value, list):  # read back from a run's JSON
                object.__setattr__(self, name, tuple(value))
                value = tuple(value)
            if not value or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in value):
                fail(f"{name} must be whole numbers >= 1, got {value!r}")
        for name in ("latent_size", "batch_size", "context_batch_size", "meta_batch", "train_steps", "iterations",
                     "train_tasks", "tasks_per_iteration", "buffer_capacity", "seeds", "checkpoint_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("initial_steps", "prior_steps", "posterior_steps", "extra_rl_steps", "prior_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(f"{name} must be a whole number >= 0, got {value!r}")
        if self.prior_steps + self.posterior_steps + self.extra_rl_steps < 1:
            fail("an iteration must collect something: prior_steps + posterior_steps + extra_rl_steps >= 1")
        if self.tasks_per_iteration > self.train_tasks:
            fail(f"tasks_per_iteration ({self.tasks_per_iteration}) cannot exceed train_tasks ({self.train_tasks})")
        if self.next_obs_in_context not in NEXT_OBS:
            fail(f"next_obs_in_context must be one of {', '.join(NEXT_OBS)}, got {self.next_obs_in_context!r}")
        if self.posterior_update not in POSTERIOR_UPDATES:
            fail(f"posterior_update must be one of {', '.join(POSTERIOR_UPDATES)}, got {self.posterior_update!r}")
        for name in ("learning_rate", "reward_scale"):
            if not getattr(self, name) > 0:
                fail(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.kl_weight < 0:
            fail(f"kl_weight must be >= 0, got {self.kl_weight!r}")
        if not 0 <= self.discount <= 1 or not 0 < self.target_tau <= 1:
            fail("discount must be in [0, 1] and target_tau in (0, 1]")


# Named sets of overrides (`metarlkit train pearl --preset NAME`); flags given with a preset win.
PRESETS: dict[str, dict] = {
    "paper": {},
    # oyster configs/sparse-point-robot.json: 80 training goals, 10 tasks x (100 prior + 900
    # posterior) steps, 1000 gradient steps, context batch 1024, discount 0.9, reward scale 100,
    # KL weight 1, five prior episodes at evaluation
    "paper-sparse": {"train_tasks": 80, "initial_steps": 200, "tasks_per_iteration": 10, "prior_steps": 100,
                     "posterior_steps": 900, "extra_rl_steps": 0, "train_steps": 1000, "context_batch_size": 1024,
                     "discount": 0.9, "reward_scale": 100.0, "kl_weight": 1.0, "prior_episodes": 5},
    # oyster configs/point-robot.json (dense): 80 training goals, 200 prior + 200 extra steps
    "paper-point": {"train_tasks": 80, "initial_steps": 200, "prior_steps": 200, "extra_rl_steps": 200,
                    "train_steps": 1000, "reward_scale": 100.0},
    # the sparse robot on this machine's CPU: paper-sparse with narrower networks (2 x 128), smaller
    # batches (8 tasks x 128 transitions; contexts of 256) and 300 iterations (3e5 gradient steps;
    # success after the prior episodes stops rising before that, docs/pearl-results.md)
    "cpu-sparse": {"train_tasks": 80, "initial_steps": 200, "tasks_per_iteration": 10, "prior_steps": 100,
                   "posterior_steps": 900, "extra_rl_steps": 0, "train_steps": 1000, "discount": 0.9,
                   "reward_scale": 100.0, "kl_weight": 1.0, "prior_episodes": 5, "iterations": 300,
                   "hidden_sizes": (128, 128), "encoder_sizes": (128, 128), "batch_size": 128,
                   "context_batch_size": 256, "meta_batch": 8},
    # the dense point robot (100-step episodes) on this machine's CPU: cpu-sparse's networks,
    # batches, discount and reward scale; oyster's point-robot data layout (prior-z steps to both
    # buffers, posterior-z steps to the SAC buffer only) at cpu-sparse's amount per iteration
    # (10 tasks x (2 prior + 8 extra episodes)); contexts of 128 (about one episode, as at evaluation)
    "cpu-point": {"train_tasks": 80, "initial_steps": 200, "tasks_per_iteration": 10, "prior_steps": 200,
                  "posterior_steps": 0, "extra_rl_steps": 800, "train_steps": 1000, "discount": 0.9,
                  "reward_scale": 100.0, "iterations": 300, "hidden_sizes": (128, 128), "encoder_sizes": (128, 128),
                  "batch_size": 128, "context_batch_size": 128, "meta_batch": 8},
    # point-robot-wind (20-step episodes; the dynamics vary, so s' goes to the encoder; one transition
    # shows the wind): cpu-sparse's networks and batches, 5 prior + 45 posterior episodes per sampled
    # task, and at evaluation the posterior from the first step on, updated every step
    "cpu-wind": {"train_tasks": 80, "initial_steps": 200, "tasks_per_iteration": 10, "prior_steps": 100,
                 "posterior_steps": 900, "extra_rl_steps": 0, "train_steps": 1000, "discount": 0.9,
                 "reward_scale": 100.0, "iterations": 100, "hidden_sizes": (128, 128), "encoder_sizes": (128, 128),
                 "batch_size": 128, "context_batch_size": 256, "meta_batch": 8, "prior_episodes": 0,
                 "posterior_update": "step"},
    # a run of seconds through every part of training
    "tiny": {"hidden_sizes": (16,), "encoder_sizes": (16,), "latent_size": 2, "batch_size": 8, "context_batch_size": 8,
             "meta_batch": 2, "train_steps": 3, "iterations": 2, "train_tasks": 4, "tasks_per_iteration": 2,
             "checkpoint_iterations": 1},
}
