"""Flax NNX modules as pure functions: parameters a plain pytree, `apply` a pure function of them.

Algorithms keep parameters in their train state (checkpointed, `vmap`ped over seeds, differentiated
with `jax.grad`), so a module is split once into its static graph and its parameters, and every
call merges the two inside the compiled function (`nnx.split` / `nnx.merge`, which XLA compiles
away).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from flax import nnx


class PureModule(NamedTuple):
    """The pure functions of an NNX module (see `pure_module`)."""

    graphdef: Any  # the module's static structure
    template: Any  # an abstract instance (shapes only): read static attributes from it
    apply: Callable  # (params, *args, method=None) -> the module's (or method's) output
    init_params: Callable  # key -> params (an `nnx.State`)


def pure_module(factory: Callable[[nnx.Rngs], nnx.Module]) -> PureModule:
    """Splits the module `factory(rngs)` builds into pure functions; nothing is allocated here.

    Args:
      factory: builds the module from an `nnx.Rngs` (called abstractly here, and with
        `nnx.Rngs(params=key)` by `init_params`).
    """
    template = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    graphdef, _ = nnx.split(template)

    def apply(params, *args, method: str | None = None):
        module = nnx.merge(graphdef, params)
        return (module if method is None else getattr(module, method))(*args)

    def init_params(key):
        return nnx.split(factory(nnx.Rngs(params=key)))[1]

    return PureModule(graphdef, template, apply, init_params)
