"""A reusable checker of the TaskFamily contract (see /work/shared/DESIGN.md, Contracts).

Usage from any test module::

    from contract import FamilyContract

    @pytest.fixture(scope="module")
    def contract():
        return FamilyContract(tasks.make("my-family"))

    @pytest.mark.parametrize("check", FamilyContract.CHECKS)
    def test_contract(contract, check):
        getattr(contract, check)()

Compile time dominates on a 2-core CPU, so a `FamilyContract` compiles three programs per family
and caches them: the task set of `num_set` tasks (the library's jit(vmap) of sample_task), a
*probe* -- jit(vmap over tasks) of reset, one step of every probe action, two fixed-action
rollouts over the horizon and optimal_return -- and one trial (`run_trial`, jitted) of a scripted,
task-aware probe agent. Host-side data (tasks, keys, records) is numpy: indexing jax arrays
eagerly would compile a gather per shape. `shared_contract` memoises one checker per family and
options, so test modules that check the same family share its compiled programs.

The probe agent acts from `params`: the family's `oracle_action` when params["oracle"] is true,
else a script of actions `params["script"][episode, step]`. The script is a traced argument, so
one compiled trial serves the oracle and every fixed action sequence.

Probe actions (`probe_actions`, [K, *action_shape]): for a discrete family every action (so an
action is its own index); for a continuous family (`TaskFamily.continuous`) a fixed set of vectors
-- zero, each corner of the box along the diagonal, an alternating corner, the box's midpoint and
one vector outside the box (the contract lets an agent output any finite vector). Random scripts
draw indices uniformly, or vectors uniformly in the box.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metarlkit import tasks
from metarlkit.agents import AdaptiveAgent
from metarlkit.tasks.base import StepInfo, TaskFamily
from metarlkit.trial import episode_keys, run_trial

REWARD_MODELS = ("bernoulli", "gaussian", "other")


class ProbeState(NamedTuple):
    task: Any
    episode: jax.Array  # int32, set from end_episode's episode_index
    t: jax.Array  # int32 step within the episode (counts observe calls)


def probe_agent(family: TaskFamily) -> AdaptiveAgent:
    """A task-aware agent acting by the oracle or by a fixed script of actions (see module doc)."""

    def init(params, key, num_episodes, task):
        del params, key, num_episodes
        return ProbeState(task, jnp.int32(0), jnp.int32(0))

    def act(params, state, obs, key):
        del key
        scripted = params["script"][state.episode, state.t]
        if not family.defines_optimum:  # no oracle to follow
            return scripted.astype(family.action_dtype), state
        oracle = family.oracle_action(state.task, obs, state.t)
        return jnp.where(params["oracle"], oracle, scripted).astype(family.action_dtype), state

    def observe(params, state, transition):
        del params, transition
        return state._replace(t=state.t + 1)

    def end_episode(params, state, episode_index, key):
        del params, key
        return state._replace(episode=episode_index + 1, t=jnp.int32(0))

    return AdaptiveAgent(init, act, observe, end_episode, task_aware=True)


def raw_keys(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """PRNG keys ([*shape, 2] uint32) made in numpy: no compile, unlike `jax.random.split`."""
    return np.random.default_rng(seed).integers(0, 2**32, (*shape, 2), dtype=np.uint32)


def to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def index(tree, i):
    """Element (or slice) `i` of a batched numpy pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def array_equal(x, y) -> bool:
    """Exact equality of dtype, shape and values; NaN equals NaN (e.g. the tabular MDP's
    undefined per-step optimum)."""
    x, y = np.asarray(x), np.asarray(y)
    nan_ok = np.issubdtype(x.dtype, np.floating)
    return x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=nan_ok)


def trees_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    same = jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    return same and all(array_equal(x, y) for x, y in zip(la, lb))


@functools.lru_cache(maxsize=None)
def shared_contract(family: TaskFamily, **options) -> "FamilyContract":
    """One FamilyContract per (family, options) in this process: test modules that check the same
    family (the registry-wide test_tasks and a family's own module) share its compiled programs."""
    return FamilyContract(family, **options)


def probe_actions(family: TaskFamily) -> np.ndarray:
    """The actions the probe steps from the start state ([K, *action_shape]; see module doc)."""
    if not family.continuous:
        return np.arange(family.num_actions, dtype=np.int32)
    shape = family.action_shape
    low, high = (np.broadcast_to(np.asarray(b, np.float32), shape) for b in family.action_bounds)
    alternating = np.where(np.arange(shape[0]) % 2 == 0, high, low)
    outside = high + (high - low)
    return np.stack([np.zeros(shape, np.float32), low, high, alternating, (low + high) / 2, outside])


