"""Distributions over a task family's physical parameters, as pytrees of arrays.

A family whose tasks differ in their dynamics names its parameters with nominal values and gives
each a distribution of one of four kinds. Because a distribution is a pytree of arrays (its kind is
static), a learner can move it between updates without recompiling — EPOpt's source distribution
is adapted this way — and the same compiled `sample_task` serves every setting.

  Uniform(low, high)                       x ~ U[low, high]
  LogUniform(nominal, base, low, high)     x = nominal * base ** u, u ~ U[low, high]
                                           (rand_param_envs: base 1.5, u in [-3, 3])
  TruncatedNormal(mean, std, low, high)    N(mean, std^2) restricted to [low, high]
  Choice(values, logits)                   one of `values`, with softmax(logits) probabilities

Every kind has `sample(key)`, `log_prob(x)` and `fit(samples, weights)` (weighted moment matching,
the same kind and support rules back: what EPOpt's Bayesian source update needs), and a zero-width
distribution (low == high, std == 0) samples its point exactly, with log_prob 0 there and -inf
elsewhere: no NaN anywhere. `TaskDistribution` maps parameter names to distributions and is itself
a pytree.

Single stream: one parameter value per call; `vmap` for batches of tasks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.scipy import special, stats

_EPS = 1e-12


def _safe(width):
    """`width` where positive, else 1: the dense branch of a `where` must stay finite (and so must
    its gradient) when the zero-width branch is the one taken."""
    return jnp.where(width > 0, width, 1.0)


def _point(x, at):
    """log_prob of a point mass at `at`: 0 there, -inf elsewhere."""
    return jnp.where(x == at, 0.0, -jnp.inf)


def _weighted_moments(x, w):
    w = jnp.asarray(w, jnp.float32)
    w = w / jnp.maximum(jnp.sum(w), _EPS)
    mean = jnp.sum(w * x)
    var = jnp.sum(w * (x - mean) ** 2)
    return mean, jnp.sqrt(jnp.maximum(var, 0.0))


@struct.dataclass
class Uniform:
    low: jax.Array
    high: jax.Array

    def sample(self, key):
        return self.low + (self.high - self.low) * jax.random.uniform(key, jnp.shape(self.low))

    def log_prob(self, x):
        width = self.high - self.low
        inside = (x >= self.low) & (x <= self.high)
        dense = jnp.where(inside, -jnp.log(_safe(width)), -jnp.inf)
        return jnp.where(width > 0, dense, _point(x, self.low))

    def fit(self, x, weights):
        """The uniform with the samples' weighted mean and standard deviation (width sqrt(12) std)."""
        mean, std = _weighted_moments(x, weights)
        half = math.sqrt(3.0) * std
        return Uniform(mean - half, mean + half)

    def within(self, other: "Uniform") -> "Uniform":
        """This distribution's support intersected with `other`'s (a point if they do not meet)."""
        low = jnp.clip(self.low, other.low, other.high)
        return Uniform(low, jnp.clip(self.high, low, other.high))


@struct.dataclass
class LogUniform:
    nominal: jax.Array
    base: jax.Array
    low: jax.Array  # exponent range: x = nominal * base ** u, u ~ U[low, high]
    high: jax.Array

    def sample(self, key):
        u = self.low + (self.high - self.low) * jax.random.uniform(key, jnp.shape(self.low))
        return self.nominal * self.base ** u

    def _exponent(self, x):
        return jnp.log(jnp.maximum(x, _EPS) / self.nominal) / jnp.log(self.base)

    def log_prob(self, x):
        u = self._exponent(x)
        width = self.high - self.low
        inside = (x > 0) & (u >= self.low - 1e-6) & (u <= self.high + 1e-6)
        # density of x = nominal * base^u with u uniform: 1 / (width * x * ln base)
        dense = jnp.where(inside, -jnp.log(_safe(width) * jnp.maximum(x, _EPS) * jnp.log(self.base)), -jnp.inf)
        return jnp.where(width > 0, dense, _point(x, self.nominal * self.base ** self.low))

    def fit(self, x, weights):
        """Moment matching of the exponent (uniform in log space), nominal and base kept."""
        mean, std = _weighted_moments(self._exponent(x), weights)
        half = math.sqrt(3.0) * std
        return LogUniform(self.nominal, self.base, mean - half, mean + half)

    def within(self, other: "LogUniform") -> "LogUniform":
        """The exponent range intersected with `other`'s (same nominal and base)."""
        low = jnp.clip(self.low, other.low, other.high)
        return LogUniform(self.nominal, self.base, low, jnp.clip(self.high, low, other.high))


