"""Training runs: resume is bit-identical, the NaN guard keeps the last good checkpoint, logs match."""

from __future__ import annotations

import json
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.algos import rl2
from metarlkit.experiment import TrainingDiverged, checkpoint, load, train
from metarlkit.experiment.metrics import read
from metarlkit.experiment.runner import CHECKPOINT_FILE, RunDirError, read_status

pytestmark = pytest.mark.usefixtures("fast_compile")

FAMILY = tasks.from_spec("bernoulli-bandit:arms=2")
EPISODES = 5
# 3 chunks of 4 updates of 32 trials x 5 steps.
CONFIG = rl2.RL2Config(hidden_size=8, tasks_per_update=32, total_steps=12 * 160, checkpoint_steps=4 * 160, seeds=2)


def leaves(run_dir):
    with open(run_dir / CHECKPOINT_FILE, "rb") as f:
        from flax import serialization

        blob = serialization.msgpack_restore(f.read())
    return blob["meta"], [np.asarray(blob["leaves"][k]) for k in sorted(blob["leaves"], key=int)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full")
    status = train(rl2.ALGORITHM, CONFIG, FAMILY, EPISODES, run_dir, progress=False, tensorboard=False)
    return run_dir, status


def test_a_run_writes_its_directory(full_run):
    run_dir, status = full_run
    assert status["state"] == "complete" and status["updates"] == 12
    info = json.loads((run_dir / "run.json").read_text())
    assert info["config"]["hidden_size"] == 8 and info["task"] == FAMILY.spec() and info["episodes"] == EPISODES
    rows = read(run_dir)
    assert [r["update"] for r in rows if r["seed"] == 0] == list(range(1, 13))
    assert {r["seed"] for r in rows} == {0, 1}
    assert (run_dir / "metrics.csv").read_text().count("\n") == 1 + 24


def test_resume_ends_bit_identical_to_an_uninterrupted_run(full_run, tmp_path):
    run_dir, _ = full_run
    cut = tmp_path / "cut"
    status = train(rl2.ALGORITHM, CONFIG, FAMILY, EPISODES, cut, progress=False, tensorboard=False, stop_after_chunks=1)
    assert status["state"] == "running" and status["updates"] == 4
    # A kill between writing a chunk's metrics and its checkpoint leaves extra rows: resume cuts them.
    with open(cut / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"update": 5, "env_steps": 800, "seed": 0, "wall_time_s": 0.0}) + "\n")
    status = train(rl2.ALGORITHM, None, None, None, cut, resume=True, progress=False, tensorboard=False)
    assert status["state"] == "complete"
    meta_a, a = leaves(run_dir)
    meta_b, b = leaves(cut)
    assert meta_a["update"] == meta_b["update"] == 12
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]  # noqa: E731
    assert strip(read(run_dir)) == strip(read(cut))


def test_resuming_a_complete_run_changes_nothing(full_run):
    run_dir, _ = full_run
    before = leaves(run_dir)[1]
    status = train(rl2.ALGORITHM, None, None, None, run_dir, resume=True, progress=False, tensorboard=False)
    assert status["state"] == "complete"
    for x, y in zip(before, leaves(run_dir)[1]):
        np.testing.assert_array_equal(x, y)


def test_an_existing_run_is_not_overwritten(full_run):
    with pytest.raises(RunDirError, match="--resume"):
        train(rl2.ALGORITHM, CONFIG, FAMILY, EPISODES, full_run[0], progress=False, tensorboard=False)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    def make_train(config, family, num_episodes, train_tasks=None):
        real = rl2.make_train(config, family, num_episodes, train_tasks)
        (phase,) = real.phases

        def run_chunk(state, num):
            state, metrics = phase.run_chunk(state, num)
            poison = state.update > phase.updates_per_chunk  # from the second chunk on
            params = jax.tree_util.tree_map(lambda p: jnp.where(poison, jnp.nan, p), state.params)
            metrics["loss"] = jnp.where(poison, jnp.nan, metrics["loss"])
            return state._replace(params=params), metrics

        return real._replace(phases=(phase._replace(run_chunk=run_chunk),))

    # rl2's record with a make_train whose params turn NaN
    poisoned = dataclasses.replace(rl2.ALGORITHM, make_train=make_train)
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at update 5, seed 0; the last good checkpoint \(update 4\)"):
        train(poisoned, CONFIG, FAMILY, EPISODES, tmp_path, progress=False, tensorboard=False)
    status = read_status(tmp_path)
    assert status["state"] == "diverged" and status["updates"] == 4
    meta, stored = leaves(tmp_path)
    assert meta["update"] == 4 and all(np.all(np.isfinite(x)) for x in stored if x.dtype.kind == "f")
    assert max(r["update"] for r in read(tmp_path)) == 4
    assert np.isfinite(jax.tree_util.tree_leaves(load(tmp_path).params)[0]).all()


def test_load_gives_each_seed(full_run):
    run_dir, _ = full_run
    a, b = load(run_dir, seed=0), load(run_dir, seed=1)
    assert a.num_episodes == EPISODES and a.family == FAMILY and a.name.endswith(":seed=0")
    assert not np.array_equal(jax.tree_util.tree_leaves(a.params)[0], jax.tree_util.tree_leaves(b.params)[0])
    with pytest.raises(RunDirError, match="seeds 0..1"):
        load(run_dir, seed=2)


def test_a_checkpoint_of_another_shape_is_a_clear_error(full_run, tmp_path):
    run_dir, _ = full_run
    template = {"w": jax.ShapeDtypeStruct((3,), jnp.float32)}
    with pytest.raises(checkpoint.CheckpointError, match="holds .* arrays, the run expects 1"):
        checkpoint.load(run_dir / CHECKPOINT_FILE, template)
    (tmp_path / "bad.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable|format"):
        checkpoint.load(tmp_path / "bad.msgpack", template)


def test_snapshots_keep_every_chunks_parameters_across_a_resume(full_run, tmp_path):
    """`--snapshots`: the trained parameters at the start and after each chunk, loadable as
    `RUN:update=N`; a resumed run keeps writing them; the last equals the final checkpoint's."""
    from metarlkit.experiment.runner import budget_text, snapshot_updates

    run_dir, _ = full_run
    snap = tmp_path / "snap"
    train(rl2.ALGORITHM, CONFIG, FAMILY, EPISODES, snap, progress=False, tensorboard=False, stop_after_chunks=1,
          snapshots=True)
    assert snapshot_updates(snap) == [0, 4]
    train(rl2.ALGORITHM, None, None, None, snap, resume=True, progress=False, tensorboard=False)
    assert snapshot_updates(snap) == [0, 4, 8, 12]
    final, last, first = load(run_dir, seed=1), load(snap, seed=1, update=12), load(snap, seed=1, update=0)
    for x, y in zip(jax.tree_util.tree_leaves(final.params), jax.tree_util.tree_leaves(last.params)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(jax.tree_util.tree_leaves(first.params)[0], jax.tree_util.tree_leaves(last.params)[0])
    middle = load(snap, update=4)
    assert middle.name.endswith(":seed=0,update=4")
    assert middle.status["state"] == "snapshot" and middle.status["env_steps"] == 4 * 160
    assert budget_text(snap, middle.status).startswith("0.0M env steps (4 updates, 2 seeds)")
    with pytest.raises(RunDirError, match=r"no snapshot at update 5; it has updates 0, 4, 8, 12 \(last 12\)"):
        load(snap, update=5)
    with pytest.raises(RunDirError, match="kept no snapshots .*--snapshots"):
        load(run_dir, update=4)
