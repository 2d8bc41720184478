"""Recorded trajectories on one task: the file `metarlkit record` writes and learners read.

A recording is one trial of E episodes played by some agent on one task of a family — for EPOpt's
source adaptation, the "real" target model whose parameters the learner does not know. The file is
a NumPy `.npz` archive:

  obs        float32 [E, H, *obs_shape]   the observation each action was taken in
  action     [E, H, *action_shape]        float32 (continuous) or int32 (discrete)
  next_obs   float32 [E, H, *obs_shape]   the observation after it
  reward     float32 [E, H]
  valid      bool [E, H]                  the step happened (steps after an episode's end are padding)
  meta       a JSON string: format, task spec and version, the task's parameters where the family
             has them (for reports only: a learner reads the transitions), agent, seed, episodes

A *task-set recording* (`metarlkit record --train-tasks N`: demonstrations for GMPS) holds one
trial on each of the first N tasks of the family's 'train' split, with a leading task axis on every
array ([N, E, H, ...]) and `train_tasks`: N in `meta`; `load_task_set` reads it.

`load` and `load_task_set` check everything against the family before anything uses it: a file
that cannot be read is reported as damaged, a file of another family or of other shapes as such,
in one line.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, NamedTuple

import numpy as np

FORMAT = 1
ARRAYS = ("obs", "action", "next_obs", "reward", "valid")


class Recording(NamedTuple):
    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    valid: np.ndarray
    meta: dict[str, Any]

    @property
    def num_transitions(self) -> int:
        return int(self.valid.sum())

    def flat(self):
        """(obs, action, next_obs, valid) with the episode and step axes merged: [E * H, ...]."""
        merge = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        return merge(self.obs), merge(self.action), merge(self.next_obs), merge(self.valid)


def save(path: str | os.PathLike, rec: Recording) -> None:
    """Writes the recording atomically (no half-written file on failure)."""
    from metarlkit.utils import _clean, write_atomic

    buffer = io.BytesIO()
    arrays = {name: np.asarray(getattr(rec, name)) for name in ARRAYS}
    meta = json.dumps(_clean({"format": FORMAT, **rec.meta}), sort_keys=True)
    np.savez_compressed(buffer, **arrays, meta=np.asarray(meta))
    write_atomic(path, buffer.getvalue())


def load(path: str | os.PathLike, family) -> Recording:
    """The recording in `path`, checked against `family`. Raises ValueError (one line) when the file
    is missing, damaged, of another family, or of shapes the family does not have."""
    return _load(path, family, 2)


def load_task_set(path: str | os.PathLike, family, num_tasks: int) -> Recording:
    """A task-set recording ([T, E, H, ...] arrays) in `path`, checked against `family`, cut to its
    first `num_tasks` tasks. Raises ValueError (one line) as `load`, and when it holds fewer tasks."""
    rec = _load(path, family, 3)
    if rec.meta.get("train_tasks") != rec.valid.shape[0]:
        raise ValueError(f"{path} is not a recording of training tasks; write one with 'metarlkit record "
                         f"--train-tasks N'")
    if rec.valid.shape[0] < num_tasks:
        raise ValueError(f"{path} records {rec.valid.shape[0]} training tasks; this run needs {num_tasks} (record "
                         f"them with 'metarlkit record --train-tasks {num_tasks}')")
    if not rec.valid[:num_tasks].any(axis=(1, 2)).all():
        raise ValueError(f"{path}: some of the first {num_tasks} training tasks hold no transitions")
    return Recording(*(x[:num_tasks] for x in rec[:5]), rec.meta)


def _load(path, family, ndim: int) -> Recording:
    """The recording in `path` with `valid` of `ndim` axes ([E, H] or [T, E, H]), checked."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            arrays = {name: archive[name] for name in ARRAYS if name in names}
            meta = json.loads(str(archive["meta"])) if "meta" in names else None
    except FileNotFoundError:
        raise ValueError(f"no recording at {path}; write one with 'metarlkit record'") from None
    except Exception as err:  # a damaged archive fails in many ways (zip, CRC, array header, JSON)
        raise ValueError(f"recording {path} is damaged ({type(err).__name__}); record it again") from None
    missing = [name for name in ARRAYS if name not in arrays] + (["meta"] if meta is None else [])
    if missing:
        raise ValueError(f"{path} is not a metarlkit recording (no {missing[0]!r} array); write one with "
                         f"'metarlkit record'")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"recording {path} has format {meta.get('format') if isinstance(meta, dict) else None!r}; "
                         f"this version reads format {FORMAT}")
    recorded_on = str(meta.get("task", "?")).split(":")[0]
    if recorded_on != family.name:
        raise ValueError(f"{path} was recorded on {meta.get('task')}, not on {family.name}; record the target on "
                         f"the family the run trains on")
    obs, action, next_obs, reward, valid = (arrays[name] for name in ARRAYS)
    if ndim == 3 and valid.ndim == 2 and "train_tasks" not in meta:
        raise ValueError(f"{path} is a recording of one task, not a recording of training tasks; write one with "
                         f"'metarlkit record --train-tasks N'")
    if ndim == 2 and "train_tasks" in meta:
        raise ValueError(f"{path} records {meta['train_tasks']} training tasks; give a recording of one task "
                         f"(metarlkit record without --train-tasks)")
    if valid.ndim != ndim or valid.dtype != np.bool_ or valid.shape[-1] != family.horizon:
        axes = "tasks, episodes" if ndim == 3 else "episodes"
        raise ValueError(f"{path}: 'valid' is {valid.dtype}{list(valid.shape)}, expected bool[{axes}, "
                         f"{family.horizon}] for {family.name}")
    lead = valid.shape
    action_shape = tuple(family.action_shape) if family.continuous else ()
    expected = {"obs": lead + tuple(family.obs_shape), "next_obs": lead + tuple(family.obs_shape),
                "action": lead + action_shape, "reward": lead}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{path}: {name!r} has shape {list(arrays[name].shape)}, {family.name} needs {list(shape)}")
    kinds = {"obs": "f", "next_obs": "f", "reward": "f", "action": "f" if family.continuous else "iu"}
    for name, kind in kinds.items():
        if arrays[name].dtype.kind not in kind:
            raise ValueError(f"{path}: {name!r} is {arrays[name].dtype}, not a {'float' if kind == 'f' else 'integer'} array")
    if not valid.any():
        raise ValueError(f"{path} holds no transitions (no valid step)")
    for name in ("obs", "next_obs", "reward") + (("action",) if family.continuous else ()):
        if not np.isfinite(arrays[name][valid]).all():
            raise ValueError(f"recording {path} is damaged: {name!r} has NaN or inf values at valid steps")
    return Recording(obs.astype(np.float32), action, next_obs.astype(np.float32), reward.astype(np.float32),
                     valid, meta)
