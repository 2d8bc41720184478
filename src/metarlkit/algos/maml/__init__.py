"""MAML-RL: meta-learn a policy initialisation from which a few policy-gradient steps solve a new task
(Finn et al. 2017), with its variants' estimators (ProMP's LVC, DiCE) and outer optimisers (TRPO, PPO)."""

from metarlkit.algos.common import seeded
from metarlkit.algos.maml.agent import make_agent
from metarlkit.algos.maml.config import PRESETS, MAMLConfig
from metarlkit.algos.maml.train import Train, TrainState, check, default_episodes, make_train

Config = MAMLConfig
NAME = "maml"

__all__ = ["Config", "MAMLConfig", "NAME", "PRESETS", "Train", "TrainState", "check", "default_episodes",
           "make_agent", "make_train", "seeded"]
