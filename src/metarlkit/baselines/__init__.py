"""Classic adaptive baselines, each an AdaptiveAgent, looked up by name."""

from metarlkit.baselines import bandit  # noqa: F401  (registers the bandit agents)
from metarlkit.baselines import bayes_optimal, gittins  # noqa: F401  (register their agents)
from metarlkit.baselines import mdp  # noqa: F401  (registers the tabular-MDP agents)
from metarlkit.baselines.core import (
    Baseline,
    Knob,
    Prepared,
    ResolvedAgent,
    get,
    names,
    prepare,
    register,
    resolve,
)

__all__ = ["Baseline", "Knob", "Prepared", "ResolvedAgent", "get", "names", "prepare", "register", "resolve"]
