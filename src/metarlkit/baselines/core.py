"""Classic adaptive agents: the registry and validation-set tuning of their knobs.

A `Baseline` describes one agent: which families it supports, its knobs (hyperparameters that
live in `params`, each with a documented grid), how to build the AdaptiveAgent and how to build
its params from knob values. A knob the user does not set is tuned on the validation task set
(`resolve`): one compiled program (knobs are params, i.e. arguments) evaluates the grid points
on the same validation tasks with common random numbers (by successive halving for grids of five
or more points), and the value with the highest mean expected total reward wins. A knob whose
grid holds one value is not tuned: left out of the spec, it takes that value (a fixed default).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from metarlkit.agents import AdaptiveAgent
from metarlkit.specs import SpecError, closest, parse_spec
from metarlkit.tasks.base import TaskFamily


@dataclasses.dataclass(frozen=True)
class Knob:
    """A hyperparameter: its type, its tuning grid (ascending) and its allowed range.

    A one-value grid is a fixed default, not tuned. A `str` knob (kind=str) takes one of
    `choices` (low and high are then unused).
    """

    kind: type
    grid: tuple
    low: float
    high: float
    doc: str
    choices: tuple[str, ...] = ()

    def check(self, agent: str, name: str, raw: Any) -> Any:
        if self.kind is str:
            if raw not in self.choices:
                choices = ", ".join(self.choices)
                raise SpecError(f"{agent} option {name!r} must be one of {choices}, got {raw!r}")
            return raw
        try:
            value = self.kind(raw) if not isinstance(raw, str) else self.kind(float(raw) if self.kind is float else int(raw))
        except (TypeError, ValueError):
            raise SpecError(f"{agent} option {name!r} must be {self.kind.__name__}, got {raw!r}") from None
        if not self.low <= value <= self.high:
            raise SpecError(
                f"{agent} option {name!r} must be in [{self.low}, {self.high}], got {value!r}"
            )
        return value


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One classic agent.

    build(family, num_episodes, knob_values) -> AdaptiveAgent, where knob_values maps each knob
      of `static_knobs` to every value the agent must support (the fixed value or the tuning
      grid), e.g. so OTS can size its static sample buffer.
    make_params(family, num_episodes, **knobs) -> params pytree for one setting of the knobs.
    supports(family) -> None, or a one-line reason the agent cannot run on this family.
    """

    name: str
    description: str
    build: Callable[..., AdaptiveAgent]
    make_params: Callable[..., Any]
    supports: Callable[[TaskFamily], str | None]
    knobs: dict[str, Knob] = dataclasses.field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    static_knobs: tuple[str, ...] = ()  # knobs whose supported values `build` needs


@functools.lru_cache(maxsize=256)
def _build(name: str, family: TaskFamily, num_episodes: int, static: tuple) -> AdaptiveAgent:
    # One AdaptiveAgent object per (agent, family, trial length, static knobs): the evaluator's
    # compiled programs are cached on it, so repeated evaluations do not recompile.
    return _REGISTRY[name].build(family, num_episodes, dict(static))


_REGISTRY: dict[str, Baseline] = {}
_ALIASES: dict[str, str] = {}


