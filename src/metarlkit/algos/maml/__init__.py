"""MAML-RL: meta-learn a policy initialisation from which a few policy-gradient steps solve a new task
(Finn et al. 2017), with its variants' estimators (ProMP's LVC, DiCE) and outer optimisers (TRPO, PPO)."""

from metarlkit.rl.adaptation_agent import make_agent
from metarlkit.algos.maml.config import PRESETS, MAMLConfig, default_preset
from metarlkit.algos.maml.convert import from_pytorch_maml_rl, load_pytorch_maml_rl
from metarlkit.algos.maml.train import TrainState, check, default_episodes, make_train
from metarlkit.algos.registry import Algorithm, Curve, register

Config = MAMLConfig

_AXIS = "episode return (solid: after adaptation, dashed: before)"

ALGORITHM = register(Algorithm(
    name="maml",
    description="MAML-RL (and ProMP, DiCE, E-MAML): a policy initialisation that policy-gradient steps adapt",
    config=MAMLConfig,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    check=check,
    default_episodes=default_episodes,
    default_preset=default_preset,
    curves=(Curve("return_after", _AXIS, "-"), Curve("return_before", _AXIS, "--")),
    progress_metric="return_after",
    finite_metrics=("loss", "grad_norm"),
    divergence_hint="inner_lr, max_kl or outer_lr",
    agent_options=("eval_trajectories", "adapted_std_scale"),
))

__all__ = ["ALGORITHM", "Config", "MAMLConfig", "PRESETS", "TrainState", "check", "default_episodes",
           "from_pytorch_maml_rl", "load_pytorch_maml_rl", "make_agent", "make_train"]
