"""metarlkit: meta-reinforcement learning in JAX with one meta-test protocol."""

from __future__ import annotations

__version__ = "0.1.0"

from metarlkit import tasks
from metarlkit.agents import AdaptiveAgent, Transition
from metarlkit.evaluation import EvalResult, evaluate, evaluate_sweep
from metarlkit.experiment import TrainedAgent, load
from metarlkit.trial import StepRecord, run_trial

__all__ = [
    "AdaptiveAgent",
    "EvalResult",
    "StepRecord",
    "TrainedAgent",
    "Transition",
    "__version__",
    "evaluate",
    "evaluate_sweep",
    "load",
    "run_trial",
    "tasks",
]
