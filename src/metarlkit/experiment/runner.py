"""The host loop of a training run: compiled chunks, then metrics, a checkpoint and progress.

Layout of a run directory:
  run.json             what was trained: algorithm, task, episodes, the full config, phases, the
                       training tasks, sizes, provenance (and, for a run started from another,
                       `init_from` and `adapted_to`)
  status.json          state ('running', 'complete', 'diverged'), updates and env steps done, timings
                       (and the current phase, for algorithms that train in several)
  checkpoint.msgpack   the whole train state after the last good chunk (written atomically)
  metrics.csv/.jsonl   one row per (update, seed)
  tensorboard/seedN/   TensorBoard event files
  snapshots/           with `--snapshots`: the trained parameters (every seed's, nothing else) at
                       the start and after every chunk, `update-0000060.msgpack`, so any of them
                       is scored by the common evaluator (`RUN_DIR:update=60`)

A run is a fixed sequence of chunks (of each phase's `updates_per_chunk` updates, phase after
phase); a checkpoint follows every chunk. `--resume` reloads the checkpoint and runs the remaining chunks
of the same sequence, so on the CPU a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

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
SNAPSHOT_DIR = "snapshots"
RUN_FORMAT = 2  # run.json layout: 2 adds run_format, phases and train_tasks (1: before them)


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


def config_hash(info: dict[str, Any]) -> str:
    """sha256 of what determines a run's train state: algorithm, task, version, episodes, config.
    Every checkpoint records it, so a run.json edited after the checkpoint (or a checkpoint copied
    from another run) is reported rather than trained on or scored."""
    keys = ("algorithm_name", "task", "task_version", "episodes", "config")
    text = json.dumps({k: info.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_config_hash(run_dir, info: dict[str, Any], meta: dict[str, Any]) -> None:
    """RunDirError when the checkpoint was written under another config than run.json's now."""
    stored = meta.get("config_hash")
    if stored is not None and stored != config_hash(info):
        raise RunDirError(f"{Path(run_dir) / RUN_FILE} does not match its checkpoint (config hash {config_hash(info)}, "
                          f"checkpoint {stored}): run.json was edited or the checkpoint comes from another run; "
                          f"restore the file (to resume with the edited one: --accept-config-change)")


