"""Network building blocks shared by algorithms: recurrent and transformer cores, policy heads and
action distributions (the tanh-squashed Gaussian of off-policy learners: `nets.squashed`), and NNX
modules as pure functions (`pure_module`)."""

from metarlkit.nets.cores import CORES, make_core
from metarlkit.nets.heads import Categorical, DiagGaussian, PolicyHead
from metarlkit.nets.pure import PureModule, pure_module
from metarlkit.nets.recurrent import RecurrentCore
from metarlkit.nets.squashed import TanhGaussian
from metarlkit.nets.transformer import TransformerCore

__all__ = ["CORES", "Categorical", "DiagGaussian", "PolicyHead", "PureModule", "RecurrentCore", "TanhGaussian",
           "TransformerCore",
           "make_core", "pure_module"]
