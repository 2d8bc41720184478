"""The algorithm registry: every registered algorithm trains, resumes bit-identically, loads and is
scored by the one evaluator, on a family of each action type; and a toy algorithm registered from
this file (tests/toy_algorithm.py) does all of that through the command line with no edit anywhere
in the library.

`make test` runs each algorithm on one discrete and one continuous family with its 'tiny' preset;
`make test-all` adds every registered task family (marked slow).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from toy_algorithm import TOY

from metarlkit import algos, evaluate, tasks
from metarlkit.algos import Algorithm
from metarlkit.experiment import load, train
from metarlkit.experiment.checkpoint import load as load_checkpoint
from metarlkit.experiment.config import build, field_docs
from metarlkit.experiment.metrics import read

pytestmark = pytest.mark.usefixtures("fast_compile")

# One family per action type, short trials: the matrix `make test` runs.
DISCRETE, CONTINUOUS = "bernoulli-bandit:arms=2", "point-navigation:variant=sparse"
# The continuous family for algorithms that plan with the family's reward and so refuse goal tasks
# (GrBAL): only the dynamics vary.
CONTINUOUS_DYNAMICS = "point-robot-wind"


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    algos.register(TOY)
    yield
    algos.unregister(TOY.name)


def all_algorithms() -> list[str]:
    """Every algorithm registered when the tests are collected, plus the toy."""
    return list(dict.fromkeys(algos.names() + [TOY.name]))


def tiny_config(algo: Algorithm):
    return build(algo.config, algo.presets.get("tiny", {}), source=f"{algo.name} tiny preset")


def trial_length(algo: Algorithm, config, family) -> int:
    return algo.default_episodes(config) or family.default_episodes or 2


def leaves(run_dir):
    """The checkpoint's meta and arrays (as stored)."""
    from flax import serialization

    blob = serialization.msgpack_restore((run_dir / "checkpoint.msgpack").read_bytes())
    return blob["meta"], [np.asarray(blob["leaves"][str(i)]) for i in range(len(blob["leaves"]))]


def check_resume(algo, config, family, episodes, full, cut, status) -> None:
    """A run killed after its first chunk and resumed ends with the same checkpoint bit for bit
    and the same metrics as the run trained at once (`full`)."""
    assert train(algo, config, family, episodes, cut, progress=False, tensorboard=False,
                 stop_after_chunks=1)["state"] == "running"
    assert train(algo, None, None, None, cut, resume=True, progress=False, tensorboard=False)["state"] == "complete"
    (meta_full, got_full), (meta_cut, got_cut) = leaves(full), leaves(cut)
    assert meta_full["update"] == meta_cut["update"] == status["updates"]
    assert len(got_full) == len(got_cut)
    for a, b in zip(got_full, got_cut):
        np.testing.assert_array_equal(a, b)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]  # noqa: E731
    assert strip(read(full)) == strip(read(cut))


