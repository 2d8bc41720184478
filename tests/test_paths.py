"""`metarlkit paths`: an agent's paths on a point-robot family, episode by episode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metarlkit.cli import main

pytestmark = pytest.mark.usefixtures("fast_compile")


def test_paths_start_at_the_origin_and_record_the_first_success(tmp_path, capsys):
    out, data = tmp_path / "paths.png", tmp_path / "paths.json"
    assert main(["paths", "--agent", "posterior-sampling", "--task", "point-navigation:variant=sparse",
                 "--episodes", "5", "--num-tasks", "3", "--out", str(out), "--json", str(data)]) == 0
    capsys.readouterr()
    paths = json.loads(data.read_text())
    assert out.stat().st_size > 1000 and len(paths["tasks"]) == 3 and paths["goal_circle"] == 0.2
    for task in paths["tasks"]:
        assert len(task["positions"]) == 5
        for episode in task["positions"]:
            xy = np.asarray(episode)
            assert xy.shape == (21, 2) and np.all(xy[0] == 0.0)  # the start, then 20 steps
            assert np.all(np.abs(np.diff(xy, axis=0)) <= 0.1 + 1e-6)  # velocity clipped to 0.1
        if task["success"] is not None:  # the first successful episode ends within 0.2 of the goal somewhere
            xy = np.asarray(task["positions"][task["success"] - 1])
            assert np.min(np.linalg.norm(xy - np.asarray(task["goal"]), axis=1)) <= 0.2 + 1e-6
    assert any(task["success"] for task in paths["tasks"])


def test_paths_refuse_a_family_without_positions(tmp_path, capsys):
    code = main(["paths", "--agent", "ucb1:c=1", "--task", "bernoulli-bandit:arms=2", "--episodes", "3",
                 "--out", str(tmp_path / "p.png")])
    assert code == 2 and "not a point-robot family" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
