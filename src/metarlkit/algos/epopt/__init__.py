"""EPOpt: robust policies from model ensembles, trained by TRPO on the worst epsilon fraction of
trajectories (the conditional value at risk) over source models drawn from a distribution
(Rajeswaran, Ghotra, Ravindran & Levine 2017)."""

from metarlkit.algos.epopt.adapt import adapt_state
from metarlkit.algos.epopt.agent import make_agent
from metarlkit.algos.epopt.config import PRESETS, EPOptConfig
from metarlkit.algos.epopt.train import TrainState, cvar_mask, default_episodes, kept_count, make_train
from metarlkit.algos.registry import Algorithm, Curve, register

Config = EPOptConfig

_AXIS = "trajectory return (solid: all N models, dashed: the worst epsilon)"

ALGORITHM = register(Algorithm(
    name="epopt",
    description="EPOpt: TRPO on the worst epsilon of trajectories over an ensemble of source models (robust policies)",
    config=EPOptConfig,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    default_episodes=default_episodes,
    curves=(Curve("return", _AXIS, "-"), Curve("cvar_return", _AXIS, "--")),
    progress_metric="return",
    finite_metrics=("loss", "grad_norm"),
    divergence_hint="max_kl",
    adapt=adapt_state,
))

__all__ = ["ALGORITHM", "Config", "adapt_state", "EPOptConfig", "PRESETS", "TrainState", "cvar_mask", "default_episodes",
           "kept_count", "make_agent", "make_train"]
