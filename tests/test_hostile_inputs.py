"""Hostile but fair input: every case is rejected in one line naming the fix, with exit status 2,
before any work starts and with nothing written; damaged files are reported as damaged."""

from __future__ import annotations

import json
import os

import pytest

from metarlkit.cli import main

pytestmark = pytest.mark.usefixtures("fast_compile")

TINY_RL2 = ["--task", "bernoulli-bandit:arms=2", "--episodes", "3", "--preset", "tiny", "--no-progress",
            "--no-tensorboard"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv, code=2):
    """Runs the CLI, expects `code` and a one-line error; returns the line."""
    got, out, err = run_cli(capsys, *argv)
    assert got == code, (got, out, err)
    lines = [line for line in err.strip().splitlines() if line.startswith("metarlkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Makes starting any training or evaluation fail the test: the checks must come first."""
    import metarlkit.evaluation
    import metarlkit.experiment
    import metarlkit.experiment.runner

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    for module, name in ((metarlkit.evaluation, "evaluate"), (metarlkit.evaluation, "compile_in_background"),
                         (metarlkit.experiment, "train"), (metarlkit.experiment.runner, "programs")):
        monkeypatch.setattr(module, name, refuse)


def test_a_run_directory_named_like_a_classic_agent_is_ambiguous(tmp_path, capsys, monkeypatch):
    run = tmp_path / "ucb1"
    assert main(["train", "rl2", *TINY_RL2, "--out", str(run)]) == 0
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, "evaluate", "--agent", "ucb1", "--task", "bernoulli-bandit:arms=2",
                             "--episodes", "3", "--num-tasks", "4")
    assert "both a run directory here and the classic agent 'ucb1'" in line and "./ucb1" in line
    code, out, err = run_cli(capsys, "evaluate", "--agent", "./ucb1", "--num-tasks", "4")
    assert code == 0 and "rl2(ucb1)" in out, err
    os.rename(run / "run.json", run / "moved.json")  # a plain directory named ucb1: the agent
    code, out, err = run_cli(capsys, "evaluate", "--agent", "ucb1:c=0.5", "--task", "bernoulli-bandit:arms=2",
                             "--episodes", "3", "--num-tasks", "4")
    assert code == 0 and "ucb1:c=0.5" in out, err


def test_an_infinite_gradient_stops_the_run_and_names_it(tmp_path, capsys):
    run = tmp_path / "run"
    line = one_line_error(capsys, "train", "rl2", *TINY_RL2, "--value-coef", "1e38", "--normalize-advantages",
                             "false", "--out", run, code=1)
    assert "grad_norm became NaN/inf at update 1, seed 0" in line, line
    assert "value_coef" in line
    assert json.loads((run / "status.json").read_text())["state"] == "diverged"


def test_a_reward_scale_blow_up_names_the_quantity_and_the_option(tmp_path, capsys):
    line = one_line_error(capsys, "train", "rl2", *TINY_RL2, "--reward-scale", "1e38", "--out", tmp_path / "run",
                          code=1)
    assert "became NaN/inf at update" in line and line.split("became")[0].split()[-1] in ("loss", "grad_norm"), line
    assert "reward_scale" in line


BANDIT = ["--task", "bernoulli-bandit:arms=2", "--episodes", "3", "--num-tasks", "4"]


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "--agent", "ucb1:c=0.5", "--task", "bernoulli-bandit:arms=1e9", "--episodes", "3"], "at most 1,024"),
    (["evaluate", "--agent", "ucb1:c=0.5", "--task", "bernoulli-bandit:arms=1000000000", "--episodes", "3"],
     "at most 1,024"),
    (["evaluate", "--agent", "ucb1:c=0.5", "--task", "bernoulli-bandit:arms=2", "--episodes", "10000000000"],
     "<= 1,000,000,000"),
    (["evaluate", "--agent", "ucb1:c=0.5", "--task", "bernoulli-bandit:arms=2", "--episodes", "200000"],
     "use at most 100,000 episodes"),
    (["evaluate", "--agent", "ucb1:c=0.5", *BANDIT, "--seed", "4294967296"], "seed in 0 .. 2,147,483,647"),
    (["evaluate", "--agent", "ucb1:c=0.5", *BANDIT, "--seed", str(2**64)], "seed in 0 .. 2,147,483,647"),
    (["evaluate", "--agent", "ucb1:c=0.5", *BANDIT, "--seed", "-1"], "seed in 0 .. 2,147,483,647"),
    (["evaluate", "--agent", "ts", "--task", "gaussian-bandit:noise=inf", "--episodes", "3"], "finite number"),
    (["evaluate", "--agent", "ts", "--task", "gaussian-bandit:noise=nan", "--episodes", "3"], "finite number"),
    (["evaluate", "--agent", "ucb1:c=0.5", *BANDIT, "--chunk-size", "1000000"], "at most 100,000 tasks"),
    (["train", "rl2", "--task", "bernoulli-bandit:arms=1e9", "--episodes", "3", "--out", "OUT"], "at most 1,024"),
    (["train", "rl2", *TINY_RL2, "--hidden-size", "1e9", "--out", "OUT"], "at most 4,096"),
    (["train", "rl2", *TINY_RL2, "--seed", "4294967296", "--out", "OUT"], "at most 2,147,483,647"),
    (["train", "rl2", *TINY_RL2, "--seed", "2147483647", "--seeds", "2", "--out", "OUT"], "must lie in 0 .."),
    (["train", "rl2", *TINY_RL2, "--learning-rate", "inf", "--out", "OUT"], "finite number"),
    (["train", "maml", "--task", "point-navigation", "--hidden-sizes", "64,100000", "--out", "OUT"], "at most 4,096"),
])
def test_sizes_and_numbers_are_bounded_before_any_work(argv, expected, tmp_path, capsys, no_work):
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a for a in argv]
    line = one_line_error(capsys, *argv)
    assert expected in line, line
    assert not out.exists()


