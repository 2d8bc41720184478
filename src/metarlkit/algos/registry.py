"""The algorithm contract: what an algorithm declares once, and what `make_train` returns.

Everything outside `algos/` (the training runner, run directories, the command line, plots,
`reproduce`) reads an algorithm only through its `Algorithm` record, so a new algorithm is one
folder plus one `register(Algorithm(...))` call, and nothing else in the library names it.

An algorithm's `make_train(config, family, num_episodes, train_tasks)` returns a `Train`: pure
functions over one seed's train state (a pytree; the runner `vmap`s seeds) that the host loop
compiles chunk by chunk, checkpoints and logs. Training may run in `Phase`s (experts, then
imitation; train, adapt the source distribution, train): the phases share one train state and
run one after another, each with its own compiled chunk, metrics and environment steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

ACTION_SPACES = ("discrete", "continuous")


class Phase(NamedTuple):
    """One stage of training: `num_updates` updates in chunks of `updates_per_chunk`."""

    name: str  # shown in progress, status.json and the metrics' `phase` column (several phases)
    run_chunk: Callable  # (state, n) -> (state, metrics {name: [n]}); n is static
    num_updates: int  # a whole number of chunks
    updates_per_chunk: int  # a checkpoint, metrics and progress follow each chunk
    steps_per_update: int  # environment steps one update takes (for budgets and curves)
    first_start_only: bool = False  # skipped by a run started from another's state (`--init-from`)


class Train(NamedTuple):
    """What an algorithm's `make_train` returns (one seed; the runner adds a leading seed axis)."""

    init: Callable  # key [2] -> train state (any pytree of arrays; replay buffers included)
    phases: tuple[Phase, ...]  # run in order; one for most algorithms
    agent: Any  # the AdaptiveAgent the trained params drive, scored by `metarlkit.evaluate`
    agent_args: dict  # the arguments it was built from (saved in run.json, for the record)
    trained_params: Callable  # train state -> the params the agent runs (e.g. the best iterate)
    current_params: Callable  # train state -> the params being trained (checked finite each chunk)
    extras: Mapping[str, Any] = {}  # algorithm-specific pieces for tests and benchmarks

    @property
    def num_updates(self) -> int:
        return sum(p.num_updates for p in self.phases)


def single_phase(run_chunk, num_updates: int, updates_per_chunk: int, steps_per_update: int,
                 name: str = "train") -> tuple[Phase, ...]:
    """`Train.phases` of an algorithm that trains in one stage."""
    return (Phase(name, run_chunk, num_updates, updates_per_chunk, steps_per_update),)


class Curve(NamedTuple):
    """A training metric drawn by `metarlkit plot` (a metrics.csv column)."""

    metric: str
    label: str  # the axis label
    style: str = "-"  # matplotlib line style (several curves of one run: '-', '--')


def _no_fixed_tasks(config) -> None:
    del config
    return None


def _no_default_episodes(config) -> None:
    del config
    return None


def _default_preset(family) -> str:
    del family
    return "default"


