"""Output: human tables (rich), JSON and CSV. Presentation only: no modelling here."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMATS = ("table", "json", "csv")


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows (flattened) as CSV text; the header is the union of their keys, first-seen order."""
    from infersave.solver.records import flatten  # not at import: keeps --help light

    flat = [flatten(r) for r in rows]
    fields: list[str] = []
    for r in flat:
        fields.extend(k for k in r if k not in fields)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def json_text(data: Any) -> str:
    """``data`` (plain JSON-able objects) as indented JSON."""
    return json.dumps(data, indent=2, allow_nan=False)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    highlight_first: bool = False,
) -> None:
    """Print a table to stdout (rich; plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        left = col in {"instance", "gpu", "role", "name", "hf id", "region", "excluded", "where"}
        left = left or col in {"provider", "arch"}
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    for n, row in enumerate(rows):
        style = "bold green" if highlight_first and n == 0 else None
        table.add_row(*(str(v) for v in row), style=style)
    console = Console()
    if not console.is_terminal:
        console = Console(width=250)  # pipes and files: never truncate a column
    console.print(table)


def echo(text: str) -> None:
    """Write ``text`` to stdout, newline-terminated."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def money(x: float | None) -> str:
    """$ amount for tables."""
    return "-" if x is None or x != x else f"${x:,.2f}"


def num(x: float | None, digits: int = 1) -> str:
    """A number with thousands separators for tables."""
    return "-" if x is None or x != x else f"{x:,.{digits}f}"
