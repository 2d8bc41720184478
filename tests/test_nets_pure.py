"""`nets.pure_module`: an NNX module as pure functions of a parameter pytree."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from metarlkit.nets import pure_module


class Affine(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.linear(x)

    def doubled(self, x):
        return 2 * self.linear(x)


def test_pure_module_applies_the_module_and_differentiates_in_its_params():
    module = pure_module(lambda rngs: Affine(rngs=rngs))
    params = module.init_params(jax.random.PRNGKey(0))
    reference = Affine(rngs=nnx.Rngs(params=jax.random.PRNGKey(0)))  # the same initialisation
    x = jnp.arange(3.0)
    np.testing.assert_allclose(jax.jit(module.apply)(params, x), reference(x), rtol=1e-6)
    np.testing.assert_allclose(module.apply(params, x, method="doubled"), 2 * reference(x), rtol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(module.apply(p, x)))(params)
    np.testing.assert_allclose(grads["linear"]["bias"][...], np.ones(2))
    assert module.template.linear.in_features == 3  # static attributes, no arrays allocated
