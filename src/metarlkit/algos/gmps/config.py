"""GMPS configuration: a frozen dataclass, one docstring per field (shown by `metarlkit train gmps --help`).

The defaults follow the reference code (russellmendonca/GMPS, launchers/local_train.py and
sandbox/rocky/tf/algos/maml_il.py) where it runs what the paper describes, with plain (not learnt)
inner step sizes; `--preset paper` adds its learnt per-parameter step sizes and bias
transformation and its 50 trajectories per inner step. Where the code and the paper differ, the
field's docstring says which one a value follows.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from metarlkit.rl.adaptation import WEIGHTINGS

ACTIVATIONS = ("relu", "tanh")
EXPERTS = ("oracle", "sac", "demos")
IMITATION_STATES = ("auto", "expert", "dagger")
IMITATION_LOSSES = ("likelihood", "mean_squared")


@dataclasses.dataclass(frozen=True)
class GMPSConfig:
    """Options of GMPS training (Mendonca et al. 2019): experts per training task, then a policy
    meta-trained by imitation so that one policy-gradient step on a task's rewards lands on its
    expert's actions."""

    LIMITS: ClassVar[dict[str, int]] = {
        "hidden_sizes": 4096, "bias_transform": 256, "trajectories": 10_000, "eval_trajectories": 10_000,
        "meta_batch": 10_000, "train_tasks": 100_000, "expert_episodes": 10_000, "adam_steps": 100_000,
        "expert_iterations": 10**6, "expert_train_steps": 10**6, "expert_batch_size": 65_536,
        "expert_hidden_sizes": 4096, "expert_improvement": 10**6, "validation_tasks": 100_000,
        "iterations": 10**6, "seed": 2**31 - 1, "seeds": 1024, "checkpoint_iterations": 10**6}

    hidden_sizes: tuple[int, ...] = (100, 100)
    """Units of the policy MLP's hidden layers (local_train.py: 100 x 100)."""
    activation: str = "relu"
    """Hidden activation (local_train.py: ReLU)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy, in the policy's action units (the
    reference policy's default std 1)."""
    normalize_actions: bool = True
    """The policy acts in units whose [-1, 1] is mapped onto the family's action box (rllab's
    `normalize`, which the reference wraps its environments in); experts' actions are read in the
    same units."""
    inner_lr: float = 0.5
    """Step size of the inner policy-gradient step (local_train.py's init_flr 0.5); with
    learned_step_sizes, the initial value of every learnt step size; 0: the outer loss is plain
    behaviour cloning of theta."""
    learned_step_sizes: bool = False
    """Learn one inner step size per parameter, meta-trained with the policy (the reference's
    'fullAda' policies); every inner step at evaluation uses them."""
    bias_transform: int = 0
    """Size of a learnt input vector beside the observation (the reference's bias transformation,
    latent 4 in 'fullAda_Bias'), adapted by the inner step with the weights; 0: none."""
    adapted_std_scale: float = 1.0
    """The adapted policy samples with this times its standard deviation (after an inner step, in
    training's post-update episodes and at evaluation): the reference code's post_std_modifier
    1e-5 (near-deterministic after adaptation, theta's spread kept for exploring before it);
    1: the policy's own. An evaluation-only option of a trained run."""
    trajectories: int = 20
    """Episodes per task for the inner step during meta-training (sampled in parallel)."""
    eval_trajectories: int = 40
    """Episodes per round (per inner step) when the trained agent is evaluated (as MAML's)."""
    train_tasks: int = 40
    """Fixed training tasks: the first N of the family's 'train' split (the paper's 40 goals), each
    with its expert."""
    meta_batch: int = 40
    """Training tasks per iteration, drawn without replacement (the reference uses all its tasks)."""
    experts: str = "oracle"
    """Where the experts come from: 'oracle' (the family's task-aware controller, `oracle_action`),
    'sac' (a soft actor-critic told the task, trained first on every training task: the paper's
    local learners) or 'demos' (the trajectories of a task-set recording, --demos)."""
    demos: str = ""
    """experts=demos: a task-set recording (`metarlkit record --agent A --task T --train-tasks N`)
    of at least train_tasks training tasks; its env steps count toward the run's."""
    expert_episodes: int = 20
    """Imitation on the experts' states: episodes per training task the expert plays once before
    meta-training (experts=oracle) or that are read from the recording (experts=demos, its first
    ones); their env steps count toward the run's."""
    expert_iterations: int = 100
    """experts=sac: iterations of the expert phase; each plays one episode of every training task
    (on the dense reward where the family reports one) and takes expert_train_steps SAC steps."""
    expert_improvement: int = 0
    """experts=sac: SAC expert iterations before each imitation iteration, the paper's alternation
    of expert improvement and meta-imitation (0: the experts stay as their phase left them, as the
    reference code's)."""
    expert_train_steps: int = 100
    """experts=sac: SAC gradient steps per expert iteration."""
    expert_batch_size: int = 16
    """experts=sac: transitions per training task in each SAC batch (every task in every batch)."""
    expert_hidden_sizes: tuple[int, ...] = (128, 128)
    """experts=sac: hidden layers of the expert's policy, Q and value networks."""
    expert_reward_scale: float = 100.0
    """experts=sac: the rewards' scale in the Q target (the temperature is 1)."""
    expert_discount: float = 0.9
    """experts=sac: the expert's discount per step."""
    imitation_states: str = "auto"
    """The states the outer loss imitates on: 'dagger' (the adapted policy's own episodes,
    relabelled with the expert's actions, as the paper; needs an expert that acts anywhere:
    oracle or sac), 'expert' (the experts' own trajectories, as the reference code), or 'auto'
    (dagger where the expert can label, else expert)."""
    imitation_loss: str = "mean_squared"
    """The outer loss on the adapted policy: 'mean_squared' (squared distance of its mean action to
    the expert's, the reference code's maml_il.py) or 'likelihood' (minus the log-density of the
    expert's action, the paper's)."""
    importance_weights: bool = True
    """Weight the inner policy gradient by pi_theta / pi_theta_old at each Adam step (the sampling
    policy is the iteration's first theta), as the reference; off: the plain REINFORCE loss."""
    validation_tasks: int = 0
    """Score each iteration's theta on the first N tasks of the family's validation split (one
    trial each: `trajectories` episodes, an inner step, `trajectories` more; env steps counted) and
    keep the theta with the best return after the step as the trained agent (0: the last theta)."""
    meta_lr: float = 1e-3
    """Adam step size of the outer loss (the reference's optimiser takes TensorFlow's default 1e-3;
    its meta_step_size 0.01 is never read)."""
    adam_steps: int = 500
    """Adam steps per iteration on the iteration's fixed rollouts (local_train.py: 500); the inner
    step is recomputed at each."""
    iterations: int = 50
    """Meta-training iterations (the reference's 100 iterations update on every other one)."""
    gamma: float = 0.99
    """Discount of the inner step's returns."""
    gae_lambda: float = 1.0
    """GAE lambda over the linear feature baseline (1.0: Monte-Carlo returns minus the baseline)."""
    weighting: str = "step"
    """How the losses average over steps ('step': rllab, the reference; 'episode': pytorch-maml-rl)."""
    seed: int = 0
    """Random seed of the first training seed; seed i of a run uses seed + i."""
    seeds: int = 1
    """Independent training seeds, trained at once (vmapped)."""
    checkpoint_iterations: int = 5
    """Iterations per compiled chunk; metrics, progress and a checkpoint follow each chunk."""

    @property
    def dagger(self) -> bool:
        """Whether the outer loss imitates on the adapted policy's relabelled states."""
        return self.imitation_states == "dagger" or (self.imitation_states == "auto" and self.experts != "demos")

    def __post_init__(self):
        def fail(msg):
            raise ValueError(msg)

        for name in ("hidden_sizes", "expert_hidden_sizes"):
            sizes = getattr(self, name)
            if isinstance(sizes, list):
                object.__setattr__(self, name, tuple(sizes))
                sizes = tuple(sizes)
            if not sizes or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in sizes):
                fail(f"{name} must be one or more whole numbers >= 1, got {sizes!r}")
        for name, allowed in (("activation", ACTIVATIONS), ("experts", EXPERTS), ("imitation_states", IMITATION_STATES),
                              ("imitation_loss", IMITATION_LOSSES), ("weighting", WEIGHTINGS)):
            if getattr(self, name) not in allowed:
                fail(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("trajectories", "eval_trajectories", "meta_batch", "train_tasks", "expert_episodes",
                     "expert_iterations", "expert_train_steps", "expert_batch_size", "adam_steps", "iterations",
                     "seeds", "checkpoint_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a whole number >= 1, got {value!r}")
        if self.expert_improvement and self.experts != "sac":
            fail(f"expert_improvement trains SAC experts between iterations: use it with experts=sac "
                 f"(got experts={self.experts})")
        for name in ("bias_transform", "expert_improvement", "validation_tasks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(f"{name} must be a whole number >= 0, got {value!r}")
        if not 0 < self.adapted_std_scale <= 1:
            fail(f"adapted_std_scale must be in (0, 1], got {self.adapted_std_scale!r}")
        if not self.meta_lr > 0:
            fail(f"meta_lr must be > 0, got {self.meta_lr!r}")
        if not self.inner_lr >= 0:
            fail(f"inner_lr must be >= 0 (0: plain behaviour cloning), got {self.inner_lr!r}")
        if not self.expert_reward_scale > 0:
            fail(f"expert_reward_scale must be > 0, got {self.expert_reward_scale!r}")
        for name in ("gamma", "gae_lambda", "expert_discount"):
            if not 0 <= getattr(self, name) <= 1:
                fail(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.meta_batch > self.train_tasks:
            fail(f"meta_batch {self.meta_batch} exceeds train_tasks {self.train_tasks}: tasks of an iteration are "
                 f"distinct")
        if self.experts == "demos" and not self.demos:
            fail("experts=demos reads a task-set recording: give --demos FILE.npz (write one with 'metarlkit record "
                 "--train-tasks N')")
        if self.demos and self.experts != "demos":
            fail(f"--demos is read with experts=demos (got experts={self.experts})")
        if self.experts == "demos" and self.imitation_states == "dagger":
            fail("demonstrations give actions on their own states only: use imitation_states=expert with "
                 "experts=demos")


# Named sets of overrides (`metarlkit train gmps --preset NAME`); flags given with a preset win.
PRESETS: dict[str, dict] = {
    "default": {},
    # The reference code's policy and batch (local_train.py): learnt per-parameter step sizes and a
    # bias transformation of size 4 ('fullAda_Bias'), 50 trajectories per inner step.
    "paper": {"learned_step_sizes": True, "bias_transform": 4, "trajectories": 50},
    # This 2-core CPU: half the tasks per iteration (20) and a tenth of the Adam steps (50), 60
    # iterations (each Adam step recomputes 20 tasks' second-order inner steps: the cost of a run);
    # the paper's likelihood loss, which learns the adapted policy's spread, at a smaller Adam step
    # (at 1e-3 it diverged); SAC experts for 50 iterations (docs/gmps-results.md).
    "cpu": {"meta_batch": 20, "adam_steps": 50, "iterations": 60, "checkpoint_iterations": 10,
            "imitation_loss": "likelihood", "meta_lr": 3e-4, "expert_iterations": 50},
    # A run of seconds through every part of training: the registry's smoke test.
    "tiny": {"hidden_sizes": (8,), "trajectories": 2, "eval_trajectories": 2, "train_tasks": 4, "meta_batch": 2,
             "expert_episodes": 2, "adam_steps": 2, "iterations": 2, "checkpoint_iterations": 1,
             "expert_iterations": 2, "expert_train_steps": 2, "expert_batch_size": 4, "expert_hidden_sizes": (8,)},
}
