"""Shared ending of the benchmark scripts: print the machine and write the rows as JSON."""

from __future__ import annotations

import json

import jax


def finish(rows: list[dict], json_path: str | None, **setting) -> None:
    """Prints `setting` with the device and jax version; writes {"meta", "rows"} to `json_path`."""
    device = jax.devices()[0]
    meta = {**setting, "device": f"{device.platform}:{device.device_kind}", "jax": jax.__version__}
    print(json.dumps(meta))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
