"""`metarlkit train`, run directories as agents, `plot`: outputs and one-line errors."""

from __future__ import annotations

import json

import pytest

from metarlkit.cli import main

pytestmark = pytest.mark.usefixtures("fast_compile")

TINY = ["--task", "bernoulli-bandit:arms=2", "--episodes", "3", "--total-steps", "960", "--tasks-per-update", "16",
        "--hidden-size", "8", "--checkpoint-steps", "480", "--no-progress", "--no-tensorboard"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "rl2", *TINY, "--seeds", "2", "--out", str(path)]) == 0
    return path


def test_train_writes_a_run_directory(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["algorithm_name"] == "rl2" and info["episodes"] == 3
    assert info["config"]["hidden_size"] == 8 and info["config"]["seeds"] == 2
    assert info["num_updates"] == 20 and info["updates_per_chunk"] == 10
    assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"
    for name in ("checkpoint.msgpack", "metrics.csv", "metrics.jsonl"):
        assert (run_dir / name).stat().st_size > 0


def test_config_file_and_flags_layer_over_a_preset(capsys, tmp_path):
    config = tmp_path / "rl2.toml"
    config.write_text("hidden-size = 12\nlearning_rate = 0.002\n")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "rl2", *TINY, "--preset", "a2c", "--config", config,
                                "--learning-rate", "0.003", "--out", out)
    assert code == 0, err
    cfg = json.loads((out / "run.json").read_text())["config"]
    # TINY's --hidden-size 8 (a flag) beats the file's 12; the flag's learning rate beats the file's.
    assert (cfg["algorithm"], cfg["hidden_size"], cfg["learning_rate"]) == ("a2c", 8, 0.003)
    assert "evaluate it with: metarlkit evaluate --agent" in stdout


def test_a_run_dir_is_an_agent(run_dir, capsys, tmp_path):
    path = tmp_path / "e.json"
    code, out, err = run_cli(capsys, "evaluate", "--agent", f"{run_dir}:seed=1", "--num-tasks", "50", "--json", path)
    assert code == 0, err
    data = json.loads(path.read_text())
    assert data["agent"].endswith(":seed=1") and data["task"] == "bernoulli-bandit:arms=2,pulls=1"
    assert data["episodes"] == 3 and data["num_tasks"] == 50
    assert "env steps" in data["training_budget"] and data["hyperparameters"]["training"]["hidden_size"] == 8
    assert "trained:" in out


def test_compare_puts_the_budget_beside_the_trained_row(run_dir, capsys):
    code, out, err = run_cli(capsys, "compare", "--agent", run_dir, "--agent", "random", "--num-tasks", "50")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("rl2("))
    assert "trained: 0.0M env steps (20 updates, 2 seeds)" in row


def test_resume_of_a_complete_run_is_a_no_op(run_dir, capsys):
    code, out, err = run_cli(capsys, "train", "rl2", "--resume", run_dir, "--no-progress")
    assert code == 0 and "already complete" in err


def test_plot_writes_the_summary_figure(run_dir, capsys, tmp_path):
    path = tmp_path / "p.png"
    code, out, err = run_cli(capsys, "plot", run_dir, "--baselines", "random", "--num-tasks", "50", "--out", path)
    assert code == 0, err
    assert path.stat().st_size > 10_000


BAD = [
    (["train", "rl2", *TINY], "give --out"),
    (["train", "rl2", "--episodes", "3", "--out", "{new}"], "give --task"),
    (["train", "rl2", *TINY, "--hidden-size", "0", "--out", "{new}"], "hidden_size must be a whole number >= 1"),
    (["train", "rl2", *TINY, "--hidden-size", "many", "--out", "{new}"], "must be int"),
    (["train", "rl2", *TINY, "--core", "rnn", "--out", "{new}"], "core must be one of gru, lstm"),
    (["train", "rl2", *TINY, "--preset", "huge", "--out", "{new}"], "unknown preset 'huge'"),
    (["train", "rl2", *TINY, "--config", "{tmp}/missing.toml", "--out", "{new}"], "not found"),
    (["train", "rl2", *TINY, "--out", "{run}"], "already holds a run; continue it with --resume"),
    (["train", "rl2", "--resume", "{tmp}/nothing"], "not a run directory"),
    (["train", "rl2", "--resume", "{run}", "--hidden-size", "4"], "drop --hidden-size"),
    (["train", "nosuch"], "invalid choice"),
    (["evaluate", "--agent", "{run}", "--task", "bernoulli-bandit:arms=3", "--episodes", "3"], "cannot act on"),
    (["evaluate", "--agent", "{run}:seed=5"], "has seeds 0..1"),
    (["evaluate", "--agent", "{run}:temperature=2"], "takes the options seed, update; got 'temperature'"),
    (["evaluate", "--agent", "{run}:update=x"], "update must be a whole number, got 'x'"),
    (["evaluate", "--agent", "{run}:update=4"], "kept no snapshots (train with --snapshots"),
    (["train", "rl2", "--resume", "{run}", "--snapshots"], "--snapshots is chosen when a run starts"),
    (["evaluate", "--agent", "{tmp}"], "not a training run"),
    (["plot", "{tmp}"], "not a training run"),
]


@pytest.mark.parametrize("argv,fragment", BAD, ids=[f for _, f in BAD])
def test_bad_input_is_one_line_exit_2_nothing_written(argv, fragment, run_dir, capsys, tmp_path):
    new = tmp_path / "new-run"
    argv = [a.format(new=new, run=run_dir, tmp=tmp_path) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("metarlkit: error:"), err
    assert fragment in lines[0]
    assert not new.exists()


def test_train_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "rl2", "--help"])
    out = capsys.readouterr().out
    assert "--gae-lambda" in out and "GAE lambda" in out and "--resume RUN_DIR" in out


def test_reproduce_places_runs_in_their_cell(run_dir, capsys, tmp_path):
    path = tmp_path / "rows.json"
    code, out, err = run_cli(capsys, "reproduce", "rl2-bandits", "--n", "3", "--k", "2", "--agents", "random",
                             "--runs", run_dir, "--num-tasks", "50", "--tune-tasks", "50", "--json", path)
    assert code == 0, err
    rows = json.loads(path.read_text())
    rl2_row = next(r for r in rows if r["agent"].startswith("rl2("))
    assert (rl2_row["n"], rl2_row["k"]) == (3, 2) and len(rl2_row["seeds"]) == 2
    assert abs(rl2_row["mean"] - sum(s["mean"] for s in rl2_row["seeds"]) / 2) < 1e-9
    assert "rl2" in out.splitlines()[0]


@pytest.mark.parametrize("argv,fragment", [
    (["reproduce", "rl2-bandits", "--runs", "{run}"], "is for n=3, k=2, not a cell of this table"),
    (["reproduce", "rl2-mdps", "--runs", "{run}"], "which is not a task of rl2-mdps"),
    (["reproduce", "rl2-bandits", "--runs", "{tmp}"], "not a training run"),
])
def test_reproduce_rejects_runs_of_other_cells(argv, fragment, run_dir, capsys, tmp_path):
    code, out, err = run_cli(capsys, *[a.format(run=run_dir, tmp=tmp_path) for a in argv])
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
