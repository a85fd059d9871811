"""``infersave batch``: input formats, error rows, equality with ``solve``, atomic output, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import tiny_model
from typer.testing import CliRunner

from infersave.cli.main import app
from infersave.formulations.candidates import Workload, build_table, build_tables
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver import batch as batch_mod
from infersave.solver import batch_io
from infersave.solver.batch import solve_many
from infersave.solver.prepare import context
from infersave.solver.recommend import solve
from infersave.solver.scenario import InputError, Scenario

EXAMPLE = Path(__file__).parent / "data" / "workloads_example.csv"

GOOD = [
    {"name": "chat", "model": "llama-3.1-8b", "input_len": 512, "output_len": 256,
     "requests": 20000, "slo_tps": 1000, "max_price": 5, "backend": "exhaustive"},
    {"name": "summ", "model": "opt-2.7b", "input_len": 1024, "output_len": 128,
     "requests": 1000, "slo_tps": 100, "max_price": 3, "batch_sizes": [8, 16, 32]},
    {"name": "big", "model": "llama-3.1-70b", "input_len": 512, "output_len": 256,
     "requests": 1000, "slo_tps": 500, "backend": "exhaustive", "tensor_parallel": 1},
]  # fmt: skip
"""Rows 1 and 3 take the vectorized path; row 2 the default backend (one scenario at a time).
Row 3 is infeasible: a 70B model in fp16 on one GPU (tensor parallelism fixed at 1)."""


def normalized(result: Any) -> dict[str, Any]:
    """A result's JSON with the wall-clock field zeroed (the only one that may differ)."""
    d = result.model_dump()
    if d["solver"] is not None:
        d["solver"]["solve_seconds"] = 0.0
    return d


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()}
            )
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], extra: list[str] = ()) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra))
    return path


