"""Replay buffers for off-policy meta-RL: one ring buffer per task, the tasks' buffers stacked as
fixed-size device arrays [num_tasks, capacity, ...] with a per-task write index, so that they live
in the train state, update inside compiled code and checkpoint like every other array.

PEARL (oyster, rlkit/data_management/env_replay_buffer.py `MultiTaskReplayBuffer` and
simple_replay_buffer.py `SimpleReplayBuffer`) keeps two such sets: the RL buffer the actor-critic
samples from, and the encoder's buffer of recent data, which is cleared for a task each time new
data is collected for it (rlkit/core/rl_algorithm.py, `train`). Sampling is uniform with
replacement over a task's filled rows, as `SimpleReplayBuffer.random_batch`.

Invariants every function keeps (and `restore` checks): a task's transitions are its rows
[0, size); rows at and beyond `size` are zero; until the task's buffer is full `ptr == size`, and
once it is full `ptr` is the oldest row, the next to be overwritten. So writing wraps around,
oldest first, and a checkpoint needs only the first max(size) rows of every task (`filled`).

`add`, `add_many`, `sample` and `clear` are jittable (no Python loop over steps or tasks).
`filled`, `filled_like` and `restore` are host-side checkpoint helpers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_DATA_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "dense_reward")


class Transitions(NamedTuple):
    """Full transitions with leading axes [...] ([T] to `add`, [K, B] from `sample`).

    `terminated` is a true end (the trial's `terminated`: no bootstrapping); a step cut by the time
    limit is stored as not terminated. `dense_reward` is the shaped reward where a family reports one
    beside a sparse `reward` (PEARL's critic trains on it, its encoder sees `reward`); None
    otherwise.
    """

    obs: jax.Array  # [..., *obs_shape]
    action: jax.Array  # [..., *action_shape]
    reward: jax.Array  # [...]
    next_obs: jax.Array  # [..., *obs_shape]
    terminated: jax.Array  # [...] bool
    dense_reward: jax.Array | None = None  # [...]


class ReplayBuffer(NamedTuple):
    """Per-task ring buffers of full transitions (module docstring for the invariants)."""

    obs: jax.Array  # [num_tasks, capacity, *obs_shape]
    action: jax.Array  # [num_tasks, capacity, *action_shape]
    reward: jax.Array  # [num_tasks, capacity]
    next_obs: jax.Array  # [num_tasks, capacity, *obs_shape]
    terminated: jax.Array  # [num_tasks, capacity] bool
    size: jax.Array  # [num_tasks] int32: transitions held (at most capacity)
    ptr: jax.Array  # [num_tasks] int32: the row the next transition goes to
    dense_reward: jax.Array | None = None  # [num_tasks, capacity], or None when not kept

    @property
    def num_tasks(self) -> int:
        return self.reward.shape[0]

    @property
    def capacity(self) -> int:
        return self.reward.shape[1]


def _data(buffer_or_transitions) -> dict:
    """The data fields that are present (dense_reward only when kept)."""
    return {name: getattr(buffer_or_transitions, name) for name in _DATA_FIELDS
            if getattr(buffer_or_transitions, name) is not None}


def empty(num_tasks: int, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], *,
          dense_reward: bool = False, obs_dtype=jnp.float32, action_dtype=jnp.float32) -> ReplayBuffer:
    """An empty buffer of `capacity` transitions for each of `num_tasks` tasks (all zeros).

    Args:
      obs_shape, action_shape: one observation's and one action's shape (() for a discrete action).
      dense_reward: also keep a dense reward beside the reward.
      obs_dtype, action_dtype: storage types (e.g. int32 for discrete actions or observations).
    """
    if num_tasks < 1 or capacity < 1:
        raise ValueError(f"a replay buffer needs num_tasks >= 1 and capacity >= 1, got {num_tasks} and {capacity}")
    lead = (num_tasks, capacity)
    return ReplayBuffer(
        obs=jnp.zeros(lead + tuple(obs_shape), obs_dtype),
        action=jnp.zeros(lead + tuple(action_shape), action_dtype),
        reward=jnp.zeros(lead, jnp.float32),
        next_obs=jnp.zeros(lead + tuple(obs_shape), obs_dtype),
        terminated=jnp.zeros(lead, bool),
        size=jnp.zeros((num_tasks,), jnp.int32),
        ptr=jnp.zeros((num_tasks,), jnp.int32),
        dense_reward=jnp.zeros(lead, jnp.float32) if dense_reward else None,
    )


def _check_transitions(buffer: ReplayBuffer, transitions: Transitions, lead: int) -> None:
    """Shapes are static: a mismatch is a clear error at trace time, not a silent broadcast."""
    if (transitions.dense_reward is None) != (buffer.dense_reward is None):
        have = "has" if transitions.dense_reward is not None else "has no"
        keeps = "keeps" if buffer.dense_reward is not None else "does not keep"
        raise ValueError(f"the transitions {have} dense_reward but the buffer {keeps} one")
    count = transitions.reward.shape[:lead]
    for name, x in _data(transitions).items():
        want = count + getattr(buffer, name).shape[2:]
        if tuple(x.shape) != want:
            raise ValueError(f"transitions.{name} has shape {tuple(x.shape)}, the buffer expects {want}")


def add(buffer: ReplayBuffer, task_index: jax.Array, transitions: Transitions,
        valid: jax.Array | None = None) -> ReplayBuffer:
    """Writes T transitions of one task after its newest, wrapping around (oldest overwritten first).

    Args:
      task_index: the task's index (an int or a traced int32 scalar; an index out of range writes
        nothing).
      transitions: leaves [T, ...] in time order.
      valid: [T] bool, the steps to keep (e.g. a trial's `valid` mask: steps after an episode's
        end are skipped and the kept ones written contiguously); None keeps all.

    When more than `capacity` steps are kept, only the newest `capacity` of them remain.
    """
    _check_transitions(buffer, transitions, 1)
    num_steps = transitions.reward.shape[0]
    capacity = buffer.capacity
    valid = jnp.ones((num_steps,), bool) if valid is None else jnp.asarray(valid, bool)
    offset = jnp.cumsum(valid.astype(jnp.int32)) - 1  # the kept step's position among the kept
    count = jnp.sum(valid.astype(jnp.int32))
    # Of more than `capacity` kept steps, write only the newest `capacity`: they land on distinct
    # rows, so the scatter has no duplicate indices (whose order XLA leaves unspecified).
    keep = valid & (offset >= count - capacity)
    ptr = buffer.ptr[task_index]
    rows = jnp.where(keep, (ptr + offset) % capacity, capacity)  # `capacity`: out of range, dropped
    written = {name: getattr(buffer, name).at[task_index, rows].set(x.astype(getattr(buffer, name).dtype),
                                                                     mode="drop")
               for name, x in _data(transitions).items()}
    return buffer._replace(
        **written,
        ptr=buffer.ptr.at[task_index].set((ptr + count) % capacity, mode="drop"),
        size=buffer.size.at[task_index].set(jnp.minimum(buffer.size[task_index] + count, capacity), mode="drop"),
    )


def add_many(buffer: ReplayBuffer, task_indices: jax.Array, transitions: Transitions,
             valid: jax.Array | None = None) -> ReplayBuffer:
    """`add` for K tasks: task_indices [K], transitions with leaves [K, T, ...], valid [K, T] or None.

    The tasks are written one after another (a `lax.scan`), so a task index may repeat: its
    batches are appended in order."""
    _check_transitions(buffer, transitions, 2)
    task_indices = jnp.asarray(task_indices, jnp.int32)
    if valid is None:
        valid = jnp.ones(transitions.reward.shape[:2], bool)

    def one(buf, xs):
        index, batch, mask = xs
        return add(buf, index, batch, mask), None

    buffer, _ = jax.lax.scan(one, buffer, (task_indices, transitions, valid))
    return buffer


def sample(buffer: ReplayBuffer, key: jax.Array, task_indices: jax.Array, batch_size: int) -> Transitions:
    """`batch_size` transitions of each task in `task_indices` [K], uniform with replacement over
    the task's filled rows: leaves [K, batch_size, ...].

    A task with no transitions gives its (zero) row 0: check `size` before training on a task,
    as oyster's `_can_train` does."""
    task_indices = jnp.asarray(task_indices, jnp.int32)
    size = jnp.maximum(buffer.size[task_indices], 1)
    rows = jax.random.randint(key, (task_indices.shape[0], batch_size), 0, size[:, None])
    return Transitions(**{name: x[task_indices[:, None], rows] for name, x in _data(buffer).items()})


def clear(buffer: ReplayBuffer, task_indices: jax.Array) -> ReplayBuffer:
    """Empties the buffers of `task_indices` [K] (oyster clears the encoder's buffer of a task before
    collecting new data for it). Their rows are zeroed too, which keeps `filled` exact."""
    task_indices = jnp.asarray(task_indices, jnp.int32)
    cleared = {name: x.at[task_indices].set(jnp.zeros((), x.dtype)) for name, x in _data(buffer).items()}
    return buffer._replace(**cleared, size=buffer.size.at[task_indices].set(0),
                           ptr=buffer.ptr.at[task_indices].set(0))


def _capacity_axis(buffer) -> int:
    """The capacity axis: the last axis of `reward` ([..., num_tasks, capacity]: a train state of
    several seeds adds a leading seed axis)."""
    return len(buffer.reward.shape) - 1


def filled_rows(buffer: ReplayBuffer) -> int:
    """max(size) over every task (and seed): the rows a checkpoint keeps (host-side)."""
    size = np.asarray(buffer.size)
    return int(size.max()) if size.size else 0


def filled(buffer: ReplayBuffer) -> ReplayBuffer:
    """The buffer cut to its first max(size) rows per task (capacity axis max(size); `size` and
    `ptr` unchanged): what a checkpoint stores, growing with the data rather than the capacity.
    Host-side (the shape depends on `size`); any leading axes (seeds) are kept. `restore` gives the
    full buffer back exactly."""
    rows, axis = filled_rows(buffer), _capacity_axis(buffer)
    return buffer._replace(**{name: np.take(np.asarray(x), np.arange(rows), axis=axis)
                              for name, x in _data(buffer).items()})


def filled_like(template: ReplayBuffer, rows: int) -> ReplayBuffer:
    """The shapes and dtypes (`jax.ShapeDtypeStruct` leaves) of `filled` of a buffer shaped like
    `template` holding `rows` rows: the template to load such a checkpoint into (record `rows`,
    i.e. `filled_rows`, beside it)."""
    axis = _capacity_axis(template)

    def cut(x):
        shape = list(x.shape)
        shape[axis] = rows
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)

    return template._replace(**{name: cut(x) for name, x in _data(template).items()},
                             size=jax.ShapeDtypeStruct(template.size.shape, template.size.dtype),
                             ptr=jax.ShapeDtypeStruct(template.ptr.shape, template.ptr.dtype))


