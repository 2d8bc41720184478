"""Loading a Gaussian MLP policy trained elsewhere as MAML's theta.

pytorch-maml-rl (`tristandeleu/pytorch-maml-rl`) saves its `NormalMLPPolicy` as a PyTorch state
dict; written out with NumPy (`np.savez(path, **{k: v.numpy() for k, v in state_dict.items()})`)
it is an archive of float32 arrays:

  layer1.weight [H1, O], layer1.bias [H1], ..., layerK.weight [HK, HK-1], layerK.bias [HK],
  mu.weight [A, HK], mu.bias [A], sigma [A]

PyTorch's `Linear` computes `x @ W.T + b`; the hidden activation follows every `layerK`; the mean
is `mu`'s output; `sigma` is the *log* standard deviation (state-independent). Our `nets.mlp`
params hold `w{i}` as [in, out], so the weights are transposed. The activation is not in the file:
give the agent the one the policy was trained with (pytorch-maml-rl's 2D-navigation config: tanh).

Note: pytorch-maml-rl clamps the log standard deviation below at log(1e-6), ours (`mlp_policy`) at
-20; the two policies differ only where `sigma` is below -13.8.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import jax.numpy as jnp
import numpy as np


def from_pytorch_maml_rl(arrays: Mapping[str, np.ndarray]) -> dict:
    """MAML params (`nets.mlp` dict: w0, b0, ..., log_std) of a pytorch-maml-rl `NormalMLPPolicy`.

    Args:
      arrays: the policy's state dict as arrays (names as above; extra names are an error).

    Returns:
      {"w0": [O, H1], "b0": [H1], ..., "wK": [HK, A], "bK": [A], "log_std": [A]}, float32.

    Raises:
      ValueError (one line) when names or shapes do not make such a policy.
    """
    names = set(arrays)
    layers = sorted(int(m.group(1)) for n in names if (m := re.fullmatch(r"layer(\d+)\.weight", n)))
    expected = {f"layer{i}.{p}" for i in layers for p in ("weight", "bias")} | {"mu.weight", "mu.bias", "sigma"}
    if layers != list(range(1, len(layers) + 1)) or names != expected:
        raise ValueError(f"not a pytorch-maml-rl NormalMLPPolicy state dict: expected {sorted(expected)}, got "
                         f"{sorted(names)}")
    params = {}
    order = [f"layer{i}" for i in layers] + ["mu"]
    size = None
    for i, name in enumerate(order):
        w = np.asarray(arrays[f"{name}.weight"], np.float32)
        b = np.asarray(arrays[f"{name}.bias"], np.float32)
        if w.ndim != 2 or b.shape != (w.shape[0],) or (size is not None and w.shape[1] != size):
            raise ValueError(f"{name}: weight {w.shape} and bias {b.shape} do not follow the previous layer "
                             f"(width {size})")
        params[f"w{i}"] = jnp.asarray(w.T)
        params[f"b{i}"] = jnp.asarray(b)
        size = w.shape[0]
    sigma = np.asarray(arrays["sigma"], np.float32)
    if sigma.shape != (size,):
        raise ValueError(f"sigma has shape {sigma.shape}; the policy has {size} action dimensions")
    params["log_std"] = jnp.asarray(sigma)
    return params


def load_pytorch_maml_rl(path: str | os.PathLike) -> dict:
    """`from_pytorch_maml_rl` of a `.npz` archive written as in the module docstring."""
    with np.load(path) as archive:
        return from_pytorch_maml_rl({name: archive[name] for name in archive.files})
