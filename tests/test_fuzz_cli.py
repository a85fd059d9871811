"""Fuzz every command's options and batch rows (hypothesis): never a traceback, an exit code from
the contract (0 found, 1 nothing feasible, 2 bad input; never 3, the internal-error code), one
line on stderr for bad input, and no existing file changed when a command fails.

Commands run in this process through the console entry point (``infersave.cli.main.run``), so
hundreds of cases fit in well under a minute.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersave.cli.main import run

CONTRACT = {0, 1, 2}
SENTINEL = "existing output, must survive a failed run\n"

numbers = st.one_of(
    st.integers(-5, 5000).map(str),
    st.sampled_from(["0", "-1", "1e-9", "1e9", "inf", "-inf", "nan", "1e400", "abc", "", "3.5"]),
)
words = st.sampled_from(
    ["opt-2.7b", "llama-3.1-8b", "nope", "", "us-east-1", "eu-west-1", "mars-1", "fp8", "int4"]
)
OPTIONS: dict[str, st.SearchStrategy[str]] = {
    "--input-len": numbers,
    "--output-len": numbers,
    "--requests": numbers,
    "--slo-tps": numbers,
    "--max-price": numbers,
    "--batch-size": numbers,
    "--batch-sizes": st.sampled_from(["1,2,4", "1-64", "0", "a,b", "1-99999", "5000", ""]),
    "--offload-step": st.sampled_from(["0.1", "0.25", "0.3", "1e-9", "0", "2", "x"]),
    "--region": words,
    "--catalog": st.sampled_from(["aws", "paper-2025", "gcp", "cloud", "oracle", ""]),
    "--dtype": st.sampled_from(["fp16", "bf16", "fp8", "int8", "fp32", "int4", ""]),
    "--billing": st.sampled_from(["hourly", "per-second", "weekly"]),
    "--pricing": st.sampled_from(["on-demand", "spot", "free"]),
    "--formulas": st.sampled_from(["physics", "paper", "magic"]),
    "--perf-model": st.sampled_from(["roofline", "paper", "ml"]),
    "--backend": st.sampled_from(["exhaustive", "milp", "cp", "quantum"]),
    "--solver": st.sampled_from(["highs", "cbc", "gurobi"]),
    "--calibration": st.sampled_from(["default", "none", "/nonexistent.json"]),
    "--top": numbers,
    "--time-limit": numbers,
}


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """Run ``infersave ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_out = sys.argv, sys.stdout
    sys.argv = ["infersave", *argv]
    code: int | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.argv, sys.stdout = old_argv, old_out
    return int(code or 0), out.getvalue(), err.getvalue()


def check(code: int, out: str, err: str) -> None:
    assert code in CONTRACT, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(
    command=st.sampled_from(["solve", "predict", "compare", "pareto"]),
    model=words,
    picked=st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.just(""), max_size=6),
    data=st.data(),
)
def test_fuzz_scenario_commands(command: str, model: str, picked: dict, data, tmp_path) -> None:
    argv = [command, "--model", model]
    values = {k: data.draw(OPTIONS[k], label=k) for k in picked}
    required = {"--input-len": "512", "--output-len": "64", "--slo-tps": "100"}
    if command == "predict":
        required["--batch-size"] = "8"
        argv += ["--instance", "g6.xlarge"]
        values = {k: v for k, v in values.items() if k not in ("--backend", "--solver", "--top")}
        values.pop("--batch-sizes", None)
        values.pop("--max-price", None)
        values.pop("--time-limit", None)
    if command == "compare":
        values = {k: v for k, v in values.items() if k not in ("--backend", "--solver", "--top")}
        values.pop("--batch-size", None)
        values.pop("--dtype", None)
        values.pop("--time-limit", None)
    for k, v in {**required, **values}.items():
        argv += [k, v]
    out_file = tmp_path / "model.lp"
    out_file.write_text(SENTINEL)
    if command == "solve":
        argv += ["--write-model", str(out_file), "--top", "1"]
    code, out, err = invoke(argv)
    check(code, out, err)
    if code not in (0, 1):
        assert out_file.read_text() == SENTINEL


FIELDS = ["model", "input_len", "output_len", "requests", "slo_tps", "max_price", "region",
          "batch_sizes", "offload_step", "dtype", "billing", "backend", "bogus"]  # fmt: skip
