"""RL2 / "learning to reinforcement learn": a recurrent policy whose hidden state, carried across
the episodes of a trial, becomes the learning algorithm (Duan et al. 2016; Wang et al. 2016)."""

from metarlkit.algos.registry import Algorithm, Curve, register
from metarlkit.algos.rl2.agent import make_agent
from metarlkit.algos.rl2.config import PRESETS, RL2Config
from metarlkit.algos.rl2.train import TrainState, make_train

Config = RL2Config

ALGORITHM = register(Algorithm(
    name="rl2",
    description="RL2: a recurrent (or transformer) policy whose memory across a trial's episodes learns the task",
    config=RL2Config,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    curves=(Curve("trial_expected_return", "mean expected total reward per training trial"),),
    progress_metric="trial_return",
    finite_metrics=("loss", "grad_norm"),
    divergence_hint="learning_rate, max_grad_norm, value_coef or reward_scale",
))

__all__ = ["ALGORITHM", "Config", "PRESETS", "RL2Config", "TrainState", "make_agent", "make_train"]
