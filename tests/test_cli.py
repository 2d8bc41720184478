"""CLI behaviour: one-line errors with exit status 2 and no files written; JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from metarlkit.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


BAD = [
    (["evaluate", "--agent", "nosuch", "--task", "bernoulli-bandit", "--episodes", "3"], "unknown agent"),
    (["evaluate", "--agent", "ucb", "--task", "bernoulli-bandit", "--episodes", "3"], "did you mean"),
    (["evaluate", "--agent", "ts", "--task", "nosuch-bandit", "--episodes", "3"], "unknown task"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit:arms=1", "--episodes", "3"], "arms must be"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit:arms=x", "--episodes", "3"], "must be int"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit:legs=3", "--episodes", "3"], "valid options: arms, pulls"),
    (["evaluate", "--agent", "ucb1:c=-1", "--task", "bernoulli-bandit", "--episodes", "3"], "must be in"),
    (["evaluate", "--agent", "ucb1:d=1", "--task", "bernoulli-bandit", "--episodes", "3"], "valid options: c"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit", "--episodes", "0"], ">= 1"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit", "--episodes", "ten"], "whole number"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit"], "needs --episodes"),
    (["evaluate", "--agent", "ts", "--task", "bernoulli-bandit", "--episodes", "3", "--num-tasks", "100001"], "exceeds"),
    (["evaluate", "--agent", "ts", "--task", "eleven-arm-bandit", "--episodes", "3"], "--episodes 1"),
    (["evaluate", "--agent", "psrl", "--task", "bernoulli-bandit", "--episodes", "3"], "cannot run on"),
    (["evaluate", "--agent", "ts", "--agent", "greedy", "--task", "bernoulli-bandit", "--episodes", "3"], "exactly one"),
    (["evaluate", "--task", "bernoulli-bandit", "--episodes", "3"], "give --agent"),
    (["reproduce", "rl2-bandits", "--k", "1"], "--k values must be >= 2"),
    (["reproduce", "rl2-mdps", "--k", "5"], "no k"),
    (["reproduce", "nosuch"], "invalid choice"),
    (["compare", "--task", "bernoulli-bandit", "--episodes", "3", "--agent", "ts", "--reference", "ucb1"], "--reference"),
]


@pytest.mark.parametrize("argv,fragment", BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_no_file(argv, fragment, capsys, tmp_path):
    out_file = tmp_path / "out.json"
    code, out, err = run_cli(capsys, *argv, "--json", str(out_file)) if argv[0] != "reproduce" or "nosuch" not in argv else run_cli(capsys, *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("metarlkit: error:")
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert not out_file.exists()


def test_json_directory_is_rejected(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--agent", "ts", "--task", "bernoulli-bandit", "--episodes", "3", "--json", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_evaluate_json_contract(capsys, tmp_path):
    path = tmp_path / "r.json"
    plot = tmp_path / "r.png"
    code, out, _ = run_cli(
        capsys, "evaluate", "--agent", "ucb1:c=0.3", "--task", "bernoulli-bandit:arms=3", "--episodes", "4",
        "--num-tasks", "20", "--seed", "3", "--json", str(path), "--plot", str(plot),
    )
    assert code == 0, out
    data = json.loads(path.read_text())
    for key in ("task", "agent", "num_tasks", "episodes", "total_reward", "regret", "pseudo_regret", "per_episode_return", "provenance"):
        assert key in data
    assert data["agent"] == "ucb1:c=0.3"
    assert data["task"] == "bernoulli-bandit:arms=3,pulls=1"
    assert data["num_tasks"] == 20 and data["episodes"] == 4
    assert set(data["total_reward"]) == {"mean", "ci95"}
    assert len(data["per_episode_return"]) == 4
    assert data["provenance"]["agent_seed"] == 3
    assert plot.stat().st_size > 1000


def test_config_file_supplies_options(capsys, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('agent = ["greedy"]\ntask = "dependent-bandit:variant=easy"\nepisodes = 5\nnum-tasks = 10\n')
    path = tmp_path / "r.json"
    code, out, _ = run_cli(capsys, "evaluate", "--config", str(config), "--json", str(path))
    assert code == 0, out
    data = json.loads(path.read_text())
    assert data["task"] == "dependent-bandit:pulls=1,variant=easy" and data["num_tasks"] == 10


def test_compare_prints_paired_table(capsys, tmp_path):
    code, out, _ = run_cli(
        capsys, "compare", "--task", "bernoulli-bandit:arms=3", "--episodes", "4", "--num-tasks", "20",
        "--agent", "greedy", "--agent", "random", "--agent", "oracle", "--reference", "oracle",
        "--json", str(tmp_path / "c.json"),
    )
    assert code == 0
    assert "vs oracle (paired)" in out
    assert len(json.loads((tmp_path / "c.json").read_text())["results"]) == 3


def test_tasks_lists_every_family(capsys):
    from metarlkit import tasks

    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    for name in tasks.names():
        assert name in out


def test_help_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "metarlkit.cli", "evaluate", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "--agent" in done.stdout and "--json" in done.stdout


def test_evaluate_prints_and_writes_action_frequencies(capsys, tmp_path):
    path = tmp_path / "a.json"
    code, out, _ = run_cli(capsys, "evaluate", "--agent", "bayes-optimal", "--task", "eleven-arm-bandit",
                           "--num-tasks", "20", "--actions", "3", "--json", str(path))
    assert code == 0
    freq = json.loads(path.read_text())["action_frequencies"]
    assert len(freq) == 1 and len(freq[0]) == 5 and len(freq[0][0]) == 11
    assert freq[0][0][10] == 1.0  # the Bayes-optimal agent pulls the informative arm first
    assert all(abs(sum(step) - 1) < 1e-6 for step in freq[0])
    assert len([line for line in out.splitlines() if line.startswith("       0 ")]) == 3
