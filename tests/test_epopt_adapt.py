"""EPOpt's source adaptation through the command line: `metarlkit record` writes a target's
trajectories, `metarlkit train epopt --init-from RUN --adapt-to FILE` moves the source distribution
toward it and trains on from the run's policy; a run started from another continues it exactly."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from metarlkit import algos, recording, tasks
from metarlkit.cli import main
from metarlkit.experiment import checkpoint
from metarlkit.experiment.runner import programs, seed_keys
from metarlkit.experiment.config import build

pytestmark = pytest.mark.usefixtures("fast_compile")

TINY = ["--preset", "tiny", "--no-progress", "--no-tensorboard"]
TARGET = {"mass": 1.4, "length": 0.8}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (code, out, err)
    lines = [line for line in err.strip().splitlines() if line.startswith("metarlkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


def final_state(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    algo = algos.get(info["algorithm_name"])
    config = build(algo.config, info["config"])
    _, init, _ = programs(algo, config, tasks.from_spec(info["task"]), info["episodes"])
    return checkpoint.load(run_dir / "checkpoint.msgpack", jax.eval_shape(init, seed_keys(config)))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny EPOpt run on the pendulum (2 seeds), and a recording of 5 random-action episodes on
    the target model mass 1.4, length 0.8."""
    root = tmp_path_factory.mktemp("epopt-adapt")
    assert main(["train", "epopt", "--task", "pendulum", "--out", str(root / "source"), "--seeds", "2", *TINY]) == 0
    physics = ",".join(f"{k}={v}" for k, v in TARGET.items())
    assert main(["record", "--agent", "random", "--task", "pendulum", "--physics", physics, "--episodes", "5",
                 "--out", str(root / "target.npz")]) == 0
    return root


def test_record_writes_the_target_trajectories(source_run):
    family = tasks.make("pendulum")
    rec = recording.load(source_run / "target.npz", family)
    assert rec.obs.shape == (5, 200, 3) and rec.action.shape == (5, 200, 1) and rec.num_transitions == 1000
    assert rec.meta["parameters"] == {"mass": 1.4, "length": 0.8, "damping": 0.0}
    # the recorded transitions are the target's dynamics, and the next observation follows on
    predicted = jax.vmap(lambda s, a: family.dynamics_fn(s, a, {k: np.float32(v) for k, v in rec.meta["parameters"].items()}))(
        rec.obs.reshape(-1, 3), rec.action.reshape(-1, 1))
    np.testing.assert_allclose(np.asarray(predicted), rec.next_obs.reshape(-1, 3), atol=1e-5)
    np.testing.assert_array_equal(rec.obs[:, 1:], rec.next_obs[:, :-1])


def test_adapt_to_moves_the_source_half_way_and_trains_on_from_the_policy(source_run, capsys):
    out = source_run / "adapted"
    code, _, err = run_cli(capsys, "train", "epopt", "--init-from", source_run / "source", "--adapt-to",
                           source_run / "target.npz", "--out", out, "--iterations", "2", "--adapt-samples", "4000",
                           "--no-progress", "--no-tensorboard")
    assert code == 0, err
    assert "seed 0: source adapted on 1000 target transitions" in err
    info = json.loads((out / "run.json").read_text())
    assert info["init_from"]["update"] == 2 and info["preset"] == "tiny"
    adapted = info["adapted_to"]
    assert adapted["transitions"] == 1000 and adapted["recorded"]["parameters"]["mass"] == 1.4
    for seed in adapted["seeds"]:
        for name, target in TARGET.items():
            before, after = seed["mean_before"][name], seed["mean_after"][name]
            assert abs(after - target) <= 0.5 * abs(before - target), (name, before, after)
    assert info["train_tasks"]["source"] == "adapted"
    # trained on from the source run (its policy: the next test), on the adapted source
    state, meta = final_state(out)
    assert meta["update"] == 2 and int(state.update[0]) == 4  # the iteration count continues
    mass = state.source.params["mass"]
    grown = 1.5 ** np.asarray(mass.low), 1.5 ** np.asarray(mass.high)
    assert np.all(grown[0] >= 1 / 1.5 - 1e-5) and np.all(grown[1] <= 1.5 + 1e-5)  # bounds kept
    assert np.all(np.abs(0.5 * (grown[0] + grown[1]) - 1.4) < 0.15)


