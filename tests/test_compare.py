"""``infersave compare`` and solver/compare.py: per-scenario rows, the summary contract, random
scenarios, workloads files, bad input, and a light ``--help``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from infersave.cli.main import app
from infersave.solver import compare as cmp
from infersave.solver.prepare import prepare

runner = CliRunner()
ONE = ["--model", "opt-2.7b", "--input-len", "1024", "--output-len", "128", "--slo-tps", "100"]


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_one_scenario_json_contract() -> None:
    res = cli("compare", *ONE, "--max-price", "3", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    s = data["summary"]
    for key in ("scenarios", "agreement_rate", "beats_paper_heuristic", "median_saving_pct"):
        assert key in s
    assert s["scenarios"] == 1 and s["agreement_rate"] == 1.0
    assert set(s["backends"]) == {"exhaustive", "milp-cbc", "milp-highs", "cp"}
    for b in s["backends"].values():
        assert b["median_s"] >= 0 and b["p95_s"] >= b["median_s"]
    (row,) = data["scenarios"]
    ref = row["exhaustive"]
    for name in ("milp-cbc", "milp-highs", "cp"):
        assert row[name]["agrees"] and row[name]["total_cost_usd"] == ref["total_cost_usd"]
        assert row[name]["instance_type"] == ref["instance_type"]
    assert "paper_heuristic" in row and "saving_pct" in row


def test_random_scenarios_are_reproducible_and_mixed() -> None:
    a = cmp.random_scenarios(40, seed=7)
    assert a == cmp.random_scenarios(40, seed=7)
    assert a != cmp.random_scenarios(40, seed=8)
    feasible = [bool(prepare(s).table.feasible.any()) for s in a]
    assert 0.4 < np.mean(feasible) < 1.0  # a fair share feasible, some not


def test_random_run_agrees_and_summarizes() -> None:
    res = cli("compare", "--random", "4", "--seed", "3", "--format", "json", "--time-limit", "30")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["summary"]["scenarios"] == 4 and len(data["scenarios"]) == 4
    assert data["summary"]["agreement_rate"] == 1.0


def test_table_output_and_repeat() -> None:
    res = cli("compare", *ONE, "--repeat", "2")
    assert res.exit_code == 0, res.output
    assert "2 scenarios" in res.stdout and "milp-highs" in res.stdout
    assert "agree with the exhaustive optimum: 1.0" in res.stdout


def test_workloads_file_with_a_bad_row(tmp_path: Path) -> None:
    f = tmp_path / "w.csv"
    f.write_text(
        "model,input_len,output_len,requests,slo_tps,max_price\n"
        "opt-1.3b,512,128,1000,50,2\n"
        "opt-1.3b,-5,128,1000,50,2\n"
    )
    res = cli("compare", "--workloads", str(f), "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["summary"]["scenarios"] == 1 and data["summary"]["errors"] == 1
    assert "row 2" in data["scenarios"][1]["error"]


def test_summary_counts_by_hand() -> None:
    def row(ex, heur, agree=True, secs=0.1):
        pick = {"total_cost_usd": ex, "solve_seconds": secs, "status": "optimal"}
        r = {"exhaustive": pick, "paper_heuristic": {"total_cost_usd": heur}}
        for n in cmp.EXACT:
            r[n] = {**pick, "agrees": agree}
        r["saving_pct"] = None if ex is None or heur is None else 100 * (heur - ex) / heur
        r["beats_paper_heuristic"] = ex is not None and (heur is None or ex < heur)
        return r

    rows = [
        row(1.0, 2.0),
        row(3.0, 3.0),
        row(1.0, None),
        row(None, None, secs=0.3),
        row(2.0, 2.5, agree=False),
    ]
    s = cmp.summarize(rows)
    assert s["scenarios"] == 5 and s["feasible_scenarios"] == 4
    assert s["agreement_rate"] == pytest.approx(4 / 5)
    assert s["beats_paper_heuristic"] == pytest.approx(3 / 4)
    assert s["paper_heuristic_infeasible"] == 1
    assert s["median_saving_pct"] == pytest.approx(np.median([50.0, 20.0]))
    assert s["backends"]["cp"]["median_s"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "exactly one of"),
        (("--random", "2", *ONE), "drawn by --random"),
        (("--random", "2", "--model", "opt-2.7b"), "exactly one of"),
        (("--random", "0"), "at least 1"),
        (("--model", "opt-2.7b"), "--input-len"),
        (("--random", "2", "--format", "csv"), "table or json"),
        (("--workloads", "/nonexistent/w.csv"), "nonexistent"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message) -> None:
    res = cli("compare", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output


def test_help_does_not_load_solvers() -> None:
    code = (
        "import sys\n"
        "from infersave.cli.main import app\n"
        "bad = [m for m in ('pulp', 'ortools', 'highspy') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