class RunLock:
    """One trainer per run directory: an exclusive `flock` on RUN_DIR/.lock, held while training.

    The operating system releases it when the process ends, however it ends, so a lock left by a
    crashed trainer is never stale; the file only says who held it last.
    """

    NAME = ".lock"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.NAME
        self.fd: int | None = None

    def __enter__(self):
        import fcntl
        import socket

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 200).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            self.fd = None
            raise RunDirError(f"{self.path.parent} is being trained by {holder}; wait for it to finish "
                              f"or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


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
    preset: str | None = None,
    accept_config_change: bool = False,
    init_from: str | os.PathLike | None = None,
    adapt_to: str | os.PathLike | None = None,
    snapshots: bool = False,
) -> dict[str, Any]:
    """Trains a registered algorithm and writes the run directory.

    Args:
      algo: the algorithm's record (`metarlkit.algos.get(name)`).
      config: its frozen config dataclass.
      family, num_episodes: what to train on.
      run_dir: the output directory (must be new or empty unless `resume`).
      resume: continue the run in `run_dir` from its checkpoint (config, family and episodes are
        taken from the run directory; the arguments given here are ignored).
      progress: draw a progress bar on stderr.
      tensorboard: also write TensorBoard event files.
      stop_after_chunks: stop (as if killed) after this many chunks; for tests of resuming.
      preset: the name of the preset the config started from, recorded in run.json.
      accept_config_change: resume although run.json's config differs from the one the checkpoint
        was trained with (the change is recorded in run.json's `config_changes`).
      init_from: a new run starts from this run's last checkpoint (the whole train state: policy,
        optimiser state, keys, counters) instead of `init`, trained on with `config` (same algorithm,
        task, episodes and seeds; options that change the state's shapes cannot differ). Recorded
        in run.json's `init_from`.
      adapt_to: with `init_from`, a recording (`metarlkit.recording`) of a target: each seed's start
        state is first moved toward it by the algorithm's `adapt` (recorded in run.json's `adapted_to`).
      snapshots: also keep the trained parameters at the start and after every chunk
        (`snapshots/`, read by `load(run_dir, update=N)`); recorded in run.json, so a resumed run
        keeps them too.

    Returns:
      The final status dict (also in status.json).

    Raises:
      ValueError (one line) when the config does not fit the task or trial, before anything is written.
      TrainingDiverged when a watched metric or the trained parameters are not finite (the run
      directory keeps the last good checkpoint and records the failure in status.json).
    """
    run_dir = Path(run_dir)
    start = None
    if adapt_to is not None and init_from is None:
        raise ValueError("adapting to a recording needs a run to start from (--init-from RUN_DIR)")
    if resume and init_from is not None:
        raise ValueError("--init-from starts a new run; a resumed run continues from its own checkpoint")
    if not resume:
        algo.check_run(config, family, num_episodes)
        _check_new_run_dir(run_dir)
        _check_state_fits(algo, config, family, num_episodes)
        if init_from is not None:
            start = _start_from(algo, config, family, num_episodes, Path(init_from), adapt_to, log)
        run_dir.mkdir(parents=True, exist_ok=True)
    elif not (run_dir / RUN_FILE).is_file():
        read_run(run_dir)  # raises the one-line error
    with RunLock(run_dir):
        if not resume:
            _check_new_run_dir(run_dir)  # again under the lock: another trainer may have started it
        return _train_locked(algo, config, family, num_episodes, run_dir, resume, progress, tensorboard,
                             stop_after_chunks, log, preset, accept_config_change, start, snapshots)


MEMORY_FRACTION = 0.8  # of the machine's memory a train state may take (the chunk's work needs the rest)


def _check_state_fits(algo, config, family, num_episodes: int) -> None:
    """ValueError (one line) when the train state alone (every seed's parameters, optimiser state and
    buffers, from shapes only: nothing is allocated) would not fit in this machine's memory."""
    _, init, _ = programs(algo, config, family, num_episodes)
    template = jax.eval_shape(init, seed_keys(config))
    need = sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(template))
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > MEMORY_FRACTION * have:
        raise ValueError(f"the train state of this run needs {need / 2**30:,.1f} GiB, more than this machine's "
                         f"{have / 2**30:,.1f} GiB allows; make the run smaller (fewer seeds, smaller networks "
                         f"or buffers)")


def _check_new_run_dir(run_dir: Path) -> None:
    if (run_dir / RUN_FILE).exists():
        raise RunDirError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    if run_dir.exists() and any(p.name != RunLock.NAME for p in run_dir.iterdir()):
        raise RunDirError(f"{run_dir} exists and is not empty; choose a new --out directory")


class StartState(NamedTuple):
    """A new run's first train state taken from another run (`train(init_from=...)`)."""

    state: Any  # seeded, in the new run's structure
    record: dict[str, Any]  # run.json entries: init_from, and adapted_to when adapted
    train_tasks: dict[str, Any] | None  # run.json's train_tasks (the source run's, or the adapted distribution)


ADAPT_STREAM = 0x41444150  # folded into a seed's key for its adaptation draws


def _state_shapes(tree) -> tuple:
    return (jax.tree_util.tree_structure(tree),
            tuple((tuple(x.shape), np.dtype(x.dtype)) for x in jax.tree_util.tree_leaves(tree)))