cells = st.one_of(
    numbers,
    words,
    st.sampled_from(["exhaustive", "milp", "1-16", "0.25"]),
    st.sampled_from([float("inf"), float("nan"), -0.0, 1e300]),  # JSON Infinity/NaN literals
)


@FUZZ
@given(
    rows=st.lists(st.dictionaries(st.sampled_from(FIELDS), cells, max_size=8), max_size=5),
    jsonl=st.booleans(),
)
def test_fuzz_batch_rows(rows: list[dict[str, str]], jsonl: bool, tmp_path: Path) -> None:
    header = sorted({k for r in rows for k in r}) or ["model"]
    src = tmp_path / ("in.jsonl" if jsonl else "in.csv")
    if jsonl:
        import json

        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with src.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows(rows)
    dst = tmp_path / "out.jsonl"
    dst.write_text(SENTINEL)
    code, out, err = invoke(["batch", str(src), "-o", str(dst), "--quiet", "--backend",
                             "exhaustive"])  # fmt: skip
    check(code, out, err)
    if code == 0:
        import json

        lines = dst.read_text().splitlines()
        # a CSV line of empty cells is a blank line (skipped); a JSON object is always a row
        expected = rows if jsonl else [r for r in rows if any(str(v).strip() for v in r.values())]
        assert len(lines) == len(expected)
        for line in lines:
            assert json.loads(line)["status"] in {"ok", "infeasible", "error"}
    else:
        assert dst.read_text() == SENTINEL


SOLVE = ["solve", "--model", "opt-2.7b", "--input-len", "512", "--output-len", "64",
         "--slo-tps", "100"]  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["instances", "--region", "mars-1"],
        ["instances", "--gpu", "nope"],
        ["instances", "--catalog", "oracle"],
        ["models", "--format", "xml"],
        ["batch", "missing.csv", "-o", "out.csv"],
        ["batch", "in.txt", "-o", "out.csv"],
        ["compare", "--random", "0"],
        ["compare", "--random", "2", "--seed", "-1"],
        ["batch", "in.csv", "-o", "out.csv", "--backend", "quantum"],
        ["batch", "in.csv", "-o", "in.csv"],
        ["batch", "in.csv", "-o", "link.csv"],
        ["batch", "in.csv", "-o", "fifo.csv"],
        ["batch", "in.csv", "-o", "/dev/null"],
        ["batch", "in.csv", "-o", "missing/out.csv"],
        [*SOLVE, "--write-model", "fifo.csv"],
        [*SOLVE, "--write-model", "link.csv"],
        [*SOLVE, "--emit", "vllm", "--emit-file", "/dev/full"],
        [*SOLVE, "--plot", "link.csv"],
        [*SOLVE, "--plot", "out.png", "--write-model", "out.png"],
        ["batch", "in.csv", "-o", "out.csv", "--workers", "100000"],
        ["solve", "--model", "opt-2.7b", "--input-len", "1", "--output-len", "1"],
    ],
)
def test_listing_and_file_commands_bad_input(argv: list[str], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "in.csv").write_text("model,input_len,output_len,slo_tps\nopt-2.7b,512,64,100\n")
    (tmp_path / "out.csv").write_text(SENTINEL)
    (tmp_path / "link.csv").symlink_to(tmp_path / "out.csv")
    os.mkfifo(tmp_path / "fifo.csv")
    before = (tmp_path / "in.csv").read_text()
    code, out, err = invoke(argv)
    assert code == 2, (code, err)
    check(code, out, err)
    assert (tmp_path / "out.csv").read_text() == SENTINEL
    assert (tmp_path / "in.csv").read_text() == before
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "in.jsonl",
            '{"model": "opt-2.7b", "input_len": 512, "output_len": 64, "slo_tps": Infinity}',
        ),
        ("in.yaml", "- {model: opt-2.7b, input_len: 512, output_len: 64, slo_tps: .inf}"),
        ("in.csv", "model,input_len,output_len,slo_tps\nopt-2.7b,512,64,inf"),
    ],
)
def test_non_finite_value_is_an_error_row_not_a_crash(name: str, text: str, tmp_path) -> None:
    src, dst = tmp_path / name, tmp_path / "out.jsonl"
    src.write_text(text + "\n")
    code, _, err = invoke(["batch", str(src), "-o", str(dst), "--quiet"])
    assert code == 0, err
    import json

    (row,) = [json.loads(line) for line in dst.read_text().splitlines()]
    assert row["status"] == "error" and "slo_tps" in row["message"] and "finite" in row["message"]
