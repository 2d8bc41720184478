"""`rl.replay`: per-task ring buffers on device. Every transition carries a distinct id (in its reward;
obs, action, next_obs and the dense reward are functions of it), so a test can see which
transitions a buffer holds and that their fields stayed together."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit.experiment import checkpoint
from metarlkit.rl import replay

pytestmark = pytest.mark.usefixtures("fast_compile")

NUM_TASKS, CAPACITY = 3, 5


def transitions(ids) -> replay.Transitions:
    ids = jnp.asarray(ids, jnp.float32)
    return replay.Transitions(
        obs=jnp.stack([ids, -ids], axis=-1),
        action=ids[..., None] / 100,
        reward=ids,
        next_obs=jnp.stack([ids + 0.5, -ids], axis=-1),
        terminated=(ids.astype(jnp.int32) % 2) == 0,
        dense_reward=10 * ids,
    )


def assert_consistent(data):
    """Each row's fields belong to one transition (all zero for an empty row)."""
    ids = np.asarray(data.reward)
    np.testing.assert_array_equal(data.obs, np.stack([ids, -ids], axis=-1))
    np.testing.assert_allclose(data.action[..., 0], ids / 100, rtol=1e-6)
    np.testing.assert_array_equal(data.next_obs, np.stack([np.where(ids > 0, ids + 0.5, 0), -ids], axis=-1))
    np.testing.assert_array_equal(data.terminated, (ids > 0) & (ids.astype(int) % 2 == 0))
    np.testing.assert_array_equal(data.dense_reward, 10 * ids)


def assert_buffers_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def ops():
    """Compiled functions shared by the tests (one program per argument shape)."""
    return dict(empty=replay.empty(NUM_TASKS, CAPACITY, (2,), (1,), dense_reward=True),
                add=jax.jit(replay.add), add_many=jax.jit(replay.add_many),
                sample=jax.jit(replay.sample, static_argnums=3), clear=jax.jit(replay.clear))


def test_add_wraps_around_overwriting_the_oldest_first(ops):
    buf = ops["add"](ops["empty"], 1, transitions([1, 2, 3]))
    np.testing.assert_array_equal(buf.reward[1], [1, 2, 3, 0, 0])
    assert buf.size.tolist() == [0, 3, 0] and buf.ptr.tolist() == [0, 3, 0]
    buf = ops["add"](buf, 1, transitions([4, 5, 6, 7]))
    np.testing.assert_array_equal(buf.reward[1], [6, 7, 3, 4, 5])  # 1 and 2, the oldest, went first
    assert buf.size.tolist() == [0, 5, 0] and buf.ptr.tolist() == [0, 2, 0]
    np.testing.assert_array_equal(buf.reward[jnp.array([0, 2])], 0)
    assert_consistent(buf)


def test_adding_more_than_capacity_at_once_keeps_the_newest(ops):
    at_once = ops["add"](ops["empty"], 1, transitions([1, 2, 3, 4, 5, 6, 7]))
    in_two = ops["add"](ops["add"](ops["empty"], 1, transitions([1, 2, 3])), 1, transitions([4, 5, 6, 7]))
    assert_buffers_equal(at_once, in_two)


def test_add_writes_only_valid_steps_contiguously(ops):
    buf = ops["add"](ops["empty"], 2, transitions([1, 2, 3, 4]), jnp.array([True, False, True, True]))
    np.testing.assert_array_equal(buf.reward[2], [1, 3, 4, 0, 0])
    assert buf.size.tolist() == [0, 0, 3] and buf.ptr.tolist() == [0, 0, 3]
    assert_consistent(buf)
    unchanged = ops["add"](buf, 2, transitions([8, 9, 10, 11]), jnp.zeros(4, bool))
    assert_buffers_equal(unchanged, buf)


def test_add_many_appends_in_order_even_for_a_repeated_task(ops):
    ids = jnp.array([[1, 2, 3, 4], [11, 12, 13, 14], [5, 6, 7, 8]])
    valid = jnp.array([[True] * 4, [True, True, False, False], [True] * 4])
    got = ops["add_many"](ops["empty"], jnp.array([0, 2, 0]), transitions(ids), valid)
    want = ops["add"](ops["empty"], 0, transitions(ids[0]), valid[0])
    want = ops["add"](want, 2, transitions(ids[1]), valid[1])
    want = ops["add"](want, 0, transitions(ids[2]), valid[2])
    assert_buffers_equal(got, want)
    np.testing.assert_array_equal(got.reward[0], [6, 7, 8, 4, 5])


def test_sample_draws_uniformly_from_each_tasks_filled_rows_only(ops):
    buf = ops["add"](ops["empty"], 0, transitions([1, 2, 3]))
    buf = ops["add"](buf, 2, transitions([10, 11, 12, 13, 14, 15, 16]))  # wrapped: holds 12..16
    batch = ops["sample"](buf, jax.random.PRNGKey(0), jnp.array([0, 2, 0]), 3000)
    assert batch.reward.shape == (3, 3000) and batch.obs.shape == (3, 3000, 2)
    assert_consistent(batch)
    for row, ids in ((0, [1, 2, 3]), (1, [12, 13, 14, 15, 16]), (2, [1, 2, 3])):
        values, counts = np.unique(np.asarray(batch.reward[row]), return_counts=True)
        np.testing.assert_array_equal(values, ids)  # never an empty (zero) row, never another task's
        np.testing.assert_allclose(counts / 3000, 1 / len(ids), atol=0.04)
    assert not np.array_equal(batch.reward[0], batch.reward[2])  # tasks draw independently