def _start_from(algo, config, family, num_episodes: int, source: Path, adapt_to, log) -> StartState:
    """The last checkpoint of run `source` as the first state of a new run under `config`, moved
    toward the recording `adapt_to` by `algo.adapt` when given. Every check runs before anything
    is written; errors are one line (RunDirError or ValueError)."""
    info = read_run(source)
    if info["algorithm_name"] != algo.name:
        raise RunDirError(f"{source} is a {info['algorithm_name']} run; a {algo.name} run can only start from a {algo.name} run")
    if info["task"] != family.spec() or info["episodes"] != num_episodes:
        raise RunDirError(f"{source} trained on {info['task']} ({info['episodes']} episodes); a run started from it "
                          f"trains on the same task and episodes")
    stored = info["config"]
    if (stored.get("seed"), stored.get("seeds")) != (config.seed, config.seeds):
        raise ValueError(f"{source} trained seeds {stored.get('seed')} .. {stored.get('seed', 0) + stored.get('seeds', 1) - 1}; "
                         f"a run started from it trains the same seeds (drop --seed and --seeds)")
    if adapt_to is not None and algo.adapt is None:
        from metarlkit import algos

        able = [name for name in algos.names() if algos.get(name).adapt is not None]
        raise ValueError(f"{algo.name} cannot adapt to recorded trajectories (--adapt-to); "
                         f"algorithms that can: {', '.join(able) or 'none'}")
    _, init, _ = programs(algo, config, family, num_episodes)
    keys = seed_keys(config)
    template = jax.eval_shape(init, keys)
    _, source_init, _ = programs(algo, build(algo.config, stored, source=f"{source / RUN_FILE}"), family, num_episodes)
    if _state_shapes(jax.eval_shape(source_init, keys)) != _state_shapes(template):
        raise ValueError(f"these options change the shapes of the train state {source} holds (network sizes, "
                         f"batch or buffer sizes); keep them as that run's to start from it")
    try:
        state, meta = checkpoint.load(source / CHECKPOINT_FILE, template)
    except checkpoint.CheckpointError as err:
        raise RunDirError(str(err)) from None
    check_config_hash(source, info, meta)
    status = read_status(source)
    if status.get("state") != "complete":
        log(f"note: {source} is {status.get('state')} at update {meta['update']}; starting from that checkpoint")
    record: dict[str, Any] = {"init_from": {"run": str(source.resolve()), "update": int(meta["update"]),
                                            "config_hash": meta.get("config_hash")}}
    train_tasks = info.get("train_tasks")
    if adapt_to is not None:
        from metarlkit import recording

        rec = recording.load(adapt_to, family)
        pieces, per_seed = [], []
        for i in range(config.seeds):
            key = jax.random.fold_in(jax.random.PRNGKey(config.seed + i), ADAPT_STREAM)
            new, seed_info = algo.adapt(config, family, jax.tree_util.tree_map(lambda x: x[i], state), rec, key)
            pieces.append(new)
            per_seed.append({"seed": config.seed + i, **seed_info})
            if seed_info.get("message"):
                log(f"seed {config.seed + i}: {seed_info['message']}")
        state = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *pieces)
        if _state_shapes(state) != _state_shapes(template):
            raise ValueError(f"{algo.name}'s adapt changed the train state's structure or shapes")
        with open(adapt_to, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        record["adapted_to"] = {
            "file": str(Path(adapt_to).resolve()), "sha256": digest, "transitions": rec.num_transitions,
            "recorded": {k: rec.meta[k] for k in ("task", "agent", "seed", "episodes", "physics", "parameters")
                         if k in rec.meta},
            "seeds": per_seed,
        }
        if "distribution" in per_seed[0]:
            train_tasks = {"source": "adapted", "distribution": per_seed[0]["distribution"],
                           "note": "seed 0's adapted source distribution (each seed's in adapted_to)"}
    return StartState(state, record, train_tasks)


def snapshot_path(run_dir, update: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"update-{update:07d}.msgpack"


def snapshot_updates(run_dir) -> list[int]:
    """The updates a run kept snapshots at, in order."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    found = []
    for p in folder.glob("update-*.msgpack") if folder.is_dir() else ():
        digits = p.stem.partition("-")[2]
        if digits.isdigit():
            found.append(int(digits))
    return sorted(found)


def _train_locked(algo, config, family, num_episodes, run_dir: Path, resume, progress, tensorboard,
                  stop_after_chunks, log, preset, accept_config_change, start=None,
                  snapshots: bool = False) -> dict[str, Any]:
    if resume:
        info = read_run(run_dir)
        from metarlkit import tasks

        if info["algorithm_name"] != algo.name:
            raise RunDirError(f"{run_dir} is a {info['algorithm_name']} run, not {algo.name}")
        family = tasks.from_spec(info["task"])
        num_episodes = info["episodes"]
        config = build(algo.config, info["config"], source=f"{run_dir / RUN_FILE}")
    trainer, init, chunks = programs(algo, config, family, num_episodes)
    # A run started from another's state skips the phases that only a first start runs; a resumed
    # run runs the phases its run.json lists (as it was started).
    if resume and "phases" in info:
        recorded = [p["name"] for p in info["phases"]]
        active = [i for i, p in enumerate(trainer.phases) if p.name in recorded]
    else:
        active = [i for i, p in enumerate(trainer.phases) if not (start is not None and p.first_start_only)]
    phases = [trainer.phases[i] for i in active]
    plan = Plan(phases)
    keys = seed_keys(config)
    ckpt_path = run_dir / CHECKPOINT_FILE

    if resume:
        template = jax.eval_shape(init, keys)
        try:
            state, meta = checkpoint.load(ckpt_path, template)
        except checkpoint.CheckpointError as err:
            raise RunDirError(str(err)) from None
        state = jax.device_put(state)
        if meta.get("config_hash", config_hash(info)) != config_hash(info):
            if not accept_config_change:
                check_config_hash(run_dir, info, meta)
            info.setdefault("config_changes", []).append(
                {"at_update": int(meta["update"]), "from_hash": meta["config_hash"], "to_hash": config_hash(info),
                 "accepted": _now()})
            write_json(run_dir / RUN_FILE, info)
            log(f"resuming {run_dir} with its edited run.json (recorded in config_changes)")
        done_updates = int(meta["update"])
        status = read_status(run_dir)
        if status.get("state") == "complete" or done_updates >= plan.num_updates:
            log(f"{run_dir}: already complete ({done_updates} updates)")
            return status
        if not plan.at_chunk_boundary(done_updates):
            raise RunDirError(f"{ckpt_path} is at update {done_updates}, not a chunk boundary of this run")
        train_wall = float(meta.get("train_wall_s", 0.0))
        compile_s = float(meta.get("compile_s", 0.0))
        log(f"resuming {run_dir} at update {done_updates}/{plan.num_updates}")
    else:
        first = phases[0]
        info = {
            "run_format": RUN_FORMAT,
            "algorithm_name": algo.name,
            "task": family.spec(),
            "task_version": family.version,
            "episodes": num_episodes,
            "preset": preset,
            "config": to_dict(config),
            "agent": trainer.agent_args,
            "num_updates": plan.num_updates,
            "steps_per_update": first.steps_per_update,
            "updates_per_chunk": first.updates_per_chunk,
            "phases": [{"name": p.name, "num_updates": p.num_updates, "updates_per_chunk": p.updates_per_chunk,
                        "steps_per_update": p.steps_per_update} for p in phases],
            "train_tasks": (start.train_tasks if start is not None and start.train_tasks is not None
                            else _train_tasks_info(algo, config, family)),
            **({"snapshots": True} if snapshots else {}),
            **(start.record if start is not None else {}),
            "created": _now(),
            "provenance": _provenance(),
        }
        write_json(run_dir / RUN_FILE, info)
        state = jax.device_put(start.state) if start is not None else init(keys)
        done_updates, train_wall, compile_s = 0, 0.0, 0.0
        checkpoint.save(ckpt_path, state, {"update": 0, "train_wall_s": 0.0, "compile_s": 0.0,
                                           "config_hash": config_hash(info)})

    def snapshot(updates: int, wall: float) -> None:
        if info.get("snapshots"):
            snapshot_path(run_dir, updates).parent.mkdir(exist_ok=True)
            checkpoint.save(snapshot_path(run_dir, updates), trainer.trained_params(state),
                            {"update": updates, "env_steps": plan.env_steps(updates), "train_wall_s": wall,
                             "config_hash": config_hash(info)})

    if not resume:
        snapshot(0, 0.0)

    metrics_log = MetricsLog(run_dir, config.seeds, tensorboard=tensorboard)
    metrics_log.truncate(done_updates)
    status = _write_status(run_dir, "running", done_updates, plan, train_wall, compile_s)
    bar = _progress_bar(progress, plan.num_updates, done_updates)
    chunks_run = 0
    try:
        while done_updates < plan.num_updates:
            if stop_after_chunks is not None and chunks_run >= stop_after_chunks:
                break
            index = plan.phase_at(done_updates)
            phase = phases[index]
            n = phase.updates_per_chunk
            t0 = time.perf_counter()
            executable = compiled_chunk(chunks[active[index]], state, n)
            compile_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            new_state, metrics = executable(state)
            metrics = jax.tree_util.tree_map(np.asarray, metrics)
            elapsed = time.perf_counter() - t0
            bad = _first_bad(metrics, algo.finite_metrics)
            if bad is not None or not _finite(trainer.current_params(new_state)):
                what = (f"{bad[0]} became NaN/inf at update {done_updates + 1 + bad[1]}, seed {bad[2]}" if bad else
                        f"the trained parameters became NaN/inf in updates {done_updates + 1}-{done_updates + n}")
                message = (f"{what}; the last good checkpoint (update {done_updates}) is kept in {ckpt_path}; "
                           f"lower {algo.divergence_hint} and start a new run")
                _write_status(run_dir, "diverged", done_updates, plan, train_wall, compile_s, message)
                raise TrainingDiverged(message)
            state = new_state
            train_wall += elapsed
            metrics_log.write(done_updates + 1, plan.env_steps, train_wall, metrics,
                              phase=phase.name if len(phases) > 1 else None)
            done_updates += n
            snapshot(done_updates, train_wall)  # before the checkpoint: a resumed run rewrites it identically
            checkpoint.save(ckpt_path, state, {"update": done_updates, "train_wall_s": train_wall, "compile_s": compile_s,
                                               "config_hash": config_hash(info)})
            status = _write_status(run_dir, "running", done_updates, plan, train_wall, compile_s)
            chunks_run += 1
            if bar is not None:
                shown = algo.progress_metric if algo.progress_metric in metrics else algo.finite_metrics[0]
                value = float(np.mean(metrics[shown][-1])) if shown in metrics else float("nan")
                stage = f"{phase.name}: " if len(phases) > 1 else ""
                bar.set_postfix_str(f"{stage}{n * phase.steps_per_update / elapsed:,.0f} steps/s, {shown} {value:.2f}")
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
        metrics_log.close()
    if done_updates >= plan.num_updates:
        status = _write_status(run_dir, "complete", done_updates, plan, train_wall, compile_s)
    return status


class Plan:
    """Where updates fall among a run's phases: update u (counted from 0) belongs to the phase
    whose range holds it; environment steps add up over the phases."""

    def __init__(self, phases):
        self.phases = tuple(phases)
        self.starts = [0]
        for p in self.phases:
            if p.num_updates % p.updates_per_chunk:
                raise ValueError(f"phase {p.name!r}: {p.num_updates} updates are not whole chunks of {p.updates_per_chunk}")
            self.starts.append(self.starts[-1] + p.num_updates)
        self.num_updates = self.starts[-1]

    def phase_at(self, update: int) -> int:
        """The index of the phase that update number `update` (0-based) belongs to."""
        for i, p in enumerate(self.phases):
            if update < self.starts[i] + p.num_updates:
                return i
        return len(self.phases) - 1

    def at_chunk_boundary(self, updates: int) -> bool:
        i = self.phase_at(updates)
        return (updates - self.starts[i]) % self.phases[i].updates_per_chunk == 0

    def env_steps(self, updates: int) -> int:
        """Environment steps taken by the first `updates` updates."""
        return sum(min(max(updates - s, 0), p.num_updates) * p.steps_per_update
                   for s, p in zip(self.starts, self.phases))


@functools.lru_cache(maxsize=16)
def programs(algo, config, family, num_episodes: int):
    """(Train, seeded init, seeded run_chunk of each phase) for a run; cached, so a resumed or
    repeated run in one process (tests, `reproduce`) reuses the compiled chunks."""
    from metarlkit.algos.common import seeded_chunk, seeded_init
    from metarlkit.trial import TaskSource

    trainer = algo.make_train(config, family, num_episodes, TaskSource(family, algo.fixed_train_tasks(config)))
    return trainer, seeded_init(trainer.init), tuple(seeded_chunk(p.run_chunk) for p in trainer.phases)


def _train_tasks_info(algo, config, family) -> dict[str, Any]:
    """run.json's record of the training tasks: the distribution, or a fixed set with its hash."""
    from metarlkit.tasks.tasksets import distribution_of, task_set_hash

    fixed = algo.fixed_train_tasks(config)
    if fixed is None:
        dist = distribution_of(family)
        return {"source": "distribution", **({"distribution": dist} if dist is not None else {})}

    return {"source": "fixed", "split": "train", "num_tasks": fixed, "task_set_hash": task_set_hash(family, "train", fixed)}


_EXECUTABLES: dict[Any, Any] = {}


def compiled_chunk(run_chunk, state, n: int):
    """The compiled program of `run_chunk(state, n)` (compiled once per function, shapes and n)."""
    key = (run_chunk, n, jax.tree_util.tree_structure(state),
           tuple((x.shape, x.dtype) for x in jax.tree_util.tree_leaves(state)))
    if key not in _EXECUTABLES:
        _EXECUTABLES[key] = run_chunk.lower(state, n).compile()
    return _EXECUTABLES[key]


def _first_bad(metrics: dict[str, np.ndarray], names):
    """(metric, update index in the chunk, seed) of the earliest non-finite value of a watched
    metric (the first watched one at that update), or None."""
    found = []
    for order, name in enumerate(names):
        if name in metrics:
            bad = np.argwhere(~np.isfinite(metrics[name]))
            if len(bad):
                found.append((int(bad[0][0]), order, name, int(bad[0][1])))
    if not found:
        return None
    update, _, name, seed = min(found)
    return name, update, seed


def _write_status(run_dir, state, updates, plan, train_wall, compile_s, message=None):
    steps = plan.env_steps(updates)
    status = {
        "state": state,
        "updates": updates,
        "num_updates": plan.num_updates,
        "env_steps": steps,
        "train_wall_s": round(train_wall, 2),
        "compile_s": round(compile_s, 2),
        "steps_per_s": round(steps / train_wall) if train_wall > 0 else None,
        "updated": _now(),
    }
    if len(plan.phases) > 1:
        status["phase"] = plan.phases[plan.phase_at(min(updates, plan.num_updates - 1))].name
    if message:
        status["message"] = message
    write_json(Path(run_dir) / STATUS_FILE, status)
    return status


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="update", file=sys.stderr,
                dynamic_ncols=True, mininterval=0)


def _provenance() -> dict[str, Any]:
    return {**software_provenance(), "cpu_count": os.cpu_count()}


def budget_text(run_dir, status: dict[str, Any] | None = None) -> str:
    """One line on what a run cost: env steps, updates, seeds and training wall time (`status`:
    another status than status.json's, e.g. a snapshot's)."""
    info = read_run(run_dir)
    status = read_status(run_dir) if status is None else status
    steps = status.get("env_steps") or 0
    wall = status.get("train_wall_s") or 0.0
    seeds = info["config"].get("seeds", 1)
    state = "" if status.get("state") == "complete" else f", {status.get('state')}"
    return (f"{steps / 1e6:.1f}M env steps ({status.get('updates')} updates, {seeds} seed{'s' if seeds > 1 else ''}) "
            f"in {wall / 60:.1f} min{state}")
