"""Training metrics: one row per (update, seed) in metrics.csv and metrics.jsonl, and TensorBoard.

Rows are appended after each compiled chunk, before its checkpoint; on resume, rows past the
checkpoint's update are cut, so the logs always match the train state they describe. TensorBoard
event files are append-only: a resumed run starts a new file, and TensorBoard shows the last value
written for each step.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from metarlkit.utils import _clean, write_atomic

KEYS = ("update", "env_steps", "seed", "wall_time_s")


class MetricsLog:
    def __init__(self, run_dir: str | os.PathLike, num_seeds: int, tensorboard: bool = True):
        self.dir = Path(run_dir)
        self.csv_path = self.dir / "metrics.csv"
        self.jsonl_path = self.dir / "metrics.jsonl"
        self.num_seeds = num_seeds
        self.columns: list[str] | None = None
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = [SummaryWriter(str(self.dir / "tensorboard" / f"seed{s}")) for s in range(num_seeds)]

    def truncate(self, last_update: int) -> None:
        """Drops rows after `last_update` (from a chunk whose checkpoint was never written) and
        malformed rows (garbled bytes; reported on stderr); metrics.csv is rewritten from the
        good rows of metrics.jsonl whenever it differs from them."""
        rows, bad = read_rows(self.dir)
        keep = [r for r in rows if r["update"] <= last_update]
        if bad:
            warn(f"{self.jsonl_path}: dropped {bad} malformed row(s)")
        self.columns = _columns(keep) if keep else None
        if bad or len(keep) != len(rows):
            write_atomic(self.jsonl_path, "".join(json.dumps(_clean(r)) + "\n" for r in keep).encode())
        if _csv_keys(self.csv_path) != [(r["update"], r["seed"]) for r in keep]:
            if self.csv_path.exists() and self.csv_path.stat().st_size and not bad and len(keep) == len(rows):
                warn(f"{self.csv_path}: rewritten from {self.jsonl_path.name} (it held rows the log does not)")
            self._rewrite_csv(keep)

    def write(self, first_update: int, env_steps: Callable[[int], int], wall_time_s: float,
              metrics: dict[str, np.ndarray], phase: str | None = None):
        """Appends a chunk: `metrics[name]` is [updates, seeds]; `first_update` is its first update's
        number and `env_steps(u)` the environment steps after update u. `phase` (algorithms that
        train in several phases) goes in a `phase` column; a phase with metrics the log has not
        seen adds their columns (metrics.csv is rewritten from metrics.jsonl with the new header)."""
        names = sorted(metrics)
        keys = list(KEYS) + (["phase"] if phase is not None else [])
        if self.columns is None:
            self.columns = keys + names
        elif set(keys + names) - set(self.columns):
            self.columns += [c for c in keys + names if c not in self.columns]
            self._rewrite_csv(read(self.dir))
        num = next(iter(metrics.values())).shape[0]
        rows = []
        for i in range(num):
            update = first_update + i
            steps = env_steps(update)
            for s in range(self.num_seeds):
                row: dict[str, Any] = {"update": update, "env_steps": steps, "seed": s,
                                       "wall_time_s": round(wall_time_s, 3)}
                if phase is not None:
                    row["phase"] = phase
                row.update({n: float(metrics[n][i, s]) for n in names})
                rows.append(row)
                if self._tb:
                    for n in names:
                        self._tb[s].add_scalar(f"train/{n}", row[n], steps)
        new_csv = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        with open(self.csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, self.columns, restval="")
            if new_csv:
                w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        with open(self.jsonl_path, "a") as f:
            f.write("".join(json.dumps(_clean(r)) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        if self._tb:
            for w in self._tb:
                w.flush()

    def _csv_text(self, rows) -> str:
        buf = io.StringIO()
        if self.columns:
            w = csv.DictWriter(buf, self.columns, restval="")
            w.writeheader()
            w.writerows(rows)
        return buf.getvalue()

    def _rewrite_csv(self, rows) -> None:
        write_atomic(self.csv_path, self._csv_text(rows).encode())

    def close(self) -> None:
        for w in self._tb or ():
            w.close()


def _csv_keys(path: Path) -> list[tuple[int, int]] | None:
    """(update, seed) of every row of metrics.csv, or None when a row is malformed."""
    if not path.exists():
        return []
    keys = []
    try:
        with open(path, newline="", encoding="utf-8", errors="strict") as f:
            for row in csv.DictReader(f):
                keys.append((int(row["update"]), int(row["seed"])))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error):
        return None
    return keys


def _columns(rows) -> list[str]:
    """Every key of the rows, in first-seen order (later phases may add metrics)."""
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    return list(seen)


def read(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The good rows of metrics.jsonl (an empty list when there are none); malformed rows (garbled
    bytes, a line cut by a kill) are skipped with a one-line warning on stderr."""
    rows, bad = read_rows(run_dir)
    if bad:
        warn(f"{Path(run_dir) / 'metrics.jsonl'}: skipped {bad} malformed row(s)")
    return rows


def read_rows(run_dir: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """(the good rows of metrics.jsonl, the number of malformed ones)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return [], 0
    rows, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not (isinstance(row, dict) and all(isinstance(row.get(k), int) for k in ("update", "seed", "env_steps"))):
                bad += 1
                continue
            rows.append(row)
    return rows, bad


def warn(message: str) -> None:
    print(f"metarlkit: warning: {message}", file=sys.stderr, flush=True)


def curve(rows: Sequence[dict[str, Any]], name: str, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [U], values [U, seeds]) of metric `name`."""
    updates = sorted({r["update"] for r in rows})
    index = {u: i for i, u in enumerate(updates)}
    values = np.full((len(updates), seeds), np.nan)
    steps = np.zeros(len(updates))
    for r in rows:
        i = index[r["update"]]
        steps[i] = r["env_steps"]
        v = r.get(name)
        if 0 <= r["seed"] < seeds:
            values[i, r["seed"]] = np.nan if v is None else v
    return steps, values
