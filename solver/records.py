"""Result models: one record per configuration, and the result of a solve (the JSON contract)."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from infersave.catalog.schemas import Instance
from infersave.formulations.candidates import CandidateTable
from infersave.solver.scenario import Scenario


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Memory(_Frozen):
    """Memory on one GPU of a replica in bytes (a replica spans ``tensor_parallel`` GPUs: the
    weights and the KV cache are split over them). ``gpu_memory_bytes`` is the usable memory of
    one GPU; ``host_memory_bytes`` the host memory one GPU's share of offloaded KV may use."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    gpu_memory_bytes: int
    host_memory_bytes: int


class Record(_Frozen):
    """One configuration (instance, tensor-parallel degree, batch size, offload ratio) with its
    predictions.

    ``tensor_parallel`` is the GPUs of one replica (the instance runs gpu_count /
    tensor_parallel replicas); ``dtype`` the weight precision (searched with ``dtypes``).
    ``tps`` counts input + output tokens per second over all
    replicas (Eq. 1); ``output_tps`` only generated tokens. ``prefill_s``/``decode_s`` are for
    one batch on one replica (all decode steps), ``allreduce_s`` the part of their sum spent in
    tensor-parallel all-reduces. ``task_hours`` uses TPS_effective (Eq. 2); ``billed_hours``
    per the billing mode; ``total_cost_usd`` = billed_hours x price_per_hour;
    ``cost_efficiency`` per Eq. 3.
    ``tps_low``/``tps_high`` bound ``tps`` by the time model's expected error for this GPU
    (cross-validated; perf model v2 only, else ``None``): ``tps / f`` and ``tps x f`` with
    ``f = 1 + tps_band_pct / 100`` at ``--slo-confidence`` (0.9 when not given).
    ``calibration`` names the CTCF coefficients applied, or ``uncalibrated``. ``provider``,
    ``region`` and ``zone`` (when the provider prices per zone) say where; ``market``
    (``on-demand`` or ``spot``), ``price_source`` and ``price_date`` where the $/h comes from.
    """

    instance_type: str
    provider: str
    region: str
    zone: str | None = None
    market: str = "on-demand"
    price_source: str | None = None
    price_date: str | None = None
    gpu: str
    gpu_count: float
    tensor_parallel: int = 1
    dtype: str = "fp16"
    batch_size: int
    offload_ratio: float
    tps: float
    tps_low: float | None
    tps_high: float | None
    tps_band_pct: float | None
    output_tps: float
    prefill_s: float
    decode_s: float
    e2e_s: float
    ttft_s: float
    tpot_s: float
    allreduce_s: float = 0.0
    task_hours: float
    billed_hours: float
    price_per_hour: float
    total_cost_usd: float
    cost_efficiency: float
    meets_slo: bool
    calibration: str
    memory: Memory


class Baseline(_Frozen):
    """The paper's Max-Performance policy: the highest-TPS configuration under the price cap,
    and what the recommendation saves against it (percent of its total cost)."""

    max_performance: Record | None
    savings_pct: float | None


class SolverInfo(_Frozen):
    """How the recommendation was searched: backend, solver, status, wall seconds, objective."""

    backend: str
    solver: str
    status: str
    solve_seconds: float
    objective: float | None
    note: str = ""


class SolveResult(_Frozen):
    """The answer to one scenario. ``status`` is ``ok`` or ``infeasible``; ``message`` explains
    the closest miss when nothing is feasible."""

    scenario: Scenario
    status: str
    message: str
    recommendation: Record | None
    alternatives: list[Record]
    baseline: Baseline
    solver: SolverInfo | None = None
    candidates: int = 0
    feasible_candidates: int = 0


BAND_COLUMNS: tuple[str, ...] = ("tps_low", "tps_high", "tps_band_pct")
"""Table columns that are ``nan`` without an error band (``None`` in a record)."""