@pytest.mark.parametrize("flag, value, expected", [
    ("--json", "/proc/x.json", "cannot be written"),
    ("--json", "FILE/x.json", "is a file, not a directory"),
    ("--json", "", "needs a file name"),
    ("--plot", "out.xyz", "figures can be written as"),
    ("--plot", "/proc/x.png", "cannot be written"),
])
def test_output_paths_are_checked_before_any_work(flag, value, expected, tmp_path, capsys, no_work):
    afile = tmp_path / "afile"
    afile.write_text("x")
    value = value.replace("FILE", str(afile))
    json_out = tmp_path / "e.json"
    extra = [] if flag == "--json" else ["--json", str(json_out)]
    line = one_line_error(capsys, "evaluate", "--agent", "ucb1:c=0.5", *BANDIT, flag, value, *extra)
    assert expected in line, line
    assert not json_out.exists()


def test_a_run_directory_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, no_work):
    line = one_line_error(capsys, "train", "rl2", *TINY_RL2, "--out", "/proc/metarlkit-run")
    assert "cannot be written" in line
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_line_error(capsys, "train", "rl2", *TINY_RL2, "--out", afile / "run")
    assert "is a file, not a directory" in line


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two finished tiny RL2 runs of different learning rates (same shapes), and a half-finished one."""
    root = tmp_path_factory.mktemp("runs")
    for name, lr in (("a", "0.001"), ("b", "0.002")):
        assert main(["train", "rl2", *TINY_RL2, "--learning-rate", lr, "--out", str(root / name)]) == 0
    return root


def copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def half_run(tmp_path):
    """A tiny run stopped after its first chunk (as if killed)."""
    from metarlkit import algos, tasks
    from metarlkit.experiment import train
    from metarlkit.experiment.config import build

    algo = algos.get("rl2")
    run = tmp_path / "half"
    train(algo, build(algo.config, algo.presets["tiny"]), tasks.from_spec("bernoulli-bandit:arms=2"), 3, run,
          progress=False, tensorboard=False, stop_after_chunks=1)
    return run


def garble(path, offset_fraction=0.5, count=64):
    data = bytearray(path.read_bytes())
    start = int(len(data) * offset_fraction)
    data[start:start + count] = bytes((b ^ 0x5A) for b in data[start:start + count])
    path.write_bytes(bytes(data))


def patch_nan(path):
    """Writes NaN into one parameter array, keeping the file well-formed (and the old checksum)."""
    import numpy as np
    from flax import serialization

    blob = serialization.msgpack_restore(path.read_bytes())
    leaf = np.array(blob["leaves"]["0"])
    leaf.reshape(-1)[0] = np.nan
    blob["leaves"]["0"] = leaf
    path.write_bytes(serialization.msgpack_serialize(blob))


@pytest.mark.parametrize("damage", [garble, patch_nan])
def test_a_damaged_checkpoint_is_reported_on_evaluate_and_on_resume(damage, tiny_runs, tmp_path, capsys):
    run = copy_run(tiny_runs / "a", tmp_path / "run")
    damage(run / "checkpoint.msgpack")
    line = one_line_error(capsys, "evaluate", "--agent", run, "--num-tasks", "4")
    assert "damaged" in line, line
    half = half_run(tmp_path)
    damage(half / "checkpoint.msgpack")
    line = one_line_error(capsys, "train", "rl2", "--resume", half, "--no-progress", "--no-tensorboard")
    assert "damaged" in line and "diverged" not in line, line


def test_another_runs_checkpoint_is_reported(tiny_runs, tmp_path, capsys):
    import shutil

    run = copy_run(tiny_runs / "a", tmp_path / "run")
    shutil.copy(tiny_runs / "b" / "checkpoint.msgpack", run / "checkpoint.msgpack")
    line = one_line_error(capsys, "evaluate", "--agent", run, "--num-tasks", "4")
    assert "does not match its checkpoint" in line, line
    half = half_run(tmp_path)
    shutil.copy(tiny_runs / "b" / "checkpoint.msgpack", half / "checkpoint.msgpack")
    line = one_line_error(capsys, "train", "rl2", "--resume", half, "--no-progress", "--no-tensorboard")
    assert "does not match its checkpoint" in line and "diverged" not in line, line


def test_an_edited_run_json_is_refused_on_resume_unless_accepted(tmp_path, capsys):
    from metarlkit.experiment.metrics import read

    run = half_run(tmp_path)
    info = json.loads((run / "run.json").read_text())
    info["config"]["learning_rate"] = 0.01
    (run / "run.json").write_text(json.dumps(info))
    line = one_line_error(capsys, "train", "rl2", "--resume", run, "--no-progress", "--no-tensorboard")
    assert "does not match its checkpoint" in line and "--accept-config-change" in line, line
    line = one_line_error(capsys, "train", "rl2", *TINY_RL2, "--accept-config-change", "--out", tmp_path / "x")
    assert "goes with --resume" in line
    code, out, err = run_cli(capsys, "train", "rl2", "--resume", run, "--accept-config-change", "--no-progress",
                             "--no-tensorboard")
    assert code == 0, err
    changes = json.loads((run / "run.json").read_text())["config_changes"]
    assert len(changes) == 1 and changes[0]["at_update"] == info["updates_per_chunk"]
    assert json.loads((run / "status.json").read_text())["state"] == "complete" and read(run)
    code, out, err = run_cli(capsys, "evaluate", "--agent", run, "--num-tasks", "4")  # consistent again
    assert code == 0, err


def test_malformed_metric_rows_are_dropped_on_resume_and_skipped_in_plots(tmp_path, capsys):
    from metarlkit.experiment.metrics import read

    run = half_run(tmp_path)
    good = read(run)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"update": 3, "se\\xff\\xfe garbled\\n')
    with open(run / "metrics.csv", "ab") as f:
        f.write(b"\\xff\\xfe,garbled,row\\n")
    capsys.readouterr()
    assert read(run) == good
    assert "skipped 1 malformed row" in capsys.readouterr().err
    code, out, err = run_cli(capsys, "train", "rl2", "--resume", run, "--no-progress", "--no-tensorboard")
    assert code == 0 and "dropped 1 malformed row" in err, err
    rows = read(run)
    assert [r["update"] for r in rows] == sorted({r["update"] for r in rows})
    text = (run / "metrics.csv").read_text()  # the garbage is gone and the CSV is whole again
    assert "garbled" not in text and len(text.strip().splitlines()) == len(rows) + 1


def test_one_trainer_per_run_directory(tmp_path, capsys):
    from metarlkit.experiment.runner import RunLock

    run = half_run(tmp_path)
    with RunLock(run):  # another trainer holds the directory
        line = one_line_error(capsys, "train", "rl2", "--resume", run, "--no-progress", "--no-tensorboard")
        assert "is being trained by pid" in line and "wait for it" in line, line
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with RunLock(fresh):
        line = one_line_error(capsys, "train", "rl2", *TINY_RL2, "--out", fresh)
        assert "is being trained by pid" in line, line
        assert not (fresh / "run.json").exists()
    # released (as it is when a trainer exits or crashes): the leftover lock file is no obstacle
    assert (run / ".lock").exists()
    code, out, err = run_cli(capsys, "train", "rl2", "--resume", run, "--no-progress", "--no-tensorboard")
    assert code == 0, err


def test_a_train_state_larger_than_the_machine_is_refused_before_allocating(tmp_path, capsys):
    """A replay buffer of 10^11 transitions (within the option's bound) cannot fit: refused from
    shapes alone, before anything is allocated or written."""
    from toy_algorithm import TOY

    from metarlkit import algos

    algos.register(TOY)
    try:
        out = tmp_path / "run"
        line = one_line_error(capsys, "train", TOY.name, "--task", "bernoulli-bandit:arms=2", "--episodes", "2",
                              "--buffer-size", str(10**11), "--out", out)
        assert "the train state of this run needs" in line and "GiB" in line, line
        assert not out.exists()
    finally:
        algos.unregister(TOY.name)
