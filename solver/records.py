"""Result models: one record per configuration, and the result of a solve (the JSON contract)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from infersave.formulations.candidates import CandidateTable
from infersave.solver.scenario import Scenario


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Memory(_Frozen):
    """Memory of one replica in bytes. ``gpu_memory_bytes`` is the usable memory of one GPU;
    ``host_memory_bytes`` the host memory one replica may use for offloaded KV cache."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    gpu_memory_bytes: int
    host_memory_bytes: int


class Record(_Frozen):
    """One configuration (instance, batch size, offload ratio) with its predictions.

    ``tps`` counts input + output tokens per second over all replicas (Eq. 1); ``output_tps``
    only generated tokens. ``prefill_s``/``decode_s`` are for one batch on one replica (all
    decode steps). ``task_hours`` uses TPS_effective (Eq. 2); ``billed_hours`` per the billing
    mode; ``total_cost_usd`` = billed_hours x price_per_hour; ``cost_efficiency`` per Eq. 3.
    ``calibration`` names the CTCF coefficients applied, or ``uncalibrated``.
    """

    instance_type: str
    provider: str
    region: str
    gpu: str
    gpu_count: float
    batch_size: int
    offload_ratio: float
    tps: float
    output_tps: float
    prefill_s: float
    decode_s: float
    e2e_s: float
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


def make_record(table: CandidateTable, k: int, calibration_name: str) -> Record:
    """The :class:`Record` of candidate ``k`` of ``table``."""
    inst = table.inst.instances[int(table.instance_idx[k])]
    i = int(table.instance_idx[k])
    return Record(
        instance_type=inst.instance_type,
        provider=inst.provider,
        region=inst.region,
        gpu=inst.gpu or inst.accelerator,
        gpu_count=float(inst.gpu_count),
        batch_size=int(table.batch_size[k]),
        offload_ratio=round(float(table.offload_ratio[k]), 10),
        tps=float(table.tps[k]),
        output_tps=float(table.output_tps[k]),
        prefill_s=float(table.prefill_s[k]),
        decode_s=float(table.decode_s[k]),
        e2e_s=float(table.e2e_s[k]),
        task_hours=float(table.task_hours[k]),
        billed_hours=float(table.billed_hours[k]),
        price_per_hour=float(table.price_per_hour[k]),
        total_cost_usd=float(table.total_cost_usd[k]),
        cost_efficiency=float(table.cost_efficiency[k]),
        meets_slo=bool(table.ok["tps_slo"][k]),
        calibration=calibration_name if table.inst.calibrated[i] else "uncalibrated",
        memory=Memory(
            weights_bytes=int(table.weights_bytes),
            kv_cache_bytes=round(float(table.kv_cache_bytes[k])),
            activation_bytes=round(float(table.activation_bytes[k])),
            gpu_memory_bytes=int(table.gpu_memory_bytes[k]),
            host_memory_bytes=int(table.host_memory_bytes[k]),
        ),
    )


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


class RecordRow(NamedTuple):
    """A :class:`Record` as a plain tuple (the batch path builds thousands of them from arrays;
    pydantic only at the edges): the fields of :class:`Record` in order, with those of
    :class:`Memory` flattened at the end. :meth:`as_dict` equals ``Record.model_dump()``."""

    instance_type: str
    provider: str
    region: str
    gpu: str
    gpu_count: float
    batch_size: int
    offload_ratio: float
    tps: float
    output_tps: float
    prefill_s: float
    decode_s: float
    e2e_s: float
    task_hours: float
    billed_hours: float
    price_per_hour: float
    total_cost_usd: float
    cost_efficiency: float
    meets_slo: bool
    calibration: str
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    gpu_memory_bytes: int
    host_memory_bytes: int

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


_MEMORY_FIELDS: tuple[str, ...] = tuple(Memory.model_fields)
_RECORD_TOP: tuple[str, ...] = tuple(f for f in Record.model_fields if f != "memory")
_N_TOP = len(_RECORD_TOP)


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
