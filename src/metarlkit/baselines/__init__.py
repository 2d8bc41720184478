"""Classic adaptive baselines, each an AdaptiveAgent, looked up by name."""

from metarlkit.baselines import (  # noqa: F401  (register their agents)
    bandit,  # noqa: F401  (registers the bandit agents)
    bayes_optimal,
    gittins,
    mdp,  # noqa: F401  (registers the tabular-MDP agents)
    mpc,  # noqa: F401  (registers the model-predictive reference agent)
    posterior_sampling,  # noqa: F401  (registers the sparse point robot's posterior-sampling reference)
)
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
