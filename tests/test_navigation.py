"""point-navigation (continuous actions): the contract on both variants, golden dynamics and
optimal returns by hand, early termination in trials, the oracle, and the clear errors of code
that needs discrete actions (action frequencies, bandit baselines)."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import FamilyContract, shared_contract

from metarlkit import baselines, evaluate, tasks
from metarlkit.cli import _action_signature, main
from metarlkit.specs import SpecError
from metarlkit.tasks.navigation import PointState

pytestmark = pytest.mark.usefixtures("fast_compile")

VARIANTS = ("dense", "sparse")
BATCH = 4  # every hand check runs on 4 rows: one compiled shape per variant


def family(variant: str):
    return tasks.make("point-navigation", variant=variant)


def contract_of(variant: str) -> FamilyContract:
    # test_tasks checks the same families, so the two modules share one checker and its programs.
    return shared_contract(family(variant))


@pytest.fixture(scope="module", params=VARIANTS)
def contract(request):
    return contract_of(request.param)


@pytest.mark.parametrize("check", FamilyContract.CHECKS)
def test_family_contract(contract, check):
    getattr(contract, check)()


@functools.lru_cache(maxsize=None)
def _inspect(variant: str):
    """jit of: optimal_return of BATCH goals; one step from `positions` (at step t) by `actions`
    toward each goal; the oracle's action there."""
    f = family(variant)

    @jax.jit
    def inspect(goals, positions, t, actions):
        def one(goal, pos, t, action):
            task = {"goal": goal}
            step = f.step(jax.random.PRNGKey(0), PointState(pos, t), action, task)
            return f.optimal_return(task), step, f.oracle_action(task, pos, t)

        return jax.vmap(one)(goals, positions, t, actions)

    def run(goals, positions=None, t=None, actions=None):
        rows = len(goals)
        assert rows <= BATCH
        pad = lambda x, shape: np.resize(np.asarray(x, np.float32).reshape(-1, *shape), (BATCH, *shape))  # noqa: E731
        positions = np.zeros((rows, 2)) if positions is None else positions
        actions = np.zeros((rows, 2)) if actions is None else actions
        t = np.zeros(rows) if t is None else t
        out = inspect(pad(goals, (2,)), pad(positions, (2,)), pad(t, ()).astype(np.int32), pad(actions, (2,)))
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[:rows], out)

    return run


def trial(variant: str, goal, oracle: bool):
    """One trial (the contract's compiled probe trial, 16 episodes) on the task with `goal`: the
    oracle, or an agent that stands still (the all-zero script)."""
    c = contract_of(variant)
    return c.trial({"goal": np.asarray(goal, np.float32)}, c.params(oracle=oracle))


# --- options and the action-space contract fields ------------------------------------------------


def test_action_space_fields():
    f = family("dense")
    assert f.continuous and f.action_size == 2 and f.action_bounds == (-0.1, 0.1)
    assert f.action_shape == (2,) and f.action_dtype == jnp.float32
    assert f.obs_shape == (2,) and f.horizon == 100 and family("sparse").horizon == 20
    assert f.default_episodes is None and f.reward_model == "other" and not f.defines_pseudo_regret
    assert f.describe_actions() == "continuous, R^2 in [-0.1, 0.1]"
    assert tasks.from_spec("point-navigation") == f and f.spec() == "point-navigation:variant=dense"
    with pytest.raises(tasks.ActionSpaceError) as err:
        f.num_actions  # noqa: B018
    assert str(err.value) == (
        "point-navigation has continuous actions (R^2 in [-0.1, 0.1]), not a number of discrete "
        "actions; this needs a family with discrete actions"
    )
    bandit = tasks.make("bernoulli-bandit")
    assert not bandit.continuous and bandit.action_shape == () and bandit.action_dtype == jnp.int32
    with pytest.raises(tasks.ActionSpaceError, match=r"^bernoulli-bandit has discrete actions \(5 of them\)"):
        bandit.action_bounds  # noqa: B018


def test_bad_variant_gives_one_line_error():
    with pytest.raises(SpecError) as err:
        tasks.from_spec("point-navigation:variant=medium")
    assert str(err.value) == "task 'point-navigation': variant must be one of dense, sparse, got 'medium'"


# --- dynamics and rewards by hand ----------------------------------------------------------------


