"""Read the curated catalog shipped in ``infersave/catalog/data`` into typed records.

Price sets:

* ``"aws"`` — AWS on-demand (and, where known, spot) prices from ec2instances.info, updated
  2026-01-21, with datasheet GPU figures (``gpus.csv``, ``aws_instances.csv``).
* ``"gcp"``, ``"azure"``, ``"lambda"`` — those providers' GPU VMs from the SkyPilot-format
  catalog github.com/anycloud-sh/catalog @ 2026-05-20 (``<provider>_instances.csv``), with the
  same datasheet GPU figures.
* ``"paper-2025"`` — the InferSave paper's Table IV: four us-east-1 instances at the paper's
  prices, with the paper's own GPU figures for T4/A10G/L4/L40S (``paper_2025_*.csv``).

:data:`PRICE_SETS` lists the sets the solver and command line accept today (``aws``,
``paper-2025``); :data:`CATALOGS` adds the other providers, whose names every lookup here
accepts. Each provider's table holds that provider only, so ``instances("aws")`` is AWS alone;
:func:`instances_for` and :func:`all_instances` give one table across providers (filter on
``provider`` and ``region``: region names can repeat across providers, e.g. Lambda's
``us-east-1``). Files are parsed lazily, one provider at a time, on first use.

Every table is parsed once (cached) with the :mod:`csv` module into the pydantic records of
:mod:`infersave.catalog.schemas`. Malformed or inconsistent data raises :class:`CatalogError`
naming the file, the row (1 = first data row; the header is row 0) and the field. The package
never reads the raw reference data at run time; see ``data/SOURCES.md`` for provenance.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from infersave.catalog.errors import CatalogError
from infersave.catalog.hf_config import count_parameters, llm_from_config
from infersave.catalog.schemas import GPU, LLM, Instance

__all__ = [
    "CATALOGS",
    "PRICE_SETS",
    "PROVIDERS",
    "CatalogError",
    "all_instances",
    "count_parameters",
    "find_gpu",
    "find_instance",
    "find_model",
    "gpus",
    "instances",
    "instances_for",
    "llm_from_config",
    "models",
    "providers",
    "read_records",
    "regions",
]

PROVIDERS: tuple[str, ...] = ("aws", "gcp", "azure", "lambda")
CLOUD = "cloud"
"""Every shipped provider's rows as one table (datasheet GPU figures)."""
PRICE_SETS: tuple[str, ...] = (CLOUD, "aws", "paper-2025")
"""The price sets: every provider's list prices (``cloud``), AWS's alone, the paper's."""
CATALOGS: tuple[str, ...] = (*PRICE_SETS, *(p for p in PROVIDERS if p not in PRICE_SETS))
"""Every name :func:`instances`, :func:`regions`, :func:`gpus` and :func:`find_instance`
accept: the price sets and each provider (a provider's name is its own table)."""

_PRICE_SET_FILES: dict[str, tuple[str, str | None]] = {
    # price set: (instances file, GPU override file or None)
    CLOUD: ("", None),  # the union of the providers' files
    "aws": ("aws_instances.csv", None),
    "paper-2025": ("paper_2025_instances.csv", "paper_2025_gpus.csv"),
    "gcp": ("gcp_instances.csv", None),
    "azure": ("azure_instances.csv", None),
    "lambda": ("lambda_instances.csv", None),
}
_DEFAULT_REGION = "us-east-1"

T = TypeVar("T", bound=BaseModel)


# ---------------------------------------------------------------- parsing


