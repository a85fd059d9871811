"""The batch's CSV output rendered in the workers (``lean="csv"``: each row's text made where
it was solved) is the bytes of the rows rendered from :func:`~infersave.solver.batch_io.result_row`
(nested dicts flattened by :func:`~infersave.solver.batch_io.render_rows`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infersave.cli.main import app
from infersave.solver import batch_io
from infersave.solver.batch import solve_stream

EXAMPLE = Path(__file__).parent / "data" / "workloads_example.csv"


def _input(tmp_path: Path) -> Path:
    """The example workloads with names that need quoting, a bad row and exact backends."""
    rows = list(csv.DictReader(EXAMPLE.open()))
    names = ["a,b", 'say "hi"', "multi\nline", "plain", ""]
    out = tmp_path / "in.csv"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["name", *rows[0].keys(), "backend"])
        w.writeheader()
        for n, r in enumerate(rows):
            backend = "milp" if n % 5 == 4 else "exhaustive"
            w.writerow({"name": names[n % len(names)], **r, "backend": backend})
        w.writerow({"name": "bad", **rows[0], "input_len": "-3", "backend": "exhaustive"})
        w.writerow({"name": "tight", **rows[0], "max_price": "0.01", "backend": "exhaustive"})
        # valid rows that fail when solved (beyond the context window, an unknown model): their
        # error rows show the validated fields (max_price 5.0), not the raw cells
        long = {"model": "opt-1.3b", "input_len": "2000", "output_len": "100", "max_price": "5"}
        w.writerow({"name": "long", **rows[0], **long, "backend": "exhaustive"})
        w.writerow({"name": "nope", **rows[0], "model": "nope", "slo_tps": "7"})
    return out


def _reference(src: Path, out: Path) -> None:
    """The output as :func:`batch_io.write_results` writes :func:`batch_io.result_row`'s."""
    rows = batch_io.load_scenarios(src)
    passthrough = batch_io.passthrough_columns(f for _, f, _ in rows)
    outcomes = solve_stream([s for _, _, s in rows], lean=True)
    result = [
        batch_io.result_row(r, f, o, s if not isinstance(s, Exception) else None)
        for (r, f, s), o in zip(rows, outcomes, strict=True)
    ]
    batch_io.write_results(out, result, passthrough)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_rendered_csv_equals_result_rows(tmp_path: Path, workers: str) -> None:
    src = _input(tmp_path)
    _reference(src, tmp_path / "ref.csv")
    res = CliRunner().invoke(
        app, ["batch", str(src), "-o", str(tmp_path / "out.csv"), "-q", "--workers", workers]
    )
    assert res.exit_code == 0, res.output
    got, want = (tmp_path / "out.csv").read_bytes(), (tmp_path / "ref.csv").read_bytes()
    assert b'"a,b"' in got and b'"say ""hi"""' in got and b"error" in got
    assert b"context window" in got and b",5.0," in got and b",7.0," in got
    assert got == want


@pytest.mark.parametrize("workers", ["1", "2"])
def test_summary_counts_rows_failed_in_the_workers_as_errors(tmp_path: Path, workers: str) -> None:
    src = _input(tmp_path)
    res = CliRunner().invoke(
        app, ["batch", str(src), "-o", str(tmp_path / "out.csv"), "-f", "json", "-j", workers]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stderr)
    out = list(csv.DictReader((tmp_path / "out.csv").open()))
    statuses = [r["status"] for r in out]
    assert summary["errors"] == statuses.count("error") == 3  # bad, long, nope
    assert summary["infeasible"] == statuses.count("infeasible")
    assert summary["feasible"] == statuses.count("ok")


_CELL = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(alphabet=st.sampled_from([*'ab ,"\n\r;x1', "é", "€", "\U0001f600"]), max_size=6),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_CELL, max_size=5), min_size=1, max_size=6), st.integers(0, 10**6))
def test_reused_line_renders_what_a_fresh_writer_writes(rows: list[list[object]], n: int) -> None:
    """One reused :class:`batch_io.CsvLine` gives, row after row, the text a fresh
    ``csv.writer`` writes, and so does :func:`batch_io.csv_texts` for all rows at once (its
    rows' lengths count characters, not bytes: non-ASCII text too); a row without passthrough
    columns takes the unquoted fast path."""
    line = batch_io.CsvLine()
    texts = batch_io.csv_texts(rows)  # all rows through one writer and buffer
    assert len(texts) == len(rows)
    for cells, text in zip(rows, texts, strict=True):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        assert line(cells) == buf.getvalue()[:-1] == text
    tail = batch_io.RenderedRow("ok", None, None, line(rows[0]))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([n, *rows[0]])
    want = buf.getvalue()
    if rows[0] == [] or rows[0] == [None] or rows[0] == [""]:
        # a lone empty cell is written as "" by csv.writer; after a row number it is bare
        return
    assert batch_io.rendered_line(n, {}, tail, ()) == want
    assert batch_io.rendered_line(n, {"c": "x,y"}, tail, ("c",), line).startswith(f'{n},"x,y",')
