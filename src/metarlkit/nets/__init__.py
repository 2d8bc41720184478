"""Network building blocks shared by algorithms: recurrent cores and action distributions."""

from metarlkit.nets.heads import Categorical, DiagGaussian, PolicyHead
from metarlkit.nets.recurrent import CORES, RecurrentCore

__all__ = ["CORES", "Categorical", "DiagGaussian", "PolicyHead", "RecurrentCore"]
