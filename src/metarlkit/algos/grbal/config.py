"""GrBAL configuration: a frozen dataclass, one docstring per field (`metarlkit train grbal --help`).

The defaults are the reference code's (iclavera/learning_to_adapt, run_scripts/run_grbal.py
`config`): a 512 x 512 ReLU model, M = K = 16 (`adapt_batch_size`), inner step 0.01, Adam 1e-3,
meta-batch 20, at most 100 epochs per fit with a 0.1 validation split and a rolling average of
persistence 0.99 for early stopping, random shooting over 1000 sequences of 10 steps without
discount, a first iteration of random actions. The reference collects 4 rollouts of 1000 steps
per iteration for 50 iterations on HalfCheetah; here an iteration collects `episodes_per_iteration`
episodes of the family's horizon. `meta=false` is the paper's MB baseline: the same model fitted
on the same data without the inner step.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from metarlkit.planning import METHODS

ACTIVATIONS = ("relu", "tanh")
ONLINE = ("auto", "true", "false")
MODELS = ("mlp", "recurrent")
VALIDATIONS = ("plain", "adapted")


@dataclasses.dataclass(frozen=True)
class GrBALConfig:
    """Options of GrBAL / MB training (Nagabandi, Clavera et al. 2019)."""

    LIMITS: ClassVar[dict[str, int]] = {
        "hidden_sizes": 4096, "core_size": 4096, "adapt_steps": 10_000, "predict_steps": 10_000, "meta_batch": 4096,
        "max_epochs": 100_000, "iterations": 100_000, "initial_episodes": 100_000, "episodes_per_iteration": 100_000,
        "horizon": 1000, "candidates": 100_000, "cem_iterations": 100, "elites": 100_000, "seed": 2**31 - 1,
        "seeds": 1024, "checkpoint_iterations": 100_000,
    }

    meta: bool = True
    """Meta-train the model to adapt (GrBAL); false: fit it to all the data, unadapted (the MB
    baseline; evaluate it with `RUN:online_adaptation=true` for MB+DE)."""
    model: str = "mlp"
    """'mlp' (GrBAL: adapted by one gradient step) or 'recurrent' (ReBAL: a GRU reads the last M
    transitions and its output conditions the MLP's predictions)."""
    hidden_sizes: tuple[int, ...] = (512, 512)
    """Units of the dynamics model's hidden layers (ReBAL: of the MLP after the GRU)."""
    core_size: int = 512
    """ReBAL: units of the GRU (the reference's recurrent model has 512)."""
    activation: str = "relu"
    """Hidden activation of the model: 'relu' (the reference) or 'tanh'."""
    adapt_steps: int = 16
    """M: the last transitions the model adapts on (the reference's adapt_batch_size)."""
    predict_steps: int = 16
    """K: the transitions after them the adapted model is scored on in meta-training."""
    step_size: float = 0.01
    """The inner SGD step size (the reference's inner_learning_rate)."""
    learning_rate: float = 1e-3
    """Adam step size of the model's (meta-)training."""
    meta_batch: int = 20
    """Windows of M + K transitions per Adam step."""
    max_epochs: int = 100
    """Most epochs per fit (an epoch: as many Adam steps as the training data holds batches)."""
    valid_split: float = 0.1
    """Fraction of the collected episodes held out for the validation loss."""
    rolling_persistence: float = 0.99
    """Early stopping: a fit stops when the rolling average of the validation loss (this
    persistence) rises."""
    validation: str = "plain"
    """The loss early stopping watches on held-out windows: 'plain' (the unadapted model's loss
    over the whole window, the reference's) or 'adapted' (the training loss: the model adapted on
    the first M, scored on the next K). ReBAL always validates its own loss; MB's is plain."""
    iterations: int = 50
    """Iterations after the first: collect episodes with the current agent, then fit the model."""
    initial_episodes: int = 10
    """Episodes of uniformly random actions collected (and fitted) before the first iteration."""
    episodes_per_iteration: int = 10
    """Episodes collected per iteration, each on a fresh task from the family's distribution."""
    method: str = "random"
    """Planner: 'random' (random shooting, the paper) or 'cem'."""
    horizon: int = 10
    """Planning horizon in steps."""
    candidates: int = 1000
    """Action sequences per planning round."""
    cem_iterations: int = 5
    """CEM rounds per step (method 'cem')."""
    elites: int = 50
    """CEM elites (method 'cem')."""
    discount: float = 1.0
    """Discount of rewards inside a plan (the reference: 1, none)."""
    online_adaptation: str = "auto"
    """Adapt the model every step on the last M transitions when acting (collection and
    evaluation): 'true', 'false', or 'auto' (= meta: GrBAL adapts, MB does not). A trained run
    takes it at evaluation: an MB run with `RUN:online_adaptation=true` is the paper's MB+DE."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""
    checkpoint_iterations: int = 5
    """Iterations per compiled chunk; metrics, progress and a checkpoint follow each chunk."""

    @property
    def adapts_online(self) -> bool:
        return self.meta if self.online_adaptation == "auto" else self.online_adaptation == "true"

    def __post_init__(self):
        def fail(msg):
            raise ValueError(msg)

        if isinstance(self.hidden_sizes, list):  # read back from a run's JSON
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if not self.hidden_sizes or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                            for h in self.hidden_sizes):
            fail(f"hidden_sizes must be whole numbers >= 1, got {self.hidden_sizes!r}")
        if self.model not in MODELS:
            fail(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.model == "recurrent" and not self.meta:
            fail("the recurrent model (ReBAL) is meta-trained: meta=false (MB) takes model=mlp")
        for name in ("core_size", "adapt_steps", "predict_steps", "meta_batch", "max_epochs", "iterations", "episodes_per_iteration",
                     "horizon", "candidates", "cem_iterations", "elites", "seeds", "checkpoint_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.initial_episodes, int) or isinstance(self.initial_episodes, bool) or self.initial_episodes < 1:
            fail(f"initial_episodes must be a whole number >= 1 (the first fit needs data), got {self.initial_episodes!r}")
        if self.online_adaptation not in ONLINE:
            fail(f"online_adaptation must be one of {', '.join(ONLINE)}, got {self.online_adaptation!r}")
        if self.validation not in VALIDATIONS:
            fail(f"validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}")
        if self.activation not in ACTIVATIONS:
            fail(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.method not in METHODS:
            fail(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "cem" and self.elites > self.candidates:
            fail(f"elites ({self.elites}) must be at most candidates ({self.candidates})")
        if not self.step_size >= 0:
            fail(f"step_size must be >= 0, got {self.step_size!r}")
        if not self.learning_rate > 0:
            fail(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 < self.valid_split < 1:
            fail(f"valid_split must be in (0, 1), got {self.valid_split!r}")
        if not 0 <= self.rolling_persistence < 1:
            fail(f"rolling_persistence must be in [0, 1), got {self.rolling_persistence!r}")
        if not 0 < self.discount <= 1:
            fail(f"discount must be in (0, 1], got {self.discount!r}")


# Named sets of overrides (`metarlkit train grbal --preset NAME`); flags given with a preset win.
# This machine's CPU: a 64 x 64 model and 200 candidate sequences, 10 + 40 x 10 episodes.
_CPU = {"hidden_sizes": (64, 64), "candidates": 200, "iterations": 40}
# point-robot-wind's 20-step episodes: windows of 8 + 8 transitions fit an episode; 50 episodes
# (1000 steps) per iteration, 50 + 40 x 50 episodes in all
_WIND = {"adapt_steps": 8, "predict_steps": 8, "initial_episodes": 50, "episodes_per_iteration": 50}
# GrBAL stops early on the adapted loss (on the pendulum it planned better than the reference's
# unadapted one on each of 3 seeds: docs/grbal-results.md); MB is the same without meta-training
# or online adaptation; ReBAL puts a 64-unit GRU before the 64 x 64 MLP
_GRBAL, _MB, _REBAL = {"validation": "adapted"}, {"meta": False}, {"model": "recurrent", "core_size": 64}
PRESETS: dict[str, dict] = {
    "paper": {},
    "cpu": {**_CPU, **_GRBAL},
    "mb-cpu": {**_CPU, **_MB},
    "rebal-cpu": {**_CPU, **_REBAL},
    "cpu-wind": {**_CPU, **_WIND, **_GRBAL},
    "mb-cpu-wind": {**_CPU, **_WIND, **_MB},
    "rebal-cpu-wind": {**_CPU, **_WIND, **_REBAL},
    # a run of seconds through every part of training
    "tiny": {"hidden_sizes": (8,), "core_size": 8, "adapt_steps": 4, "predict_steps": 4, "meta_batch": 4, "max_epochs": 2,
             "iterations": 2, "initial_episodes": 2, "episodes_per_iteration": 2, "horizon": 3, "candidates": 8,
             "checkpoint_iterations": 1},
}