def restore(template: ReplayBuffer, filled_buffer: ReplayBuffer) -> ReplayBuffer:
    """The full-capacity buffer from `filled(buffer)`: rows beyond the filled ones are zero, as
    they were. Host-side; checks the invariants (module docstring), so a filled buffer from another
    configuration (task count, shapes, a smaller capacity that had wrapped) is a clear error.

    Args:
      template: a buffer of the wanted capacity and shapes (arrays or `jax.ShapeDtypeStruct`s, e.g.
        from `jax.eval_shape`); only its shapes and dtypes are read. Leading axes (seeds) allowed.
      filled_buffer: what `filled` returned (arrays, e.g. loaded from a checkpoint).
    """
    if (template.dense_reward is None) != (filled_buffer.dense_reward is None):
        raise ValueError("the filled buffer and the template disagree on keeping dense_reward")
    axis = _capacity_axis(template)
    capacity = template.reward.shape[axis]
    rows = filled_buffer.reward.shape[axis] if len(filled_buffer.reward.shape) > axis else -1
    if rows > capacity:
        raise ValueError(f"the filled buffer holds {rows} rows per task, more than the capacity {capacity}")
    restored = {}
    for name, want in _data(template).items():
        x = np.asarray(filled_buffer._asdict()[name])
        cut = list(want.shape)
        cut[axis] = rows
        if tuple(x.shape) != tuple(cut) or x.dtype != np.dtype(want.dtype):
            raise ValueError(f"filled {name} is {x.dtype}{list(x.shape)}, the template expects "
                             f"{np.dtype(want.dtype)}{cut}")
        pad = [(0, 0)] * len(want.shape)
        pad[axis] = (0, capacity - rows)
        restored[name] = jnp.asarray(np.pad(x, pad))
    size, ptr = np.asarray(filled_buffer.size), np.asarray(filled_buffer.ptr)
    if size.shape != tuple(template.size.shape) or ptr.shape != tuple(template.ptr.shape):
        raise ValueError(f"filled size and ptr have shapes {size.shape} and {ptr.shape}, "
                         f"the template expects {tuple(template.size.shape)}")
    full = size == capacity
    ok = (size >= 0) & (size <= rows) & (ptr >= 0) & (ptr < capacity) & (full | (ptr == size))
    if not ok.all():
        bad = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(f"task {bad[-1] if len(bad) == 1 else bad} has size {size[bad]} and ptr {ptr[bad]}, "
                         f"impossible in a buffer of capacity {capacity} (a buffer that wrapped restores only "
                         f"into its own capacity)")
    return template._replace(**restored, size=jnp.asarray(size, template.size.dtype),
                             ptr=jnp.asarray(ptr, template.ptr.dtype))


def capacity_for(total_env_steps: int, num_tasks: int, cap: int, slack: float = 2.0) -> int:
    """Per-task capacity for a run that collects `total_env_steps` transitions over all `num_tasks`
    tasks: slack x the steps a task receives on average, at most `cap` (oyster's
    `replay_buffer_size`, 1e6 per task), at least 1.

    Tasks are drawn at random for collection, so a task may receive more than the average;
    `slack` covers that. A task that receives more than its capacity keeps its newest transitions
    (as oyster's ring buffer does at its cap), so the rule trades memory against how much of a
    heavily sampled task's oldest data survives, never correctness. For the encoder's buffer,
    which is cleared before each collection, pass the steps collected for one task in one
    collection with num_tasks=1 and slack=1.
    """
    if total_env_steps < 0 or num_tasks < 1 or cap < 1 or slack <= 0:
        raise ValueError(f"capacity_for needs total_env_steps >= 0, num_tasks >= 1, cap >= 1 and slack > 0; got "
                         f"{total_env_steps}, {num_tasks}, {cap}, {slack}")
    return max(1, min(int(cap), math.ceil(slack * total_env_steps / num_tasks)))