class FamilyContract:
    """Checks one TaskFamily instance against the contract; compiled functions are cached.

    Args:
      family: the family under test.
      num_tasks: tasks (the first of the test split) used by the per-task checks.
      num_set: size of the task set drawn (one compiled shape); tasks beyond `num_tasks` serve the
        batch checks.
      num_episodes: episodes per probe trial (default: the family's fixed trial length, else 16).
      num_trials: probe trials (env keys) per task for the checks that average over randomness.
      seed: base of every other key used here.
    """

    def __init__(self, family: TaskFamily, *, num_tasks: int = 3, num_set: int = 10,
                 num_episodes: int | None = None, num_trials: int = 4, seed: int = 0):
        assert 2 <= num_tasks <= num_set
        self.family = family
        self.num_tasks = num_tasks
        self.num_set = num_set
        self.num_episodes = num_episodes or family.default_episodes or 16
        self.num_trials = num_trials
        # A family that says its episodes always last `horizon` steps gets trials without the
        # per-step freeze of the agent state: check_done_at_horizon holds it to that.
        self.ends_early = family.ends_early
        # [0] probe resets, [1] env keys of trials, [2] agent keys of trials.
        self.keys = raw_keys((3, 64), seed)
        self.actions = probe_actions(family)  # [K, *action_shape]
        self.action_dtype = np.dtype(family.action_dtype)

    # --- compiled programs (cached) ----------------------------------------------------------------
    def task_set(self, start: int = 0) -> dict:
        """Tasks start .. start + num_set - 1 of the test split, as numpy (memoised)."""
        cache = self.__dict__.setdefault("_task_sets", {})
        if start not in cache:
            cache[start] = to_numpy(tasks.task_set(self.family, "test", self.num_set, start=start))
        return cache[start]

    @functools.cached_property
    def tasks(self) -> list:
        return [index(self.task_set(), i) for i in range(self.num_tasks)]

    @property
    def num_probe_actions(self) -> int:
        return len(self.actions)

    @property
    def rollout_actions(self) -> list[int]:
        """Indices (into `probe_actions`) of the actions repeated over a whole rollout."""
        return sorted({0, self.num_probe_actions - 1})

    @functools.cached_property
    def probe_jit(self):
        """jit(vmap over tasks) of: reset; one step of every probe action from the start state; a
        rollout of `horizon` steps repeating each of `rollout_actions`; optimal_return."""
        f = self.family
        rollout_actions = jnp.asarray(self.actions[self.rollout_actions])
        probe = jnp.asarray(self.actions)

        def one(task, reset_key, step_keys, rollout_keys):
            obs, state = f.reset(reset_key, task)
            steps = jax.vmap(f.step, in_axes=(0, None, 0, None))(step_keys, state, probe, task)

            def rollout(action, keys):
                def body(state, key):
                    next_obs, state, reward, done, _ = f.step(key, state, action, task)
                    return state, (next_obs, reward, done)

                return jax.lax.scan(body, state, keys)[1]

            return {
                "obs": obs, "state": state, "steps": steps,
                "rollouts": jax.vmap(rollout)(rollout_actions, rollout_keys),
                "optimal_return": f.optimal_return(task) if f.defines_optimum else jnp.float32(0.0),
            }

        return jax.jit(jax.vmap(one))

    def run_probe(self, reset_keys=None, step_keys=None):
        n, f = self.num_set, self.family
        reset_keys = self.keys[0, :n] if reset_keys is None else reset_keys
        step_keys = raw_keys((n, self.num_probe_actions), seed=1) if step_keys is None else step_keys
        rollout_keys = raw_keys((n, len(self.rollout_actions), f.horizon), seed=2)
        return to_numpy(self.probe_jit(self.task_set(), reset_keys, step_keys, rollout_keys))

    @functools.cached_property
    def probe(self) -> dict:
        return self.run_probe()

    @functools.cached_property
    def trial_jit(self):
        family, agent, num_episodes = self.family, probe_agent(self.family), self.num_episodes

        def trial(params, task, env_key, agent_key):
            return run_trial(family, agent, params, task, env_key, agent_key, num_episodes, transitions=True)

        return jax.jit(trial)

    def params(self, script=None, oracle: bool = False):
        shape = (self.num_episodes, self.family.horizon, *self.family.action_shape)
        dtype = self.action_dtype
        script = np.zeros(shape, dtype) if script is None else np.asarray(script, dtype)
        assert script.shape == shape, (script.shape, shape)
        return {"script": script, "oracle": np.bool_(oracle)}

    def random_script(self, seed: int) -> np.ndarray:
        """[episode, step, *action_shape]: uniform indices, or uniform vectors in the action box."""
        f, rng = self.family, np.random.default_rng(seed)
        steps = (self.num_episodes, f.horizon)
        if not f.continuous:
            return rng.integers(0, f.num_actions, steps)
        low, high = f.action_bounds
        return rng.uniform(low, high, (*steps, *f.action_shape)).astype(np.float32)

    def fixed_script(self, a: int) -> np.ndarray:
        """Probe action `a` at every step of the trial."""
        shape = (self.num_episodes, self.family.horizon, *self.family.action_shape)
        return np.broadcast_to(self.actions[a], shape).copy()

    def trial(self, task, params, env_seed: int = 0, agent_seed: int = 0):
        return to_numpy(self.trial_jit(params, task, self.keys[1, env_seed], self.keys[2, agent_seed]))

    def episode_expected_returns(self, task, params) -> np.ndarray:
        """Per-episode sums of expected rewards over `num_trials` env keys, flattened."""
        out = [self.trial(task, params, env_seed=i).expected_reward.sum(-1) for i in range(self.num_trials)]
        return np.concatenate(out).astype(np.float64)

    # --- checks ------------------------------------------------------------------------------
    def check_static_attributes(self) -> None:
        f = self.family
        assert isinstance(f.continuous, bool)
        if f.continuous:
            assert isinstance(f.action_size, int) and f.action_size >= 1, f.action_size
            assert f.action_shape == (f.action_size,) and f.action_dtype == jnp.float32
            low, high = (np.asarray(b, np.float64) for b in f.action_bounds)
            assert np.broadcast_shapes(low.shape, high.shape, f.action_shape) == f.action_shape
            assert np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)
            # Code that assumes discrete actions fails with one line naming the family.
            with pytest.raises(tasks.ActionSpaceError, match="continuous actions") as err:
                f.num_actions  # noqa: B018
            assert f.name in str(err.value) and "\n" not in str(err.value)
        else:
            assert isinstance(f.num_actions, int) and f.num_actions >= 2, f.num_actions
            assert f.action_shape == () and f.action_dtype == jnp.int32
            with pytest.raises(tasks.ActionSpaceError, match="discrete actions"):
                f.action_size  # noqa: B018
        assert f.describe_actions() and "\n" not in f.describe_actions()
        assert isinstance(f.obs_shape, tuple) and all(isinstance(d, int) and d >= 1 for d in f.obs_shape)
        assert isinstance(f.horizon, int) and f.horizon >= 1, f.horizon
        assert isinstance(f.version, int) and f.version >= 1
        assert f.reward_model in REWARD_MODELS, f.reward_model
        assert f.default_episodes is None or f.default_episodes >= 1
        assert f.description and "\n" not in f.description
        hash(f)  # families are closed over by cached compiled functions: they must be hashable
        if f.name in tasks.names():
            rebuilt = tasks.from_spec(f.spec())
            assert rebuilt == f, f"spec {f.spec()!r} rebuilds {rebuilt!r}, not {f!r}"

    def _check_obs(self, obs, batch: tuple[int, ...]) -> None:
        assert obs.shape == batch + self.family.obs_shape, (obs.shape, self.family.obs_shape)
        assert obs.dtype == np.float32, obs.dtype
        assert np.all(np.isfinite(obs))

    def check_shapes_and_dtypes(self) -> None:
        """Tasks are pytrees of finite arrays; obs float32 [obs_shape]; reward a finite float
        scalar; done a bool scalar; info a StepInfo of scalars; every probe action is accepted
        (every action in range, or vectors in and outside the box); optimal_return a finite scalar
        and oracle_action an action in range (an index, or a finite vector in the box)."""
        f, probe = self.family, self.probe
        n, k = self.num_set, self.num_probe_actions
        for leaf in jax.tree_util.tree_leaves(self.task_set()):
            assert leaf.shape[0] == n
            assert np.all(np.isfinite(np.asarray(leaf, np.float64))), f"task leaf not finite: {leaf}"
        self._check_obs(probe["obs"], (n,))
        next_obs, next_state, reward, done, info = probe["steps"]
        self._check_obs(next_obs, (n, k))
        assert jax.tree_util.tree_structure(next_state) == jax.tree_util.tree_structure(probe["state"])
        assert reward.shape == (n, k) and np.issubdtype(reward.dtype, np.floating), reward.dtype
        assert np.all(np.isfinite(reward))
        assert done.shape == (n, k) and done.dtype == np.bool_, done.dtype
        assert isinstance(info, StepInfo), type(info)
        terminated = np.broadcast_to(np.asarray(info.terminated), (n, k))
        assert terminated.dtype == np.bool_, terminated.dtype
        assert not np.any(terminated & ~done), "terminated without done"
        assert info.expected_reward.shape == (n, k) and np.all(np.isfinite(info.expected_reward))
        assert info.optimal_expected_reward.shape == (n, k)
        if f.defines_pseudo_regret:
            assert np.all(np.isfinite(info.optimal_expected_reward))
            assert np.all(info.expected_reward <= info.optimal_expected_reward + 1e-6)
        opt = probe["optimal_return"]
        assert opt.shape == (n,) and np.all(np.isfinite(opt)), opt
        if not f.defines_optimum:
            return
        # oracle_action: an action of the family's shape and kind (traced only, no compile); in
        # range (from a trial).
        oracle = jax.eval_shape(f.oracle_action, self.tasks[0], probe["obs"][0], np.int32(0))
        assert oracle.shape == f.action_shape, (oracle, f.action_shape)
        actions = self.trial(self.tasks[0], self.params(oracle=True)).action
        if f.continuous:
            assert np.issubdtype(oracle.dtype, np.floating), oracle
            low, high = f.action_bounds
            assert np.all(np.isfinite(actions)) and np.all((low <= actions) & (actions <= high)), actions
        else:
            assert np.issubdtype(oracle.dtype, np.integer), oracle
            assert np.all((0 <= actions) & (actions < f.num_actions)), actions

    def check_jit_and_vmap(self) -> None:
        """The probe's jit(vmap over tasks) of reset and step agrees element by element with the
        same step taken inside a jitted trial (no vmap), given the same keys."""
        env_key = self.keys[1, 0]
        reset_key, step_base = episode_keys(env_key, 0)
        step_key = np.asarray(jax.random.fold_in(step_base, 0))
        n = self.num_set
        probe = self.run_probe(np.broadcast_to(np.asarray(reset_key), (n, 2)),
                               np.broadcast_to(step_key, (n, self.num_probe_actions, 2)))
        for i, task in enumerate(self.tasks):
            for a in self.rollout_actions:
                script = self.random_script(4)
                script[0, 0] = self.actions[a]
                rec = self.trial(task, self.params(script), env_seed=0)
                _, _, reward, _, info = index(probe["steps"], (i, a))
                np.testing.assert_allclose(rec.reward[0, 0], reward, rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(rec.expected_reward[0, 0], info.expected_reward, rtol=1e-6)

    def check_determinism(self) -> None:
        """Same keys give the same outputs; different keys give different tasks."""
        assert trees_equal(self.probe, self.run_probe())
        assert trees_equal(self.task_set(), to_numpy(tasks.task_set(self.family, "test", self.num_set)))
        params = self.params(self.random_script(0))
        assert trees_equal(self.trial(self.tasks[0], params), self.trial(self.tasks[0], params))
        leaves = jax.tree_util.tree_leaves(self.task_set())
        rows = {np.concatenate([np.ravel(x[i]) for x in leaves]).tobytes() for i in range(self.num_set)}
        assert len(rows) >= 2, "sample_task ignores its key"

    def check_done_at_horizon(self) -> None:
        """A fixed-action rollout reports done at step `horizon` (and, unless the family ends
        episodes early, not before); in a trial every step is then valid."""
        f = self.family
        dones = self.probe["rollouts"][2]  # [task, action, step]
        if self.ends_early:
            assert np.all(dones.any(-1)), "no done within the horizon"
        else:
            expected = np.arange(f.horizon) == f.horizon - 1
            assert np.all(dones == expected), f"done flags {dones[0, 0]}, expected {expected}"
            rec = self.trial(self.tasks[0], self.params(self.random_script(1)))
            assert rec.valid.shape == (self.num_episodes, f.horizon)
            assert rec.valid.all()

    def check_trial_records(self) -> None:
        """A trial's records have the right shapes, actions follow the script, rewards are finite
        and zero wherever a step is not valid."""
        f = self.family
        script = self.random_script(2)
        rec = self.trial(self.tasks[0], self.params(script))
        shape = (self.num_episodes, f.horizon)
        assert rec.extras is None  # nothing recorded unless `record` is given
        for name, x in rec._asdict().items():
            if name != "extras" and x is not None:
                expected = {"action": shape + f.action_shape, "obs": shape + f.obs_shape,
                            "next_obs": shape + f.obs_shape}.get(name, shape)
                assert x.shape == expected, (name, x.shape, expected)
        assert rec.action.dtype == self.action_dtype, rec.action.dtype
        # (after an early end the agent is frozen: only valid steps follow the script)
        np.testing.assert_array_equal(rec.action[rec.valid], script.astype(self.action_dtype)[rec.valid])
        assert np.all(np.isfinite(rec.reward)) and np.all(np.isfinite(rec.expected_reward))
        assert not np.any(rec.reward[~rec.valid]) and not np.any(rec.expected_reward[~rec.valid])
        # Full transitions: each valid step's next observation is the next step's observation, and
        # every episode's last valid step (only it) ends it, either terminated or truncated.
        nxt = rec.valid[:, 1:]
        np.testing.assert_array_equal(rec.next_obs[:, :-1][nxt], rec.obs[:, 1:][nxt])
        ends = rec.terminated | rec.truncated
        assert not np.any(rec.terminated & rec.truncated)
        last = rec.valid & ~np.concatenate([rec.valid[:, 1:], np.zeros_like(rec.valid[:, :1])], axis=1)
        np.testing.assert_array_equal(ends, last)
        if not self.ends_early:
            assert not np.any(rec.terminated), "a family that never ends early reported a true end"
        # Success is recorded only for families that declare it, and only on valid steps.
        if f.defines_success:
            assert rec.success.shape == shape and not np.any(rec.success & ~rec.valid)
        else:
            assert rec.success is None

    def check_task_persists(self) -> None:
        """Auto-reset keeps the task: with a deterministic reset, the first step's expected reward
        for the same action is the same in every episode of a trial."""
        if self.num_episodes < 2 or getattr(self.family, "changes", False):
            return  # (a task whose dynamics change inside the trial: test_control checks the switch)
        f = self.family
        starts = [to_numpy(jax.jit(f.reset)(k, self.tasks[0])[0]) for k in self.keys[0, :2]]
        if not np.array_equal(*starts):
            return  # a random start state (pendulum): the family's own tests check its task persists
        first_actions = np.arange(self.num_episodes) % self.num_probe_actions  # probe indices
        for task in self.tasks:
            script = self.random_script(3)
            script[:, 0] = self.actions[first_actions]
            rec = self.trial(task, self.params(script))
            for a in range(self.num_probe_actions):
                first = rec.expected_reward[first_actions == a, 0]
                assert np.all(first == first[0]), f"action {self.actions[a]}: expected reward changes over episodes {first}"

    def check_optimal_return_bounds_fixed_sequences(self, num_sequences: int = 4) -> None:
        """No fixed action sequence beats `optimal_return` in expectation."""
        if not self.family.defines_optimum:
            return
        for i, task in enumerate(self.tasks):
            opt = float(self.probe["optimal_return"][i])
            scripts = [self.fixed_script(a) for a in range(self.num_probe_actions)]
            scripts += [self.random_script(10 + j) for j in range(num_sequences)]
            for script in scripts:
                r = self.episode_expected_returns(task, self.params(script))
                se = r.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else 0.0
                assert r.mean() <= opt + 4 * se + 1e-4 * (1 + abs(opt)), (r.mean(), opt, se)

    def check_oracle_achieves_optimal_return(self) -> None:
        """The oracle's mean expected return per episode equals `optimal_return` (up to noise)."""
        if not self.family.defines_optimum:
            return
        for i, task in enumerate(self.tasks):
            opt = float(self.probe["optimal_return"][i])
            r = self.episode_expected_returns(task, self.params(oracle=True))
            se = r.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else 0.0
            assert abs(r.mean() - opt) <= 4 * se + 1e-4 * (1 + abs(opt)), (r.mean(), opt, se)

    def check_common_random_numbers(self) -> None:
        """Environment draws depend only on the environment key, never on the agent or its key.

        Two scripts on the same task and env key: in families with constant observations the same
        action at the same (episode, step) gets the same reward; Bernoulli rewards are coupled
        monotonically (one uniform per pull: a higher mean never gets a lower reward); Gaussian
        reward noise (reward - expected reward) is identical whatever the action.
        """
        f = self.family
        task = self.tasks[0]
        script = self.random_script(20)
        other = script.copy()
        steps = other.reshape(-1, *f.action_shape)  # a view: half the steps' actions differ
        if f.continuous:
            steps[::2] = self.random_script(21).reshape(steps.shape)[::2]
        else:
            steps[::2] = (steps[::2] + 1) % f.num_actions
        a, b = self.params(script), self.params(other)
        ra, rb = self.trial(task, a), self.trial(task, b)
        # The agent's key does not change anything for a deterministic agent.
        assert trees_equal(ra, self.trial(task, a, agent_seed=5))
        same = (ra.action == rb.action).reshape(*ra.valid.shape, -1).all(-1)
        rollout_obs = self.probe["rollouts"][0]
        if np.all(rollout_obs == self.probe["obs"][:, None, None]):  # observations never change
            assert same.any() and (~same).any()
            np.testing.assert_array_equal(ra.reward[same], rb.reward[same])
        if f.reward_model == "bernoulli":
            higher = ra.expected_reward >= rb.expected_reward
            assert np.all(ra.reward[higher] >= rb.reward[higher])
            assert np.all(ra.reward[~higher] <= rb.reward[~higher])
        elif f.reward_model == "gaussian":
            np.testing.assert_allclose(ra.reward - ra.expected_reward, rb.reward - rb.expected_reward,
                                       rtol=0, atol=1e-5)
        # Other env keys give other draws (for families with random rewards).
        if f.reward_model in ("bernoulli", "gaussian"):
            draws = {self.trial(task, a, env_seed=i).reward.tobytes() for i in range(self.num_trials)}
            assert len(draws) > 1, "rewards do not depend on the environment key"

    def check_task_set_prefix(self) -> None:
        """Each task depends on its index only: tasks start .. start + M - 1 drawn from an offset
        equal the same tasks drawn from 0 (the prefix property, with one compiled batch shape;
        test_tasks checks M=10 against M=50 literally on one family)."""
        m = self.num_set
        half = m // 2
        shifted = self.task_set(start=half)
        assert trees_equal(index(shifted, slice(0, m - half)), index(self.task_set(), slice(half, m))), \
            "the same task index gives different tasks in different batches"

    @functools.cached_property
    def model_jit(self):
        """jit(vmap over steps) of the family's reward_fn, dynamics_fn and terminated_fn, each step
        under the task in force at its trial step."""
        f = self.family

        def one(task, trial_step, obs, action, next_obs):
            current = f.task_at(task, trial_step)
            return (f.reward_fn(obs, action, next_obs, current), f.dynamics_fn(obs, action, current),
                    f.terminated_fn(obs, action, next_obs, current))

        return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0)))

    def check_model_functions(self) -> None:
        """Where a family declares `defines_model`, its reward_fn, dynamics_fn and terminated_fn
        reproduce every valid step of a trial (under the task in force at that trial step);
        elsewhere they raise NotImplementedError."""
        f = self.family
        if not f.defines_model:
            with pytest.raises(NotImplementedError):
                f.reward_fn(None, None, None, None)
            with pytest.raises(NotImplementedError):
                f.dynamics_fn(None, None, None)
            return
        for task in self.tasks[:2]:
            rec = self.trial(task, self.params(self.random_script(30)))
            steps = np.arange(self.num_episodes * f.horizon).reshape(rec.valid.shape)
            v = rec.valid
            reward, next_obs, terminated = to_numpy(self.model_jit(
                task, steps[v], rec.obs[v], rec.action[v], rec.next_obs[v]))
            np.testing.assert_allclose(reward, rec.reward[v], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(next_obs, rec.next_obs[v], rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(terminated, rec.terminated[v])

    CHECKS = (
        "check_static_attributes",
        "check_shapes_and_dtypes",
        "check_jit_and_vmap",
        "check_determinism",
        "check_done_at_horizon",
        "check_trial_records",
        "check_task_persists",
        "check_optimal_return_bounds_fixed_sequences",
        "check_oracle_achieves_optimal_return",
        "check_common_random_numbers",
        "check_task_set_prefix",
        "check_model_functions",
    )

    def check_all(self) -> None:
        for name in self.CHECKS:
            getattr(self, name)()
