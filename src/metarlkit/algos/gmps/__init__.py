"""GMPS: guided meta-policy search — experts per training task, then a policy meta-trained by
imitation through MAML's inner policy-gradient step (Mendonca et al. 2019; reference code
russellmendonca/GMPS). Its agent is MAML's, so the two are scored identically."""

from metarlkit.algos.gmps.config import PRESETS, GMPSConfig
from metarlkit.algos.gmps.train import TrainState, check, default_episodes, load_demos, make_train
from metarlkit.rl.adaptation_agent import make_agent
from metarlkit.algos.registry import Algorithm, Curve, register

Config = GMPSConfig

_AXIS = "episode return (solid: after adaptation, dashed: before)"

ALGORITHM = register(Algorithm(
    name="gmps",
    description="GMPS: experts per training task, then meta-imitation through a policy-gradient inner step",
    config=GMPSConfig,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    check=check,
    default_episodes=default_episodes,
    fixed_train_tasks=lambda config: config.train_tasks,
    curves=(Curve("return_after", _AXIS, "-"), Curve("return_before", _AXIS, "--")),
    progress_metric="return_before",
    finite_metrics=("loss",),
    divergence_hint="meta_lr or inner_lr",
    action_spaces=("continuous",),
    agent_options=("eval_trajectories", "adapted_std_scale"),
))

__all__ = ["ALGORITHM", "Config", "GMPSConfig", "PRESETS", "TrainState", "check", "default_episodes", "load_demos",
           "make_agent", "make_train"]