def check_train_resume_load_evaluate(name: str, task: str, tmp_path) -> None:
    """Trains with the 'tiny' preset; a run killed after its first chunk and resumed ends with the
    same checkpoint bit for bit and the same metrics; the run loads as an agent and is evaluated."""
    algo = algos.get(name)
    family = tasks.from_spec(task)
    if not algo.supports(family):
        pytest.skip(f"{name} does not support {family.describe_actions()} actions")
    config = tiny_config(algo)
    episodes = trial_length(algo, config, family)
    try:
        algo.check_run(config, family, episodes)
    except ValueError as err:  # the algorithm's own declared refusal, in one line (never on the basic pair)
        if task == CONTINUOUS and "reward depends on the task" in str(err):
            return check_train_resume_load_evaluate(name, CONTINUOUS_DYNAMICS, tmp_path)
        if task in (DISCRETE, CONTINUOUS, CONTINUOUS_DYNAMICS):
            raise
        pytest.skip(f"{name} refuses {task}: {err}")
    full, cut = tmp_path / "full", tmp_path / "cut"
    status = train(algo, config, family, episodes, full, progress=False, tensorboard=False)
    assert status["state"] == "complete"
    info = json.loads((full / "run.json").read_text())
    assert info["algorithm_name"] == name and len(info["phases"]) >= 1
    chunks = sum(p["num_updates"] // p["updates_per_chunk"] for p in info["phases"])
    # On the basic pair the tiny preset makes at least two chunks, to test resuming; a family with
    # long trials (cart-pole's 500 steps) may fit the tiny budget into one update: it still
    # trains, loads and evaluates here, and resuming is the basic pair's test.
    if task in (DISCRETE, CONTINUOUS, CONTINUOUS_DYNAMICS):
        assert chunks >= 2, "the tiny preset should make at least two chunks (to test resuming)"
    assert status["env_steps"] == sum(p["num_updates"] * p["steps_per_update"] for p in info["phases"])
    if chunks >= 2:
        check_resume(algo, config, family, episodes, full, cut, status)
    # a run started from this one (--init-from) starts from its last train state, whole
    started = tmp_path / "started"
    assert train(algo, config, family, episodes, started, progress=False, tensorboard=False, init_from=full,
                 stop_after_chunks=0)["state"] == "running"
    for a, b in zip(leaves(full)[1], leaves(started)[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((started / "run.json").read_text())["init_from"]["update"] == status["updates"]
    for curve in algo.curves:
        assert curve.metric in read(full)[-1], f"{name}'s curve {curve.metric!r} is not a logged metric"

    trained = load(full)
    result = evaluate(trained.agent, family, trained.params, num_episodes=episodes, num_tasks=4, chunk_size=4)
    assert result.returns.shape == (4, episodes) and np.all(np.isfinite(result.returns))


@pytest.mark.parametrize("task", [DISCRETE, CONTINUOUS])
@pytest.mark.parametrize("name", all_algorithms())
def test_algorithm_trains_resumes_loads_and_evaluates(name, task, tmp_path):
    check_train_resume_load_evaluate(name, task, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("task", tasks.names())
@pytest.mark.parametrize("name", all_algorithms())
def test_algorithm_on_every_family(name, task, tmp_path):
    check_train_resume_load_evaluate(name, task, tmp_path)


@pytest.mark.parametrize("name", all_algorithms())
def test_every_config_field_is_documented_and_every_preset_is_valid(name):
    algo = algos.get(name)
    docs = field_docs(algo.config)
    undocumented = [f.name for f in dataclasses.fields(algo.config) if not docs.get(f.name)]
    assert not undocumented, f"{name}: fields without a docstring: {undocumented}"
    for preset, overrides in algo.presets.items():
        build(algo.config, overrides, source=f"{name} preset {preset}")
    assert algo.description and "\n" not in algo.description
    for family in tasks.names():  # a run without --preset finds its preset on every family
        assert algo.default_preset(tasks.make(family)) in algo.presets, (name, family)


def test_maml_defaults_to_the_papers_setting_on_dense_navigation_only():
    maml = algos.get("maml")
    assert maml.default_preset(tasks.from_spec("point-navigation")) == "paper-code"
    assert maml.default_preset(tasks.from_spec("point-navigation:variant=sparse")) == "standard"
    assert maml.default_preset(tasks.from_spec(DISCRETE)) == "standard"
    assert "default" not in maml.presets and maml.presets["standard"] == {}


def test_the_registry_rejects_duplicates_and_names_what_exists():
    with pytest.raises(ValueError, match="already registered"):
        algos.register(algos.get("rl2"))
    with pytest.raises(ValueError, match=r"unknown algorithm 'rl3'; did you mean 'rl2'\?; registered: rl2, maml"):
        algos.get("rl3")
    with pytest.raises(ValueError, match="needs the fields seed and seeds"):
        dataclasses.replace(TOY, name="no-seeds", config=dataclasses.make_dataclass("C", [("x", int, 0)]))
    with pytest.raises(ValueError, match="agent option 'nosuch' is not a config field"):
        dataclasses.replace(TOY, agent_options=("nosuch",))
    with pytest.raises(ValueError, match="agent option 'seed' is not a config field"):
        dataclasses.replace(TOY, agent_options=("seed",))


def test_a_fixed_training_set_is_the_train_splits_prefix(tmp_path):
    """An algorithm that asks for a fixed set of training tasks trains only on those: the toy with
    `train_tasks=3` records the set's hash in run.json, and the tasks it draws are tasks 0..2 of
    the 'train' split."""
    import jax

    from metarlkit.tasks.tasksets import task_set, task_set_hash
    from metarlkit.trial import TaskSource

    family = tasks.from_spec(DISCRETE)
    source = TaskSource(family, 3)
    drawn = jax.jit(lambda k: source.sample(k, 16))(jax.random.PRNGKey(0))
    means = {tuple(np.round(np.asarray(m), 6)) for m in drawn["means"]}
    fixed = {tuple(np.round(np.asarray(m), 6)) for m in task_set(family, "train", 3)["means"]}
    assert means == fixed
    distinct = jax.jit(lambda k: source.sample_indices(k, 3))(jax.random.PRNGKey(1))
    assert sorted(np.asarray(distinct).tolist()) == [0, 1, 2]

    config = build(TOY.config, {"train_tasks": 3})
    train(TOY, config, family, 2, tmp_path / "run", progress=False, tensorboard=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["train_tasks"] == {"source": "fixed", "split": "train", "num_tasks": 3,
                                   "task_set_hash": task_set_hash(family, "train", 3)}


def test_toy_replay_buffer_holds_full_transitions(tmp_path):
    """The toy's buffer (a large leaf of the train state) checkpoints with the run; the transitions
    in it chain (each next observation is the following step's observation within an episode) and
    end either terminated or truncated, never both."""
    family = tasks.from_spec("point-navigation")  # dense: episodes may end early at the goal
    config = build(TOY.config, {"tasks_per_update": 2, "buffer_size": 1600})
    run = tmp_path / "run"
    train(TOY, config, family, 2, run, progress=False, tensorboard=False)
    state, _ = load_checkpoint(run / "checkpoint.msgpack", _template(TOY, config, family, 2))
    buffer = state.buffer
    count = int(np.asarray(buffer.count)[0])
    assert config.buffer_size < count <= 6 * 2 * 2 * 100  # 6 updates x 2 tasks x 2 episodes x <= 100 steps: wrapped
    held = min(count, config.buffer_size)
    obs, nxt = np.asarray(buffer.obs[0, :held]), np.asarray(buffer.next_obs[0, :held])
    term, trunc = np.asarray(buffer.terminated[0, :held]), np.asarray(buffer.truncated[0, :held])
    assert not np.any(term & trunc)
    ends = term | trunc
    start = count % config.buffer_size  # the oldest transition sits here
    order = np.roll(np.arange(held), -start)
    for i, j in zip(order[:-1], order[1:]):
        if not ends[i]:
            np.testing.assert_allclose(nxt[i], obs[j], atol=1e-6)


def _template(algo, config, family, episodes):
    import jax

    from metarlkit.experiment.runner import programs, seed_keys

    _, init, _ = programs(algo, config, family, episodes)
    return jax.eval_shape(init, seed_keys(config))


def test_toy_trains_resumes_evaluates_and_plots_through_the_cli(tmp_path, capsys):
    """The toy, registered from this file, is a `metarlkit train` subcommand with its options and
    presets; a killed run resumes from the command line; the run is an agent for `evaluate` and
    `plot` draws its declared curve. Bad input is one line before anything is written."""
    from metarlkit.cli import main

    run, cut = tmp_path / "run", tmp_path / "cut"
    args = ["--task", DISCRETE, "--episodes", "2", "--no-progress", "--no-tensorboard"]
    assert main(["train", TOY.name, *args, "--preset", "fixed-tasks", "--learning-rate", "0.1", "--out", str(run)]) == 0
    info = json.loads((run / "run.json").read_text())
    config = info["config"]
    assert (config["train_tasks"], config["learning_rate"], info["preset"]) == (10, 0.1, "fixed-tasks")
    assert "phase" in read(run)[0] and {r["phase"] for r in read(run)} == {"collect", "train"}
    assert json.loads((run / "status.json").read_text())["state"] == "complete"

    train(TOY, build(TOY.config, {"train_tasks": 10, "learning_rate": 0.1}), tasks.from_spec(DISCRETE), 2, cut,
          progress=False, tensorboard=False, stop_after_chunks=2)
    assert json.loads((cut / "status.json").read_text())["phase"] == "train"
    capsys.readouterr()
    assert main(["train", TOY.name, "--resume", str(cut), "--no-progress", "--no-tensorboard"]) == 0
    for a, b in zip(leaves(run)[1], leaves(cut)[1]):
        np.testing.assert_array_equal(a, b)

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--agent", str(run), "--num-tasks", "20", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["agent"].startswith(f"{TOY.name}(") and data["num_tasks"] == 20
    assert main(["plot", str(run), "--baselines", "none", "--num-tasks", "10", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0
    assert main(["algorithms"]) == 0 and TOY.name in capsys.readouterr().out

    bad = tmp_path / "bad"
    assert main(["train", TOY.name, "--task", "point-navigation", "--episodes", "2", "--buffer-size", "10",
                 "--out", str(bad)]) == 2
    assert "raise --buffer-size to at least" in capsys.readouterr().err and not bad.exists()


def test_a_run_of_an_unregistered_algorithm_fails_in_one_line(tmp_path, capsys):
    from metarlkit.cli import main

    run = tmp_path / "run"
    config = build(TOY.config, {})
    train(TOY, config, tasks.from_spec(DISCRETE), 2, run, progress=False, tensorboard=False)
    algos.unregister(TOY.name)
    try:
        assert main(["evaluate", "--agent", str(run), "--num-tasks", "4"]) == 2
        err = capsys.readouterr().err
        assert "algorithm 'toy-pg', which is not registered here" in err and len(err.strip().splitlines()) == 1
    finally:
        algos.register(TOY)
