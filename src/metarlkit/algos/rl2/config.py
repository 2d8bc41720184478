"""RL2 configuration: a frozen dataclass, one docstring per field (shown by `metarlkit train rl2 --help`)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

ALGORITHMS = ("ppo", "a2c")
LR_SCHEDULES = ("constant", "linear")


@dataclasses.dataclass(frozen=True)
class RL2Config:
    """Options of RL2 training (Duan et al. 2016; Wang et al. 2016)."""

    # Upper bounds of the whole-number options (checked when built from options; in the docs).
    LIMITS: ClassVar[dict[str, int]] = {
        "hidden_size": 4096, "layers": 64, "heads": 64, "context": 1_000_000, "embed_size": 4096,
        "head_size": 4096, "total_steps": 10**13, "tasks_per_update": 65_536, "epochs": 1000,
        "minibatches": 65_536, "seed": 2**31 - 1, "seeds": 1024, "checkpoint_steps": 10**13}

    algorithm: str = "ppo"
    """'ppo' (recurrent PPO with GAE; the default) or 'a2c' (advantage actor-critic, Wang et al.)."""
    core: str = "gru"
    """Core: 'gru' (the RL2 paper), 'lstm' (Wang et al.), 'transformer' (causal attention over the
    trial's steps) or 'mlp' (a feed-forward layer: no memory, the ablation that shows what memory
    is worth)."""
    hidden_size: int = 128
    """Units of the core (the RL2 paper used a 256-unit GRU); the transformer's width."""
    layers: int = 2
    """Transformer blocks (transformer core only)."""
    heads: int = 4
    """Attention heads per block (transformer core only); hidden_size must be a multiple."""
    context: int = 0
    """Steps the transformer attends to (0: the whole trial of training; longer trials at test time
    attend to their last `context` steps)."""
    time_input: bool = False
    """Also feed the fraction of the trial elapsed (t / steps per trial) as an input."""
    prev_obs_input: bool = False
    """Also feed the previous observation, so one input holds the whole last transition (s, a, r, s')."""
    embed_size: int = 0
    """Units of a ReLU layer between the inputs and the core (0: none)."""
    head_size: int = 0
    """Units of a ReLU layer on the core's output and the step's input, under both heads (0: none)."""
    total_steps: int = 40_000_000
    """Training budget in environment steps (trials x steps per trial, summed over updates); the
    default is about 15 minutes of a 2-core CPU with a 128-unit GRU."""
    tasks_per_update: int = 512
    """Trials (each on a freshly sampled task) collected per update."""
    learning_rate: float = 1e-3
    """Adam step size at the start of training."""
    lr_schedule: str = "linear"
    """'constant' or 'linear' (decays to 0 at the end of the budget)."""
    gamma: float = 0.99
    """Discount per step, applied across episode boundaries inside a trial."""
    gae_lambda: float = 0.9
    """GAE lambda (the RL2 paper used 0.3 with TRPO; 0.9 learns faster with PPO here)."""
    epochs: int = 0
    """Passes over each batch (0: 4 for ppo, 1 for a2c)."""
    minibatches: int = 0
    """Minibatches per pass, split along trials (0: 4 for ppo, 1 for a2c)."""
    clip_eps: float = 0.2
    """PPO's ratio clip epsilon."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.05
    """Entropy bonus weight at the start of training."""
    entropy_coef_final: float = 0.0
    """Entropy bonus weight after the anneal."""
    entropy_anneal: float = 1.0
    """Fraction of the budget over which the entropy weight moves linearly to its final value."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this for the learner (the agent's reward input is unscaled); at 1.0
    the value loss of 100-pull trials swamps the shared core's gradient and nothing is learnt."""
    expected_reward_returns: bool = False
    """Compute the learner's returns from each step's expected reward (given the task and action)
    instead of the sampled reward: unbiased, since a step's reward noise is drawn after everything
    the policy did before it, and far less noisy on Gaussian-reward tasks. The agent's reward input
    stays the sampled reward, so the trained agent needs nothing but what it observes."""
    normalize_advantages: bool = True
    """Normalise advantages to mean 0, std 1 per minibatch."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""
    checkpoint_steps: int = 2_000_000
    """Environment steps per compiled chunk; metrics, progress and a checkpoint follow each chunk."""

    def __post_init__(self):
        def fail(msg):
            raise ValueError(msg)

        if self.algorithm not in ALGORITHMS:
            fail(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            fail(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        from metarlkit.nets.cores import CORES

        if self.core not in CORES:
            fail(f"core must be one of {', '.join(CORES)}, got {self.core!r}")
        for name in ("hidden_size", "total_steps", "tasks_per_update", "seeds", "checkpoint_steps", "layers", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("epochs", "minibatches", "embed_size", "head_size", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                zero = {"epochs": "the algorithm's default", "minibatches": "the algorithm's default",
                        "context": "the whole trial"}.get(name, "no layer")
                fail(f"{name} must be a whole number >= 0 (0: {zero}), got {value!r}")
        defaults = {"ppo": (4, 4), "a2c": (1, 1)}[self.algorithm]
        if self.epochs == 0:
            object.__setattr__(self, "epochs", defaults[0])
        if self.minibatches == 0:
            object.__setattr__(self, "minibatches", defaults[1])
        if self.algorithm == "a2c" and (self.epochs, self.minibatches) != (1, 1):
            fail("a2c takes one gradient step per batch: leave epochs and minibatches at 0 (or 1), or use ppo")
        if self.core == "transformer" and self.hidden_size % self.heads:
            fail(f"hidden_size ({self.hidden_size}) must be a multiple of heads ({self.heads}) for the transformer core")
        if self.tasks_per_update % self.minibatches:
            fail(f"tasks_per_update ({self.tasks_per_update}) must be a multiple of minibatches ({self.minibatches})")
        if not 0 <= self.gamma <= 1:
            fail(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not 0 <= self.gae_lambda <= 1:
            fail(f"gae_lambda must be in [0, 1], got {self.gae_lambda!r}")
        if not 0 < self.entropy_anneal <= 1:
            fail(f"entropy_anneal must be in (0, 1], got {self.entropy_anneal!r}")
        for name in ("learning_rate", "clip_eps", "max_grad_norm", "reward_scale"):
            if not getattr(self, name) > 0:
                fail(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("value_coef", "entropy_coef", "entropy_coef_final"):
            if not getattr(self, name) >= 0:
                fail(f"{name} must be >= 0, got {getattr(self, name)!r}")


# Named sets of overrides (`metarlkit train rl2 --preset NAME`); flags given with a preset win.
PRESETS: dict[str, dict] = {
    "default": {},
    # `make demo`: a few minutes of training on a 2-core CPU, enough to pass Thompson sampling; a
    # 64-unit GRU, faster than 128 units and higher after such a budget (docs/rl2-results.md).
    "demo": {"total_steps": 20_000_000, "hidden_size": 64},
    # A run of seconds through every part of training (two chunks on short trials): a smoke test.
    "tiny": {"total_steps": 4000, "checkpoint_steps": 2000, "tasks_per_update": 8, "hidden_size": 8,
             "epochs": 1, "minibatches": 2},
    # 3.5x the default budget, same schedule shapes: the RL2 column of the paper's Table 1
    # (docs/rl2-results.md).
    "paper-budget": {"total_steps": 140_000_000},
    "a2c": {"algorithm": "a2c", "learning_rate": 7e-4},
    # The eleven-arm bandit (`--task eleven-arm-bandit --episodes 1`): the informative arm pays
    # less than a plain arm, so at the default entropy weight the policy stops pulling it before
    # it has learnt to read the target from its reward, and settles on sweeping the plain arms.
    # A strong initial entropy bonus keeps it alive (docs/rl2-results.md, eleven-arm bandit).
    "eleven-arm": {"total_steps": 10_000_000, "tasks_per_update": 1024, "entropy_coef": 0.3},
    # Tabular MDPs (`--task tabular-mdp --episodes 10|25`): the agent has to remember the rewards
    # of up to 50 state-action pairs and look them up by the current state. A GRU learnt that
    # slowly; a 2-layer transformer over the trial's steps learns it far faster (docs/rl2-results.md,
    # tabular MDPs). The whole last transition as input and returns on expected rewards (unit
    # reward noise) helped the GRU; kept here.
    "mdp": {"core": "transformer", "hidden_size": 64, "layers": 2, "heads": 4, "prev_obs_input": True,
            "expected_reward_returns": True, "tasks_per_update": 128, "reward_scale": 0.05,
            "entropy_coef": 0.01, "total_steps": 20_000_000},
}
