"""Run directories written before the algorithm registry (tests/data/legacy_runs, by the commit
named in their README) still load and score exactly what that version reported; damaged or
foreign ones fail with one line naming why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from metarlkit.cli import main

# No `fast_compile` here: the expected numbers came from fully optimised programs, and XLA's
# unoptimised ones may reorder float32 sums (a MAML agent's 79 inner steps amplify that), so these
# programs are compiled as the command line compiles them and must agree exactly.

LEGACY = Path(__file__).parent / "data" / "legacy_runs"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())["results"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_run_written_before_the_registry_scores_the_same(name, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", "--agent", str(LEGACY / name), "--num-tasks", "20", "--json", str(out)]) == 0, \
        capsys.readouterr().err
    got = json.loads(out.read_text())
    for key, want in EXPECTED[name].items():
        assert got[key] == want, key


def test_a_damaged_legacy_checkpoint_is_reported_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "rl2-bandit", run)
    data = (run / "checkpoint.msgpack").read_bytes()
    (run / "checkpoint.msgpack").write_bytes(data[: len(data) // 2])
    assert main(["evaluate", "--agent", str(run), "--num-tasks", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "damaged" in err and len(err.splitlines()) == 1


def test_a_run_whose_config_no_longer_fits_is_reported_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "maml-navigation", run)
    info = json.loads((run / "run.json").read_text())
    info["config"]["an_option_from_elsewhere"] = 1
    (run / "run.json").write_text(json.dumps(info))
    assert main(["evaluate", "--agent", str(run), "--num-tasks", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "an_option_from_elsewhere" in err and len(err.splitlines()) == 1
