"""MAML-RL configuration: a frozen dataclass, one docstring per field (shown by `metarlkit train maml --help`).

The config's defaults are the *standard* configuration (`--preset standard`): pytorch-maml-rl's
2D-navigation config, the one most MAML-RL numbers are measured with. A run on dense 2D navigation
without --preset uses `paper-code`, the MAML paper's own code setting (`default_preset`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from metarlkit.rl.adaptation import INNER_ESTIMATORS, WEIGHTINGS

OUTER = ("trpo", "ppo")
ACTIVATIONS = ("tanh", "relu")
LINE_SEARCHES = ("sequential", "vmapped")


@dataclasses.dataclass(frozen=True)
class MAMLConfig:
    """Options of MAML-RL training (Finn et al. 2017) and its variants (ProMP, DiCE, E-MAML)."""

    # Upper bounds of the whole-number options (checked when built from options; in the docs).
    LIMITS: ClassVar[dict[str, int]] = {
        "hidden_sizes": 4096, "inner_steps": 100, "trajectories": 10_000, "eval_trajectories": 10_000,
        "meta_batch": 10_000, "meta_iterations": 10**7, "cg_iterations": 1000, "line_search_steps": 100,
        "ppo_epochs": 1000, "seed": 2**31 - 1, "seeds": 1024, "checkpoint_iterations": 10**7}

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Units of the policy MLP's hidden layers."""
    activation: str = "tanh"
    """Hidden activation: 'tanh' (the standard configuration) or 'relu' (the MAML paper)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions), in the policy's
    action units (see normalize_actions)."""
    normalize_actions: bool = False
    """Continuous actions: the policy acts in units whose [-1, 1] is mapped linearly onto the family's
    action box (rllab's `normalize`, which the MAML paper's own code wraps 2D navigation in: a
    standard deviation of 1 is then the box's half-width, 0.1). Off: the policy's action is the
    environment's (pytorch-maml-rl; a standard deviation of 1 is ten times the velocity clip)."""
    inner_lr: float = 0.1
    """Step size alpha of the first inner policy-gradient step."""
    inner_lr_later: float = 0.0
    """Step size of the second and later inner steps (0: the same as inner_lr)."""
    inner_steps: int = 1
    """Inner policy-gradient steps during meta-training (each on fresh episodes of the adapted policy)."""
    inner_estimator: str = "vpg"
    """Inner gradient estimator: 'vpg' (REINFORCE with a baseline, MAML), 'dice' (DiCE, Foerster et al.
    2018) or 'lvc' (ProMP's low-variance curvature estimator, Rothfuss et al. 2018)."""
    first_order: bool = False
    """First-order MAML: the meta-gradient treats the inner gradient as a constant (stop-gradient)."""
    trajectories: int = 20
    """Episodes per task and inner step (sampled in parallel under a frozen policy)."""
    eval_trajectories: int = 40
    """Episodes per round (per inner step) when the trained agent is evaluated: 40 as the MAML
    paper's evaluation; on bandits with one-pull episodes, the pulls between inner steps (the
    evaluation trial's length, --episodes, must be a multiple)."""
    adapted_std_scale: float = 1.0
    """Evaluation only: the trained agent's adapted policy samples with this times its standard
    deviation once it has taken an inner step (continuous actions); meta-training's post-update
    episodes keep the policy's own spread, since the outer gradient is taken through them. 1: the
    policy's own. An evaluation-only option of a trained run (`RUN:adapted_std_scale=0.3`)."""
    meta_batch: int = 20
    """Tasks per meta-iteration."""
    meta_iterations: int = 500
    """Meta-iterations (outer updates) in the whole run."""
    outer: str = "trpo"
    """Outer optimiser: 'trpo' (natural gradient in a KL trust region, MAML) or 'ppo' (clipped
    surrogate with Adam)."""
    max_kl: float = 0.01
    """TRPO: the trust region's bound on the mean KL between the old and new adapted policies."""
    cg_iterations: int = 10
    """TRPO: conjugate-gradient iterations of the natural-gradient solve."""
    cg_damping: float = 1e-5
    """TRPO: damping added to the KL Hessian (times the identity)."""
    line_search_steps: int = 15
    """TRPO: backtracking line-search candidates (step fractions ratio^0 .. ratio^(n-1))."""
    line_search_ratio: float = 0.8
    """TRPO: ratio between consecutive line-search step fractions."""
    line_search: str = "sequential"
    """TRPO: 'sequential' (try fractions in turn, stop at the first acceptable) or 'vmapped' (all at
    once; the same result, more compute, for accelerators)."""
    outer_lr: float = 1e-3
    """PPO: Adam step size."""
    ppo_epochs: int = 5
    """PPO: gradient steps on each meta-batch."""
    clip_eps: float = 0.2
    """PPO: ratio clip epsilon."""
    kl_penalty: float = 0.0
    """PPO: initial weight eta of ProMP's penalty eta * KL(pre-update policy at the old theta || at
    theta) on the pre-update episodes (0: no penalty)."""
    kl_target: float = 0.01
    """PPO with a KL penalty: after each meta-iteration eta halves when that KL is below
    kl_target / 1.5 and doubles when above 1.5 kl_target (ProMP's adaptive penalty)."""
    exploration_weight: float = 0.0
    """E-MAML (Stadie et al. 2018): weight of the term that credits the pre-update episodes with the
    return after adaptation, w * E[A_task * grad log pi_theta(pre-update episode)], A_task the task's
    post-adaptation return normalised over the meta-batch (0: MAML's meta-gradient)."""
    gamma: float = 0.99
    """Discount within an episode (MAML's episodes are the units of adaptation; each is terminal)."""
    gae_lambda: float = 1.0
    """GAE lambda over the linear feature baseline (1.0: Monte-Carlo returns minus the baseline)."""
    weighting: str = "episode"
    """How every loss averages over the steps of a batch, and the advantages are normalised: 'step'
    (each valid step weighs the same; rllab, the MAML paper's code) or 'episode' (each episode's
    mean, then the mean over episodes; pytorch-maml-rl). They differ when episodes end early: with
    'episode', an episode that reaches the goal in a few steps gets a whole episode's weight in
    those steps."""
    keep_best: bool = False
    """Evaluate the theta of the meta-iteration whose training tasks had the best post-adaptation
    return (Finn et al. keep the best iteration), not the last one."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""
    checkpoint_iterations: int = 50
    """Meta-iterations per compiled chunk; metrics, progress and a checkpoint follow each chunk."""

    def __post_init__(self):
        def fail(msg):
            raise ValueError(msg)

        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if not self.hidden_sizes or any(not isinstance(h, int) or isinstance(h, bool) or h < 1
                                        for h in self.hidden_sizes):
            fail(f"hidden_sizes must be one or more whole numbers >= 1, got {self.hidden_sizes!r}")
        for name, allowed in (("activation", ACTIVATIONS), ("outer", OUTER), ("inner_estimator", INNER_ESTIMATORS),
                              ("line_search", LINE_SEARCHES), ("weighting", WEIGHTINGS)):
            if getattr(self, name) not in allowed:
                fail(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 < self.adapted_std_scale <= 1:
            fail(f"adapted_std_scale must be in (0, 1], got {self.adapted_std_scale!r}")
        for name in ("inner_steps", "trajectories", "eval_trajectories", "meta_batch", "meta_iterations", "cg_iterations",
                     "line_search_steps", "ppo_epochs", "seeds", "checkpoint_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("inner_lr", "max_kl", "outer_lr", "clip_eps", "kl_target"):
            if not getattr(self, name) > 0:
                fail(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("inner_lr_later", "cg_damping", "kl_penalty", "exploration_weight"):
            if not getattr(self, name) >= 0:
                fail(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.kl_penalty and self.outer != "ppo":
            fail("kl_penalty is ProMP's outer objective: use it with outer=ppo (or --preset promp)")
        if not 0 < self.line_search_ratio < 1:
            fail(f"line_search_ratio must be in (0, 1), got {self.line_search_ratio!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                fail(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    def inner_lrs(self) -> tuple[float, ...]:
        """The step size of each inner step."""
        later = self.inner_lr_later or self.inner_lr
        return (self.inner_lr,) + (later,) * (self.inner_steps - 1)


# Named sets of overrides (`metarlkit train maml --preset NAME`); flags given with a preset win.
PRESETS: dict[str, dict] = {
    # The standard configuration: pytorch-maml-rl's 2D-navigation setting, the config's defaults
    # (the default preset on every family but dense 2D navigation; see `default_preset`).
    "standard": {},
    # A run of seconds through every part of training (two chunks of one meta-iteration): a smoke test.
    "tiny": {"hidden_sizes": (8,), "meta_batch": 2, "trajectories": 2, "eval_trajectories": 2, "meta_iterations": 2,
             "checkpoint_iterations": 1, "cg_iterations": 2, "line_search_steps": 2},
    # Finn et al. (2017), 2D navigation: two 100-unit ReLU layers, alpha = 0.1 for the first inner
    # step and 0.05 after, meta-batch 20, keep the best iteration (by the training tasks' return).
    "paper": {"hidden_sizes": (100, 100), "activation": "relu", "inner_lr": 0.1, "inner_lr_later": 0.05,
              "keep_best": True},
    # What the MAML paper's published code ran for 2D navigation (cbfinn/maml_rl,
    # maml_trpo_point.py and test_maml_point.py): the paper preset with actions normalised onto the
    # velocity box (rllab's `normalize`), inner step 0.5 in those units (0.25 for later steps, as the
    # test script), rllab's step-weighted losses, meta-batch 40 (the training script's "more
    # stable" choice: at meta-batch 20 seeds drift) and 100 meta-iterations. Results against the
    # paper's: docs/maml-results.md.
    "paper-code": {"hidden_sizes": (100, 100), "activation": "relu", "keep_best": True, "normalize_actions": True,
                   "inner_lr": 0.5, "inner_lr_later": 0.25, "weighting": "step", "meta_batch": 40,
                   "meta_iterations": 100},
    # ProMP (Rothfuss et al. 2018): the LVC inner estimator; PPO's clipped outer objective (clip 0.3,
    # 5 Adam steps of 1e-3 per meta-iteration) with an adaptive KL penalty on the pre-update policy
    # (initial weight 5e-4, target 0.01).
    "promp": {"inner_estimator": "lvc", "outer": "ppo", "clip_eps": 0.3, "ppo_epochs": 5, "outer_lr": 1e-3,
              "kl_penalty": 5e-4, "kl_target": 0.01},
    # DiCE's inner estimator with MAML's TRPO outer step.
    "dice": {"inner_estimator": "dice"},
    # E-MAML-TRPO: MAML plus the exploration term crediting the pre-update episodes.
    "emaml": {"exploration_weight": 1.0},
}


def default_preset(family) -> str:
    """The preset a run without --preset uses: on dense 2D navigation the MAML paper's own setting
    ('paper-code', which reproduces the paper's number there), elsewhere 'standard'."""
    return "paper-code" if family.spec() == "point-navigation:variant=dense" else "standard"
