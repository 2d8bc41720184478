"""Training runs: run directories, config files, checkpoints, metric logs, progress and loading."""

from metarlkit.experiment.rundir import TrainedAgent, is_run_dir, load
from metarlkit.experiment.runner import TrainingDiverged, train

__all__ = ["TrainedAgent", "TrainingDiverged", "is_run_dir", "load", "train"]
