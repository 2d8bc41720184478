"""The host loop of a training run: compiled chunks, then metrics, a checkpoint and progress.

Layout of a run directory:
  run.json             what was trained: algorithm, task, episodes, the full config, sizes, provenance
  status.json          state ('running', 'complete', 'diverged'), updates and env steps done, timings
  checkpoint.msgpack   the whole train state after the last good chunk (written atomically)
  metrics.csv/.jsonl   one row per (update, seed)
  tensorboard/seedN/   TensorBoard event files

A run is a fixed sequence of chunks of `updates_per_chunk` updates; a
checkpoint follows every chunk. `--resume` reloads the checkpoint and runs the remaining chunks
of the same sequence, so on the CPU a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from metarlkit.experiment import checkpoint
from metarlkit.experiment.config import build, to_dict
from metarlkit.experiment.metrics import MetricsLog
from metarlkit.utils import software_provenance, write_json

RUN_FILE = "run.json"
STATUS_FILE = "status.json"
CHECKPOINT_FILE = "checkpoint.msgpack"


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the last good checkpoint is kept."""


class RunDirError(ValueError):
    """The run directory cannot be used as asked (exists, missing, damaged)."""


def seed_keys(config) -> jax.Array:
    """Seed i of a run trains from PRNGKey(config.seed + i)."""
    return jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.seeds)])


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree)
               if jnp.issubdtype(x.dtype, jnp.floating))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not a run directory (no {RUN_FILE}); give the --out of a 'metarlkit train' run") from None
    except json.JSONDecodeError as err:
        raise RunDirError(f"{path} is damaged ({err})") from None


def read_status(run_dir) -> dict[str, Any]:
    try:
        with open(Path(run_dir) / STATUS_FILE) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {"state": "unknown"}


