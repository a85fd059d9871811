"""``infersave batch``: one recommendation per workload of a CSV, JSON Lines or YAML file."""

from __future__ import annotations

import json
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from infersave.cli.common import fail, user_errors
from infersave.solver.fields import BY_NAME

BATCH_HELP = """Solve many workloads: one row per workload in, one row per workload out.

INPUT is CSV, JSON Lines (.jsonl) or YAML (.yaml/.yml): one scenario per row with the field
names and defaults of `solve` (model, input_len, output_len, requests, slo_tps, max_price,
region, batch_sizes such as "1,2,4" or "1-256", batch_size, offload_step, billing, backend,
...). Columns name, service and id are copied to the output. OUTPUT is CSV or JSON Lines by
extension, in input order, with status ok | infeasible | error and a message; it is written
whole or not at all. A bad row is an error row, never the end of the run. The summary goes to
stderr. Exit code 0 when OUTPUT was written, 2 when the input file or options are unusable.

Example:

  infersave batch tests/data/workloads_example.csv -o recommendations.csv --workers 2
"""


class SummaryFormat(StrEnum):
    """Formats of the summary on stderr."""

    text = "text"
    json = "json"


def _summary(outcomes: list[Any], wall_s: float) -> dict[str, Any]:
    ok = [o for o in outcomes if not isinstance(o, Exception) and o.status == "ok"]
    infeasible = sum(1 for o in outcomes if not isinstance(o, Exception) and o.status != "ok")
    billed = sum(o.recommendation.total_cost_usd for o in ok)
    saved = sum(
        o.baseline.max_performance.total_cost_usd - o.recommendation.total_cost_usd
        for o in ok
        if o.baseline.max_performance is not None
    )
    return {
        "workloads": len(outcomes),
        "feasible": len(ok),
        "infeasible": infeasible,
        "errors": sum(1 for o in outcomes if isinstance(o, Exception)),
        "total_billed_usd": billed,
        "total_saved_usd": saved,
        "wall_seconds": wall_s,
    }


def _print_summary(summary: dict[str, Any], fmt: SummaryFormat, output: Path) -> None:
    if fmt is SummaryFormat.json:
        sys.stderr.write(json.dumps({**summary, "output": str(output)}) + "\n")
        return
    s = summary
    sys.stderr.write(
        f"{s['workloads']} workloads: {s['feasible']} feasible, {s['infeasible']} infeasible,"
        f" {s['errors']} errors; total billed ${s['total_billed_usd']:,.2f}, saved"
        f" ${s['total_saved_usd']:,.2f} against Max-Performance; {s['wall_seconds']:.2f} s"
        f" -> {output}\n"
    )


def batch(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Workloads: .csv, .jsonl or .yaml.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Results: .csv or .jsonl (by extension).")
    ],
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            help="Processes for the exact backends (milp, cp); exhaustive runs vectorized.",
        ),
    ] = 1,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="Backend for rows that do not name one."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")
    ] = False,
    fmt: Annotated[
        SummaryFormat, typer.Option("--format", "-f", help="Summary format on stderr.")
    ] = SummaryFormat.text,
) -> None:
    t0 = time.perf_counter()
    cpus = os.cpu_count() or 1
    if workers > cpus:
        fail(f"--workers: at most {cpus} (the CPU count of this machine), got {workers}")
    backends = get_args(BY_NAME["backend"].type)
    if backend is not None and backend not in backends:
        fail(f"--backend: unknown {backend!r}; use one of: {', '.join(backends)}")
    with user_errors():
        from infersave.catalog.output_files import check_output_path
        from infersave.solver import batch_io

        batch_io.output_format(output)
        batch_io.input_format(input_path)
        # before any work: never the input itself, a FIFO, device, symlink or unwritable place
        check_output_path(output, inputs=[input_path])
        rows = batch_io.read_workloads(input_path)

    from infersave.solver.scenario import InputError

    items: list[tuple[int, dict[str, Any], Any]] = []
    for row, fields in rows:
        if isinstance(fields, Exception):
            items.append((row, {}, fields))
            continue
        if backend is not None and batch_io.is_blank(fields.get("backend")):
            fields = {**fields, "backend": backend}
        try:
            items.append((row, fields, batch_io.scenario_from_fields(fields, row)))
        except InputError as exc:
            items.append((row, fields, exc))

    outcomes = _solve_with_progress([s for _, _, s in items], workers, quiet)
    out_rows = [
        batch_io.result_row(
            row, fields, outcome, scenario if not isinstance(scenario, Exception) else None
        )
        for (row, fields, scenario), outcome in zip(items, outcomes, strict=True)
    ]
    with user_errors():
        batch_io.write_results(output, out_rows)
    if not quiet:
        _print_summary(_summary(outcomes, time.perf_counter() - t0), fmt, output)


def _solve_with_progress(scenarios: list[Any], workers: int, quiet: bool) -> list[Any]:
    """Run :func:`~infersave.solver.batch.solve_many` with a progress bar on a terminal."""
    from infersave.solver.batch import solve_many

    if quiet or not sys.stderr.isatty() or not scenarios:
        return solve_many(scenarios, workers=workers)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("solving"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("solving", total=len(scenarios))
        return solve_many(scenarios, workers=workers, progress=lambda n: bar.advance(task, n))


def register(app: typer.Typer) -> None:
    """Add ``batch`` to the ``infersave`` app."""
    app.command(name="batch", help=BATCH_HELP)(batch)
