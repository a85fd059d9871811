"""Workload files in and result files out, for ``infersave batch`` (and any command that reads
many scenarios, e.g. ``infersave compare``).

Reading: :func:`read_workloads` returns one ``(row, fields or exception)`` per workload, and
:func:`scenario_from_fields` turns fields into a :class:`Scenario` with one-line errors. A row
that cannot be read or validated becomes an error for that row only; only a file that cannot be
read at all raises. Typical use::

    for row, fields in read_workloads(path):
        try:
            scenario = fields if isinstance(fields, Exception) else scenario_from_fields(fields)
        except InputError as exc:
            ...  # f"row {row}: ..." is already in the message

or simply :func:`load_scenarios`, which does exactly that.

Formats, by extension: ``.csv`` (a header row with the field names; empty cells take the
default), ``.jsonl``/``.ndjson`` (one JSON object per line; blank lines and lines starting
with ``#`` are skipped), ``.yaml``/``.yml`` (a list of mappings, or a mapping with a
``workloads`` list). Field names and defaults are those of :class:`Scenario`; ``batch_sizes``
may be a list or a string such as ``"1,2,4"`` or ``"1-256"``. The columns in
:data:`PASSTHROUGH` (``name``, ``service``, ``id``) are not scenario fields: they are copied
to the output. Rows are numbered from 1 in file order (CSV data rows, JSONL non-blank lines,
YAML list items).

Writing: :func:`write_results` writes CSV or JSON Lines (by extension) atomically.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import functools
import io
import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from infersave.solver.scenario import (
    InputError,
    Scenario,
    describe_validation_error,
    parse_batch_sizes,
    without_traceback,
)

PASSTHROUGH: tuple[str, ...] = ("name", "service", "id")
"""Input columns copied to the output unchanged (labels, not scenario fields)."""

INPUT_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".yaml": "yaml",
    ".yml": "yaml",
}
OUTPUT_FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

KEY_FIELDS: tuple[str, ...] = (
    "model",
    "input_len",
    "output_len",
    "requests",
    "slo_tps",
    "max_price",
    "region",
    "backend",
)
"""Scenario fields repeated in every output row."""

Row = tuple[int, dict[str, Any] | Exception]


def _format_of(path: Path, formats: Mapping[str, str], what: str) -> str:
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(formats)
        raise InputError(f"{what} {str(path)!r}: unknown extension {path.suffix!r}; use {known}")
    return fmt


def input_format(path: str | Path) -> str:
    """``csv``, ``jsonl`` or ``yaml`` from the extension. Raises InputError otherwise."""
    return _format_of(Path(path), INPUT_FORMATS, "input")


def output_format(path: str | Path) -> str:
    """``csv`` or ``jsonl`` from the extension. Raises InputError otherwise."""
    return _format_of(Path(path), OUTPUT_FORMATS, "output")


def _read_csv(text: str) -> list[Row]:
    rows: list[Row] = []
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for record in reader:
        if not record or all(not cell.strip() for cell in record):
            continue
        if header is None:
            header = [h.strip() for h in record]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes or not all(header):
                raise InputError(f"CSV header: empty or repeated column names {dupes or ''}")
            continue
        n = len(rows) + 1
        if len(record) != len(header):
            rows.append(
                (
                    n,
                    InputError(
                        f"row {n} (line {reader.line_num}): {len(record)} cells, the header has"
                        f" {len(header)}"
                    ),
                )
            )
            continue
        rows.append((n, {h: v.strip() for h, v in zip(header, record, strict=True)}))
    if header is None:
        raise InputError("the CSV file is empty: it needs a header row with the field names")
    return rows


def _read_jsonl(text: str) -> list[Row]:
    rows: list[Row] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        n = len(rows) + 1
        try:
            value = json.loads(line, parse_constant=str)  # Infinity/NaN stay text: bad values
        except json.JSONDecodeError as exc:
            rows.append((n, InputError(f"row {n} (line {line_no}): malformed JSON: {exc.msg}")))
            continue
        if not isinstance(value, dict):
            rows.append((n, InputError(f"row {n} (line {line_no}): expected a JSON object")))
            continue
        rows.append((n, value))
    return rows


def _read_yaml(text: str) -> list[Row]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"malformed YAML: {' '.join(str(exc).split())}") from None
    if isinstance(data, dict) and isinstance(data.get("workloads"), list):
        data = data["workloads"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise InputError("the YAML file must be a list of mappings (or have a 'workloads' list)")
    rows: list[Row] = []
    for n, item in enumerate(data, 1):
        if isinstance(item, dict):  # YAML's .inf/.nan stay text, as in the other formats
            rows.append((n, {str(k): _finite_or_text(v) for k, v in item.items()}))
        else:
            rows.append((n, InputError(f"row {n}: expected a mapping of field names to values")))
    return rows


def _finite_or_text(value: Any) -> Any:
    """A non-finite float as its text (``inf``), so a bad value is an error row and the output
    stays valid JSON; anything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_workloads(path: str | Path) -> list[Row]:
    """Read a workloads file: one ``(row number, fields | exception)`` per workload, in order.

    Fields are raw (CSV values are strings); pass them to :func:`scenario_from_fields`. A row
    that cannot be parsed (malformed JSON line, wrong cell count, not a mapping) is an
    :class:`InputError` whose message starts with ``row N``.

    Raises:
        InputError: unknown extension, a file that is not text, no CSV header, or YAML that
            does not parse or is not a list.
        OSError: the file cannot be read.
    """
    p = Path(path)
    fmt = input_format(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{str(p)!r} is not UTF-8 text: {exc.reason}") from None
    if fmt == "csv":
        return _read_csv(text)
    if fmt == "jsonl":
        return _read_jsonl(text)
    return _read_yaml(text)


def is_blank(value: Any) -> bool:
    """Whether a cell is empty (None or only whitespace): the field takes its default."""
    return value is None or (isinstance(value, str) and not value.strip())


def scenario_from_fields(fields: Mapping[str, Any], row: int | None = None) -> Scenario:
    """A validated :class:`Scenario` from one row's fields.

    Blank values (None or empty strings) take the default; :data:`PASSTHROUGH` fields are
    ignored; ``batch_sizes`` given as a string is parsed like ``--batch-sizes``.

    Raises:
        InputError: unknown field (with close matches) or invalid value; the one-line message
            starts with ``row N:`` when ``row`` is given.
    """
    where = f"row {row}: " if row is not None else ""
    known = Scenario.model_fields
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if key in PASSTHROUGH:
            continue
        if key not in known:
            close = difflib.get_close_matches(key, list(known) + list(PASSTHROUGH), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise InputError(f"{where}unknown field {key!r}{hint}")
        if is_blank(value):
            continue
        if key == "batch_sizes" and isinstance(value, str):
            try:
                value = parse_batch_sizes(value)
            except InputError as exc:
                raise InputError(f"{where}{exc}") from None
        clean[key] = value
    try:
        return Scenario(**clean)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise InputError(f"{where}{describe_validation_error(exc)}") from None


class RawRow(NamedTuple):
    """A workload row read but not yet validated: validated where it is solved (a batch's
    worker: :func:`~infersave.solver.batch.solve_stream` takes these in place of scenarios),
    so that the reading process does not validate and send every scenario."""

    row: int
    fields: Mapping[str, Any]


def parse_row(raw: RawRow) -> Scenario | InputError:
    """The :class:`Scenario` of ``raw`` (:func:`scenario_from_fields`), or the InputError
    that makes it an error row (returned, not raised)."""
    try:
        return scenario_from_fields(raw.fields, raw.row)
    except InputError as exc:
        return without_traceback(exc)


def raw_backend(raw: RawRow, default: str) -> str:
    """The backend ``raw`` names, or ``default`` where its cell is blank (its weight when the
    input is cut into tasks, before it is validated)."""
    value = raw.fields.get("backend")
    return default if is_blank(value) else str(value).strip()


def load_scenarios(path: str | Path) -> list[tuple[int, dict[str, Any], Scenario | Exception]]:
    """Read and validate a workloads file: ``(row, raw fields, scenario or error)`` per row.

    Raw fields are ``{}`` for a row that could not be parsed.

    Raises:
        InputError, OSError: as :func:`read_workloads` (the whole file is unusable).
    """
    out: list[tuple[int, dict[str, Any], Scenario | Exception]] = []
    for row, fields in read_workloads(path):
        if isinstance(fields, Exception):
            out.append((row, {}, fields))
            continue
        try:
            out.append((row, fields, scenario_from_fields(fields, row)))
        except InputError as exc:
            out.append((row, fields, without_traceback(exc)))
    return out


def result_row(
    row: int, fields: Mapping[str, Any], outcome: Any, scenario: Scenario | None = None
) -> dict[str, Any]:
    """The output row of one workload (nested: ``recommendation`` is a Record's fields).

    ``outcome`` is a :class:`~infersave.solver.records.SolveResult`, the
    :class:`~infersave.solver.records.BatchResult` of a lean batch run (then ``scenario`` is
    required), or an exception (status ``error``; the message names the row). Key scenario
    fields come from the scenario when there is one, else from the raw ``fields``. Money in $,
    ``savings_pct`` in percent of the Max-Performance cost, ``saved_usd`` = baseline cost -
    recommended cost.
    """
    from infersave.solver.records import BatchResult

    out: dict[str, Any] = {"row": row}
    for key in PASSTHROUGH:
        if key in fields:
            out[key] = fields[key]
    if isinstance(outcome, Exception):
        message = str(outcome)
        if not message.startswith(f"row {row}"):
            message = f"row {row}: {message}"
        out.update(status="error", message=message)
        src: Mapping[str, Any] = scenario.model_dump() if scenario is not None else fields
        out.update({k: (None if is_blank(src.get(k)) else src.get(k)) for k in KEY_FIELDS})
        out.update(recommendation=None, baseline_instance_type=None, baseline_cost_usd=None)
        out.update(savings_pct=None, saved_usd=None)
        return out
    if not isinstance(outcome, BatchResult):
        scenario = outcome.scenario
        outcome = BatchResult.of(outcome)
    out["status"] = outcome.status
    out["message"] = outcome.message
    for k in KEY_FIELDS:
        out[k] = getattr(scenario, k)
    rec, base = outcome.recommendation, outcome.baseline
    out["recommendation"] = rec.as_dict() if rec is not None else None
    out["baseline_instance_type"] = base.instance_type if base is not None else None
    out["baseline_cost_usd"] = base.total_cost_usd if base is not None else None
    out["savings_pct"] = outcome.savings_pct
    saved = None
    if rec is not None and base is not None:
        saved = base.total_cost_usd - rec.total_cost_usd
    out["saved_usd"] = saved
    return out


def _csv_header() -> list[str]:
    from infersave.solver.records import Record

    rec_fields: list[str] = []
    for name, info in Record.model_fields.items():
        sub = getattr(info.annotation, "model_fields", None)
        if sub:
            rec_fields.extend(f"recommendation_{name}_{s}" for s in sub)
        else:
            rec_fields.append(f"recommendation_{name}")
    return [
        "row",
        *PASSTHROUGH,
        "status",
        "message",
        *KEY_FIELDS,
        *rec_fields,
        "baseline_instance_type",
        "baseline_cost_usd",
        "savings_pct",
        "saved_usd",
    ]


def passthrough_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The :data:`PASSTHROUGH` columns that some of ``rows`` (raw input fields or output rows)
    has: the CSV output shows only those."""
    found = set()
    for r in rows:
        found.update(h for h in PASSTHROUGH if h in r)
        if len(found) == len(PASSTHROUGH):
            break
    return [h for h in PASSTHROUGH if h in found]


def _csv_cells(header: Sequence[str]) -> Any:
    """A function from an output row to its CSV cells under ``header`` (what
    ``csv.DictWriter`` writes for the flattened row: nested records joined with ``_``)."""
    rec_at = [i for i, h in enumerate(header) if h.startswith("recommendation_")]
    lo, hi = (rec_at[0], rec_at[-1] + 1) if rec_at else (len(header), len(header))
    head, tail = header[:lo], header[hi:]
    blank = [None] * (hi - lo)

    def cells(r: Mapping[str, Any]) -> list[Any]:
        rec = r.get("recommendation")
        if rec is None:
            mid = blank
        else:  # Record fields in order, the nested memory ones in its place (as flatten does)
            mid = []
            for value in rec.values():
                if isinstance(value, dict):
                    mid.extend(value.values())
                else:
                    mid.append(value)
        return [r.get(h) for h in head] + mid + [r.get(h) for h in tail]

    return cells


def render_rows(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    passthrough: Sequence[str] | None = None,
    header: bool = True,
) -> Iterator[str]:
    """Output text chunks of ``rows`` as ``csv`` (flattened, fixed header; the passthrough
    columns only when some row has them, or those of ``passthrough`` when given) or ``jsonl``
    (one JSON object per line, nested). ``header=False`` leaves out the CSV header (for the
    chunks after the first of a streamed file)."""
    if fmt == "jsonl":
        for r in rows:
            yield json.dumps(r, allow_nan=False, default=str) + "\n"
        return
    shown = passthrough_columns(rows) if passthrough is None else passthrough
    names = [h for h in _csv_header() if h not in PASSTHROUGH or h in shown]
    cells = _csv_cells(names)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(names)
    for start in range(0, len(rows), 1000):
        writer.writerows(cells(r) for r in rows[start : start + 1000])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def csv_names(passthrough: Sequence[str]) -> list[str]:
    """The CSV output's header with the :data:`PASSTHROUGH` columns of ``passthrough`` (what
    :func:`render_rows` writes)."""
    return [h for h in _csv_header() if h not in PASSTHROUGH or h in passthrough]


def result_cells(
    row: int,
    fields: Mapping[str, Any],
    outcome: Any,
    scenario: Scenario | None,
    passthrough: Sequence[str],
) -> list[Any]:
    """The CSV cells of one workload under :func:`csv_names` of ``passthrough``: what
    :func:`render_rows` writes for :func:`result_row`'s row, without the nested dicts (a
    :class:`~infersave.solver.records.BatchResult` with its scenario is read directly; any
    other outcome goes through :func:`result_row`)."""
    from infersave.solver.records import BatchResult

    if not isinstance(outcome, BatchResult) or scenario is None:
        names = csv_names(passthrough)
        return _csv_cells(names)(result_row(row, fields, outcome, scenario))
    cells: list[Any] = [row]
    cells.extend(fields.get(h) for h in passthrough)
    cells.extend(_tail_cells(outcome, scenario))
    return cells


def _tail_cells(outcome: Any, scenario: Scenario) -> list[Any]:
    """The cells of a lean result from ``status`` on (after the row number and the
    passthrough columns)."""
    rec, base = outcome.recommendation, outcome.baseline
    cells: list[Any] = [outcome.status, outcome.message]
    cells.extend(getattr(scenario, k) for k in KEY_FIELDS)
    if rec is None:
        cells.extend([None] * _record_width())
    else:  # a RecordRow holds the record's fields flattened, in the header's order
        cells.extend(rec)
    cells.append(base.instance_type if base is not None else None)
    cells.append(base.total_cost_usd if base is not None else None)
    cells.append(outcome.savings_pct)
    saved = None
    if rec is not None and base is not None:
        saved = base.total_cost_usd - rec.total_cost_usd
    cells.append(saved)
    return cells


class RenderedRow(NamedTuple):
    """A lean result already rendered where it was solved (a worker): its CSV cells from
    ``status`` on as text (``csv_tail``, without the line end), and what the run's summary
    adds up: ``billed_usd`` (the recommendation's cost, $) and ``saved_usd`` (the baseline's
    cost minus it, $), None where there is none."""

    status: str
    billed_usd: float | None
    saved_usd: float | None
    csv_tail: str


class CsvLine:
    """Renders cells as the text ``csv.writer`` writes for them (one line, without its end),
    reusing one writer and buffer: a writer per line costs more than the line (issue 12).
    Not shared between threads."""

    def __init__(self) -> None:
        self._buf = io.StringIO()
        # the file's line end: it decides which cells are quoted
        self._writer = csv.writer(self._buf, lineterminator="\n")

    def __call__(self, cells: Iterable[Any]) -> str:
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._writer.writerow(cells)
        return buf.getvalue()[:-1]


def csv_texts(rows: Iterable[Iterable[Any]]) -> list[str]:
    """The text ``csv.writer`` writes for each row of ``rows`` (its cells), one line each
    without its end, all written through one writer into one buffer (each row's length is
    what the writer's ``writerow`` returns: the characters written): a task's rows in one
    call, at about the cost of a reused buffer emptied per row (15.7 against 16.1 µs a batch
    output row, min of 30)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    lengths = [writer.writerow(cells) for cells in rows]
    text = buf.getvalue()
    out: list[str] = []
    start = 0
    for n in lengths:
        out.append(text[start : start + n - 1])
        start += n
    return out


def render_results(results: Sequence[tuple[Any, Scenario, int]]) -> list[RenderedRow]:
    """The :class:`RenderedRow` of each ``(outcome, scenario, row)``: of a
    :class:`~infersave.solver.records.BatchResult`, the text ``csv.writer`` writes for its cells
    from ``status`` on (a CSV row is its cells' quoted texts joined by commas, so the output
    row is the same bytes); of an exception raised when ``scenario`` (row ``row``, validated)
    was solved, its error row's cells from ``status`` on as :func:`result_cells` gives them (the
    key fields as validated, not as the raw cells were written). Rendered where they were
    solved (:func:`csv_texts`)."""
    from infersave.solver.records import BatchResult

    heads: list[tuple[str, float | None, float | None]] = []
    cells: list[list[Any]] = []
    error_cells = _csv_cells(csv_names(()))
    for outcome, scenario, row in results:
        if not isinstance(outcome, BatchResult):
            heads.append(("error", None, None))
            cells.append(error_cells(result_row(row, {}, outcome, scenario))[1:])
            continue
        rec, base = outcome.recommendation, outcome.baseline
        billed = rec.total_cost_usd if rec is not None else None
        saved = None
        if rec is not None and base is not None:
            saved = base.total_cost_usd - rec.total_cost_usd
        heads.append((outcome.status, billed, saved))
        cells.append(_tail_cells(outcome, scenario))
    return [RenderedRow(*h, t) for h, t in zip(heads, csv_texts(cells), strict=True)]


@functools.cache
def _record_width() -> int:
    return sum(h.startswith("recommendation_") for h in _csv_header())


def write_csv_cells(
    path: str | Path, names: Sequence[str], rows: Iterable[Sequence[Any] | str]
) -> None:
    """Write the CSV header ``names`` and the rows ``rows`` to ``path`` atomically (whole or
    not at all), :data:`WRITE_ROWS` rows at a time: each row its cells (from
    :func:`result_cells`), or its line already rendered (:func:`rendered_line`); the bytes
    :func:`write_results` writes for the same rows.

    Raises:
        OSError: the file cannot be written.
    """
    with atomic_output(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        it = iter(rows)
        while part := list(itertools.islice(it, WRITE_ROWS)):
            start = 0
            for j, r in enumerate(part):  # runs of cells through the writer, lines as they are
                if isinstance(r, str):
                    writer.writerows(part[start:j])
                    fh.write(r)
                    start = j + 1
            writer.writerows(part[start:])


def rendered_line(
    row: int,
    fields: Mapping[str, Any],
    rendered: RenderedRow,
    passthrough: Sequence[str],
    line: CsvLine | None = None,
) -> str:
    """The output line of a :class:`RenderedRow` (its row number and passthrough cells
    before its tail), as ``csv.writer`` writes the whole row. ``line``: a renderer to reuse
    across rows."""
    if not passthrough:  # an integer is never quoted
        return f"{int(row)},{rendered.csv_tail}\n"
    head = (line or CsvLine())([row, *(fields.get(h) for h in passthrough)])
    return f"{head},{rendered.csv_tail}\n"


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[io.TextIOWrapper]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``
    (``os.replace``, atomic on one file system), on any exception or interrupt it is removed
    and ``path`` is left as it was.

    Raises:
        OSError: the directory is not writable (nothing is created then).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the output the usual mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


WRITE_ROWS = 1000
"""Output rows rendered and written at a time by :func:`write_results`."""


def write_results(
    path: str | Path,
    rows: Iterable[Mapping[str, Any]],
    passthrough: Sequence[str] | None = None,
) -> None:
    """Write ``rows`` (from :func:`result_row`) to ``path`` as CSV or JSON Lines by extension,
    atomically (whole or not at all).

    ``rows`` may be an iterator (a stream): it is rendered :data:`WRITE_ROWS` at a time into the
    temporary file, so memory does not grow with the number of rows; the CSV then shows the
    ``passthrough`` columns (required for a CSV stream, as the header comes first).

    Raises:
        InputError: unknown output extension (checked before anything is written).
        OSError: the file cannot be written.
        ValueError: a CSV stream without ``passthrough``.
    """
    fmt = output_format(path)
    if passthrough is None:
        if fmt == "csv" and not isinstance(rows, Sequence):
            raise ValueError("write_results: a CSV stream needs its passthrough columns")
        if isinstance(rows, Sequence):
            passthrough = passthrough_columns(rows)
    with atomic_output(path) as fh:
        it = iter(rows)
        part = list(itertools.islice(it, WRITE_ROWS))
        header = True
        while True:
            for chunk in render_rows(part, fmt, passthrough=passthrough, header=header):
                fh.write(chunk)
            part = list(itertools.islice(it, WRITE_ROWS))
            if not part:
                break
            header = False