def train(
    algo,
    config,
    family,
    num_episodes: int,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    stop_after_chunks: int | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Trains `algo` (a module with `make_train`, `seeded`, `NAME`) and writes the run directory.

    Args:
      algo: the algorithm module, e.g. `metarlkit.algos.rl2`.
      config: its frozen config dataclass.
      family, num_episodes: what to train on.
      run_dir: the output directory (must be new or empty unless `resume`).
      resume: continue the run in `run_dir` from its checkpoint (config, family and episodes are
        taken from the run directory; the arguments given here are ignored).
      progress: draw a progress bar on stderr.
      tensorboard: also write TensorBoard event files.
      stop_after_chunks: stop (as if killed) after this many chunks; for tests of resuming.

    Returns:
      The final status dict (also in status.json).

    Raises:
      TrainingDiverged when a loss or parameter is not finite (the run directory keeps the last
      good checkpoint and records the failure in status.json).
    """
    run_dir = Path(run_dir)
    if resume:
        info = read_run(run_dir)
        from metarlkit import tasks

        family = tasks.from_spec(info["task"])
        num_episodes = info["episodes"]
        config = build(algo.Config, info["config"], source=f"{run_dir / RUN_FILE}")
    else:
        if (run_dir / RUN_FILE).exists():
            raise RunDirError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(f"{run_dir} exists and is not empty; choose a new --out directory")
    trainer, init, run_chunk = programs(algo, config, family, num_episodes)
    per_chunk = trainer.updates_per_chunk
    num_chunks = trainer.num_updates // per_chunk  # make_train rounds the budget to whole chunks
    keys = seed_keys(config)
    ckpt_path = run_dir / CHECKPOINT_FILE

    if resume:
        template = jax.eval_shape(init, keys)
        try:
            state, meta = checkpoint.load(ckpt_path, template)
        except checkpoint.CheckpointError as err:
            raise RunDirError(str(err)) from None
        state = jax.device_put(state)
        done_updates = int(meta["update"])
        status = read_status(run_dir)
        if status.get("state") == "complete" or done_updates >= trainer.num_updates:
            log(f"{run_dir}: already complete ({done_updates} updates)")
            return status
        if done_updates % per_chunk:
            raise RunDirError(f"{ckpt_path} is at update {done_updates}, not a chunk boundary of this run")
        train_wall = float(meta.get("train_wall_s", 0.0))
        compile_s = float(meta.get("compile_s", 0.0))
        log(f"resuming {run_dir} at update {done_updates}/{trainer.num_updates}")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        info = {
            "algorithm_name": algo.NAME,
            "task": family.spec(),
            "task_version": family.version,
            "episodes": num_episodes,
            "config": to_dict(config),
            "agent": trainer.agent_args,
            "num_updates": trainer.num_updates,
            "steps_per_update": trainer.steps_per_update,
            "updates_per_chunk": per_chunk,
            "created": _now(),
            "provenance": _provenance(),
        }
        write_json(run_dir / RUN_FILE, info)
        state = init(keys)
        done_updates, train_wall, compile_s = 0, 0.0, 0.0
        checkpoint.save(ckpt_path, state, {"update": 0, "train_wall_s": 0.0, "compile_s": 0.0})

    metrics_log = MetricsLog(run_dir, config.seeds, tensorboard=tensorboard)
    metrics_log.truncate(done_updates)
    status = _write_status(run_dir, "running", done_updates, trainer, train_wall, compile_s)
    bar = _progress_bar(progress, trainer, done_updates)
    chunks_run = 0
    try:
        for _ in range(done_updates // per_chunk, num_chunks):
            if stop_after_chunks is not None and chunks_run >= stop_after_chunks:
                break
            n = per_chunk
            t0 = time.perf_counter()
            executable = compiled_chunk(run_chunk, state, n)
            compile_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            new_state, metrics = executable(state)
            metrics = jax.tree_util.tree_map(np.asarray, metrics)
            elapsed = time.perf_counter() - t0
            bad = _first_bad(metrics)
            if bad is not None or not _finite(new_state.params):
                where = f"update {done_updates + 1 + bad[0]}, seed {bad[1]}" if bad else f"updates {done_updates + 1}-{done_updates + n}"
                message = (f"loss or parameters became NaN/inf at {where}; the last good checkpoint "
                           f"(update {done_updates}) is kept in {ckpt_path}; lower the step sizes "
                           f"({getattr(trainer, 'step_size_options', 'learning_rate or max_grad_norm')}) "
                           f"and start a new run")
                _write_status(run_dir, "diverged", done_updates, trainer, train_wall, compile_s, message)
                raise TrainingDiverged(message)
            state = new_state
            train_wall += elapsed
            metrics_log.write(done_updates + 1, trainer.steps_per_update, train_wall, metrics)
            done_updates += n
            checkpoint.save(ckpt_path, state, {"update": done_updates, "train_wall_s": train_wall, "compile_s": compile_s})
            status = _write_status(run_dir, "running", done_updates, trainer, train_wall, compile_s)
            chunks_run += 1
            if bar is not None:
                ret = float(np.mean(metrics[getattr(trainer, "progress_metric", "trial_return")][-1]))
                bar.set_postfix_str(f"{n * trainer.steps_per_update / elapsed:,.0f} steps/s, mean return {ret:.2f}")
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
        metrics_log.close()
    if done_updates >= trainer.num_updates:
        status = _write_status(run_dir, "complete", done_updates, trainer, train_wall, compile_s)
    return status


@functools.lru_cache(maxsize=16)
def programs(algo, config, family, num_episodes: int):
    """(Train, seeded init, seeded run_chunk) for a run; cached, so a resumed or repeated run in
    one process (tests, `reproduce`) reuses the compiled chunk."""
    trainer = algo.make_train(config, family, num_episodes)
    return (trainer, *algo.seeded(trainer))


_EXECUTABLES: dict[Any, Any] = {}


def compiled_chunk(run_chunk, state, n: int):
    """The compiled program of `run_chunk(state, n)` (compiled once per function, shapes and n)."""
    key = (run_chunk, n, jax.tree_util.tree_structure(state),
           tuple((x.shape, x.dtype) for x in jax.tree_util.tree_leaves(state)))
    if key not in _EXECUTABLES:
        _EXECUTABLES[key] = run_chunk.lower(state, n).compile()
    return _EXECUTABLES[key]


def _first_bad(metrics: dict[str, np.ndarray]):
    """(update index in the chunk, seed) of the first non-finite loss, or None."""
    bad = np.argwhere(~np.isfinite(metrics["loss"]))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


def _write_status(run_dir, state, updates, trainer, train_wall, compile_s, message=None):
    status = {
        "state": state,
        "updates": updates,
        "num_updates": trainer.num_updates,
        "env_steps": updates * trainer.steps_per_update,
        "train_wall_s": round(train_wall, 2),
        "compile_s": round(compile_s, 2),
        "steps_per_s": round(updates * trainer.steps_per_update / train_wall) if train_wall > 0 else None,
        "updated": _now(),
    }
    if message:
        status["message"] = message
    write_json(Path(run_dir) / STATUS_FILE, status)
    return status


def _progress_bar(enabled: bool, trainer, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=trainer.num_updates, initial=initial, unit="update", file=sys.stderr,
                dynamic_ncols=True, mininterval=0)


def _provenance() -> dict[str, Any]:
    return {**software_provenance(), "cpu_count": os.cpu_count()}


def budget_text(run_dir) -> str:
    """One line on what a run cost: env steps, updates, seeds and training wall time."""
    info, status = read_run(run_dir), read_status(run_dir)
    steps = status.get("env_steps") or 0
    wall = status.get("train_wall_s") or 0.0
    seeds = info["config"].get("seeds", 1)
    state = "" if status.get("state") == "complete" else f", {status.get('state')}"
    return (f"{steps / 1e6:.1f}M env steps ({status.get('updates')} updates, {seeds} seed{'s' if seeds > 1 else ''}) "
            f"in {wall / 60:.1f} min{state}")