def test_action_is_clipped_per_coordinate():
    goals = [[0.3, 0.4]] * 3
    actions = [[5.0, -5.0], [0.05, -0.2], [-0.02, 0.07]]
    _, (obs, state, reward, done, info), _ = _inspect("dense")(goals, actions=actions)
    np.testing.assert_allclose(obs, [[0.1, -0.1], [0.05, -0.1], [-0.02, 0.07]], rtol=1e-6)
    np.testing.assert_array_equal(state.pos, obs)
    np.testing.assert_array_equal(state.t, [1, 1, 1])
    np.testing.assert_allclose(reward, -np.linalg.norm(obs - np.asarray(goals), axis=1), rtol=1e-6)
    np.testing.assert_array_equal(info.expected_reward, reward)
    assert np.all(np.isnan(info.optimal_expected_reward)) and not np.any(done)


def test_dense_episode_ends_in_the_goal_zone_or_at_the_horizon():
    goal = [0.25, -0.05]
    # Land at offsets (0.009, -0.009) (inside the zone), (0.011, 0) and (0, 0.02) (outside), and
    # far from the goal at the last step of the horizon.
    positions = [[0.2, -0.05], [0.2, -0.05], [0.2, -0.05], [0.0, 0.0]]
    actions = [[0.059, -0.009], [0.061, 0.0], [0.05, 0.02], [0.0, 0.0]]
    t = [5, 5, 5, 99]
    _, (_, _, reward, done, _), _ = _inspect("dense")([goal] * 4, positions, t, actions)
    np.testing.assert_array_equal(done, [True, False, False, True])
    np.testing.assert_allclose(reward, [-np.hypot(0.009, 0.009), -0.011, -0.02, -np.hypot(0.25, 0.05)], rtol=1e-4)


def test_sparse_reward_is_zero_outside_radius_and_one_minus_distance_inside():
    goal = [0.0, 1.0]
    positions = [[0.0, 0.75], [0.0, 0.65], [0.0, 0.9], [0.1, 0.85]]
    actions = [[0.0, 0.1], [0.0, 0.1], [0.0, 0.1], [0.1, 0.1]]  # distances 0.15, 0.25, 0, 0.206
    _, (obs, _, reward, done, _), _ = _inspect("sparse")([goal] * 4, positions, [3, 3, 3, 3], actions)
    distance = np.linalg.norm(obs - np.asarray(goal), axis=1)
    np.testing.assert_allclose(distance, [0.15, 0.25, 0.0, np.hypot(0.2, 0.05)], atol=1e-6)
    np.testing.assert_allclose(reward, [0.85, 0.0, 1.0, 0.0], atol=1e-6)
    assert not np.any(done)  # no early end in the sparse variant