def _cell(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if value else None


def read_records(
    source: str | Path | Iterable[str], model: type[T], file_name: str | None = None
) -> tuple[T, ...]:
    """Parse CSV rows into ``model`` records.

    An empty cell becomes ``None`` for a required (nullable) field, else the field's default.

    ``source`` is a path, or the CSV text as an iterable of lines (a ``str`` is taken as a
    path). ``file_name`` is used in error messages (default: the path's name).
    Raises :class:`CatalogError` ("<file> row <n>, field <f>: <problem>") for an unreadable
    file, unknown or missing columns, a wrong number of cells, or a value the schema rejects.
    Row numbers count data rows from 1 (the header is row 0; line number = row + 1).
    """
    if isinstance(source, str | Path):
        path = Path(source)
        name = file_name or path.name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{name}: cannot read: {exc}") from exc
        lines: Iterable[str] = io.StringIO(text, newline="")
    else:
        name = file_name or "<csv>"
        lines = source
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError(f"{name}: empty file (no header)") from None
    except csv.Error as exc:
        raise CatalogError(f"{name} row 0: {exc}") from exc
    header = [h.strip() for h in header]
    fields = model.model_fields
    unknown = [h for h in header if h not in fields]
    if unknown:
        raise CatalogError(f"{name} row 0, field {unknown[0]}: unknown column")
    missing = [f for f, info in fields.items() if info.is_required() and f not in header]
    if missing:
        raise CatalogError(f"{name} row 0, field {missing[0]}: required column missing")
    required = {f for f, info in fields.items() if info.is_required()}
    out: list[T] = []
    row_no = 0
    try:
        for row_no, cells in enumerate(reader, start=1):
            if not cells:
                continue
            if len(cells) != len(header):
                raise CatalogError(
                    f"{name} row {row_no}: {len(cells)} cells, header has {len(header)}"
                )
            # An empty cell is None for a required (nullable) field, else the field's default.
            data = {
                h: c
                for h, v in zip(header, cells, strict=True)
                if (c := _cell(v)) is not None or h in required
            }
            try:
                out.append(model.model_validate(data))
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "?"
                value = data.get(field)
                raise CatalogError(
                    f"{name} row {row_no}, field {field}: {err['msg']} (value {value!r})"
                ) from exc
    except csv.Error as exc:
        raise CatalogError(f"{name} row {row_no + 1}: {exc}") from exc
    return tuple(out)


def _data_file(file_name: str, model: type[T]) -> tuple[T, ...]:
    resource = resources.files("infersave.catalog").joinpath("data", file_name)
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{file_name}: cannot read packaged data: {exc}") from exc
    return read_records(io.StringIO(text, newline=""), model, file_name)


@functools.cache
def provider_regions(provider: str) -> frozenset[str]:
    """The regions of ``provider``'s shipped rows, read from the region column alone (no
    record validation), so a search of one region parses only the providers that offer it.

    Raises:
        CatalogError: unknown provider or unreadable data.
    """
    _check_price_set(provider)
    entry = _fresh_entry(provider)
    if entry is not None:
        return frozenset(entry[1])
    file_name = _PRICE_SET_FILES[provider][0]
    resource = resources.files("infersave.catalog").joinpath("data", file_name)
    try:
        reader = csv.reader(io.StringIO(resource.read_text(encoding="utf-8"), newline=""))
        col = next(reader).index("region")
        return frozenset(row[col] for row in reader if row)
    except (OSError, UnicodeDecodeError, StopIteration, ValueError, IndexError) as exc:
        raise CatalogError(f"{file_name}: cannot read the region column: {exc}") from exc


def _check_price_set(price_set: str) -> None:
    if price_set not in _PRICE_SET_FILES:
        raise CatalogError(f"unknown price set {price_set!r}; choose one of: {', '.join(CATALOGS)}")


def _unique(records: Iterable[T], key: Any, file_name: str, field: str) -> None:
    seen: dict[Any, int] = {}
    for i, rec in enumerate(records, start=1):
        k = key(rec)
        if k in seen:
            raise CatalogError(
                f"{file_name} row {i}, field {field}: duplicate {k!r} (first at row {seen[k]})"
            )
        seen[k] = i


# ---------------------------------------------------------------- tables


def gpus(price_set: str = "aws") -> dict[str, GPU]:
    """GPU/accelerator specs keyed by name (e.g. ``"T4"``, ``"A100-SXM4-40GB"``).

    ``"aws"``: vendor-datasheet figures (``gpus.csv``). ``"paper-2025"``: the same table with
    T4/A10G/L4/L40S replaced by the paper's Table IV figures (FP32 TFLOPS as "FP16", nominal
    memory, 6/12 GB/s PCIe). Units are in the field names. Returns a fresh dict each call
    (the records are immutable). Raises :class:`CatalogError` for an unknown price set or bad
    data.
    """
    return dict(_gpus(price_set))


@functools.cache
def _gpus(price_set: str) -> Mapping[str, GPU]:
    _check_price_set(price_set)
    table = _data_file("gpus.csv", GPU)
    _unique(table, lambda g: g.name, "gpus.csv", "name")
    result = {g.name: g for g in table}
    override_file = _PRICE_SET_FILES[price_set][1]
    if override_file:
        overrides = _data_file(override_file, GPU)
        _unique(overrides, lambda g: g.name, override_file, "name")
        for i, g in enumerate(overrides, start=1):
            if g.name not in result:
                raise CatalogError(
                    f"{override_file} row {i}, field name: {g.name!r} not in gpus.csv"
                )
            result[g.name] = g
    return result


def instances(price_set: str = "aws") -> tuple[Instance, ...]:
    """All instance-type x region rows of a price set, including ``excluded`` ones.

    A provider's name is its price set: ``instances("azure")`` lists Azure's rows.
    Filter on ``inst.excluded is None`` for the rows the optimiser may use. Prices are US$
    per hour, both from one place (see :class:`Instance`); ``spot_per_hour`` is ``None`` when
    unknown. Raises :class:`CatalogError` for an unknown price set, bad data, a duplicate
    (instance_type, region) or a ``gpu`` that is not a key of :func:`gpus`.
    """
    return _instances(price_set)


def providers() -> tuple[str, ...]:
    """The providers whose instances the package ships: ``("aws", "gcp", "azure", "lambda")``."""
    return PROVIDERS


def instances_for(
    providers: Sequence[str] | None = None, regions: Sequence[str] | None = None
) -> tuple[Instance, ...]:
    """One table across providers: the rows of ``providers`` (default: all) whose region is
    one of ``regions`` (default: any), in :data:`PROVIDERS` order, then (region, type).

    Each provider's file is parsed on first use only. Region names are matched exactly and
    may belong to several providers (``us-east-1`` is AWS's and Lambda's). Raises
    :class:`CatalogError` (with close matches) for an unknown provider, or a region that none
    of the chosen providers offers.
    """
    chosen = _check_providers(providers)
    if regions is not None:  # parse only the providers that offer one of the regions
        asked = {r.strip().lower() for r in regions}
        offering = tuple(p for p in chosen if provider_regions(p) & asked)
        chosen = offering or chosen  # none offers them: parse all, for the error's suggestions
    table = [i for p in chosen for i in _instances(p)]
    if regions is None:
        return tuple(table)
    offered = {i.region for i in table}
    wanted = []
    for region in regions:
        name = region.strip().lower()
        if name not in offered:
            raise _suggest(f"region (providers {', '.join(chosen)})", region, offered)
        wanted.append(name)
    keep = set(wanted)
    return tuple(i for i in table if i.region in keep)


@functools.cache
def all_instances() -> tuple[Instance, ...]:
    """Every shipped provider's rows in one table (cached); see :func:`instances_for`."""
    return instances_for()


def _check_providers(names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return PROVIDERS
    if isinstance(names, str):
        names = [names]
    chosen = []
    for name in names:
        key = name.strip().lower()
        if key not in PROVIDERS:
            raise _suggest("provider", name, PROVIDERS)
        if key not in chosen:
            chosen.append(key)
    return tuple(p for p in PROVIDERS if p in chosen)


@functools.cache
def _instances(price_set: str) -> tuple[Instance, ...]:
    _check_price_set(price_set)
    if price_set == CLOUD:
        return tuple(i for p in PROVIDERS for i in _instances(p))
    cached = _cached_instances(price_set)
    if cached is not None:
        return cached
    return _parse_instances(price_set)


def _parse_instances(price_set: str) -> tuple[Instance, ...]:
    """The validated rows of ``price_set``'s instance file (parsed from its CSV)."""
    file_name = _PRICE_SET_FILES[price_set][0]
    table = _data_file(file_name, Instance)
    _unique(table, lambda r: (r.instance_type, r.region), file_name, "instance_type")
    known = _gpus(price_set)
    provider = price_set if price_set in PROVIDERS else None
    for i, inst in enumerate(table, start=1):
        if inst.gpu is not None and inst.gpu not in known:
            raise CatalogError(f"{file_name} row {i}, field gpu: {inst.gpu!r} not in gpus.csv")
        if inst.gpu is None and inst.excluded is None:
            raise CatalogError(f"{file_name} row {i}, field excluded: no gpu and no reason")
        if provider is not None and inst.provider != provider:
            raise CatalogError(
                f"{file_name} row {i}, field provider: {inst.provider!r}, expected {provider!r}"
            )
        if not inst.price_source or not inst.price_date:
            field = "price_date" if inst.price_source else "price_source"
            raise CatalogError(f"{file_name} row {i}, field {field}: missing")
    return table


# ---------------------------------------------------------------- prebuilt instance tables

INSTANCE_CACHE = "instances.cache"
"""The validated instance tables of every price set, prebuilt (``data/instances.cache``): a
pickle of ``{"schema": ..., "tables": {price set: (digest, regions, zlib-compressed pickle)}}``,
written
by :func:`build_instance_cache`. Unpickling a table skips the per-row validation of the CSV
(about 10 ms per provider). A table is used only while its digest (of the schemas and the very
CSV bytes it was built from) matches the shipped files, so an edited CSV or schema is parsed
again instead of being served stale."""


def _schema_signature() -> str:
    models = (Instance, GPU)
    return repr(
        [(m.__name__, [(k, repr(f.annotation)) for k, f in m.model_fields.items()]) for m in models]
    )


def _data_bytes(file_name: str) -> bytes:
    return resources.files("infersave.catalog").joinpath("data", file_name).read_bytes()


@functools.cache
def _digest(price_set: str) -> str:
    """SHA-256 of the schemas and the files a price set's table is built from."""
    import hashlib

    instances_file, gpu_override = _PRICE_SET_FILES[price_set]
    h = hashlib.sha256(_schema_signature().encode())
    for name in (instances_file, "gpus.csv", gpu_override):
        if name:
            h.update(name.encode() + b"\0" + _data_bytes(name) + b"\0")
    return h.hexdigest()


@functools.cache
def _instance_cache() -> Mapping[str, tuple[str, tuple[str, ...], bytes]]:
    """The prebuilt tables by price set (empty if the file is missing or unreadable)."""
    import pickle

    try:
        data = pickle.loads(_data_bytes(INSTANCE_CACHE))
    except Exception:  # missing, truncated, or from an incompatible version: parse the CSVs
        return {}
    if not isinstance(data, dict) or data.get("schema") != _schema_signature():
        return {}
    return data.get("tables", {})


def _fresh_entry(price_set: str) -> tuple[str, tuple[str, ...], bytes] | None:
    """``price_set``'s prebuilt (digest, regions, table) if built from the shipped files."""
    entry = _instance_cache().get(price_set)
    if entry is None or entry[0] != _digest(price_set):
        return None
    return entry


def _cached_instances(price_set: str) -> tuple[Instance, ...] | None:
    """``price_set``'s prebuilt table if it was built from the shipped files, else None."""
    import pickle
    import zlib

    entry = _fresh_entry(price_set)
    if entry is None:
        return None
    try:
        table = pickle.loads(zlib.decompress(entry[2]))
    except Exception:
        return None
    return table if isinstance(table, tuple) else None


def build_instance_cache(out_dir: Path | None = None) -> Path:
    """Parse every price set's instance CSV (validated as without a cache) and write the
    prebuilt tables to ``out_dir / instances.cache`` (default: this package's ``data/``, for
    :func:`~infersave.catalog.curate.main` and after editing a CSV by hand).

    Raises:
        CatalogError: if a CSV is invalid. OSError: if the file cannot be written.
    """
    import pickle
    import zlib

    tables = {}
    for price_set in _PRICE_SET_FILES:
        if price_set == CLOUD:
            continue
        table = _parse_instances(price_set)
        blob = zlib.compress(pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL), 9)
        regions = tuple(sorted({i.region for i in table}))
        tables[price_set] = (_digest(price_set), regions, blob)
    path = (out_dir or Path(__file__).resolve().parent / "data") / INSTANCE_CACHE
    payload = {"schema": _schema_signature(), "tables": tables}
    path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    _instance_cache.cache_clear()
    _digest.cache_clear()
    return path


@functools.cache
def regions(price_set: str = "aws") -> tuple[str, ...]:
    """Sorted region codes that appear in a price set (e.g. ``"us-east-1"``, ``"eastus"``)."""
    return tuple(sorted({i.region for i in _instances(price_set)}))


def models() -> dict[str, LLM]:
    """The curated LLMs (``models.csv``, then ``models_extra.csv``: the newer families read
    from their config.json), keyed by short lower-case name (``"opt-2.7b"``, ``"qwen3-8b"``).

    Shapes are from each model's Hugging Face ``config.json``; parameter counts are computed
    from the dimensions. Returns a fresh dict each call. Raises :class:`CatalogError`.
    """
    return dict(_models())


@functools.cache
def _models() -> Mapping[str, LLM]:
    table = _data_file("models.csv", LLM) + _data_file("models_extra.csv", LLM)
    files = "models.csv/models_extra.csv"
    _unique(table, lambda m: m.name, files, "name")
    _unique(table, lambda m: m.hf_id.lower(), files, "hf_id")
    return {m.name: m for m in table}


# ---------------------------------------------------------------- lookups


def _suggest(what: str, name: str, choices: Iterable[str]) -> CatalogError:
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        low = {c.lower(): c for c in choices}
        close = [low[c] for c in difflib.get_close_matches(name.lower(), list(low), n=3)]
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    return CatalogError(f"unknown {what} {name!r}{hint}")


def find_model(name: str | Path) -> LLM:
    """Look up an LLM by short name (``"opt-2.7b"``), Hugging Face id (case-insensitive,
    ``"meta-llama/Llama-3.1-8B"``), or the path to a local Hugging Face ``config.json``
    (or a directory holding one), whose shape is read by :func:`llm_from_config`.

    Raises :class:`CatalogError` with close matches for an unknown name, or naming the file
    and key for an unreadable/invalid config.
    """
    text = str(name).strip()
    table = _models()
    key = text.lower()
    if key in table:
        return table[key]
    for m in table.values():
        if key in (m.hf_id.lower(), m.hf_id.split("/")[-1].lower()):
            return m
    path = Path(text).expanduser()
    if isinstance(name, Path) or text.endswith(".json") or path.exists():
        if path.is_dir():
            path = path / "config.json"
        return llm_from_config(path)
    choices = list(table) + [m.hf_id for m in table.values()]
    raise _suggest("model", text, choices)


_GPU_ALIASES: dict[str, str] = {
    "a100": "A100-SXM4-40GB",
    "a100-40gb": "A100-SXM4-40GB",
    "a100-80gb": "A100-SXM4-80GB",
    "h100": "H100-SXM5-80GB",
    "h100-80gb": "H100-SXM5-80GB",
    "h200": "H200-SXM-141GB",
    "v100": "V100-SXM2-16GB",
    "v100-16gb": "V100-SXM2-16GB",
    "v100-32gb": "V100-SXM2-32GB",
    "a6000": "RTX-A6000",
    "rtx a6000": "RTX-A6000",
    "radeon pro v520": "Radeon-Pro-V520",
    "v520": "Radeon-Pro-V520",
    "inferentia2": "Inferentia2",
    "trainium": "Trainium1",
    "trainium1": "Trainium1",
}


def _norm_gpu(name: str) -> str:
    name = re.sub(r"^(nvidia|amd|aws)\s+", "", name.strip().lower())
    return re.sub(r"[\s_]+", "-", name)


def find_gpu(name: str, price_set: str = "aws") -> GPU:
    """Look up a GPU by catalog name, case-insensitively, or by alias (``"A100"`` ->
    A100-SXM4-40GB, ``"H100"`` -> H100-SXM5-80GB, ``"V100"`` -> V100-SXM2-16GB, ``"L40s"``,
    ``"NVIDIA T4"``). Raises :class:`CatalogError` with close matches when unknown.
    """
    table = _gpus(price_set)
    by_norm = {_norm_gpu(k): k for k in table}
    by_norm.update({_norm_gpu(a): k for a, k in _GPU_ALIASES.items() if k in table})
    key = by_norm.get(_norm_gpu(name))
    if key is None:
        raise _suggest("GPU", name, list(table) + [a.upper() for a in _GPU_ALIASES])
    return table[key]


def find_instance(
    instance_type: str, region: str | None = None, price_set: str = "aws"
) -> Instance:
    """The row for ``instance_type`` (case-insensitive) in ``region`` of a price set.

    ``region=None`` picks us-east-1 if the type is offered there, else the first region
    (alphabetically) that offers it. Excluded rows are returned too (check ``.excluded``).
    Raises :class:`CatalogError` (with close matches) for an unknown type or region.
    """
    table = _instances(price_set)
    itype = instance_type.strip().lower()
    rows = [r for r in table if r.instance_type.lower() == itype]
    if not rows:
        raise _suggest("instance type", instance_type, {r.instance_type for r in table})
    if region is None:
        for r in rows:
            if r.region == _DEFAULT_REGION:
                return r
        return min(rows, key=lambda r: r.region)
    for r in rows:
        if r.region == region.strip().lower():
            return r
    offered = sorted(r.region for r in rows)
    raise CatalogError(
        f"instance type {rows[0].instance_type!r} not offered in region {region!r} "
        f"(price set {price_set}); offered in: {', '.join(offered)}"
    )