def write_yaml(path: Path, rows: list[dict[str, Any]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


# --- the vectorized evaluation ------------------------------------------------------------


def test_build_tables_rows_equal_build_table_bit_for_bit() -> None:
    s = Scenario(model="llama-3.1-8b", input_len=1, output_len=1, requests=1, slo_tps=1)
    ctx = context(s)
    workloads = [
        Workload(512, 128, 1000, 300.0, float("inf")),
        Workload(4096, 7, 5, 5000.0, 2.5),
        Workload(64, 1024, 123456, 1.0, 40.0),
    ]
    tb = build_tables(ctx.model, workloads, ctx.inst, ctx.batch_sizes, ctx.levels, ctx.options)
    for w, wl in enumerate(workloads):
        one = build_table(ctx.model, wl, ctx.inst, ctx.batch_sizes, ctx.levels, ctx.options)
        row = tb.table(w)
        for name in ("tps", "total_cost_usd", "gpu_used_bytes", "e2e_s", "cost_efficiency"):
            assert np.array_equal(getattr(one, name), getattr(row, name)), name
        for name in one.ok:
            assert np.array_equal(one.ok[name], row.ok[name]), name
        assert np.array_equal(one.feasible, row.feasible)


def test_build_tables_single_workload_and_empty() -> None:
    model = tiny_model()
    s = Scenario(model="opt-1.3b", input_len=1, output_len=1, requests=1, slo_tps=1)
    ctx = context(s)
    tb = build_tables(
        model,
        [Workload(10, 10, 1, 1.0, 1e9)],
        ctx.inst,
        [1, 2],
        offload_levels(0.5),
        ModelOptions(),
    )
    assert tb.arrays["tps"].shape == (1, len(ctx.inst.instances) * 2 * 3)
    with pytest.raises(ValueError):
        build_tables(model, [], ctx.inst, [1], offload_levels(0.5), ModelOptions())  # fmt: skip


# --- batch results equal solve -------------------------------------------------------------


def random_scenarios(n: int, seed: int = 3) -> list[Scenario]:
    rng = np.random.default_rng(seed)
    models = ["opt-1.3b", "llama-3.1-8b", "mixtral-8x7b", "qwen2.5-32b", "llama-3.1-70b"]
    out = []
    for i in range(n):
        lin, lout = int(rng.integers(16, 4096)), int(rng.integers(1, 1024))
        if models[i % len(models)].startswith("opt"):  # OPT's context window: 2,048 tokens
            lin = min(lin, 2048 - lout)
        out.append(
            Scenario(
                model=models[i % len(models)],
                input_len=lin,
                output_len=lout,
                requests=int(rng.integers(1, 200_000)),
                slo_tps=float(rng.choice([1.0, 100.0, 1000.0, 5000.0, 30000.0])),
                max_price=[None, 1.0, 5.0, 40.0][i % 4],
                billing=["hourly", "per-second"][i % 2],
                dtype=["fp16", "fp8"][(i // 5) % 2],
                top=[5, 0, 2][i % 3],
                backend="exhaustive",
            )
        )
    out.append(out[0].model_copy(update={"region": "eu-west-1", "offload_step": 0.25}))
    out.append(out[1].model_copy(update={"batch_size": 16}))
    out.append(out[2].model_copy(update={"formulas": "paper", "perf_model": "paper"}))
    out.append(out[3].model_copy(update={"catalog": "paper-2025", "region": "us-east-1"}))
    return out


def test_batch_results_identical_to_solve() -> None:
    scenarios = random_scenarios(80)
    results = solve_many(scenarios)
    statuses = set()
    for s, r in zip(scenarios, results, strict=True):
        assert not isinstance(r, Exception), r
        assert normalized(r) == normalized(solve(s))
        statuses.add(r.status)
    assert statuses == {"ok", "infeasible"}


def test_a_row_beyond_the_context_window_fails_alone() -> None:
    """Rows of one model share a context; a row whose prompt + output exceed the window is an
    error of that row only (it once failed every row of its model after it in the task)."""
    base = Scenario(model="opt-1.3b", input_len=512, output_len=128, slo_tps=100.0,
                    backend="exhaustive")  # fmt: skip
    too_long = base.model_copy(update={"input_len": 4000})  # 4,128 > OPT's 2,048 tokens
    scenarios = [too_long, base, base.model_copy(update={"output_len": 64}), too_long, base]
    results = solve_many(scenarios)
    for s, r in zip(scenarios, results, strict=True):
        if s.input_len == 4000:
            assert isinstance(r, InputError) and "context window of 2,048" in str(r)
        else:
            assert not isinstance(r, Exception), r
            assert normalized(r) == normalized(solve(s))


def test_batch_small_chunks_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_mod, "CHUNK_CELLS", 1)  # one workload per chunk
    scenarios = random_scenarios(12, seed=9)
    for s, r in zip(scenarios, solve_many(scenarios), strict=True):
        assert normalized(r) == normalized(solve(s))


def test_solve_many_passes_errors_and_keeps_order() -> None:
    good = random_scenarios(3)
    bad_model = good[0].model_copy(update={"model": "no-such-model"})
    bad_region = good[1].model_copy(update={"region": "mars-1"})
    err = InputError("row 2: broken")
    done: list[int] = []
    out = solve_many([good[0], err, bad_model, good[1], bad_region, good[2]], progress=done.append)
    assert out[1] is err
    assert isinstance(out[2], InputError) and "no-such-model" in str(out[2])
    assert isinstance(out[4], InputError) and "mars-1" in str(out[4])
    for i, s in ((0, good[0]), (3, good[1]), (5, good[2])):
        assert normalized(out[i]) == normalized(solve(s))
    assert sum(done) == 6


@pytest.mark.parametrize("workers", [1, 2])
def test_exact_backend_rows_equal_solve(workers: int) -> None:
    """Rows of the default (exact) backend go through solve() itself, in-process or in a pool."""
    from infersave.solver.registry import BACKENDS

    exact = [b for b in ("milp", "cp") if b in BACKENDS]
    if not exact:
        pytest.skip("no exact backend registered")
    base = random_scenarios(6, seed=5)[:6]
    scenarios = [
        s.model_copy(update={"backend": exact[i % len(exact)]}) for i, s in enumerate(base)
    ]
    scenarios.insert(2, base[0])  # an exhaustive row among them
    out = solve_many(scenarios, workers=workers)
    for s, r in zip(scenarios, out, strict=True):
        assert normalized(r) == normalized(solve(s))


def test_unavailable_backend_is_an_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from infersave.solver import registry

    monkeypatch.setattr(registry, "BACKENDS", {"exhaustive": registry.BACKENDS["exhaustive"]})
    s = random_scenarios(1)[0].model_copy(update={"backend": "milp"})
    (out,) = solve_many([s])
    assert isinstance(out, InputError) and "milp" in str(out)


# --- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "yaml"])
def test_every_input_format_reads_the_same_scenarios(tmp_path: Path, fmt: str) -> None:
    writer = {"csv": write_csv, "jsonl": write_jsonl, "yaml": write_yaml}[fmt]
    path = writer(tmp_path / f"w.{fmt}", GOOD)
    loaded = batch_io.load_scenarios(path)
    assert [row for row, _, _ in loaded] == [1, 2, 3]
    assert [f["name"] for _, f, _ in loaded] == ["chat", "summ", "big"]
    scenarios = [s for _, _, s in loaded]
    expected = [batch_io.scenario_from_fields(r) for r in GOOD]
    assert scenarios == expected
    assert scenarios[1].batch_sizes == (8, 16, 32)
    assert scenarios[2].max_price is None  # empty CSV cell / absent -> default


def test_yaml_mapping_with_workloads_key(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "w.yml"
    path.write_text(yaml.safe_dump({"workloads": GOOD[:1]}))
    assert len(batch_io.load_scenarios(path)) == 1


def test_scenario_from_fields_conversions_and_errors() -> None:
    s = batch_io.scenario_from_fields(
        {"model": "opt-1.3b", "input_len": "64", "output_len": "8", "requests": "10",
         "slo_tps": "1.5", "batch_sizes": "1-8", "include_non_nvidia": "true", "service": "x",
         "max_price": ""},
    )  # fmt: skip
    assert s.batch_sizes == (1, 2, 4, 8) and s.include_non_nvidia and s.max_price is None
    with pytest.raises(InputError, match=r"^row 4: unknown field 'slo'; did you mean slo_tps"):
        batch_io.scenario_from_fields({"slo": 1}, row=4)
    with pytest.raises(InputError, match=r"^row 2: input_len: .*greater than 0"):
        batch_io.scenario_from_fields({**GOOD[0], "input_len": -5}, row=2)
    with pytest.raises(InputError, match=r"^row 3: batch_sizes: cannot read"):
        batch_io.scenario_from_fields({**GOOD[0], "batch_sizes": "a,b"}, row=3)


def test_malformed_rows_are_row_errors(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    write_jsonl(path, GOOD[:1], extra=["\n", "# a comment\n", "{not json\n", "[1, 2]\n"])
    rows = batch_io.read_workloads(path)
    assert [r for r, _ in rows] == [1, 2, 3]
    assert isinstance(rows[1][1], InputError) and str(rows[1][1]).startswith("row 2 (line 4)")
    assert "expected a JSON object" in str(rows[2][1])
    csv_path = tmp_path / "w.csv"
    csv_path.write_text("model,input_len\nopt-1.3b,1,extra\n")
    (row,) = batch_io.read_workloads(csv_path)
    assert isinstance(row[1], InputError) and "3 cells, the header has 2" in str(row[1])


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("w.txt", "", "unknown extension '.txt'"),
        ("w.csv", "", "needs a header"),
        ("w.yaml", "a: [", "malformed YAML"),
        ("w.yaml", "a: 1", "must be a list"),
    ],
)
def test_unusable_input_files_raise(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        batch_io.read_workloads(path)


# --- writing ------------------------------------------------------------------------------


def test_atomic_write_failure_leaves_nothing_and_keeps_existing(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("precious\n")

    def boom() -> Any:
        yield "row,status\n"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError), batch_io.atomic_output(out) as fh:
        for chunk in boom():
            fh.write(chunk)
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_output_extension_is_checked() -> None:
    assert batch_io.output_format("a.CSV") == "csv"
    assert batch_io.output_format("a.jsonl") == "jsonl"
    with pytest.raises(InputError, match=r"unknown extension '\.xlsx'"):
        batch_io.output_format("a.xlsx")


# --- the CLI ------------------------------------------------------------------------------


def mixed_input(tmp_path: Path) -> Path:
    bad = [
        {"name": "typo", "model": "llama-3.1-8bb", "input_len": 1, "output_len": 1,
         "requests": 1, "slo_tps": 1},
        {"name": "negative", "model": "opt-1.3b", "input_len": -3, "output_len": 1,
         "requests": 1, "slo_tps": 1},
        {"name": "unknown-field", "model": "opt-1.3b", "input_len": 3, "output_len": 1,
         "requests": 1, "slo_tps": 1, "colour": "red"},
    ]  # fmt: skip
    rows = [GOOD[0], bad[0], GOOD[1], bad[1], bad[2], GOOD[2]]
    return write_jsonl(tmp_path / "in.jsonl", rows, extra=["{oops\n"])


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_cli_bad_rows_among_good_ones(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"out.{ext}"
    res = cli("batch", str(mixed_input(tmp_path)), "-o", str(out), "--format", "json")
    assert res.exit_code == 0, res.output
    rows = read_jsonl(out) if ext == "jsonl" else read_csv(out)
    assert [int(r["row"]) for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    status = [r["status"] for r in rows]
    assert status == ["ok", "error", "ok", "error", "error", "infeasible", "error"]
    msgs = [r["message"] for r in rows]
    assert msgs[1].startswith("row 2: ") and "llama-3.1-8b" in msgs[1]  # close match offered
    assert msgs[3].startswith("row 4: input_len")
    assert msgs[4].startswith("row 5: unknown field 'colour'")
    assert msgs[6].startswith("row 7 (line 7): malformed JSON")
    assert rows[0]["name"] == "chat"
    for i, g in ((0, GOOD[0]), (2, GOOD[1]), (5, GOOD[2])):
        ref = solve(batch_io.scenario_from_fields(g))
        if ext == "jsonl":
            got = rows[i]
            if ref.recommendation is not None:
                assert got["recommendation"] == ref.recommendation.model_dump()
            base = ref.baseline.max_performance
            assert got["baseline_cost_usd"] == (base.total_cost_usd if base else None)
            assert got["savings_pct"] == ref.baseline.savings_pct
        else:
            got_csv = rows[i]
            if ref.recommendation is not None:
                rec = ref.recommendation
                assert got_csv["recommendation_instance_type"] == rec.instance_type
                assert float(got_csv["recommendation_total_cost_usd"]) == rec.total_cost_usd
                assert int(got_csv["recommendation_memory_weights_bytes"]) == (
                    rec.memory.weights_bytes
                )
            else:
                assert got_csv["recommendation_instance_type"] == ""
    summary = json.loads(res.stderr.strip().splitlines()[-1])
    assert summary["workloads"] == 7 and summary["feasible"] == 2
    assert summary["infeasible"] == 1 and summary["errors"] == 4
    assert summary["total_billed_usd"] > 0 and summary["total_saved_usd"] >= 0


def test_cli_example_file_and_passthrough(tmp_path: Path) -> None:
    out = tmp_path / "rec.csv"
    res = cli("batch", str(EXAMPLE), "-o", str(out), "--quiet", "--backend", "exhaustive")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""  # --quiet: no summary
    rows = read_csv(out)
    with EXAMPLE.open() as fh:
        src = list(csv.DictReader(fh))
    assert len(rows) == len(src) >= 50
    assert [r["service"] for r in rows] == [r["service"] for r in src]
    assert {r["status"] for r in rows} <= {"ok", "infeasible"}
    assert sum(r["status"] == "ok" for r in rows) >= len(rows) // 2
    assert len({r["model"] for r in src}) >= 8


def test_cli_default_backend_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infersave.solver import registry

    monkeypatch.setattr(registry, "BACKENDS", {"exhaustive": registry.BACKENDS["exhaustive"]})
    path = write_csv(tmp_path / "in.csv", [GOOD[1], GOOD[0]])  # no backend; exhaustive
    out = tmp_path / "out.jsonl"
    res = cli("batch", str(path), "-o", str(out), "--backend", "milp", "-q")
    assert res.exit_code == 0
    rows = read_jsonl(out)
    assert rows[0]["status"] == "error" and "milp" in rows[0]["message"]
    assert rows[1]["status"] == "ok" and rows[1]["backend"] == "exhaustive"


def test_cli_unknown_output_extension_exits_2(tmp_path: Path) -> None:
    res = cli("batch", str(EXAMPLE), "-o", str(tmp_path / "out.xlsx"))
    assert res.exit_code == 2
    assert "unknown extension '.xlsx'" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_input_exits_2(tmp_path: Path) -> None:
    res = cli("batch", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "out.csv"))
    assert res.exit_code == 2 and "nope.csv" in res.stderr


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_cli_exception_mid_run_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]
) -> None:
    """Ctrl-C (click turns it into an abort) or a crash after some workloads were solved."""
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    calls = {"n": 0}

    def flaky(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:
                raise exc("in the middle of the run")
            return real(*args, **kwargs)

        return call

    # the lean path evaluates chunks with lean_chunk, and whole tables where it needs them
    for name in ("build_tables", "lean_chunk"):
        monkeypatch.setattr(batch_mod, name, flaky(getattr(batch_mod, name)))
    try:
        res = cli("batch", str(EXAMPLE), "-o", str(out), "--backend", "exhaustive", "-q")
        assert res.exit_code != 0
    except RuntimeError:
        assert exc is RuntimeError
    assert calls["n"] == 2
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_cli_exception_while_writing_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"

    def broken_rows(rows: Any, fmt: str, *args: Any, **kwargs: Any) -> Any:
        yield "{}\n"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch_io, "render_rows", broken_rows)
    res = cli("batch", str(EXAMPLE), "-o", str(out), "--backend", "exhaustive", "-q")
    assert res.exit_code == 2 and "No space left" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_subprocess_batch_with_workers(tmp_path: Path) -> None:
    """End to end as a process: two workers for rows of a non-exhaustive backend if one is
    registered (else they are error rows), exhaustive rows in-process; CSV in, CSV out."""
    from infersave.solver.registry import BACKENDS

    exact = next((b for b in ("milp", "cp") if b in BACKENDS), "milp")
    rows = [GOOD[0], {**GOOD[1], "backend": exact}, {**GOOD[0], "backend": exact}, GOOD[2]]
    rows += [{**GOOD[1], "backend": exact, "slo_tps": slo} for slo in (50, 200, 400)]
    path = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "infersave.cli.main", "batch", str(path), "-o", str(out),
         "--workers", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "7 workloads" in proc.stderr
    got = read_csv(out)
    assert [r["name"] for r in got] == ["chat", "summ", "chat", "big", "summ", "summ", "summ"]
    if exact in BACKENDS:
        ref = solve(batch_io.scenario_from_fields(rows[1]))
        assert got[1]["status"] == ref.status
        if ref.recommendation is not None:
            assert got[1]["recommendation_instance_type"] == ref.recommendation.instance_type
    else:
        assert got[1]["status"] == "error"


def test_help_does_not_import_solvers() -> None:
    code = (
        "import sys\n"
        "from infersave.cli import main\n"
        "try:\n"
        "    main.app(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('ortools', 'pulp', 'highspy') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout
    batch_help = subprocess.run(
        [sys.executable, "-m", "infersave.cli.main", "batch", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert batch_help.returncode == 0 and "--workers" in batch_help.stdout


# --- the lean, streamed path (issue 12 part 3) ---------------------------------------------


def test_record_row_mirrors_record() -> None:
    from infersave.solver.records import Memory, Record, RecordRow

    top = tuple(f for f in Record.model_fields if f != "memory")
    assert RecordRow._fields == top + tuple(Memory.model_fields)
    r = solve(random_scenarios(1)[0]).recommendation
    assert r is not None
    row = RecordRow.of(r)
    assert row.as_dict() == r.model_dump() and row.to_record() == r


def test_lean_stream_equals_solve() -> None:
    """What a batch row prints, from the dominant tables, equals solve()'s for every context
    of random_scenarios (other regions, offload steps, fixed batch, paper formulas, catalogs);
    tiny chunks and tasks on a second pass."""
    from infersave.solver.records import BatchResult

    scenarios = random_scenarios(60, seed=21)
    lean = list(batch_mod.solve_stream(scenarios, lean=True))
    for s, got in zip(scenarios, lean, strict=True):
        assert got == BatchResult.of(solve(s))
    assert {r.status for r in lean} == {"ok", "infeasible"}


def test_lean_stream_small_chunks_and_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_mod, "CHUNK_CELLS", 1)
    monkeypatch.setattr(batch_mod, "TASK_ROWS", 3)
    scenarios = random_scenarios(12, seed=9)
    ref = list(batch_mod.solve_stream(scenarios, lean=True))
    done: list[int] = []
    fed: list[int] = []

    def lazily() -> Any:  # the stream reads its input a task at a time
        for n, s in enumerate(scenarios):
            fed.append(n)
            yield s

    stream = batch_mod.solve_stream(lazily(), lean=True, progress=done.append)
    first = next(stream)
    assert len(fed) <= 6  # two tasks read ahead at most, not the whole input
    assert [first, *stream] == ref
    assert sum(done) == len(scenarios)


def test_workers_clamped_to_cpus(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    scenarios = random_scenarios(4, seed=2)
    out = solve_many(scenarios, workers=(os.cpu_count() or 1) + 3)
    assert "workers for" in capsys.readouterr().err
    for s, r in zip(scenarios, out, strict=True):
        assert normalized(r) == normalized(solve(s))
    with pytest.raises(ValueError):
        solve_many(scenarios, workers=0)


def test_solve_many_with_workers_splits_exhaustive_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exhaustive rows go to the pool too (several tasks); results in input order."""
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: workers are clamped to 1")
    scenarios = random_scenarios(10, seed=13)
    bad = InputError("row 3: broken")
    items: list[Scenario | Exception] = [*scenarios[:2], bad, *scenarios[2:]]
    out = solve_many(items, workers=2)
    assert out[2] is bad
    for s, r in zip(scenarios, out[:2] + out[3:], strict=True):
        assert normalized(r) == normalized(solve(s))


def test_write_results_stream_equals_sequence(tmp_path: Path) -> None:
    scenarios = random_scenarios(5, seed=4)[:5]
    fields = [{"name": f"n{i}"} if i % 2 else {} for i in range(5)]
    rows = [
        batch_io.result_row(i + 1, f, solve(s), s)
        for i, (f, s) in enumerate(zip(fields, scenarios, strict=True))
    ]
    for ext in ("csv", "jsonl"):
        whole, streamed = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
        batch_io.write_results(whole, rows)
        batch_io.write_results(streamed, iter(rows), passthrough=["name"])
        assert whole.read_text() == streamed.read_text()
    with pytest.raises(ValueError, match="passthrough"):
        batch_io.write_results(tmp_path / "c.csv", iter(rows))
    empty = tmp_path / "empty.csv"
    batch_io.write_results(empty, iter([]), passthrough=[])
    assert empty.read_text().startswith("row,status,message,model,")


def test_cli_workers_2_output_identical(tmp_path: Path) -> None:
    """--workers 2 on exhaustive rows (split over two processes) writes the same bytes."""
    rows = [{**GOOD[i % 3], "backend": "exhaustive", "input_len": 64 + 37 * i} for i in range(40)]
    rows.insert(5, {"name": "bad", "model": "nope", "input_len": 1, "output_len": 1,
                    "requests": 1, "slo_tps": 1})  # fmt: skip
    path = write_csv(tmp_path / "in.csv", rows)
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}.csv"
        proc = subprocess.run(
            [sys.executable, "-m", "infersave.cli.main", "batch", str(path), "-o", str(out),
             "--workers", workers, "--format", "json"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_text())
        summary = json.loads(proc.stderr.strip().splitlines()[-1])
        assert summary["workloads"] == 41 and summary["errors"] == 1
    assert outs[0] == outs[1]
    assert [r["name"] for r in read_csv(tmp_path / "out2.csv")][4:7] == ["summ", "bad", "big"]


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found.update(int(c) for c in text.split())
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_sigterm_stops_workers_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """SIGTERM in the middle of a --workers 2 run: exit 143, the pool's processes are gone,
    no temporary file is left and an existing OUTPUT is unchanged."""
    import os
    import signal
    import time

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: no pool")
    src = tmp_path / "big.csv"
    models = ["opt-1.3b", "llama-3.1-8b", "mistral-7b", "qwen2.5-14b", "mixtral-8x7b"]
    with src.open("w") as fh:
        fh.write("model,input_len,output_len,requests,slo_tps,backend\n")
        for i in range(150_000):
            fh.write(f"{models[i % 5]},{100 + i % 1900},{1 + i % 500},1000,500,exhaustive\n")
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infersave.cli.main", "batch", str(src), "-o", str(out),
         "--workers", "2", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) >= 2, "the pool never started"
        time.sleep(1.0)
        assert proc.poll() is None, "finished before the signal"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (143, 130), err
    assert not [p for p in workers if _alive(p)]
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "out.csv"]


def test_tps_misses_read_from_the_chunk_equal_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The closest miss of a row that asks for the TPS SLO alone is read from the lean chunk
    (no table); it is solve()'s sentence, with and without an error band (slo_confidence
    divides the TPS by the band), with and without a price cap; a latency SLO sends the row to
    the table path."""
    from infersave.solver.records import BatchResult

    to_tables: list[int] = []
    real = batch_mod._miss_messages

    def counted(ctx: Any, part: Any, missing: np.ndarray, *rest: Any) -> dict[int, str]:
        to_tables.extend(missing.tolist())
        return real(ctx, part, missing, *rest)

    monkeypatch.setattr(batch_mod, "_miss_messages", counted)
    rng = np.random.default_rng(12)
    scenarios = []
    for n in range(60):
        extra: dict[str, Any] = {}
        if n % 3 == 1:
            extra["slo_confidence"] = float(rng.choice([0.5, 0.9, 0.99]))
        if n % 4 == 2:
            extra["max_price"] = float(rng.choice([1.5, 4.0, 12.0]))
        if n % 10 == 9:
            extra["ttft_slo"] = 0.05  # a latency SLO: explained from the table
        scenarios.append(
            Scenario(
                model=str(rng.choice(["llama-3.1-8b", "qwen2.5-14b", "opt-1.3b"])),
                input_len=int(rng.integers(64, 1800)),
                output_len=int(rng.integers(16, 240)),
                slo_tps=float(rng.choice([1e6, 1e7])),  # out of reach: infeasible
                backend="exhaustive",
                **extra,
            )
        )
    lean = list(batch_mod.solve_stream(scenarios, lean=True))
    for s, got in zip(scenarios, lean, strict=True):
        want = BatchResult.of(solve(s))
        assert got == want
    statuses = [r.status for r in lean]
    assert statuses.count("infeasible") >= 50
    assert sum("best TPS reachable" in r.message for r in lean) >= 40
    # every TPS-only miss was read from the chunk; the latency ones went to the tables
    assert 0 < len(to_tables) <= sum(1 for s in scenarios if s.ttft_slo is not None) + 5


def test_raw_rows_weigh_as_their_backend() -> None:
    """A raw row is cut into tasks by the backend it names (blank: the default, milp), before
    it is validated; what fails validation weighs as the row it will be."""
    raw = batch_io.RawRow
    assert batch_mod._weight(raw(1, {"backend": "exhaustive"})) == 1
    assert batch_mod._weight(raw(2, {"backend": " "})) == batch_mod.EXACT_WEIGHT
    assert batch_mod._weight(raw(3, {})) == batch_mod.EXACT_WEIGHT
    assert batch_mod._weight(raw(4, {"backend": "cp"})) == batch_mod.EXACT_WEIGHT
    assert batch_mod._weight(InputError("row 5: bad")) == 1
    rows = [raw(n, {"backend": "exhaustive" if n % 2 else "milp"}) for n in range(1, 9)]
    tasks = list(batch_mod._tasks(rows, batch_mod.EXACT_WEIGHT))
    assert [len(t) for t in tasks] == [2, 2, 2, 2]  # each task: one exhaustive, one milp row
