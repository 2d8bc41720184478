"""`metarlkit reproduce`: the JSON row contract, the agreement check against the paper, the
oracle bound. The fast test runs one small cell; the full tables are `slow` (make test-all)."""

from __future__ import annotations

import json

import pytest

from metarlkit.cli import main
from metarlkit.reproduce import rl2

ROW_KEYS = {"table", "n", "k", "agent", "mean", "ci95", "paper"}


def test_one_cell_agrees_with_the_paper(capsys, tmp_path):
    path = tmp_path / "rows.json"
    code = main(["reproduce", "rl2-bandits", "--n", "10", "--k", "5", "--agents", "random,ts,oracle",
                 "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = json.loads(path.read_text())
    assert [r["agent"] for r in rows] == ["random", "ts", "oracle"]
    for row in rows:
        assert ROW_KEYS <= set(row) and row["table"] == "bandits" and (row["n"], row["k"]) == (10, 5)
    random, ts, oracle = rows
    assert random["paper"] == 5.0 and ts["paper"] == 5.7 and oracle["paper"] is None
    assert random["agrees"] and ts["agrees"]
    assert "2/2 cells" in out and "no agent exceeds the oracle" in out
    assert 0.05 < ts["tolerance"] < 0.5  # 3 combined standard errors of a 1000-task mean + 0.05


def test_oracle_violations_are_reported():
    rows = [{"n": 10, "k": 5, "agent": "oracle", "expected_mean": 8.0},
            {"n": 10, "k": 5, "agent": "ts", "expected_mean": 8.5}]
    assert rl2.oracle_violations(rows) == ["n=10 k=5 ts: 8.500 > oracle 8.000"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["rl2-bandits", "rl2-mdps"])
def test_full_table_random_and_ts_agree(experiment):
    """The whole table (about 4 minutes each on the 2-core CPU)."""
    rows = rl2.run(experiment)
    checked = [r for r in rows if r["agrees"] is not None]
    assert checked and all(r["agrees"] for r in checked)
    assert not rl2.oracle_violations(rows)
