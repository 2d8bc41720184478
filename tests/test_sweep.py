"""`metarlkit sweep`: the return of agents against one physical parameter, through the one evaluator
with the parameter's distribution replaced by a point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metarlkit import baselines, evaluate, tasks
from metarlkit.cli import main
from metarlkit.tasks import distributions as D

pytestmark = pytest.mark.usefixtures("fast_compile")

COMMON = ["--task", "pendulum", "--episodes", "1", "--num-tasks", "4", "--chunk-size", "4"]


def test_a_replaced_distribution_fixes_the_parameter_and_is_recorded():
    family = tasks.make("pendulum")
    agent = baselines.resolve("random", family, 1)
    base = family.default_distribution()
    heavy = D.TaskDistribution({**base.params, "mass": D.uniform(2.0, 2.0)})
    res = evaluate(agent.agent, family, agent.params, num_episodes=1, num_tasks=4, chunk_size=4, distribution=heavy)
    plain = evaluate(agent.agent, family, agent.params, num_episodes=1, num_tasks=4, chunk_size=4)
    prov, plain_prov = res.summary()["provenance"], plain.summary()["provenance"]
    assert prov["task_distribution"]["mass"] == {"kind": "uniform", "low": 2.0, "high": 2.0}
    assert prov["task_distribution"]["replaces_default"] is True and "replaces_default" not in plain_prov["task_distribution"]
    assert prov["task_set_hash"] != plain_prov["task_set_hash"]
    assert not np.allclose(res.total_reward, plain.total_reward)
    # the lengths are the default set's own draws: only the mass was replaced
    again = evaluate(agent.agent, family, agent.params, num_episodes=1, num_tasks=4, chunk_size=4,
                     distribution=D.TaskDistribution({**base.params}))
    np.testing.assert_allclose(again.total_reward, plain.total_reward, rtol=1e-6)


def test_sweep_writes_json_and_a_plot(tmp_path, capsys):
    out, plot = tmp_path / "sweep.json", tmp_path / "sweep.png"
    code = main(["sweep", "--agent", "random", "--agent", "mpc:horizon=5,candidates=8,iterations=1,elites=2",
                 *COMMON, "--param", "length", "--values", "0.5:2.5:3", "--json", str(out), "--plot", str(plot)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["param"] == "length" and data["values"] == [0.5, 1.5, 2.5]
    assert data["default_range"] == pytest.approx([1 / 1.5, 1.5], rel=1e-5)
    assert [a["agent"].split(":")[0] for a in data["agents"]] == ["random", "mpc"]
    for agent in data["agents"]:
        assert [p["in_default_range"] for p in agent["points"]] == [False, True, False]
        for p in agent["points"]:
            assert p["cvar"]["value"] <= p["total_reward"]["mean"]
            assert set(p["return_percentiles"]) == {"10", "50", "90"}
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["--param", "mass", "--values", "1:2"], "--values takes A:B:N"),
    (["--param", "mass", "--values", "1:inf:3"], "needs finite A and B"),
    (["--param", "mass", "--values", "1:2:0"], "1 <= N <= 1000"),
    (["--param", "weight", "--values", "1:2:3"], "pendulum has no parameter 'weight'; its parameters: damping, length, mass"),
    (["--param", "mass", "--values", "1:2:3", "--physics", "mass=1"], "--physics sets mass, the parameter --param sweeps"),
    (["--param", "mass", "--values", "1:2:3", "--physics", "length=nan"], "--physics length=nan: give a finite number"),
])
def test_bad_sweeps_fail_in_one_line_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--agent", "random", *COMMON, *argv, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and not out.exists()


def test_a_family_without_parameters_cannot_be_swept(capsys):
    code = main(["sweep", "--agent", "random", "--task", "bernoulli-bandit", "--episodes", "2", "--num-tasks", "4",
                 "--param", "arms", "--values", "1:2:2"])
    assert code == 2 and "bernoulli-bandit has no physical parameters to sweep" in capsys.readouterr().err


def test_physics_fixes_parameters_through_the_one_evaluator(tmp_path, capsys):
    """`evaluate --physics mass=2` is the evaluator with the mass's distribution replaced by a point."""
    out = tmp_path / "heavy.json"
    assert main(["evaluate", "--agent", "random", *COMMON, "--physics", "mass=2", "--json", str(out)]) == 0
    capsys.readouterr()
    dist = json.loads(out.read_text())["provenance"]["task_distribution"]
    assert dist["mass"] == {"kind": "uniform", "low": 2.0, "high": 2.0} and dist["replaces_default"] is True
    assert dist["length"]["kind"] == "log_uniform"  # the others keep their distribution
