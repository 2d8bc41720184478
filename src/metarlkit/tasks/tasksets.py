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


def split_size(split: str, family: TaskFamily | None = None) -> int:
    """Tasks in `split`: SPLIT_SIZES, or the size of the split in a family's published task list."""
    listed = None if family is None else family.task_list()
    if listed is None:
        return SPLIT_SIZES[split]
    return listed[1].get(split, (0, 0))[1]


def check_split(split: str, num_tasks: int, family: TaskFamily | None = None) -> None:
    """Raises a one-line ValueError for an unknown split or a set larger than the split (of `family`'s
    task list, when it publishes one)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_IDS)}")
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num-tasks must be a whole number >= 1, got {num_tasks!r}")
    size = split_size(split, family)
    if size == 0:
        sizes = ", ".join(f"{name} {size}" for name, (_, size) in family.task_list()[1].items())
        raise ValueError(f"{family.spec()} has no {split} tasks (its published task list has {sizes}); "
                         "use another --split")
    if num_tasks > size:
        whose = f"the {split} split's" if family is None or family.task_list() is None else f"{family.spec()}'s {split}"
        raise ValueError(f"num-tasks {num_tasks} exceeds {whose} {size} tasks; use --num-tasks {size} or fewer")


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


def split_tasks(family: TaskFamily, split, indices):
    """Tasks `indices` [M] of `split` (a name, or its id inside compiled code), batched: drawn from
    their task keys, or taken from the family's published task list (`TaskFamily.task_list`)."""
    listed = family.task_list()
    if listed is None:
        return jax.vmap(family.sample_task)(task_keys(split, indices))
    table, ranges = listed
    split_id = SPLIT_IDS[split] if isinstance(split, str) else split
    starts = jnp.array([ranges.get(name, (0, 0))[0] for name in sorted(SPLIT_IDS, key=SPLIT_IDS.get)], jnp.int32)
    where = starts[split_id] + jnp.asarray(indices, jnp.int32)
    return jax.tree_util.tree_map(lambda leaf: leaf[where], table)


@functools.lru_cache(maxsize=64)
def _sampler(family: TaskFamily, split: str):
    return jax.jit(lambda idx: split_tasks(family, split, idx))


def task_set(family: TaskFamily, split: str, num_tasks: int, start: int = 0):
    """Tasks `start .. start + num_tasks - 1` of `split`, batched along a leading axis."""
    check_split(split, start + num_tasks, family)
    return _sampler(family, split)(np.arange(start, start + num_tasks, dtype=np.uint32))


def distribution_of(family: TaskFamily) -> dict | None:
    """The family's default task distribution as plain JSON (families with physical parameters), or None."""
    default = getattr(family, "default_distribution", None)
    return None if default is None else default().describe()


def task_set_hash(family: TaskFamily, split: str, num_tasks: int, start: int = 0) -> str:
    """sha256 over the family spec, version, split, the task distribution (where the family has one)
    and the task parameters of the set."""
    import json

    where = f"{num_tasks}" if start == 0 else f"{start}+{num_tasks}"
    text = f"{family.spec()}|v{family.version}|{split}|{where}"
    dist = distribution_of(family)
    if dist is not None:
        text += "|" + json.dumps(dist, sort_keys=True)
    digest = hashlib.sha256(text.encode())
    for leaf in jax.tree_util.tree_leaves(task_set(family, split, num_tasks, start)):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()[:16]