TABLE_COLUMNS: tuple[str, ...] = (
    "allreduce_s",
    "tps",
    *BAND_COLUMNS,
    "output_tps",
    "prefill_s",
    "decode_s",
    "e2e_s",
    "ttft_s",
    "tpot_s",
    "task_hours",
    "billed_hours",
    "price_per_hour",
    "total_cost_usd",
    "cost_efficiency",
)
"""The record fields read as floats from the candidate table's column of the same name."""


def place_fields(inst: Instance) -> dict[str, Any]:
    """The record fields of where a candidate runs and what its price is (instance facts)."""
    return {
        "instance_type": inst.instance_type,
        "provider": inst.provider,
        "region": inst.region,
        "zone": inst.zone or (inst.spot_zone if inst.market == "spot" else None),
        "market": inst.market,
        "price_source": inst.price_source,
        "price_date": inst.price_date,
        "gpu": inst.gpu or inst.accelerator,
        "gpu_count": float(inst.gpu_count),
    }


def _band_or_float(name: str, value: float) -> float | None:
    x = float(value)
    return None if name in BAND_COLUMNS and not math.isfinite(x) else x


def record_fields(
    place: Mapping[str, Any],
    values: Mapping[str, float],
    meets_slo: bool,
    calibration: str,
    dtype: str,
) -> dict[str, Any]:
    """Every field of a :class:`Record` (``memory`` flattened: the :class:`Memory` fields),
    from :func:`place_fields`, the candidate's table values (``batch_size``,
    ``offload_ratio``, :data:`TABLE_COLUMNS` and the memory columns), whether it meets every
    SLO, and the calibration name. The one definition behind :func:`make_record` and the
    batch path's :class:`RecordRow`."""
    return {
        **place,
        "tensor_parallel": int(values["tensor_parallel"]),
        "dtype": dtype,
        "batch_size": int(values["batch_size"]),
        "offload_ratio": round(float(values["offload_ratio"]), 10),
        **{name: _band_or_float(name, values[name]) for name in TABLE_COLUMNS},
        "meets_slo": bool(meets_slo),
        "calibration": calibration,
        "weights_bytes": round(float(values["weights_gpu_bytes"])),
        "kv_cache_bytes": round(float(values["kv_cache_bytes"])),
        "activation_bytes": round(float(values["activation_bytes"])),
        "gpu_memory_bytes": int(values["gpu_memory_bytes"]),
        "host_memory_bytes": int(values["host_memory_bytes"]),
    }


MEMORY_COLUMNS: tuple[str, ...] = (
    "tensor_parallel",
    "weights_gpu_bytes",
    "kv_cache_bytes",
    "activation_bytes",
    "gpu_memory_bytes",
    "host_memory_bytes",
)
"""The per-candidate columns a record reads besides :data:`TABLE_COLUMNS`: the TP degree and the
memory on one GPU."""


def make_record(table: CandidateTable, k: int, calibration_name: str) -> Record:
    """The :class:`Record` of candidate ``k`` of ``table``."""
    i = int(table.instance_idx[k])
    names = ("batch_size", "offload_ratio", *TABLE_COLUMNS, *MEMORY_COLUMNS)
    values = {name: getattr(table, name)[k] for name in names}
    meets = all(
        bool(table.ok[c.name][k]) for c in table.constraints if c.kind in ("slo", "latency")
    )
    cal = calibration_name if table.inst.calibrated[i] else "uncalibrated"
    dtype = table.inst.dtype_of_rows(table.options)[i]
    fields = record_fields(place_fields(table.inst.instances[i]), values, meets, cal, dtype)
    return RecordRow(**fields).to_record()


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict to one level, joining keys with ``_`` (``memory.weights_bytes`` ->
    ``memory_weights_bytes``)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


_MEMORY_FIELDS: tuple[str, ...] = tuple(Memory.model_fields)
_RECORD_TOP: tuple[str, ...] = tuple(f for f in Record.model_fields if f != "memory")
_N_TOP = len(_RECORD_TOP)


