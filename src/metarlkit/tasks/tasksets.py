"""Fixed, seeded train / validation / test task sets.

Task i of split `s` is `family.sample_task(fold_in(fold_in(PRNGKey(TASK_SET_SEED), SPLIT_IDS[s]), i))`,
so a set of M tasks is the first M of its split: results on 100 tasks are a prefix of those on 1000.
The environment randomness of task i (reward noise, transitions) is keyed by
`fold_in(fold_in(PRNGKey(ENV_SEED), SPLIT_IDS[s]), i)`, then by episode and step inside the trial,
and never by the agent's seed: every agent evaluated on a split sees the same draws
(common random numbers).
"""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.tasks.base import TaskFamily

TASK_SET_SEED = 20161102  # the RL2 paper's arXiv submission date
ENV_SEED = 20161117  # the date of "Learning to reinforcement learn"
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
SPLIT_SIZES = {"train": 2**31 - 1, "validation": 100_000, "test": 100_000}


def check_split(split: str, num_tasks: int) -> None:
    """Raises a one-line ValueError for an unknown split or a set larger than the split."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_IDS)}")
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num-tasks must be a whole number >= 1, got {num_tasks!r}")
    if num_tasks > SPLIT_SIZES[split]:
        raise ValueError(
            f"num-tasks {num_tasks} exceeds the {split} split's {SPLIT_SIZES[split]} tasks; "
            f"use --num-tasks {SPLIT_SIZES[split]} or fewer"
        )


def _split_key(seed: int, split) -> jax.Array:
    # `split` is a name or (inside compiled code, so that one program serves every split) its id.
    split_id = SPLIT_IDS[split] if isinstance(split, str) else split
    return jax.random.fold_in(jax.random.PRNGKey(seed), split_id)


def _keys(seed: int, split: str, indices) -> jax.Array:
    base = _split_key(seed, split)
    indices = jnp.asarray(indices, jnp.uint32)
    if indices.ndim == 0:
        return jax.random.fold_in(base, indices)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(indices)


def task_keys(split: str, indices) -> jax.Array:
    """Keys of the tasks with the given indices in `split` ([M] indices -> [M, 2]; scalar -> [2])."""
    return _keys(TASK_SET_SEED, split, indices)


def env_keys(split: str, indices) -> jax.Array:
    """Environment-randomness keys of the tasks with the given indices in `split`."""
    return _keys(ENV_SEED, split, indices)


@functools.lru_cache(maxsize=64)
def _sampler(family: TaskFamily, split: str):
    return jax.jit(lambda idx: jax.vmap(family.sample_task)(task_keys(split, idx)))


def task_set(family: TaskFamily, split: str, num_tasks: int, start: int = 0):
    """Tasks `start .. start + num_tasks - 1` of `split`, batched along a leading axis."""
    check_split(split, start + num_tasks)
    return _sampler(family, split)(np.arange(start, start + num_tasks, dtype=np.uint32))


def task_set_hash(family: TaskFamily, split: str, num_tasks: int, start: int = 0) -> str:
    """sha256 over the family spec, version, split and the task parameters of the set."""
    where = f"{num_tasks}" if start == 0 else f"{start}+{num_tasks}"
    digest = hashlib.sha256(f"{family.spec()}|v{family.version}|{split}|{where}".encode())
    for leaf in jax.tree_util.tree_leaves(task_set(family, split, num_tasks, start)):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()[:16]