def test_dense_goals_are_uniform_in_the_square():
    goals = np.asarray(tasks.task_set(family("dense"), "test", 400)["goal"])
    assert goals.shape == (400, 2) and goals.dtype == np.float32
    assert goals.min() >= -0.5 and goals.max() < 0.5
    np.testing.assert_allclose(goals.mean(0), [0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(goals.var(0), [1 / 12, 1 / 12], atol=0.012)


def test_sparse_goals_lie_on_the_upper_half_circle():
    goals = np.asarray(tasks.task_set(family("sparse"), "test", 400)["goal"])
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0, rtol=1e-6)
    assert goals[:, 1].min() >= 0.0
    angles = np.arctan2(goals[:, 1], goals[:, 0])
    assert angles.min() < 0.1 and angles.max() > np.pi - 0.1  # the whole half circle is used
    np.testing.assert_allclose(angles.mean(), np.pi / 2, atol=0.15)


# --- optimal return and the oracle ---------------------------------------------------------------


def test_optimal_return_golden():
    # Dense, goal (0.25, -0.05): the oracle moves (0.1, -0.05), (0.1, 0), (0.05, 0) to distances
    # 0.15, 0.05, 0 and stops in the goal zone: return -(0.15 + 0.05 + 0) = -0.2.
    # Goal (0.35, 0): distances 0.25, 0.15, 0.05, 0: return -0.45.
    opt, _, oracle = _inspect("dense")([[0.25, -0.05], [0.35, 0.0]], positions=[[0.2, -0.05], [0.0, 0.0]])
    np.testing.assert_allclose(opt, [-0.2, -0.45], rtol=1e-5)
    np.testing.assert_allclose(oracle, [[0.05, 0.0], [0.1, 0.0]], rtol=1e-5)
    # Sparse, goal (0.28, 0.96) on the unit circle: x arrives at step 3, y at step 10; distances
    # from step 4 on are 0.56, 0.46, ..., 0.16 (step 8), 0.06, 0; rewards 0.84 + 0.94 + 1 at steps
    # 8, 9, 10, then 1 for each of the 10 remaining steps: 12.78. (Symmetric for (0.96, 0.28).)
    opt, _, _ = _inspect("sparse")([[0.28, 0.96], [0.96, 0.28]])
    np.testing.assert_allclose(opt, [12.78, 12.78], rtol=1e-5)


def test_dense_early_termination_makes_later_steps_invalid():
    rec = trial("dense", [0.25, -0.05], oracle=True)
    valid = np.arange(100) < 3
    np.testing.assert_array_equal(rec.valid, np.broadcast_to(valid, rec.valid.shape))
    np.testing.assert_allclose(rec.reward[:, :3], np.broadcast_to([-0.15, -0.05, 0.0], (16, 3)), atol=1e-6)
    assert not np.any(rec.reward[:, 3:]) and not np.any(rec.expected_reward[:, 3:])
    np.testing.assert_allclose(rec.action[0, :3], [[0.1, -0.05], [0.1, 0.0], [0.05, 0.0]], atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_optimal_return_is_the_oracle_trial_return(variant):
    c = contract_of(variant)
    for i, task in enumerate(c.tasks):
        rec = c.trial(task, c.params(oracle=True))
        np.testing.assert_allclose(rec.reward.sum(-1), c.probe["optimal_return"][i], rtol=1e-6)
        if variant == "dense":
            assert not rec.valid[:, -1].any()  # the oracle reaches every goal within the horizon


def test_standing_still_scores_minus_horizon_times_goal_distance():
    c = contract_of("dense")
    for task in c.tasks:
        rec = c.trial(task, c.params())  # the all-zero script: the robot never moves
        assert rec.valid.all()
        distance = np.linalg.norm(task["goal"].astype(np.float64))
        np.testing.assert_allclose(rec.reward, -distance, rtol=1e-6)
        np.testing.assert_allclose(rec.reward.sum(-1), -100 * distance, rtol=1e-5)
    sparse = contract_of("sparse")
    assert not np.any(sparse.trial(sparse.tasks[0], sparse.params()).reward)  # 1 away from the goal


def test_oracle_and_random_agents_evaluate():
    """The evaluator runs continuous actions: the oracle has no regret, random actions in the box
    have plenty, and action frequencies are refused with one line."""
    f = family("dense")
    results = {}
    for spec in ("oracle", "random"):
        r = baselines.resolve(spec, f, 2)
        results[spec] = evaluate(r.agent, f, r.params, num_episodes=2, num_tasks=10, name=spec)
    oracle, random = results["oracle"], results["random"]
    np.testing.assert_allclose(oracle.regret, 0.0, atol=1e-5)
    assert np.all(oracle.optimal_return <= 0) and np.all(random.regret > 1.0)
    assert oracle.summary(provenance=False)["pseudo_regret"] is None
    with pytest.raises(tasks.ActionSpaceError, match="^action frequencies need discrete actions; point-navigation"):
        oracle.action_frequencies()


# --- what needs discrete actions fails with one line ---------------------------------------------


@pytest.mark.parametrize("spec", ["ts", "ucb1:c=0.1", "greedy", "egreedy", "ots", "gittins", "bayes-optimal", "psrl"])
def test_discrete_baselines_reject_point_navigation(spec):
    with pytest.raises(SpecError) as err:
        baselines.prepare(spec, family("dense"), 2)
    message = str(err.value)
    assert message.startswith(f"agent '{baselines.get(spec.split(':')[0]).name}' cannot run on point-navigation: ")
    assert "\n" not in message
    if spec in ("ts", "greedy"):
        assert "use it on bernoulli-bandit, gaussian-bandit" in message


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--agent", "oracle", "--task", "point-navigation", "--episodes", "2", "--actions"],
         "metarlkit: error: --actions needs discrete actions; point-navigation has continuous actions"),
        (["evaluate", "--agent", "ucb1:c=0.1", "--task", "point-navigation:variant=sparse", "--episodes", "2"],
         "metarlkit: error: agent 'ucb1' cannot run on point-navigation: it is a bandit agent; use it on "
         "bernoulli-bandit, gaussian-bandit, dependent-bandit, eleven-arm-bandit, restless-bandit"),
    ],
    ids=["actions", "bandit-agent"],
)
def test_cli_rejects_discrete_only_requests_with_exit_2(capsys, tmp_path, argv, message):
    out_file = tmp_path / "r.json"
    code, out, err = run_cli(capsys, *argv, "--json", str(out_file))
    assert code == 2 and out == ""
    assert err.splitlines() == [message]
    assert not out_file.exists()