@struct.dataclass
class TruncatedNormal:
    mean: jax.Array
    std: jax.Array
    low: jax.Array
    high: jax.Array

    def _standard_bounds(self):
        std = _safe(self.std)
        return (self.low - self.mean) / std, (self.high - self.mean) / std

    def sample(self, key):
        a, b = self._standard_bounds()
        z = jax.random.truncated_normal(key, a, b, jnp.shape(self.mean))
        return jnp.where(self.std > 0, jnp.clip(self.mean + self.std * z, self.low, self.high),
                         jnp.clip(self.mean, self.low, self.high))

    def log_prob(self, x):
        a, b = self._standard_bounds()
        std = _safe(self.std)
        mass = jnp.maximum(special.ndtr(b) - special.ndtr(a), _EPS)
        dense = stats.norm.logpdf(x, self.mean, std) - jnp.log(mass)
        dense = jnp.where((x >= self.low) & (x <= self.high), dense, -jnp.inf)
        return jnp.where(self.std > 0, dense, _point(x, jnp.clip(self.mean, self.low, self.high)))

    def fit(self, x, weights, iterations: int = 100):
        """The truncated normal (bounds kept) whose mean and variance are the samples' weighted ones:
        the parent's mean and std solved by fixed-point iteration on the truncated moments."""
        m, s = _weighted_moments(x, weights)

        def step(_, ms):
            mu, sigma = ms
            a, b = (self.low - mu) / sigma, (self.high - mu) / sigma
            z = jnp.maximum(special.ndtr(b) - special.ndtr(a), _EPS)
            pa, pb = stats.norm.pdf(a), stats.norm.pdf(b)
            shift = (pa - pb) / z
            scale = 1.0 + (jnp.where(jnp.isfinite(a), a * pa, 0.0) - jnp.where(jnp.isfinite(b), b * pb, 0.0)) / z - shift**2
            return m - sigma * shift, jnp.sqrt(s**2 / jnp.maximum(scale, 1e-3))

        safe_s = jnp.maximum(s, _EPS)
        mu, sigma = jax.lax.fori_loop(0, iterations, step, (m, safe_s))
        return TruncatedNormal(jnp.where(s > 0, mu, m), jnp.where(s > 0, sigma, 0.0), self.low, self.high)

    def within(self, other: "TruncatedNormal") -> "TruncatedNormal":
        return TruncatedNormal(self.mean, self.std, other.low, other.high)


@struct.dataclass
class Choice:
    values: jax.Array  # [K]
    logits: jax.Array  # [K]

    def sample(self, key):
        return self.values[jax.random.categorical(key, self.logits)]

    def log_prob(self, x):
        logp = jax.nn.log_softmax(self.logits)
        match = x == self.values
        return jnp.where(jnp.any(match), jnp.max(jnp.where(match, logp, -jnp.inf)), -jnp.inf)

    def fit(self, x, weights):
        """Weighted frequencies of the values (a value never drawn keeps a tiny probability)."""
        w = jnp.asarray(weights, jnp.float32)
        counts = jnp.sum(w[:, None] * (x[:, None] == self.values[None, :]), axis=0)
        probs = counts / jnp.maximum(jnp.sum(counts), _EPS)
        return Choice(self.values, jnp.log(jnp.maximum(probs, 1e-6)))

    def within(self, other: "Choice") -> "Choice":
        del other  # the same values
        return self


def describe(dist) -> dict[str, Any]:
    """A distribution (concrete, not traced) as plain JSON: its kind and its fields as floats (lists for
    Choice), e.g. {"kind": "log_uniform", "nominal": 1.0, "base": 1.5, "low": -1.0, "high": 1.0}."""
    kinds = {Uniform: "uniform", LogUniform: "log_uniform", TruncatedNormal: "truncated_normal", Choice: "choice"}
    out: dict[str, Any] = {"kind": kinds[type(dist)]}
    for field in dataclasses.fields(dist):
        value = jax.device_get(getattr(dist, field.name))
        out[field.name] = [float(v) for v in value.reshape(-1)] if value.ndim else float(value)
    return out


@struct.dataclass
class TaskDistribution:
    """Named parameter distributions: a pytree, so a learner can move it without recompiling."""

    params: dict[str, Any]

    def sample(self, key) -> dict[str, jax.Array]:
        keys = jax.random.split(key, len(self.params))
        return {name: d.sample(k) for (name, d), k in zip(sorted(self.params.items()), keys)}

    def log_prob(self, values: dict[str, jax.Array]) -> jax.Array:
        return sum(d.log_prob(values[name]) for name, d in self.params.items())

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each parameter's distribution as plain JSON (`describe`): recorded in outputs' provenance
        and hashed into task sets."""
        return {name: describe(d) for name, d in sorted(self.params.items())}

    def fit(self, samples: dict[str, jax.Array], weights: jax.Array, keep_bounds: bool = False) -> "TaskDistribution":
        """Each parameter's distribution fitted to its samples [N] under `weights` [N]; with
        `keep_bounds`, each fit's support is kept inside this distribution's (EPOpt's source
        update: the fitted distribution never leaves the range the source allowed)."""
        fitted = {name: d.fit(samples[name], weights) for name, d in self.params.items()}
        if keep_bounds:
            fitted = {name: f.within(self.params[name]) for name, f in fitted.items()}
        return TaskDistribution(fitted)

    def fix(self, **values: float) -> "TaskDistribution":
        """This distribution with the named parameters fixed at the given values (point masses); the
        others keep theirs. `family.default_distribution().fix(mass=2.0)`: every task a mass of 2."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ValueError(f"no parameter {unknown[0]!r}; the parameters: {', '.join(sorted(self.params))}")
        return TaskDistribution({**self.params, **{name: uniform(v, v) for name, v in values.items()}})

    def mean(self, draws: int = 4096, key: jax.Array | None = None) -> dict[str, jax.Array]:
        """Each parameter's mean, estimated from `draws` samples (for reports)."""
        keys = jax.random.split(jax.random.PRNGKey(0) if key is None else key, draws)
        return {name: jnp.mean(values) for name, values in jax.vmap(self.sample)(keys).items()}


def f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def uniform(low, high) -> Uniform:
    return Uniform(f32(low), f32(high))


def log_uniform(nominal, base: float = 1.5, low: float = -3.0, high: float = 3.0) -> LogUniform:
    return LogUniform(f32(nominal), f32(base), f32(low), f32(high))


def truncated_normal(mean, std, low, high) -> TruncatedNormal:
    return TruncatedNormal(f32(mean), f32(std), f32(low), f32(high))


def choice(values, probs=None) -> Choice:
    values = f32(values)
    probs = jnp.full(values.shape, 1.0 / values.shape[0]) if probs is None else f32(probs)
    return Choice(values, jnp.log(jnp.maximum(probs, 1e-30)))
