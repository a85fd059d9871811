"""``infersave batch``: one recommendation per workload of a CSV, JSON Lines or YAML file."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
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
`--engine dask` sends the same tasks to a dask.distributed cluster (`--scheduler
tcp://HOST:PORT`, or a local one of --workers processes) with the same output.

Example:

  infersave batch tests/data/workloads_example.csv -o recommendations.csv --workers 2
  infersave batch big.csv -o recs.csv --engine dask --scheduler tcp://10.0.0.5:8786
"""


class Engine(StrEnum):
    """Where the tasks run: this machine's processes, or a dask.distributed cluster."""

    local = "local"
    dask = "dask"


class SummaryFormat(StrEnum):
    """Formats of the summary on stderr."""

    text = "text"
    json = "json"


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
            help="Processes to share the work (any backend; at most the CPU count).",
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
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="local: --workers processes here; dask: a dask.distributed cluster (the"
            " same output), the one at --scheduler or a local one of --workers processes.",
        ),
    ] = Engine.local,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="With --engine dask: the scheduler, tcp://HOST:PORT (its workers need this"
            " infersave version; --workers is then unused).",
        ),
    ] = None,
) -> None:
    t0 = time.perf_counter()
    cpus = os.cpu_count() or 1
    if workers > cpus:
        fail(f"--workers: at most {cpus} (the CPU count of this machine), got {workers}")
    backends = get_args(BY_NAME["backend"].type)
    if backend is not None and backend not in backends:
        fail(f"--backend: unknown {backend!r}; use one of: {', '.join(backends)}")
    if scheduler is not None:
        if engine is not Engine.dask:
            fail("--scheduler needs --engine dask")
        with user_errors():
            from infersave.solver.distributed import check_address

            scheduler = check_address(scheduler)
    with user_errors():
        from infersave.catalog.output_files import check_output_path
        from infersave.solver import batch_io

        batch_io.output_format(output)
        batch_io.input_format(input_path)
        # before any work: never the input itself, a FIFO, device, symlink or unwritable place
        check_output_path(output, inputs=[input_path])
        rows = batch_io.read_workloads(input_path)

    from infersave.solver.scenario import InputError, Scenario, without_traceback

    csv_out = batch_io.output_format(output) == "csv"

    def items() -> Iterator[tuple[int, dict[str, Any], Any]]:
        """(row, raw fields, what is solved) per input row: for a CSV output the raw row,
        validated in the worker that solves it (its output line is rendered there and needs
        nothing of the scenario here), else the scenario or its error, validated as read.
        Each raw row is let go once taken, so memory follows the rows in flight."""
        for n, (row, fields) in enumerate(rows):
            rows[n] = None  # type: ignore[call-overload]
            if isinstance(fields, Exception):
                yield row, {}, fields
                continue
            if backend is not None and batch_io.is_blank(fields.get("backend")):
                fields = {**fields, "backend": backend}
            if csv_out:
                yield row, fields, batch_io.RawRow(row, fields)
                continue
            try:
                yield row, fields, batch_io.scenario_from_fields(fields, row)
            except InputError as exc:
                yield row, fields, without_traceback(exc)

    passthrough = batch_io.passthrough_columns(f for _, f in rows if isinstance(f, dict))
    total = len(rows)
    summary = _Summary()
    in_flight: deque[tuple[int, dict[str, Any], Any]] = deque()

    def scenarios() -> Iterator[Any]:
        for item in items():
            in_flight.append(item)
            yield item[2]

    stopping: list[int] = []  # the SIGTERM received, if any

    line = batch_io.CsvLine()

    def out_rows(outcomes: Iterable[Any]) -> Iterator[Any]:
        """The output rows: CSV cells (:func:`~infersave.solver.batch_io.result_cells`) for a
        CSV output, else :func:`~infersave.solver.batch_io.result_row`'s dicts."""
        for outcome in outcomes:
            if stopping:  # the handler's exit was swallowed (raised inside a gc callback)
                raise SystemExit(128 + stopping[0])
            row, fields, scenario = in_flight.popleft()
            summary.add(outcome)
            s = scenario if isinstance(scenario, Scenario) else None
            if isinstance(outcome, batch_io.RenderedRow):
                yield batch_io.rendered_line(row, fields, outcome, passthrough, line)
            elif csv_out:
                yield batch_io.result_cells(row, fields, outcome, s, passthrough)
            else:
                yield batch_io.result_row(row, fields, outcome, s)

    # read, solve and write as one stream into the temporary file: an interrupt, SIGTERM or
    # crash anywhere leaves no partial output, stops the workers and keeps an existing OUTPUT
    with (
        _raise_on_sigterm(stopping),
        _solve_with_progress(
            scenarios(), total, workers, quiet, engine, scheduler, "csv" if csv_out else True
        ) as outcomes,
        user_errors(),
    ):
        if csv_out:
            batch_io.write_csv_cells(output, batch_io.csv_names(passthrough), out_rows(outcomes))
        else:
            batch_io.write_results(output, out_rows(outcomes), passthrough)
    if not quiet:
        _print_summary(summary.as_dict(time.perf_counter() - t0), fmt, output)


