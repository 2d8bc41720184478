"""Shared test setup.

`tests/` is put on sys.path so test modules can `from contract import FamilyContract` (the reusable
TaskFamily contract checker) whatever pytest import mode is in use.

Compile time dominates these tests on a 2-core CPU (0.05 s for the smallest program, seconds for
a trial or a Dirichlet draw), so modules opt into `fast_compile` (XLA's backend optimisation off:
about half the compile time, slower but still fast programs on these small inputs) with
`pytestmark = pytest.mark.usefixtures("fast_compile")`. Set METARLKIT_TEST_FULL_OPT=1 to test
with full optimisation instead.

Compiled programs are cached per process (the evaluator caches one program per family, agent,
trial length and chunk shape; the baselines registry caches one agent object per family and trial
length). Modules that evaluate the same agent on `bandit_family` with `BANDIT_EPISODES` episodes
and `chunk_size=CHUNK` therefore share one compile: the `bandit_eval` fixture does exactly that.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

BANDIT_SPEC = "bernoulli-bandit:arms=5"  # the family most evaluation tests run on
BANDIT_EPISODES = 10  # episodes per trial on it
CHUNK = 50  # tasks per compiled call


@pytest.fixture(scope="module")
def fast_compile():
    import jax

    if os.environ.get("METARLKIT_TEST_FULL_OPT"):
        yield
        return
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture(scope="session")
def bandit_family():
    from metarlkit import tasks

    return tasks.from_spec(BANDIT_SPEC)


@pytest.fixture(scope="session")
def bandit_eval(bandit_family):
    """`bandit_eval(agent_spec, num_tasks=50, split='test', seed=0)` -> EvalResult, memoised.

    Every call shares the compiled program of its agent (chunks of CHUNK tasks). Give every knob
    in the spec (`ucb1:c=0.3`, not `ucb1`): a free knob is tuned on 500 validation tasks first."""
    from metarlkit import baselines, evaluate

    cache = {}

    def run(spec: str, num_tasks: int = CHUNK, split: str = "test", seed: int = 0):
        key = (spec, num_tasks, split, seed)
        if key not in cache:
            resolved = baselines.resolve(spec, bandit_family, BANDIT_EPISODES)
            cache[key] = evaluate(
                resolved.agent, bandit_family, resolved.params, num_episodes=BANDIT_EPISODES,
                num_tasks=num_tasks, split=split, seed=seed, name=resolved.spec,
                hyperparameters=resolved.hyperparameters, chunk_size=CHUNK,
            )
        return cache[key]

    return run
