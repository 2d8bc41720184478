"""RL2 / "learning to reinforcement learn": a recurrent policy whose hidden state, carried across
the episodes of a trial, becomes the learning algorithm (Duan et al. 2016; Wang et al. 2016)."""

from metarlkit.algos.rl2.agent import make_agent
from metarlkit.algos.rl2.config import PRESETS, RL2Config
from metarlkit.algos.common import seeded
from metarlkit.algos.rl2.train import Train, TrainState, make_train

Config = RL2Config
NAME = "rl2"

__all__ = ["Config", "NAME", "PRESETS", "RL2Config", "Train", "TrainState", "make_agent", "make_train", "seeded"]