class _Summary:
    """The run's counts and totals, accumulated while the rows stream by (input order)."""

    def __init__(self) -> None:
        self.workloads = self.feasible = self.infeasible = self.errors = 0
        self.billed = self.saved = 0.0

    def add(self, outcome: Any) -> None:
        self.workloads += 1
        if isinstance(outcome, Exception):
            self.errors += 1
            return
        if hasattr(outcome, "csv_tail"):  # a RenderedRow: its sums were taken in the worker
            if outcome.status == "error":
                self.errors += 1
                return
            if outcome.status != "ok":
                self.infeasible += 1
                return
            self.feasible += 1
            self.billed += outcome.billed_usd
            if outcome.saved_usd is not None:
                self.saved += outcome.saved_usd
            return
        if outcome.status != "ok":
            self.infeasible += 1
            return
        self.feasible += 1
        rec = outcome.recommendation
        base = outcome.baseline
        base = getattr(base, "max_performance", base)  # SolveResult or BatchResult
        self.billed += rec.total_cost_usd
        if base is not None:
            self.saved += base.total_cost_usd - rec.total_cost_usd

    def as_dict(self, wall_s: float) -> dict[str, Any]:
        return {
            "workloads": self.workloads,
            "feasible": self.feasible,
            "infeasible": self.infeasible,
            "errors": self.errors,
            "total_billed_usd": self.billed,
            "total_saved_usd": self.saved,
            "wall_seconds": wall_s,
        }


@contextlib.contextmanager
def _raise_on_sigterm(stopping: list[int]) -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` while the batch runs, so that the same clean-up
    as for Ctrl-C runs (temporary file removed, worker pool terminated). A second SIGTERM
    during that clean-up is ignored. The signal is also appended to ``stopping``: an exception
    raised while the main thread runs a gc callback (dask's client installs one) or a
    finalizer is swallowed by Python, so the caller checks it as rows go by. Outside the main
    thread (no signals there) a no-op."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        # not SIG_IGN: worker processes spawned from here would inherit an ignored SIGTERM and
        # outlive the pool's terminate(); a second SIGTERM during the clean-up is dropped here
        if stopping:
            return
        stopping.append(signum)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _solve_with_progress(
    scenarios: Iterable[Any],
    total: int,
    workers: int,
    quiet: bool,
    engine: Engine = Engine.local,
    scheduler: str | None = None,
    lean: bool | str = True,
) -> Iterator[Iterator[Any]]:
    """The outcomes of :func:`~infersave.solver.batch.solve_stream` (lean: what a row prints),
    in input order, with a progress bar on a terminal; the stream is closed on exit (which
    terminates a worker pool that is still running, or cancels a cluster's tasks and closes
    its client)."""
    from infersave.solver.batch import solve_stream

    where = {"engine": engine.value, "scheduler": scheduler}
    if quiet or not sys.stderr.isatty() or not total:
        stream = solve_stream(scenarios, workers=workers, lean=lean, total=total, **where)
        with contextlib.closing(stream):
            yield stream
        return
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
        task = bar.add_task("solving", total=total)
        stream = solve_stream(
            scenarios,
            workers=workers,
            progress=lambda n: bar.advance(task, n),
            lean=lean,
            total=total,
            **where,
        )
        with contextlib.closing(stream):
            yield stream


def register(app: typer.Typer) -> None:
    """Add ``batch`` to the ``infersave`` app."""
    app.command(name="batch", help=BATCH_HELP)(batch)
