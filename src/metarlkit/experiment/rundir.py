"""Loading a trained run as an AdaptiveAgent: `metarlkit.load(RUN_DIR)`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax

from metarlkit.agents import AdaptiveAgent
from metarlkit.experiment import checkpoint
from metarlkit.experiment.config import build
from metarlkit.experiment.runner import (
    CHECKPOINT_FILE,
    RUN_FILE,
    RunDirError,
    check_config_hash,
    programs,
    read_run,
    read_status,
    seed_keys,
    snapshot_path,
    snapshot_updates,
)


class TrainedAgent(NamedTuple):
    """A trained agent, ready for `metarlkit.evaluate(agent.agent, agent.family, agent.params, ...)`."""

    agent: AdaptiveAgent
    params: Any  # one seed's trained parameters
    family: Any  # the task family it was trained on
    num_episodes: int  # episodes per trial it was trained for
    name: str  # e.g. 'rl2(runs/k5):seed=0'
    hyperparameters: dict[str, Any]  # the training config
    info: dict[str, Any]  # run.json
    status: dict[str, Any]  # status.json
    run_dir: str


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def load(run_dir: str | os.PathLike, seed: int = 0, agent_options: dict[str, Any] | None = None,
         update: int | None = None) -> TrainedAgent:
    """The agent trained in `run_dir` (seed index `seed` of a multi-seed run), from its checkpoint.

    A run still in progress loads its latest checkpoint. `agent_options` (values or strings) set
    the algorithm's declared evaluation-only options (`Algorithm.agent_options`, e.g. PEARL's
    `prior_episodes`); the result's hyperparameters record them as `agent_options`. `update` loads
    the parameters kept at that update by a run trained with snapshots (`train --snapshots`); its
    status is then the snapshot's (state 'snapshot', its updates, env steps and wall time).
    """
    from metarlkit import algos, tasks

    info = read_run(run_dir)
    name = info.get("algorithm_name")
    try:
        algo = algos.get(name)
    except ValueError:
        raise RunDirError(f"{run_dir} was trained with algorithm {name!r}, which is not registered here "
                          f"(registered: {', '.join(algos.names())}); register it before loading the run") from None
    config = build(algo.config, info["config"], source=str(Path(run_dir) / RUN_FILE))
    options = dict(agent_options or {})
    if options:
        config = _with_agent_options(algo, config, options, run_dir)
    if not isinstance(seed, int) or not 0 <= seed < config.seeds:
        raise RunDirError(f"{run_dir} has seeds 0..{config.seeds - 1}; got seed={seed!r}")
    family = tasks.from_spec(info["task"])
    trainer, init, _ = programs(algo, config, family, info["episodes"])
    template = jax.eval_shape(init, seed_keys(config))
    try:
        state, meta = checkpoint.load(Path(run_dir) / CHECKPOINT_FILE, template)
    except checkpoint.CheckpointError as err:
        raise RunDirError(str(err)) from None
    check_config_hash(run_dir, info, meta)
    status = read_status(run_dir)
    trained = trainer.trained_params(state)
    if update is not None:
        trained, status = _snapshot(run_dir, info, trained, update)
    params = jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x[seed]), trained)
    chosen = {k: getattr(config, k) for k in options}
    return TrainedAgent(
        agent=trainer.agent,
        params=params,
        family=family,
        num_episodes=info["episodes"],
        name=f"{algo.name}({os.path.normpath(str(run_dir))}):seed={seed}"
             + "".join(f",{k}={v}" for k, v in sorted(chosen.items())) + ("" if update is None else f",update={update}"),
        hyperparameters={**info["config"], **({"agent_options": chosen} if chosen else {})},
        info=info,
        status=status,
        run_dir=str(run_dir),
    )


def _with_agent_options(algo, config, options: dict[str, Any], run_dir):
    """`config` with the evaluation-only options set; RunDirError (one line) for any other name
    or a bad value."""
    from metarlkit.specs import SpecError

    allowed = algo.agent_options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = ", ".join(("seed", "update") + tuple(allowed))
        raise RunDirError(f"a {algo.name} run takes the options {takes}; got {unknown[0]!r} "
                          f"(training options are fixed by the run: train another with them)")
    try:
        return build(algo.config, dataclasses.asdict(config), options, source=f"{run_dir} agent")
    except (SpecError, ValueError) as err:
        raise RunDirError(str(err)) from None


def _snapshot(run_dir, info, template, update: int):
    """(every seed's trained parameters kept at `update`, the snapshot's status)."""
    kept = snapshot_updates(run_dir)
    if update not in kept:
        if not kept:
            raise RunDirError(f"{run_dir} kept no snapshots (train with --snapshots to keep the parameters after every chunk)")
        shown = ", ".join(map(str, kept[:8])) + (", ..." if len(kept) > 8 else "")
        raise RunDirError(f"{run_dir} has no snapshot at update {update}; it has updates {shown} (last {kept[-1]})")
    shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), template)
    try:
        params, meta = checkpoint.load(snapshot_path(run_dir, update), shapes)
    except checkpoint.CheckpointError as err:
        raise RunDirError(str(err)) from None
    check_config_hash(run_dir, info, meta)
    return params, {"state": "snapshot", "updates": int(meta["update"]), "env_steps": int(meta["env_steps"]),
                    "train_wall_s": float(meta.get("train_wall_s", 0.0))}
