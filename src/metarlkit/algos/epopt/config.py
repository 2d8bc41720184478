"""EPOpt configuration: a frozen dataclass, one docstring per field (shown by `metarlkit train epopt --help`).

Where the defaults come from (docs/epopt.md has the table): N = 240 models and epsilon = 0.1 are the
paper's; the authors' code (aravindr93/robustRL: train_agent.py, algos.py) gives gamma 0.995, max KL
0.01, rllab's conjugate-gradient optimiser (10 iterations, damping 1e-5, 15 backtracks of 0.8),
advantages as the discounted return minus a linear feature baseline fitted on all N trajectories,
and rllab's Gaussian MLP policy (tanh, log-std 0 at the start).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

BASELINE_DATA = ("all", "kept")


@dataclasses.dataclass(frozen=True)
class EPOptConfig:
    """Options of EPOpt-epsilon training (Rajeswaran et al. 2017)."""

    LIMITS: ClassVar[dict[str, int]] = {"hidden_sizes": 4096, "models": 65_536, "iterations": 1_000_000, "warmup": 1_000_000,
                                        "cg_iterations": 1000, "line_search_steps": 100, "adapt_samples": 1_000_000,
                                        "seed": 2**31 - 1, "seeds": 1024, "checkpoint_iterations": 1_000_000}

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Units of the policy's hidden layers."""
    activation: str = "tanh"
    """Hidden-layer nonlinearity: 'tanh' or 'relu'."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (in units of the normalised action)."""
    normalize_actions: bool = True
    """Continuous actions: the policy acts in [-1, 1] per coordinate, mapped onto the family's action
    box (rllab's `normalize`), so one initial standard deviation suits every box."""
    models: int = 240
    """N: source models (tasks) sampled per iteration, one trajectory in each."""
    epsilon: float = 0.1
    """The CVaR level: each update uses the worst ceil(epsilon * N) trajectories by return (1: all
    of them, plain ensemble training)."""
    warmup: int = 100
    """Iterations at epsilon = 1 before epsilon applies."""
    iterations: int = 200
    """TRPO iterations in all (warm-up included)."""
    baseline_data: str = "all"
    """The trajectories the linear value baseline is fitted on: 'all' N or the 'kept' worst ones."""
    max_kl: float = 0.01
    """TRPO's trust region: the largest mean KL between the old and the new policy."""
    cg_iterations: int = 10
    """Conjugate-gradient iterations of the natural-gradient solve."""
    cg_damping: float = 1e-5
    """Damping added to the Fisher matrix in the solve."""
    line_search_steps: int = 15
    """Backtracking line-search steps (each shrinks the step by `line_search_ratio`)."""
    line_search_ratio: float = 0.8
    """Factor of each backtracking step."""
    gamma: float = 0.995
    """Discount per step."""
    gae_lambda: float = 1.0
    """GAE lambda over the linear baseline (1: the discounted return minus the baseline, as the
    authors' code computes advantages)."""
    adapt_samples: int = 1000
    """Source adaptation (`--init-from RUN --adapt-to FILE`): parameter sets drawn from the source
    distribution and weighted by the likelihood of the target transitions."""
    adapt_noise: float = 0.1
    """Source adaptation: standard deviation of the Gaussian observation noise per state coordinate
    in that likelihood (smaller: a sharper posterior, fewer effective draws)."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""
    checkpoint_iterations: int = 10
    """Iterations per compiled chunk; metrics, progress and a checkpoint follow each chunk."""

    def __post_init__(self):
        def fail(msg):
            raise ValueError(msg)

        if isinstance(self.hidden_sizes, list):  # read back from a run's JSON
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if not self.hidden_sizes or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                            for h in self.hidden_sizes):
            fail(f"hidden_sizes must be whole numbers >= 1, got {self.hidden_sizes!r}")
        if self.activation not in ("tanh", "relu"):
            fail(f"activation must be tanh or relu, got {self.activation!r}")
        for name in ("models", "iterations", "cg_iterations", "line_search_steps", "seeds", "checkpoint_iterations",
                     "adapt_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            fail(f"warmup must be a whole number >= 0, got {self.warmup!r}")
        if not 0 < self.epsilon <= 1:
            fail(f"epsilon must be in (0, 1], got {self.epsilon!r}")
        if self.baseline_data not in BASELINE_DATA:
            fail(f"baseline_data must be one of {', '.join(BASELINE_DATA)}, got {self.baseline_data!r}")
        for name in ("max_kl", "line_search_ratio", "adapt_noise"):
            if not getattr(self, name) > 0:
                fail(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            fail("gamma and gae_lambda must be in [0, 1]")
        if self.cg_damping < 0:
            fail(f"cg_damping must be >= 0, got {self.cg_damping!r}")


# Named sets of overrides (`metarlkit train epopt --preset NAME`); flags given with a preset win.
PRESETS: dict[str, dict] = {
    "default": {},
    # the two baselines in the same tool: the ensemble average, and (with a task whose
    # `nominal=true`) TRPO on the nominal model
    "ensemble": {"epsilon": 1.0, "warmup": 0},
    # a run of seconds through every part of training: two chunks of one iteration
    "tiny": {"hidden_sizes": (8,), "models": 8, "iterations": 2, "warmup": 1, "checkpoint_iterations": 1,
             "cg_iterations": 2, "line_search_steps": 2, "epsilon": 0.5},
}