def register(baseline: Baseline) -> Baseline:
    for key in (baseline.name, *baseline.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"agent name {key!r} is already registered")
    _REGISTRY[baseline.name] = baseline
    for alias in baseline.aliases:
        _ALIASES[alias] = baseline.name
    return baseline


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Baseline:
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        everything = list(_REGISTRY) + list(_ALIASES)
        raise SpecError(
            f"unknown agent {name!r}{closest(name, everything)}; available: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


@dataclasses.dataclass
class ResolvedAgent:
    """A baseline ready to evaluate: the agent, its params, and how the knobs were chosen."""

    spec: str
    agent: AdaptiveAgent
    params: Any
    hyperparameters: dict[str, Any]
    tuning: dict[str, Any] | None = None


def no_params(family, num_episodes, **knobs):
    """`make_params` of agents without knobs."""
    del family, num_episodes, knobs
    return {}


def fixed_params(**constants):
    """`make_params` giving the knobs as float32 scalars, with `constants` added.

    `fixed_params(c=0.0)(family, n, epsilon=0.1)` is {'c': 0.0, 'epsilon': 0.1}: agents that share
    one AdaptiveAgent (and so one compiled program) differ only in such params.
    """

    def make_params(family, num_episodes, **knobs):
        del family, num_episodes
        return {k: jnp.asarray(v, jnp.float32) for k, v in {**constants, **knobs}.items()}

    return make_params


def int_params(name: str):
    """`make_params` giving knob `name` as an int32 scalar."""

    def make_params(family, num_episodes, **knobs):
        del family, num_episodes
        return {name: jnp.asarray(knobs[name], jnp.int32)}

    return make_params


def baselines_params(baseline: Baseline, family: TaskFamily, num_episodes: int, knobs: dict) -> Any:
    """The params pytree of `baseline` for one setting of its knobs."""
    return baseline.make_params(family, num_episodes, **knobs)


KEEP_FRACTION = 4  # successive halving keeps the best quarter of the grid (at least 2) per rung
MIN_HALVING_GRID = 5  # smaller grids run every point on every tuning task


@dataclasses.dataclass
class Prepared:
    """A checked agent spec for one family and trial length, before its free knobs are tuned.

    `agent` supports every value of the free knobs' grids (static buffers are sized for them), so
    the one compiled program serves tuning and the final evaluation; `template_params()` is a
    params pytree of the right shapes, for compiling that program ahead of use.
    """

    baseline: Baseline
    family: TaskFamily
    num_episodes: int
    agent: AdaptiveAgent
    fixed: dict[str, Any]
    free: list[str]

    def grid(self) -> list[dict[str, Any]]:
        values = itertools.product(*(self.baseline.knobs[k].grid for k in self.free))
        return [dict(zip(self.free, v)) for v in values]

    def params(self, setting: dict[str, Any]) -> Any:
        return baselines_params(self.baseline, self.family, self.num_episodes, {**self.fixed, **setting})

    def template_params(self) -> Any:
        return self.params(self.grid()[0] if self.free else {})


def prepare(spec: str, family: TaskFamily, num_episodes: int) -> Prepared:
    """Parses and checks `spec` against `family` and builds its AdaptiveAgent (no evaluation)."""
    name, raw = parse_spec(spec)
    baseline = get(name)
    unknown = sorted(set(raw) - set(baseline.knobs))
    if unknown:
        valid = ", ".join(baseline.knobs) or "(none)"
        raise SpecError(f"agent {baseline.name!r} has no option {unknown[0]!r}; valid options: {valid}")
    reason = baseline.supports(family)
    if reason:
        raise SpecError(f"agent {baseline.name!r} cannot run on {family.name}: {reason}")
    fixed = {k: baseline.knobs[k].check(baseline.name, k, v) for k, v in raw.items()}
    # A one-value grid is a fixed default: nothing to tune.
    fixed.update({k: b.grid[0] for k, b in baseline.knobs.items() if k not in fixed and len(b.grid) == 1})
    free = [k for k in baseline.knobs if k not in fixed]
    supported = {k: (fixed[k],) if k in fixed else baseline.knobs[k].grid for k in baseline.static_knobs}
    agent = _build(baseline.name, family, num_episodes, tuple(supported.items()))
    return Prepared(baseline, family, num_episodes, agent, fixed, free)


def survivors(count: int) -> int:
    """Grid points kept for the next rung of successive halving."""
    return max(2, -(-count // KEEP_FRACTION))


def tuning_rungs(grid_size: int, tune_tasks: int) -> list[int]:
    """Validation tasks of each rung of successive halving (Jamieson & Talwalkar 2016).

    The whole grid runs on the first rung's tasks, the best quarter (at least 2) of it on the next
    rung's, and so on until 2 remain; the last rung has half of the tuning tasks and each earlier
    one half of what follows it (20 points on 200 tasks: rungs of 50, 50 and 100 tasks, 1450
    trials instead of 4000). Rungs are whole chunks of the evaluator, so no task is padded; grids
    under MIN_HALVING_GRID points, and tuning sets too small for two rungs, get one rung.
    """
    from metarlkit.evaluation import DEFAULT_CHUNK

    reductions, alive = 0, grid_size
    while grid_size >= MIN_HALVING_GRID and alive > 2:
        alive, reductions = survivors(alive), reductions + 1
    while reductions:
        first = (tune_tasks >> reductions) // DEFAULT_CHUNK * DEFAULT_CHUNK
        if first:
            sizes = [first] + [first << i for i in range(reductions - 1)]
            return sizes + [tune_tasks - sum(sizes)]
        reductions -= 1
    return [tune_tasks]


def _tune(prepared: Prepared, tune_tasks: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Successive halving over the free knobs' grid on the validation split (see `resolve`)."""
    from metarlkit.evaluation import evaluate

    grid = prepared.grid()
    scores: list[list[np.ndarray]] = [[] for _ in grid]
    alive = list(range(len(grid)))
    first = 0
    rungs = tuning_rungs(len(grid), tune_tasks)
    for rung, count in enumerate(rungs):
        if rung:
            ranked = sorted(alive, key=lambda i: -np.concatenate(scores[i]).mean())
            alive = sorted(ranked[: survivors(len(alive))])
        for i in alive:
            result = evaluate(
                prepared.agent, prepared.family, prepared.params(grid[i]),
                num_episodes=prepared.num_episodes, num_tasks=count, split="validation", seed=seed,
                first_task=first,
            )
            expected = result.expected_total_reward
            scores[i].append(expected if np.all(np.isfinite(expected)) else result.total_reward)
        first += count
    means = [float(np.concatenate(s).mean()) for s in scores]
    best = max(alive, key=lambda i: (means[i], -i))  # ties to the earlier (smaller) grid value
    report = {
        "split": "validation",
        "num_tasks": tune_tasks,
        "seed": seed,
        "metric": "mean expected total reward",
        "method": "successive halving" if len(rungs) > 1 else "full grid",
        "grid": [
            {**g, "score": m, "tasks": sum(len(x) for x in s)} for g, m, s in zip(grid, means, scores)
        ],
        "chosen": dict(grid[best]),
    }
    return grid[best], report


def resolve(
    spec: str,
    family: TaskFamily,
    num_episodes: int,
    *,
    tune_tasks: int = 500,
    seed: int = 0,
) -> ResolvedAgent:
    """Builds the agent named by `spec` for `family`; knobs not in the spec are tuned.

    Tuning scores knob settings by their mean expected total reward (realised reward where the
    family gives no expected reward) on the first `tune_tasks` validation tasks, agent seed
    `seed`, and keeps the best. Grids of MIN_HALVING_GRID points or more are searched by
    successive halving (`tuning_rungs`): every point on the first tasks, the best quarter on
    the next ones, and so on; smaller grids run every point on every task. Every agent's setting
    runs on the same tasks with the same draws (common random numbers), so the comparison
    between settings is paired.
    """
    prepared = prepare(spec, family, num_episodes)
    fixed, tuning = dict(prepared.fixed), None
    if prepared.free:
        chosen, tuning = _tune(prepared, tune_tasks, seed)
        fixed.update(chosen)
    knobs = prepared.baseline.knobs
    params = baselines_params(prepared.baseline, family, num_episodes, fixed)
    full_spec = prepared.baseline.name + (":" + ",".join(f"{k}={fixed[k]}" for k in knobs) if knobs else "")
    return ResolvedAgent(full_spec, prepared.agent, params, fixed, tuning)
