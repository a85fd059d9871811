"""A user's own prices (negotiated discounts, savings plans, reserved) over the catalog's.

The file is a CSV with a header; columns (any order):

=====================  ========  =====================================================
column                 needed    meaning
=====================  ========  =====================================================
provider               yes       ``aws``, ``gcp``, ``azure`` or ``lambda``
instance_type          yes       as in the catalog (case-insensitive), e.g. ``g5.xlarge``
region                 yes       as in the catalog, e.g. ``us-east-1``
on_demand_per_hour     yes       the price you pay, US$ per hour (> 0)
spot_per_hour          no        your spot price; empty keeps the catalog's spot price
source                 no        where the price comes from (default: file and row)
date                   no        ``YYYY-MM-DD`` (or ``YYYY-MM``) the price holds from
                                 (default: the file's modification date)
=====================  ========  =====================================================

Example::

    provider,instance_type,region,on_demand_per_hour,source
    aws,g5.xlarge,us-east-1,0.72,3-year savings plan

A row replaces the prices of that (provider, instance_type, region) row and records its
source and date in ``price_source``/``price_date``; a row that had no on-demand price becomes
usable if nothing else excluded it. Every problem is a :class:`CatalogError` naming the file,
the row (1 = first data row, the header is row 0) and the field.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from infersave.catalog.load import PROVIDERS, CatalogError
from infersave.catalog.schemas import Instance

NO_ON_DEMAND = "no on-demand price"  # the curated exclusion reason an override lifts
REQUIRED = ("provider", "instance_type", "region", "on_demand_per_hour")
OPTIONAL = ("spot_per_hour", "source", "date")
_DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?")


def apply_price_overrides(instances: Iterable[Instance], path: str | Path) -> tuple[Instance, ...]:
    """``instances`` with the prices of the user's CSV at ``path`` put in (see module doc).

    Rows of ``instances`` not named in the file are returned unchanged, in the same order.
    Raises :class:`CatalogError` "<file> row <n>, field <f>: <problem>" for an unreadable or
    empty file, a missing or unknown column, a wrong number of cells, an unknown provider,
    instance type or region, a price that is not a positive number, a bad date, or a
    (provider, instance_type, region) given twice.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        default_date = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date().isoformat()
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{name}: cannot read prices: {exc}") from exc
    table = tuple(instances)
    index = {(i.provider, i.instance_type.lower(), i.region): k for k, i in enumerate(table)}
    types = {(i.provider, i.instance_type.lower()): i.instance_type for i in table}
    out = list(table)
    seen: dict[int, int] = {}
    for row_no, cells in _rows(text, name):

        def err(field: str, problem: str, row_no: int = row_no) -> CatalogError:
            return CatalogError(f"{name} row {row_no}, field {field}: {problem}")

        provider = cells["provider"].lower()
        if provider not in PROVIDERS:
            raise err("provider", f"unknown provider {cells['provider']!r}; use one of: "
                      f"{', '.join(PROVIDERS)}")  # fmt: skip
        itype = cells["instance_type"]
        if (provider, itype.lower()) not in types:
            known = sorted(t for p, t in types.items() if p[0] == provider)
            close = difflib.get_close_matches(itype, known, n=3, cutoff=0.6)
            hint = f"; did you mean: {', '.join(close)}?" if close else ""
            raise err("instance_type", f"unknown {provider} instance type {itype!r}{hint}")
        key = (provider, itype.lower(), cells["region"].lower())
        if key not in index:
            offered = sorted(r for p, t, r in index if (p, t) == key[:2])
            shown = ", ".join(offered[:8]) + (", ..." if len(offered) > 8 else "")
            raise err("region", f"{types[key[:2]]} not offered in {cells['region']!r} by "
                      f"{provider}; offered in: {shown}")  # fmt: skip
        k = index[key]
        if k in seen:
            raise err("instance_type", f"same instance and region as row {seen[k]}")
        seen[k] = row_no
        on_demand = _price(cells["on_demand_per_hour"], err, "on_demand_per_hour")
        if on_demand is None:
            raise err("on_demand_per_hour", "empty; give the price you pay, US$ per hour")
        spot = _price(cells.get("spot_per_hour", ""), err, "spot_per_hour")
        date = cells.get("date", "") or default_date
        if not _DATE.fullmatch(date):
            raise err("date", f"{date!r} is not YYYY-MM-DD")
        old = table[k]
        reasons = [r for r in (old.excluded or "").split("; ") if r and r != NO_ON_DEMAND]
        update: dict[str, object] = {
            "on_demand_per_hour": on_demand,
            "price_source": cells.get("source", "") or f"user prices {path.name} row {row_no}",
            "price_date": date,
            "excluded": "; ".join(reasons) or None,
        }
        if spot is not None:
            update.update(spot_per_hour=spot, spot_zone=None)
        out[k] = old.model_copy(update=update)
    return tuple(out)


def _rows(text: str, name: str) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CatalogError(f"{name}: empty file (no header)") from None
    except csv.Error as exc:
        raise CatalogError(f"{name} row 0: {exc}") from exc
    for h in header:
        if h not in REQUIRED + OPTIONAL:
            raise CatalogError(
                f"{name} row 0, field {h or '(empty)'}: unknown column; columns are "
                f"{', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}"
            )
    for h in REQUIRED:
        if h not in header:
            raise CatalogError(f"{name} row 0, field {h}: required column missing")
    row_no = 0
    try:
        for row_no, cells in enumerate(reader, start=1):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise CatalogError(
                    f"{name} row {row_no}: {len(cells)} cells, header has {len(header)}"
                )
            row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
            for h in REQUIRED[:3]:
                if not row[h]:
                    raise CatalogError(f"{name} row {row_no}, field {h}: empty")
            yield row_no, row
    except csv.Error as exc:
        raise CatalogError(f"{name} row {row_no + 1}: {exc}") from exc


def _price(text: str, err: Callable[[str, str], CatalogError], field: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise err(field, f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise err(field, f"must be a positive price in US$ per hour, got {text!r}")
    return value