def test_clear_empties_only_the_given_tasks(ops):
    buf = ops["add"](ops["add"](ops["empty"], 0, transitions([1, 2, 3])), 1, transitions([4, 5]))
    cleared = ops["clear"](buf, jnp.array([0]))
    assert cleared.size.tolist() == [0, 2, 0] and cleared.ptr.tolist() == [0, 2, 0]
    np.testing.assert_array_equal(cleared.reward[0], 0)
    np.testing.assert_array_equal(cleared.obs[0], 0)
    np.testing.assert_array_equal(cleared.reward[1], buf.reward[1])
    again = ops["add"](cleared, 0, transitions([7]))
    np.testing.assert_array_equal(again.reward[0], [7, 0, 0, 0, 0])  # starts over at row 0
    assert_consistent(again)


def test_filled_grows_with_the_data_and_restore_gives_the_buffer_back_exactly(ops, tmp_path):
    stages = [ops["empty"]]
    stages.append(ops["add"](stages[-1], 1, transitions([1, 2])))
    stages.append(ops["add"](stages[-1], 0, transitions([3, 4, 5])))
    stages.append(ops["add"](stages[-1], 0, transitions([6, 7, 8, 9])))  # task 0 wraps
    stages.append(ops["clear"](stages[-1], jnp.array([0])))
    rows = []
    for i, buf in enumerate(stages):
        small = replay.filled(buf)
        rows.append(small.reward.shape[1])
        assert small.obs.shape == (NUM_TASKS, rows[-1], 2)
        assert_buffers_equal(replay.restore(ops["empty"], small), buf)
        # through a checkpoint file: the checkpoint stores the filled rows and loads the full buffer
        checkpoint.save(tmp_path / f"ckpt{i}", {"buffer": buf}, {"update": i})
        loaded, meta = checkpoint.load(tmp_path / f"ckpt{i}", {"buffer": jax.eval_shape(lambda: ops["empty"])})
        assert meta["update"] == i and meta["buffer_rows"] == [rows[-1]]
        assert_buffers_equal(loaded["buffer"], buf)
    sizes = [(tmp_path / f"ckpt{i}").stat().st_size for i in range(len(stages))]
    assert sizes[0] < sizes[1] < sizes[2] < sizes[3] and sizes[4] < sizes[3]  # the file follows the fill
    assert rows == [0, 2, 3, 5, 2]


def test_restore_rejects_a_filled_buffer_of_another_shape(ops):
    buf = ops["add"](ops["empty"], 0, transitions([1, 2, 3, 4, 5, 6, 7]))  # wrapped at capacity 5
    bigger = replay.empty(NUM_TASKS, 8, (2,), (1,), dense_reward=True)
    with pytest.raises(ValueError, match="own capacity"):
        replay.restore(bigger, replay.filled(buf))
    half = replay.filled(ops["add"](ops["empty"], 0, transitions([1, 2, 3])))
    np.testing.assert_array_equal(replay.restore(bigger, half).reward[0], [1, 2, 3, 0, 0, 0, 0, 0])  # not wrapped: fine
    with pytest.raises(ValueError, match="template expects"):
        replay.restore(replay.empty(4, CAPACITY, (2,), (1,), dense_reward=True), half)
    with pytest.raises(ValueError, match="more than the capacity"):
        replay.restore(replay.empty(NUM_TASKS, 2, (2,), (1,), dense_reward=True), half)
    with pytest.raises(ValueError, match="dense_reward"):
        replay.restore(replay.empty(NUM_TASKS, CAPACITY, (2,), (1,)), half)


def test_add_rejects_transitions_that_do_not_fit(ops):
    with pytest.raises(ValueError, match="obs"):
        replay.add(ops["empty"], 0, transitions([1, 2])._replace(obs=jnp.zeros((2, 3))))
    with pytest.raises(ValueError, match="dense_reward"):
        replay.add(ops["empty"], 0, transitions([1, 2])._replace(dense_reward=None))


def test_capacity_for_sizes_from_the_run_budget():
    assert replay.capacity_for(1000, 10, 10**6) == 200  # 2 x the 100 steps a task gets on average
    assert replay.capacity_for(1000, 10, 150) == 150  # the cap
    assert replay.capacity_for(1001, 10, 10**6, slack=1.0) == 101  # rounded up
    assert replay.capacity_for(0, 10, 100) == 1
    with pytest.raises(ValueError):
        replay.capacity_for(100, 0, 100)


def test_a_checkpoint_of_several_seeds_buffers_keeps_their_filled_rows(ops, tmp_path):
    """A train state of 2 seeds: buffers [seeds, tasks, capacity, ...], cut to the fullest task."""
    one = ops["add"](ops["empty"], 1, transitions([1, 2]))
    two = ops["add"](ops["add"](ops["empty"], 0, transitions([3, 4, 5])), 1, transitions([6]))
    seeded = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), one, two)
    checkpoint.save(tmp_path / "ckpt", (seeded, jnp.arange(3)), {})
    template = jax.eval_shape(lambda: (seeded, jnp.arange(3)))
    (loaded, counter), meta = checkpoint.load(tmp_path / "ckpt", template)
    assert meta["buffer_rows"] == [3]
    assert_buffers_equal(loaded, seeded)
    np.testing.assert_array_equal(counter, [0, 1, 2])
