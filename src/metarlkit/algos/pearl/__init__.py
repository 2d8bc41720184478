"""PEARL: off-policy meta-RL with a probabilistic task context and posterior-sampling exploration
(Rakelly, Zhou, Quillen, Finn & Levine 2019; reference code katerakelly/oyster)."""

from metarlkit.algos.pearl.agent import make_agent
from metarlkit.algos.pearl.config import PRESETS, PEARLConfig
from metarlkit.algos.pearl.train import TrainState, make_train
from metarlkit.algos.registry import Algorithm, Curve, register

Config = PEARLConfig


def check(config: PEARLConfig, family, num_episodes: int) -> None:
    """The family must hold `train_tasks` training tasks (a published list may hold fewer)."""
    del num_episodes
    from metarlkit.tasks.tasksets import check_split

    check_split("train", config.train_tasks, family)


ALGORITHM = register(Algorithm(
    name="pearl",
    description="PEARL: off-policy SAC conditioned on a probabilistic task context, posterior-sampling exploration",
    config=PEARLConfig,
    make_train=make_train,
    make_agent=make_agent,
    presets=PRESETS,
    default_preset=lambda family: "paper",
    check=check,
    fixed_train_tasks=lambda config: config.train_tasks,
    curves=(Curve("return", "collected episode return (training tasks)"),),
    progress_metric="return",
    finite_metrics=("q_loss", "v_loss", "policy_loss"),
    divergence_hint="learning_rate",
    action_spaces=("continuous",),
    agent_options=("prior_episodes", "posterior_update", "deterministic_eval"),
))

__all__ = ["ALGORITHM", "Config", "PEARLConfig", "PRESETS", "TrainState", "make_agent", "make_train"]
