"""Task families: a registry of pure-JAX distributions over MDPs, and fixed task sets."""

from __future__ import annotations

from metarlkit.specs import SpecError, build_options, closest, parse_spec
from metarlkit.tasks.bandits import (
    BernoulliBandit,
    DependentBandit,
    ElevenArmBandit,
    GaussianBandit,
    RestlessBandit,
)
from metarlkit.tasks.base import ActionSpaceError, StepInfo, TaskFamily
from metarlkit.tasks.cartpole import CartPole
from metarlkit.tasks.control import Pendulum
from metarlkit.tasks.navigation import PointNavigation, PointRobotWind
from metarlkit.tasks.tabular import TabularMDP, value_iteration
from metarlkit.tasks.tasksets import (
    ENV_SEED,
    SPLIT_SIZES,
    TASK_SET_SEED,
    env_keys,
    task_set,
    task_set_hash,
)

_REGISTRY: dict[str, type[TaskFamily]] = {}


def register(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Adds a family class under `cls.name`; a name can be registered once."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"task family {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (BernoulliBandit, DependentBandit, GaussianBandit, ElevenArmBandit, RestlessBandit, TabularMDP,
             PointNavigation, PointRobotWind, Pendulum, CartPole):
    register(_cls)


def names() -> list[str]:
    return sorted(_REGISTRY)


def family_class(name: str) -> type[TaskFamily]:
    if name not in _REGISTRY:
        raise SpecError(
            f"unknown task {name!r}{closest(name, _REGISTRY)}; available: {', '.join(names())}"
        )
    return _REGISTRY[name]


def make(name: str, **options) -> TaskFamily:
    """Builds a task family by registry name; options may be typed values or strings."""
    cls = family_class(name)
    return build_options(cls, options, f"task {name!r}")


def from_spec(spec: str) -> TaskFamily:
    """Builds a task family from `NAME:key=value,...`."""
    name, options = parse_spec(spec)
    return make(name, **options)


__all__ = [
    "ENV_SEED",
    "SPLIT_SIZES",
    "TASK_SET_SEED",
    "ActionSpaceError",
    "BernoulliBandit",
    "CartPole",
    "DependentBandit",
    "ElevenArmBandit",
    "GaussianBandit",
    "Pendulum",
    "PointNavigation",
    "PointRobotWind",
    "RestlessBandit",
    "StepInfo",
    "TabularMDP",
    "TaskFamily",
    "env_keys",
    "family_class",
    "from_spec",
    "make",
    "names",
    "register",
    "task_set",
    "task_set_hash",
    "value_iteration",
]