def test_cli_reports_action_space_errors_as_one_line(capsys, monkeypatch):
    """Code that assumes discrete actions (e.g. an algorithm without continuous policies) fails at
    the CLI with one line and exit status 2, not a traceback."""
    from metarlkit import cli

    def needs_discrete_actions(args):
        return family("dense").num_actions

    monkeypatch.setattr(cli, "cmd_agents", needs_discrete_actions)
    code, out, err = run_cli(capsys, "agents")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "metarlkit: error: point-navigation has continuous actions (R^2 in [-0.1, 0.1]), not a number "
        "of discrete actions; this needs a family with discrete actions"
    ]


def test_tasks_lists_the_continuous_action_space(capsys):
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    assert "actions: continuous, R^2 in [-0.1, 0.1]; horizon 100" in out
    assert "actions: 5 discrete; horizon 1" in out
    code, out, _ = run_cli(capsys, "tasks", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    nav = rows["point-navigation"]
    assert nav["continuous"] is True and nav["options"] == {"variant": "dense", "goals": "random"} and nav["horizon"] == 100
    assert nav["actions"] == {"shape": [2], "low": -0.1, "high": 0.1}
    assert rows["bernoulli-bandit"]["actions"] == 5 and rows["bernoulli-bandit"]["continuous"] is False


def test_trained_runs_match_families_by_action_space():
    """A run trained on one family acts on another only with the same kind and shape of actions."""
    assert _action_signature(family("dense")) == _action_signature(family("sparse")) == ("continuous", (2,))
    assert _action_signature(tasks.make("bernoulli-bandit")) == ("discrete", 5)
    assert _action_signature(tasks.make("dependent-bandit")) != _action_signature(family("dense"))


def test_probe_keys_are_unused_by_deterministic_dynamics():
    """Environment keys do not matter: the dynamics are deterministic."""
    c = contract_of("sparse")
    script = c.random_script(7)
    a = c.trial(c.tasks[1], c.params(script), env_seed=0)
    b = c.trial(c.tasks[1], c.params(script), env_seed=3)
    np.testing.assert_array_equal(a.reward, b.reward)


# --- point-robot-wind ----------------------------------------------------------------------------


def test_the_wind_drifts_every_step_and_the_told_variant_observes_it():
    from metarlkit.tasks.navigation import PointRobotWind

    f, told = tasks.make("point-robot-wind"), tasks.from_spec("point-robot-wind:observe_wind=true")
    assert f.obs_shape == (2,) and told.obs_shape == (4,) and f.horizon == 20 and f.defines_optimum
    task = {"wind_angle": jnp.float32(np.pi / 2), "wind_speed": jnp.float32(0.05)}
    wind = np.asarray(PointRobotWind.wind(task))
    np.testing.assert_allclose(wind, [0.0, 0.05], atol=1e-7)
    obs, state = told.reset(None, task)
    np.testing.assert_allclose(obs, [0, 0, 0, 0.05], atol=1e-7)
    obs, state, reward, done, _ = told.step(None, state, jnp.float32([0.3, -0.02]), task)
    np.testing.assert_allclose(obs, [0.1, 0.03, 0.0, 0.05], atol=1e-6)  # clipped action + wind
    np.testing.assert_allclose(reward, -np.hypot(0.1, 0.97), rtol=1e-6)
    # the wind-aware oracle holds the goal against the wind once there
    at_goal = jnp.float32([0.0, 1.0])
    np.testing.assert_allclose(f.oracle_action(task, at_goal, 5), [0.0, -0.05], atol=1e-7)
    # every wind is below the action bound per coordinate
    drawn = jax.jit(jax.vmap(f.sample_task))(jax.random.split(jax.random.PRNGKey(0), 2000))
    winds = np.asarray(jax.vmap(PointRobotWind.wind)(drawn))
    speed = np.linalg.norm(winds, axis=1)
    assert speed.min() >= 0.02 - 1e-6 and speed.max() <= 0.08 + 1e-6 and np.abs(winds).max() < 0.1


def test_a_wind_change_inside_the_trial_drifts_by_the_second_wind():
    f = tasks.from_spec("point-robot-wind:change_at=25")
    assert not f.defines_optimum  # the optimum of an episode would depend on where the change falls
    c = shared_contract(f)
    task = {"wind_angle": np.float32(0.0), "wind_speed": np.float32(0.05),
            "after": {"wind_angle": np.float32(np.pi), "wind_speed": np.float32(0.03)},
            "change_step": np.int32(25)}
    rec = c.trial(task, c.params())  # stands still: it moves by the wind alone
    drift = (rec.next_obs - rec.obs).reshape(-1, 2)
    np.testing.assert_allclose(drift[:25], np.tile([0.05, 0.0], (25, 1)), atol=1e-6)
    np.testing.assert_allclose(drift[25:40], np.tile([-0.03, 0.0], (15, 1)), atol=1e-6)



def test_a_reversed_wind_keeps_its_speed_and_turns_around():
    from metarlkit.tasks.navigation import PointRobotWind

    f = tasks.from_spec("point-robot-wind:change_at=30,reverse=true")
    drawn = jax.jit(jax.vmap(f.sample_task))(jax.random.split(jax.random.PRNGKey(1), 500))
    before = np.asarray(jax.vmap(PointRobotWind.wind)(drawn))
    after = np.asarray(jax.vmap(PointRobotWind.wind)(drawn["after"]))
    np.testing.assert_allclose(after, -before, atol=1e-6)
    assert np.all(np.asarray(drawn["after"]["wind_angle"]) < 2 * np.pi)  # the same range as a drawn angle
    with pytest.raises(SpecError, match="reverse needs change_at"):
        tasks.from_spec("point-robot-wind:reverse=true")

# --- PEARL's goal list ---------------------------------------------------------------------------


def test_oyster_goals_are_pearls_published_list():
    f = tasks.from_spec("point-navigation:variant=sparse,goals=oyster")
    angles = np.linspace(0, np.pi, 100)
    goals = np.stack([np.cos(angles), np.sin(angles)], 1)
    np.random.RandomState(1337).shuffle(goals)
    train, test = tasks.task_set(f, "train", 80)["goal"], tasks.task_set(f, "test", 20)["goal"]
    np.testing.assert_allclose(train, goals[:80], atol=1e-7)
    np.testing.assert_allclose(test, goals[80:], atol=1e-7)
    np.testing.assert_allclose(tasks.task_set(f, "test", 5, start=15)["goal"], goals[95:], atol=1e-7)
    # a fresh training task is one of the 80 training goals, never a test goal
    drawn = np.asarray(jax.jit(jax.vmap(f.sample_task))(jax.random.split(jax.random.PRNGKey(0), 500))["goal"])
    assert {tuple(g) for g in drawn.round(5)} <= {tuple(g) for g in goals[:80].astype(np.float32).round(5)}
    with pytest.raises(SpecError, match="goals=oyster is PEARL's sparse point robot: use variant=sparse"):
        tasks.from_spec("point-navigation:goals=oyster")
    assert tasks.from_spec("point-navigation:variant=sparse").spec() == "point-navigation:variant=sparse"


def test_oyster_sets_beyond_the_list_are_refused_in_one_line(tmp_path, capsys):
    code = main(["evaluate", "--agent", "random", "--task", "point-navigation:variant=sparse,goals=oyster",
                 "--episodes", "1", "--num-tasks", "21", "--json", str(tmp_path / "out.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not (tmp_path / "out.json").exists()
    assert err[-1].endswith("num-tasks 21 exceeds point-navigation:goals=oyster,variant=sparse's test 20 tasks; "
                            "use --num-tasks 20 or fewer")
    code = main(["evaluate", "--agent", "random", "--task", "point-navigation:variant=sparse,goals=oyster",
                 "--episodes", "1", "--num-tasks", "5", "--split", "validation"])
    assert code != 0 and "has no validation tasks" in capsys.readouterr().err


def test_the_sparse_variant_reports_the_dense_reward_beside_the_sparse_one():
    c = shared_contract(tasks.from_spec("point-navigation:variant=sparse,goals=oyster"))
    task = index_task(tasks.task_set(c.family, "test", 1))
    rec = c.trial(task, c.params(c.random_script(7)))
    dense = -np.linalg.norm(rec.next_obs - np.asarray(task["goal"]), axis=-1)
    np.testing.assert_allclose(rec.dense_reward, dense, rtol=1e-6)
    np.testing.assert_allclose(rec.reward, np.where(dense >= -0.2, 1.0 + dense, 0.0), rtol=1e-6, atol=1e-7)
    assert shared_contract(family("dense")).trial(
        {"goal": np.zeros(2, np.float32)}, shared_contract(family("dense")).params()).dense_reward is None


def index_task(batch):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[0], batch)