def test_a_run_started_from_another_continues_it_exactly(source_run, tmp_path):
    """2 iterations, then 2 more from --init-from, end where 4 iterations in one run end."""
    assert main(["train", "epopt", "--init-from", str(source_run / "source"), "--out", str(tmp_path / "more"),
                 "--iterations", "2", "--no-progress", "--no-tensorboard"]) == 0
    assert main(["train", "epopt", "--task", "pendulum", "--out", str(tmp_path / "long"), "--seeds", "2",
                 "--iterations", "4", *TINY]) == 0
    more, _ = final_state(tmp_path / "more")
    long, _ = final_state(tmp_path / "long")
    for a, b in zip(jax.tree_util.tree_leaves(more.params), jax.tree_util.tree_leaves(long.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(more.key, long.key)


@pytest.mark.parametrize("extra, expected", [
    (["--task", "pendulum"], "drop --task"),
    (["--seeds", "3"], "trains the same seeds"),
    (["--hidden-sizes", "16"], "change the shapes of the train state"),
    (["--resume", "RUN"], "--init-from starts a new run"),
])
def test_init_from_refusals(source_run, capsys, tmp_path, extra, expected):
    extra = [str(source_run / "source") if a == "RUN" else a for a in extra]
    line = one_line_error(capsys, "train", "epopt", "--init-from", source_run / "source", "--out", tmp_path / "new",
                          "--no-progress", *extra)
    assert expected in line
    assert not (tmp_path / "new").exists()


def test_adapt_to_refusals(source_run, capsys, tmp_path):
    new = tmp_path / "new"
    base = ["train", "epopt", "--init-from", source_run / "source", "--out", new, "--no-progress"]
    assert "goes with --init-from" in one_line_error(capsys, "train", "epopt", "--task", "pendulum", "--out", new,
                                                     "--adapt-to", source_run / "target.npz")
    assert "no recording at" in one_line_error(capsys, *base, "--adapt-to", tmp_path / "missing.npz")
    garbled = tmp_path / "garbled.npz"
    data = bytearray((source_run / "target.npz").read_bytes())
    data[200:264] = b"\0" * 64
    garbled.write_bytes(bytes(data))
    assert "is damaged" in one_line_error(capsys, *base, "--adapt-to", garbled)
    other = tmp_path / "cartpole.npz"
    assert main(["record", "--agent", "random", "--task", "cartpole:variant=continuous", "--episodes", "1",
                 "--out", str(other)]) == 0
    capsys.readouterr()
    assert "recorded on cartpole" in one_line_error(capsys, *base, "--adapt-to", other)
    assert not new.exists()


def test_an_algorithm_without_adapt_says_so(capsys, tmp_path):
    run = tmp_path / "rl2"
    assert main(["train", "rl2", "--task", "bernoulli-bandit:arms=2", "--episodes", "2", "--out", str(run), *TINY]) == 0
    line = one_line_error(capsys, "train", "rl2", "--init-from", run, "--adapt-to", tmp_path / "x.npz",
                          "--out", tmp_path / "new")
    assert "rl2 cannot adapt to recorded trajectories" in line and "epopt" in line
    line = one_line_error(capsys, "train", "epopt", "--init-from", run, "--out", tmp_path / "new")
    assert "is a rl2 run" in line
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--task", "pendulum", "--out", "OUT/t.json"], "ending in .npz"),
    (["--task", "pendulum", "--physics", "weight=2", "--out", "OUT/t.npz"], "no parameter 'weight'"),
    (["--task", "pendulum", "--physics", "mass=inf", "--out", "OUT/t.npz"], "give a finite number"),
    (["--task", "bernoulli-bandit:arms=2", "--episodes", "2", "--physics", "mass=1", "--out", "OUT/t.npz"],
     "no physical parameters"),
])
def test_record_refusals(capsys, tmp_path, argv, expected):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    assert expected in one_line_error(capsys, "record", "--agent", "random", *argv)
    assert list(tmp_path.iterdir()) == []
