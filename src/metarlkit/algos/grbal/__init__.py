"""GrBAL: a meta-learned dynamics model adapted online by one gradient step, with model-predictive
control (Nagabandi, Clavera et al. 2019; reference code iclavera/learning_to_adapt). `meta=false`
trains the paper's MB baseline in the same tool."""

from metarlkit.algos.grbal.agent import make_agent
from metarlkit.algos.grbal.config import PRESETS, GrBALConfig
from metarlkit.algos.grbal.train import TrainState, make_train
from metarlkit.algos.registry import Algorithm, Curve, register

Config = GrBALConfig


def check(config: GrBALConfig, family, num_episodes: int) -> None:
    """GrBAL plans with the family's own reward function: the family must declare its model, with a
    reward that does not read the task's hidden parameters, and its episodes must hold a window."""
    del num_episodes
    if not family.defines_model:
        raise ValueError(f"{family.name} declares no model of its dynamics and reward (defines_model); GrBAL learns "
                         f"the dynamics and plans with the family's reward: use pendulum, cartpole or point-robot-wind")
    if family.reward_depends_on_task or not hasattr(family, "nominal_task"):
        raise ValueError(f"{family.name}'s reward depends on the task, which GrBAL's planner cannot know; "
                         f"use a family whose tasks vary the dynamics only (pendulum, cartpole, point-robot-wind)")
    span = config.adapt_steps + config.predict_steps
    if span > family.horizon:
        raise ValueError(f"adapt_steps + predict_steps ({span}) must fit in an episode of {family.name} "
                         f"({family.horizon} steps)")


ALGORITHM = register(Algorithm(
    name="grbal",
    description="GrBAL: a dynamics model meta-learned to adapt by one gradient step, with MPC (MB: meta=false)",
    config=GrBALConfig,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    default_preset=lambda family: "paper",
    default_episodes=lambda config: 1,  # it adapts within an episode; trials of any length work
    check=check,
    curves=(Curve("return", "collected episode return"), Curve("valid_loss", "validation loss", "--")),
    progress_metric="return",
    finite_metrics=("model_loss", "valid_loss"),
    divergence_hint="learning_rate or step_size",
    action_spaces=("continuous",),
    agent_options=("online_adaptation", "step_size", "method", "horizon", "candidates", "cem_iterations", "elites",
                   "discount"),
))

__all__ = ["ALGORITHM", "Config", "GrBALConfig", "PRESETS", "TrainState", "make_agent", "make_train"]