@dataclasses.dataclass(frozen=True, eq=False)  # identity hash: compiled programs are cached per record
class Algorithm:
    """An algorithm's declaration: everything the runner, CLI, plots and reproduce need of it.

    Attributes:
      name: the registry name (`metarlkit train NAME`), recorded in run.json.
      description: one line for `--help` and `metarlkit algorithms`.
      config: its frozen config dataclass; every field has a docstring (the CLI's option help), and
        `seed` and `seeds` are fields (seed i of a run trains from PRNGKey(seed + i)).
      make_train: (config, family, num_episodes, train_tasks) -> Train. `train_tasks` is a
        `trial.TaskSource` (the family's distribution, or the fixed set `fixed_train_tasks` asks for).
      make_agent: (**agent_args) -> AdaptiveAgent (the same agent `Train.agent` is).
      presets: named option sets (`--preset NAME`); 'tiny' (when given) is a run of seconds that
        still goes through every part of training: the registry tests train every algorithm with it.
      default_preset: family -> the preset a run without --preset uses ('default' unless the
        algorithm has a setting that reproduces its paper on that family); recorded in run.json.
      check: (config, family, num_episodes) -> None, raising a one-line ValueError when the config
        does not fit the task or trial; runs before anything is written.
      default_episodes: config -> episodes per evaluation trial when --episodes is not given (None:
        the family's default, else --episodes is required).
      fixed_train_tasks: config -> None (train on fresh tasks from the distribution) or N (train on
        the first N tasks of the family's 'train' split, as PEARL's 100 and GMPS's 40 goals).
      curves: training curves for `metarlkit plot`.
      progress_metric: the metric the progress bar shows.
      finite_metrics: metrics that must stay finite (with `Train.current_params`); a NaN or inf
        stops the run as diverged, keeping the last good checkpoint.
      divergence_hint: the options to lower when a run diverges, named in the message.
      action_spaces: the action spaces it supports ('discrete', 'continuous').
      adapt: (config, family, state, recording, key) -> (state, info), or None. One seed's train
        state moved toward a target from trajectories recorded on it (`metarlkit.recording`), when
        a run starts from another's checkpoint (`train --init-from RUN --adapt-to FILE`; EPOpt's
        source-distribution update). `info` is plain JSON recorded in run.json; its 'message' (one
        line) is shown. Raises a one-line ValueError when the state or recording cannot be adapted.
      agent_options: config fields a trained run's agent can take other values of at evaluation,
        without retraining: they shape how the agent acts, not the train state (PEARL's prior
        episodes; GrBAL's planner and online adaptation, which its training collection also
        used). A run is evaluated with other values as `RUN_DIR:NAME=VALUE,...`, and the values
        used are recorded beside the training config.
    """

    name: str
    description: str
    config: type
    make_train: Callable[..., Train]
    make_agent: Callable[..., Any]
    presets: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=lambda: {"default": {}})
    # (default_preset must name one of them; the registry tests check it on every family)
    check: Callable[..., None] | None = None
    default_episodes: Callable[[Any], int | None] = _no_default_episodes
    default_preset: Callable[[Any], str] = _default_preset
    fixed_train_tasks: Callable[[Any], int | None] = _no_fixed_tasks
    curves: tuple[Curve, ...] = ()
    progress_metric: str = "loss"
    finite_metrics: tuple[str, ...] = ("loss",)
    divergence_hint: str = "the step sizes"
    action_spaces: tuple[str, ...] = ACTION_SPACES
    adapt: Callable[..., Any] | None = None
    agent_options: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name or not all(c.isalnum() or c == "-" for c in self.name):
            raise ValueError(f"algorithm name {self.name!r} must be letters, digits and dashes")
        if not dataclasses.is_dataclass(self.config):
            raise ValueError(f"{self.name}: config must be a dataclass, got {self.config!r}")
        missing = {"seed", "seeds"} - {f.name for f in dataclasses.fields(self.config)}
        if missing:
            raise ValueError(f"{self.name}: its config needs the fields seed and seeds (runs train seeds "
                             f"seed .. seed + seeds - 1 at once); {', '.join(sorted(missing))} missing")
        bad = sorted(set(self.agent_options) - ({f.name for f in dataclasses.fields(self.config)} - {"seed", "seeds"}))
        if bad:
            raise ValueError(f"{self.name}: agent option {bad[0]!r} is not a config field (seed and seeds are not options)")
        unknown = sorted(set(self.action_spaces) - set(ACTION_SPACES))
        if not self.action_spaces or unknown:
            raise ValueError(f"{self.name}: action_spaces must be some of {', '.join(ACTION_SPACES)}")

    def check_run(self, config, family, num_episodes: int) -> None:
        """Every check of a run before it starts: action space, trial length, the algorithm's own."""
        kind = "continuous" if family.continuous else "discrete"
        if kind not in self.action_spaces:
            raise ValueError(f"{self.name} supports {' and '.join(self.action_spaces)} actions; "
                             f"{family.name} has {kind} actions")
        family.check_episodes(num_episodes)
        if config.seed < 0 or config.seed + config.seeds > 2**31:
            raise ValueError(f"seeds seed .. seed + seeds - 1 must lie in 0 .. {2**31 - 1:,} "
                             f"(got seed {config.seed}, seeds {config.seeds})")
        if self.check is not None:
            self.check(config, family, num_episodes)

    def supports(self, family) -> bool:
        return ("continuous" if family.continuous else "discrete") in self.action_spaces


_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Adds an algorithm under its name; a name can be registered once. Returns it."""
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"register takes an Algorithm record, got {type(algorithm).__name__}")
    if algorithm.name in _REGISTRY:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered")
    _REGISTRY[algorithm.name] = algorithm
    return algorithm


def unregister(name: str) -> None:
    """Removes a registered algorithm (for tests that register their own)."""
    _REGISTRY.pop(name, None)