class RecordRow(collections.namedtuple("_RecordRowFields", (*_RECORD_TOP, *_MEMORY_FIELDS))):
    """A :class:`Record` as a plain tuple (the batch path builds thousands of them from arrays;
    pydantic only at the edges): the fields of :class:`Record` in order, with those of
    :class:`Memory` flattened at the end (generated from the two models, so they cannot drift).
    :meth:`as_dict` equals ``Record.model_dump()``."""

    __slots__ = ()

    @classmethod
    def of(cls, record: Record) -> RecordRow:
        """The row of a :class:`Record`."""
        d = record.model_dump()
        memory = d.pop("memory")
        return cls(*d.values(), *memory.values())

    def as_dict(self) -> dict[str, Any]:
        """Nested like ``Record.model_dump()`` (``memory`` a dict of the memory fields)."""
        d = dict(zip(_RECORD_TOP, self[:_N_TOP], strict=True))
        d["memory"] = dict(zip(_MEMORY_FIELDS, self[_N_TOP:], strict=True))
        return d

    def to_record(self) -> Record:
        """The pydantic :class:`Record` (validated)."""
        return Record(**self.as_dict())


_PLACE_FIELDS: tuple[str, ...] = (
    "instance_type",
    "provider",
    "region",
    "zone",
    "market",
    "price_source",
    "price_date",
    "gpu",
    "gpu_count",
)
"""The fields of :func:`place_fields`, in its order."""


def record_rows(
    rows: Sequence[int],
    places: Sequence[Mapping[str, Any]],
    values: Mapping[str, Sequence[float]],
    meets_slo: Sequence[bool],
    calibrations: Sequence[str],
    dtypes: Sequence[str],
) -> list[RecordRow]:
    """Many :class:`RecordRow` at once, column by column: record ``j`` is the one
    :func:`record_fields` gives for instance row ``rows[j]`` (``places``, ``calibrations`` and
    ``dtypes`` are per instance row, ``places`` from :func:`place_fields`), table values
    ``values[name][j]`` and ``meets_slo[j]``; the same conversions, field for field."""
    n = len(rows)
    cols: dict[str, list[Any]] = {}
    for name in _PLACE_FIELDS:
        per_row = [p[name] for p in places]
        cols[name] = [per_row[i] for i in rows]
    cols["tensor_parallel"] = [int(v) for v in values["tensor_parallel"]]
    cols["dtype"] = [dtypes[i] for i in rows]
    cols["batch_size"] = [int(v) for v in values["batch_size"]]
    cols["offload_ratio"] = [round(float(v), 10) for v in values["offload_ratio"]]
    for name in TABLE_COLUMNS:
        if name in BAND_COLUMNS:
            cols[name] = [_band_or_float(name, v) for v in values[name]]
        else:
            cols[name] = [float(v) for v in values[name]]
    cols["meets_slo"] = [bool(v) for v in meets_slo]
    cols["calibration"] = [calibrations[i] for i in rows]
    cols["weights_bytes"] = [round(float(v)) for v in values["weights_gpu_bytes"]]
    cols["kv_cache_bytes"] = [round(float(v)) for v in values["kv_cache_bytes"]]
    cols["activation_bytes"] = [round(float(v)) for v in values["activation_bytes"]]
    cols["gpu_memory_bytes"] = [int(v) for v in values["gpu_memory_bytes"]]
    cols["host_memory_bytes"] = [int(v) for v in values["host_memory_bytes"]]
    if n == 0:
        return []
    return list(map(RecordRow._make, zip(*(cols[f] for f in RecordRow._fields), strict=True)))


class BatchResult(NamedTuple):
    """What a batch output row prints of a result: status, message, the recommendation and
    the Max-Performance baseline (no alternatives, no scenario: the caller has it)."""

    status: str
    message: str
    recommendation: RecordRow | None
    baseline: RecordRow | None
    savings_pct: float | None

    @classmethod
    def of(cls, result: SolveResult) -> BatchResult:
        """The printed part of a :class:`SolveResult`."""
        rec, base = result.recommendation, result.baseline.max_performance
        return cls(
            result.status,
            result.message,
            RecordRow.of(rec) if rec is not None else None,
            RecordRow.of(base) if base is not None else None,
            result.baseline.savings_pct,
        )
