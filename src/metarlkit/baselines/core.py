"""Classic adaptive agents: the registry and validation-set tuning of their knobs.

A `Baseline` describes one agent: which families it supports, its knobs (hyperparameters that
live in `params`, each with a documented grid), how to build the AdaptiveAgent and how to build
its params from knob values. A knob the user does not set is tuned on the validation task set
(`resolve`): one compiled program (knobs are params, i.e. arguments) evaluates every grid point
on the same validation tasks with common random numbers, and the value with the highest mean
expected total reward wins.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.agents import AdaptiveAgent
from metarlkit.specs import SpecError, closest, parse_spec
from metarlkit.tasks.base import TaskFamily


@dataclasses.dataclass(frozen=True)
class Knob:
    """A hyperparameter: its type, its tuning grid (ascending) and its allowed range."""

    kind: type
    grid: tuple
    low: float
    high: float
    doc: str

    def check(self, agent: str, name: str, raw: Any) -> Any:
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
            " (or a run directory)"
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


def baselines_params(baseline: Baseline, family: TaskFamily, num_episodes: int, knobs: dict) -> Any:
    """The params pytree of `baseline` for one setting of its knobs."""
    return baseline.make_params(family, num_episodes, **knobs)


def resolve(
    spec: str,
    family: TaskFamily,
    num_episodes: int,
    *,
    tune_tasks: int = 500,
    seed: int = 0,
) -> ResolvedAgent:
    """Builds the agent named by `spec` for `family`; knobs not in the spec are tuned.

    Tuning runs the knob grid on the first `tune_tasks` validation tasks with agent seed `seed`
    and keeps the setting with the highest mean expected total reward (realised reward where the
    family gives no expected reward).
    """
    from metarlkit.evaluation import evaluate

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
    free = [k for k in baseline.knobs if k not in fixed]
    def build(values):
        static = tuple((k, tuple(values[k])) for k in baseline.static_knobs)
        return _build(baseline.name, family, num_episodes, static)

    agent = build({k: (fixed[k],) if k in fixed else baseline.knobs[k].grid for k in baseline.knobs})
    tuning = None
    if free:
        grid = [dict(zip(free, values)) for values in itertools.product(*(baseline.knobs[k].grid for k in free))]
        settings = [{**fixed, **g} for g in grid]
        # One compiled program serves every grid point (params are arguments, not constants) and,
        # with the evaluator's fixed chunk size, the final test evaluation too.
        scores = []
        for setting in settings:
            result = evaluate(
                agent, family, baselines_params(baseline, family, num_episodes, setting),
                num_episodes=num_episodes, num_tasks=tune_tasks, split="validation", seed=seed,
            )
            expected = result.expected_total_reward
            scores.append(expected if np.all(np.isfinite(expected)) else result.total_reward)
        score = np.stack(scores)  # [G, M]
        means = score.mean(-1)
        best = int(np.argmax(means))
        fixed = settings[best]
        agent = build({k: (fixed[k],) for k in baseline.knobs})
        tuning = {
            "split": "validation",
            "num_tasks": tune_tasks,
            "seed": seed,
            "metric": "mean expected total reward",
            "grid": [{**g, "score": float(m)} for g, m in zip(grid, means)],
            "chosen": {k: fixed[k] for k in free},
        }
    params = baselines_params(baseline, family, num_episodes, fixed)
    full_spec = baseline.name + (":" + ",".join(f"{k}={fixed[k]}" for k in baseline.knobs) if baseline.knobs else "")
    return ResolvedAgent(full_spec, agent, params, dict(fixed), tuning)
