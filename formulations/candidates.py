"""The candidate table: every (instance, batch size, offload level) with every constraint's value,
the predicted times, TPS and cost. All search backends (exhaustive, MILP, CP-SAT) read this one
table, so they can differ only in how they search it, never in what they evaluate.

Candidates are laid out instance-major: index ``k = (i * B + b) * C + c`` for instance ``i``,
batch size ``b`` and offload level ``c``; every array has shape ``(N,) = (I * B * C,)``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from infersave.catalog.schemas import GPU, LLM, Instance
from infersave.formulations import (
    constraints,
    cost_model,
    engine_model,
    memory_model,
    parallel_model,
    time_model,
)
from infersave.formulations.options import ModelOptions

GIB = 2**30
MIB = 2**20
ACTIVATION_BYTES = 2
"""Bytes of one hidden-state element sent by the tensor-parallel all-reduces (fp16/bf16
activations, also under fp8/int8 weights: engines all-reduce in 16 bits)."""

Calibration = Mapping[tuple[str, str], tuple[float, float]]
"""CTCF coefficients keyed by (GPU name, phase) with phase ``"prefill"`` or ``"decode"``:
``(alpha, beta)`` with beta in seconds per layer (Eq. 7)."""


@dataclass(frozen=True)
class Workload:
    """What is served: ``requests`` requests of ``input_len`` + ``output_len`` tokens, with a
    throughput SLO ``slo_tps`` (tokens/s, Eq. 1), a price cap ``max_price`` ($/h, P_max) and
    latency SLOs ``ttft_slo``, ``tpot_slo``, ``e2e_slo`` (seconds). ``inf`` means not asked for
    (no cap, no SLO)."""

    input_len: int
    output_len: int
    requests: int
    slo_tps: float
    max_price: float
    ttft_slo: float = float("inf")
    tpot_slo: float = float("inf")
    e2e_slo: float = float("inf")
    slo_confidence: float = 0.0  # > 0: TPS >= SLO must hold at the error band's lower bound


@dataclass(frozen=True)
class InstanceArrays:
    """Per-instance facts as arrays of shape ``(I,)``, in the units the models use."""

    instances: tuple[Instance, ...]
    replicas: np.ndarray  # model replicas = GPUs / TP degree (data parallel), int
    gpu_memory_bytes: np.ndarray  # usable memory of ONE GPU, bytes
    host_memory_bytes: np.ndarray  # host memory one GPU's share may use for offloaded KV, bytes
    price_per_hour: np.ndarray  # $/h of the whole instance
    peak_flops: np.ndarray  # FLOP/s of one GPU
    memory_bandwidth: np.ndarray  # bytes/s of one GPU
    pcie_bandwidth: np.ndarray  # bytes/s, one direction
    ctcf: np.ndarray  # (I, 4): alpha_p, beta_p, alpha_d, beta_d
    calibrated: np.ndarray  # bool: a calibration entry applied to this GPU
    labels: tuple[str, ...] = ()  # unique identifier per instance (model variable names)
    dtype_supported: np.ndarray | None = None  # bool: tensor cores for options.dtype
    tp: np.ndarray | None = None  # tensor-parallel degree of a replica (GPUs per replica), int
    interconnect_bandwidth: np.ndarray | None = None  # bytes/s GPU to GPU, one direction
    base: np.ndarray | None = None  # int: position of the row's instance in the input list
    dtype_names: tuple[str, ...] = ()  # weight precision of each row ('': the options' dtype)
    parts: tuple[tuple[str, InstanceArrays], ...] = ()  # searched precisions: rows of each
    tps_log_sigma: np.ndarray | None = None  # v2 error band (log-space RMS), nan: none

    def dtype_of_rows(self, options: ModelOptions) -> tuple[str, ...]:
        """The weight precision of each row (``options.dtype`` where the rows do not say)."""
        return self.dtype_names or (options.dtype,) * len(self.instances)

    def instance_of_row(self) -> np.ndarray:
        """Per row, the position of its (physical) instance among the instances given to
        :func:`instance_arrays`, shape ``(I,)``: rows of one instance at other TP degrees
        share it (each row is its own instance where not given)."""
        if self.base is None:
            return np.arange(len(self.instances))
        return self.base

    def tp_degrees(self) -> np.ndarray:
        """The tensor-parallel degree of each row, shape ``(I,)`` (1 where not given)."""
        if self.tp is None:
            return np.ones(len(self.instances))
        return self.tp

    def links(self) -> np.ndarray:
        """GPU-to-GPU bytes/s of each row, shape ``(I,)`` (0 where not given: no TP)."""
        if self.interconnect_bandwidth is None:
            return np.zeros(len(self.instances))
        return self.interconnect_bandwidth


def instance_labels(
    instances: Sequence[Instance], tp: Sequence[int] | np.ndarray | None = None
) -> tuple[str, ...]:
    """A unique identifier per row: its type (``g5.xlarge`` -> ``g5_xlarge``), with its
    provider and region when the same type stands in several places, ``_spot`` in the spot
    market and ``_tp<t>`` for a tensor-parallel degree above 1. The exact models name their
    variables with it."""
    places: dict[str, set[tuple[str, str]]] = {}
    for i in instances:
        places.setdefault(i.instance_type, set()).add((i.provider, i.region))
    out = []
    for n, i in enumerate(instances):
        label = re.sub(r"[^A-Za-z0-9]", "_", i.instance_type)
        if len(places[i.instance_type]) > 1:
            label += "_" + re.sub(r"[^A-Za-z0-9]", "_", f"{i.provider}_{i.region}")
        if i.market == "spot":
            label += "_spot"
        if tp is not None and int(tp[n]) > 1:
            label += f"_tp{int(tp[n])}"
        out.append(label)
    return tuple(out)


def instance_name_rank(inst: InstanceArrays) -> np.ndarray:
    """Position of each row in the order of (type name, provider, region, market, TP degree,
    precision), int64 of shape ``(I,)``: the ranker's tie-break after cost and TPS, shared by
    every backend (one region's names sort as the type names alone; of two rows of one
    instance, the smaller tensor-parallel degree first, then the precision searched first)."""
    tp = inst.tp_degrees()
    order = {d: n for n, d in enumerate(dict.fromkeys(inst.dtype_names))}
    dt = [order[d] for d in inst.dtype_names] if inst.dtype_names else [0] * len(tp)
    names = [
        (i.instance_type, i.provider, i.region, i.market, int(tp[n]), dt[n])
        for n, i in enumerate(inst.instances)
    ]
    order = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return rank


def tp_rows(instances: Sequence[Instance], options: ModelOptions) -> list[tuple[Instance, int]]:
    """(instance, tensor-parallel degree) rows of ``instances``, for each degree ``t`` of
    ``options.tensor_degrees``: ``t = 1`` for every instance; ``t > 1`` where ``t`` divides the
    GPU count of a multi-GPU instance whose GPU interconnect the catalog knows (NVLink or
    PCIe). A row's replica spans ``t`` GPUs (see :mod:`.parallel_model`). Instance order is
    kept; an instance's rows follow each other by increasing ``t``."""
    degrees = options.tensor_degrees
    rows: list[tuple[Instance, int]] = []
    for inst in instances:
        if 1 in degrees:
            rows.append((inst, 1))
        n = int(inst.gpu_count)
        if n < 2 or n != inst.gpu_count or inst.interconnect is None:
            continue
        rows.extend((inst, t) for t in degrees if t > 1 and n % t == 0)
    return rows


INT4_MIN_CAPABILITY = 7.5
"""Lowest CUDA compute capability with int4 weight-only kernels: vLLM's AWQ quantization
(``AWQConfig.get_min_capability() == 75``, Turing); Marlin kernels need 8.0."""


def precision_supported(gpu: GPU, options: ModelOptions) -> bool:
    """Whether ``gpu`` runs ``options.dtype`` and ``options.kv_dtype``: tensor cores for the
    compute dtype (FP8: Ada/Hopper and later, INT8: Turing and later, BF16: Ampere and later;
    datasheet peaks of :meth:`GPU.dtype_tflops`); int4 weight-only kernels from compute
    capability :data:`INT4_MIN_CAPABILITY`; an fp8 KV cache only where the GPU has FP8 tensor
    cores (Ada/Hopper: vLLM's e4m3 KV cache)."""
    if options.dtype == "int4":
        cc = gpu.compute_capability
        ok = cc is not None and cc >= INT4_MIN_CAPABILITY
    else:
        ok = gpu.dtype_tflops(options.compute_dtype) is not None
    if options.kv_dtype == "fp8":
        ok = ok and gpu.fp8_dense_tflops is not None
    return ok


def instance_arrays(
    instances: Sequence[Instance],
    gpus: Mapping[str, GPU],
    options: ModelOptions,
    calibration: Calibration | None = None,
    allow_missing_price: bool = False,
) -> InstanceArrays:
    """Turn eligible instances into arrays, one row per (weight precision, instance,
    tensor-parallel degree): the rows of :func:`tp_rows` for each precision of
    ``options.weight_dtypes`` in turn (precision-major; ``parts`` holds each precision's own
    arrays, which :func:`build_tables` evaluates apart and joins).

    ``allow_missing_price`` prices an instance without the asked-for price at NaN $/h (for
    predictions on a bare GPU) instead of raising.

    Raises:
        ValueError: if an instance names no GPU of ``gpus``, lacks the price ``options.pricing``
            asks for, or its GPU lacks a PCIe bandwidth (filter them out first).
    """
    dtypes = options.weight_dtypes
    parts = [
        (d, _instance_arrays(instances, gpus, options.at(d), calibration, allow_missing_price))
        for d in dtypes
    ]
    if len(parts) == 1:
        d, only = parts[0]
        return dataclasses.replace(only, dtype_names=(d,) * len(only.instances))
    names = tuple(d for d, a in parts for _ in a.instances)
    insts = tuple(i for _, a in parts for i in a.instances)
    tp = np.concatenate([a.tp_degrees() for _, a in parts])
    labels = tuple(f"{label}_{d}" for d, a in parts for label in instance_labels(a.instances, a.tp))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(a, name) for _, a in parts])

    return InstanceArrays(
        insts,
        cat("replicas"),
        cat("gpu_memory_bytes"),
        cat("host_memory_bytes"),
        cat("price_per_hour"),
        cat("peak_flops"),
        cat("memory_bandwidth"),
        cat("pcie_bandwidth"),
        cat("ctcf"),
        cat("calibrated"),
        labels,
        cat("dtype_supported"),
        tp,
        cat("interconnect_bandwidth"),
        cat("base"),
        names,
        tuple(parts),
        cat("tps_log_sigma"),
    )


def _instance_arrays(
    instances: Sequence[Instance],
    gpus: Mapping[str, GPU],
    options: ModelOptions,
    calibration: Calibration | None = None,
    allow_missing_price: bool = False,
) -> InstanceArrays:
    """The rows of :func:`tp_rows` for ``options.dtype`` (one precision) as arrays.

    ``allow_missing_price`` prices an instance without the asked-for price at NaN $/h (for
    predictions on a bare GPU) instead of raising.

    Raises:
        ValueError: if an instance names no GPU of ``gpus``, lacks the price ``options.pricing``
            asks for, or its GPU lacks a PCIe bandwidth (filter them out first).
    """
    rows = tp_rows(instances, options)
    position = {id(inst): n for n, inst in enumerate(instances)}
    n = len(rows)
    reps = np.empty(n)
    gmem = np.empty(n)
    hmem = np.empty(n)
    price = np.empty(n)
    flops = np.empty(n)
    mbw = np.empty(n)
    pcie = np.empty(n)
    tp = np.empty(n)
    link = np.zeros(n)
    coef = np.tile(np.array([1.0, 0.0, 1.0, 0.0]), (n, 1))
    calibrated = np.zeros(n, dtype=bool)
    supported = np.ones(n, dtype=bool)
    sigma = np.full(n, np.nan)
    paper = options.formulas == "paper"
    for i, (inst, t) in enumerate(rows):
        if inst.gpu is None or inst.gpu not in gpus:
            raise ValueError(f"{inst.instance_type}: no GPU spec for {inst.accelerator!r}")
        gpu = gpus[inst.gpu]
        n_gpus = max(1, int(inst.gpu_count))
        tp[i] = t
        reps[i] = n_gpus // t
        if paper:
            gmem[i] = gpu.memory_gib * GIB
        else:
            reported = (
                gpu.usable_memory_mib * MIB if gpu.usable_memory_mib else gpu.memory_gib * GIB
            )
            gmem[i] = reported * options.gpu_memory_utilization
        # host memory for offloaded KV: the instance's, shared by all its GPUs (per GPU here)
        hmem[i] = inst.host_memory_gib * GIB * options.host_memory_utilization / n_gpus
        spot = options.pricing == "spot" or inst.market == "spot"
        p = inst.spot_per_hour if spot else inst.on_demand_per_hour
        if p is None and allow_missing_price:
            p = float("nan")
        elif p is None:
            raise ValueError(f"{inst.instance_type} ({inst.region}) has no {options.pricing} price")
        price[i] = p
        # the tensor peak of the dtype computed in (datasheet); None: no tensor cores for it
        peak = gpu.dtype_tflops(options.compute_dtype)
        supported[i] = precision_supported(gpu, options) or not gpu.is_nvidia or paper
        tflops = gpu.fp32_tflops if (paper and gpu.fp32_tflops) else peak or gpu.fp16_dense_tflops
        flops[i] = tflops * 1e12
        if options.perf_model == "v2":  # slot-powered cards sustain less of their peak
            flops[i] *= engine_model.sustained_peak_factor(gpu.tdp_w)
        mbw[i] = gpu.memory_bandwidth_gbs * 1e9
        if gpu.pcie_bandwidth_gbs is None:
            raise ValueError(f"{inst.instance_type}: GPU {gpu.name} has no PCIe bandwidth")
        pcie[i] = gpu.pcie_bandwidth_gbs * 1e9
        if t > 1:
            link[i] = parallel_model.interconnect_bandwidth(gpu, inst.interconnect)
        if calibration is not None:
            pre = calibration.get((gpu.name, "prefill"))
            dec = calibration.get((gpu.name, "decode"))
            if pre is not None:
                coef[i, 0:2] = pre
            if dec is not None:
                coef[i, 2:4] = dec
            calibrated[i] = pre is not None or dec is not None
        if options.perf_model == "v2":
            none = (engine_model.UNCALIBRATED_LOG_SIGMA, 0.0)
            cal = calibration or {}
            sigma[i] = cal.get((gpu.name, "band"), cal.get(("*", "band"), none))[0]
    insts = tuple(inst for inst, _ in rows)
    return InstanceArrays(
        insts,
        reps,
        gmem,
        hmem,
        price,
        flops,
        mbw,
        pcie,
        coef,
        calibrated,
        instance_labels(insts, tp),
        supported,
        tp,
        link,
        np.array([position[id(inst)] for inst in insts], dtype=np.int64),
        tps_log_sigma=sigma,
    )


@dataclass(frozen=True)
class CandidateTable:
    """Every candidate's memory, constraint values, times, TPS and cost; arrays of shape (N,).

    Memory is per GPU of a replica in bytes (a replica spans ``tensor_parallel`` GPUs;
    ``weights_bytes`` is the whole model's, ``weights_gpu_bytes`` one GPU's share);
    ``gpu_used_bytes`` = weights + activations + (1 - C_off) x KV on one GPU. Times in seconds
    for one batch on one replica (``allreduce_s`` of them spent in tensor-parallel
    all-reduces); ``tps`` is the instance's total (replicas x Eq. 1); ``task_hours``,
    ``billed_hours`` (h), ``total_cost_usd`` ($) use TPS_effective = min(tps, SLO).
    ``slack[name]`` is each active constraint's signed slack
    (>= 0 satisfied; see :mod:`.constraints`), ``ok[name]`` is ``slack >= 0`` and ``feasible``
    their conjunction.
    """

    workload: Workload
    options: ModelOptions
    model: LLM
    inst: InstanceArrays
    batch_sizes: np.ndarray  # (B,)
    levels: np.ndarray  # (C,)
    instance_idx: np.ndarray
    batch_size: np.ndarray
    offload_ratio: np.ndarray
    weights_bytes: float
    tensor_parallel: np.ndarray
    dtype_index: np.ndarray
    allreduce_s: np.ndarray
    weights_gpu_bytes: np.ndarray
    kv_cache_bytes: np.ndarray
    kv_per_layer_bytes: np.ndarray
    activation_bytes: np.ndarray
    gpu_used_bytes: np.ndarray
    gpu_memory_bytes: np.ndarray
    host_memory_bytes: np.ndarray
    prefill_s: np.ndarray
    decode_s: np.ndarray
    e2e_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    tps: np.ndarray
    tps_low: np.ndarray  # tps / exp(z sigma): the error band (nan without one)
    tps_high: np.ndarray
    tps_band_pct: np.ndarray  # (exp(z sigma) - 1) x 100
    output_tps: np.ndarray
    tps_effective: np.ndarray
    task_hours: np.ndarray
    billed_hours: np.ndarray
    price_per_hour: np.ndarray
    total_cost_usd: np.ndarray
    cost_efficiency: np.ndarray
    slack: dict[str, np.ndarray] = field(default_factory=dict)
    ok: dict[str, np.ndarray] = field(default_factory=dict)
    feasible: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.instance_idx.shape[0])

    @property
    def constraints(self) -> tuple[constraints.Constraint, ...]:
        """The constraints active under this table's options (the columns of ``slack``)."""
        return constraints.active(self.options)

    @property
    def runs(self) -> np.ndarray:
        """Candidates that satisfy every hardware and memory constraint
        (:func:`.constraints.runnable_constraints`): they can run, whatever they cost."""
        return np.logical_and.reduce(
            [self.ok[c.name] for c in constraints.runnable_constraints(self.options)]
        )

    @property
    def memory_ok(self) -> np.ndarray:
        """Candidates that satisfy every active memory constraint (Algorithm 1, plus host memory
        under physics)."""
        return np.logical_and.reduce(
            [self.ok[c.name] for c in constraints.memory_constraints(self.options)]
        )


@dataclass(frozen=True)
class Workloads:
    """Many workloads as float arrays of shape ``(W,)`` (the fields of :class:`Workload`)."""

    input_len: np.ndarray
    output_len: np.ndarray
    requests: np.ndarray
    slo_tps: np.ndarray
    max_price: np.ndarray
    ttft_slo: np.ndarray
    tpot_slo: np.ndarray
    e2e_slo: np.ndarray
    slo_confidence: np.ndarray

    @classmethod
    def of(cls, workloads: Sequence[Workload]) -> Workloads:
        """Stack ``workloads`` (at least one) into arrays."""
        names = [f.name for f in dataclasses.fields(Workload)]
        cols = np.array(
            [tuple(getattr(w, n) for n in names) for w in workloads], dtype=np.float64
        ).reshape(-1, len(names))
        return cls(*(cols[:, j].copy() for j in range(len(names))))

    def __len__(self) -> int:
        return int(self.input_len.shape[0])


def _per_inst(a: np.ndarray) -> np.ndarray:
    """Per-instance values along axis 1 of ``(W, I, B, C)`` (trailing axes kept)."""
    return a.reshape((1, -1, 1, 1, *a.shape[1:]))


def _memory(
    model: LLM,
    lin: np.ndarray,
    lout: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    tp: np.ndarray,
    options: ModelOptions,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bytes on one GPU of a replica of tensor-parallel degree ``tp``: (the replica's weights,
    weights per GPU, KV cache per GPU, activations, one layer's KV per GPU, used GPU bytes) for
    lengths ``lin``, ``lout``, batch sizes ``b`` and offload levels ``c`` (shaped to broadcast
    together). Weights split ``1/t``, the KV cache ``1/min(t, kv_heads)``
    (:mod:`.parallel_model`). Shared by :func:`_evaluate` and :func:`memory_levels`, so all see
    the same bytes. The lengths enter only as ``lin + lout`` (exact for integer token counts)."""
    nbytes = options.bytes_per_param
    w = float(memory_model.weights_bytes_of(model, options.dtype))
    w_gpu = w / tp
    kv = memory_model.kv_cache_bytes(model, b, lin, lout, options.kv_bytes, options.formulas)
    kv = kv / parallel_model.kv_shards(model, tp)
    act = memory_model.activation_bytes(model, b, lin, lout, nbytes, options.formulas, tp)
    kv_layer = kv / model.num_hidden_layers
    used = w_gpu + act + (1.0 - c) * kv
    return w, w_gpu, kv, act, kv_layer, used


def _evaluate(
    model: LLM,
    wl: Workloads,
    inst: InstanceArrays,
    bs: np.ndarray,
    c: np.ndarray,
    options: ModelOptions,
) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The per-candidate math of :func:`build_table`, broadcast over workloads.

    ``c`` holds the offload levels shaped to broadcast to ``(W, I, B, C)``: the grid as
    ``(1, 1, 1, C)`` for full tables, or one level per (workload, instance, batch size) as
    ``(W, I, B, 1)`` when :func:`build_tables` keeps one level per (instance, batch size).
    Every returned array broadcasts to ``(W, I, B, C)`` (workload, instance, batch size, offload
    level) and has size 1 along the axes it does not depend on, so that one workload
    (:func:`build_table`) and many (:func:`build_tables`) run the very same operations in the
    same order and get bit-identical values. Returns (weights bytes, fields, slacks, ok).
    """
    n_w = len(wl)

    def per_wl(a: np.ndarray) -> np.ndarray:
        return a.reshape(n_w, 1, 1, 1)

    x = {name: per_wl(getattr(wl, name)) for name in _WORKLOAD_INPUTS}
    x.update({name: _per_inst(a) for name, a in _instance_inputs(model, inst).items()})
    x["band"] = engine_model.band_factor(x["sigma"], x["slo_confidence"])
    x["b"] = bs.reshape(1, 1, -1, 1)
    x["c"] = c
    return _evaluate_at(model, x, options, _any_tp(inst), ndim=4)


_WORKLOAD_INPUTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Workload))
"""The :class:`Workloads` arrays :func:`_evaluate_at` reads (by their field names)."""


def _any_tp(inst: InstanceArrays) -> bool:
    """Whether some row runs tensor-parallel (then every row gets the all-reduce terms)."""
    return bool((inst.tp_degrees() > 1).any())


def _instance_inputs(model: LLM, inst: InstanceArrays) -> dict[str, np.ndarray]:
    """The per-row arrays :func:`_evaluate_at` reads, each of shape ``(I,)`` (``ctcf`` split
    into its four coefficients); the hardware checks as slacks (0 supported, -1 not)."""
    ok_dtype = inst.dtype_supported
    if ok_dtype is None:
        ok_dtype = np.ones(len(inst.instances), dtype=bool)
    tp_rows = inst.tp_degrees()
    sigma = inst.tps_log_sigma
    coef = inst.ctcf
    return {
        "t": tp_rows,
        "gmem": inst.gpu_memory_bytes,
        "hmem": inst.host_memory_bytes,
        "peak": inst.peak_flops,
        "bw": inst.memory_bandwidth,
        "pcie": inst.pcie_bandwidth,
        "alpha_p": coef[:, 0],
        "beta_p": coef[:, 1],
        "alpha_d": coef[:, 2],
        "beta_d": coef[:, 3],
        "reps": inst.replicas,
        "price": inst.price_per_hour,
        "link": inst.links(),
        "sigma": np.full(len(inst.instances), np.nan) if sigma is None else sigma,
        "dtype_slack": np.where(ok_dtype, 0.0, -1.0),
        "tp_slack": np.where(parallel_model.tp_supported(model, tp_rows), 0.0, -1.0),
        "instance_idx": np.arange(len(inst.instances)),
    }


_INSTANCE_INPUTS: tuple[str, ...] = (
    "t",
    "gmem",
    "hmem",
    "peak",
    "bw",
    "pcie",
    "alpha_p",
    "beta_p",
    "alpha_d",
    "beta_d",
    "reps",
    "price",
    "link",
    "sigma",
    "dtype_slack",
    "tp_slack",
    "instance_idx",
)
"""The keys of :func:`_instance_inputs`, in its order."""


def _evaluate_at(
    model: LLM,
    x: Mapping[str, np.ndarray],
    options: ModelOptions,
    any_tp: bool,
    ndim: int,
    records: bool = True,
) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The per-candidate math on inputs ``x`` that broadcast together: the workload fields
    (:data:`_WORKLOAD_INPUTS`), the instance rows' (:func:`_instance_inputs`), the error band
    ``band`` (:func:`.engine_model.band_factor`), batch size ``b`` and offload level ``c``.

    :func:`_evaluate` passes them shaped ``(W, I, B, C)`` (``ndim=4``); the compact lean path
    (:func:`lean_chunk`) passes one entry per candidate it evaluates (``ndim=1``). Both run
    these very operations in this order, elementwise, so a candidate's values are the same bit
    for bit. ``any_tp`` adds the all-reduce terms to every row (as when some row of the
    instances runs tensor-parallel). ``records=False`` leaves out the fields only a record
    prints (``output_tps``, ``tps_high``, ``tps_band_pct``, ``cost_efficiency``,
    ``allreduce_s``). Returns (weights bytes, fields, slacks, ok)."""
    lin, lout, b, c, t = x["input_len"], x["output_len"], x["b"], x["c"], x["t"]
    one = (1,) * ndim
    w, w_gpu, kv, act, kv_layer, used = _memory(model, lin, lout, b, c, t, options)
    gmem, hmem = x["gmem"], x["hmem"]
    slack = constraints.memory_slacks(options, w_gpu, act, kv, kv_layer, c, used, gmem, hmem)
    slack = {"dtype_support": x["dtype_slack"], "tensor_parallel": x["tp_slack"], **slack}

    # a replica of degree t: t GPUs' compute and memory bandwidth, each GPU on its own PCIe
    # link for its share of the offloaded KV (kv_shards of them), plus the all-reduces
    shards = parallel_model.kv_shards(model, t)
    lt = time_model.layer_times(
        model, b, lin, lout, c, t * x["peak"], t * x["bw"], shards * x["pcie"], options
    )
    pt = time_model.phase_times(
        model, lt, lout, x["alpha_p"], x["beta_p"], x["alpha_d"], x["beta_d"]
    )
    reps = x["reps"]
    prefill_s, decode_s = pt.prefill_s, pt.decode_s
    allreduce = np.zeros(one)
    if any_tp:
        ar_pre, ar_dec = parallel_model.allreduce_layer_times(
            model, b, lin, t, x["link"], ACTIVATION_BYTES
        )
        steps = np.maximum(lout - 1.0, 0.0)
        layers = model.num_hidden_layers
        prefill_s = prefill_s + layers * ar_pre
        decode_s = decode_s + layers * steps * ar_dec
        if records:
            allreduce = layers * ar_pre + layers * steps * ar_dec
    e2e = prefill_s + decode_s
    tps = reps * time_model.throughput_tps(b, lin, lout, e2e)
    price = x["price"]
    slo = x["slo_tps"]
    tps_eff = cost_model.effective_tps(tps, slo)
    hours = cost_model.task_hours(x["requests"], lin, lout, tps_eff)
    billed = cost_model.billed_hours(hours, options.billing)
    total = cost_model.total_cost(billed, price)

    # latency (seconds): TTFT = the batch's prefill (every request of a static batch gets its
    # first token when the batch's prefill ends); TPOT = one decode step; E2E = Eq. 4
    ttft = prefill_s
    tpot = decode_s / np.maximum(lout - 1.0, 1.0)
    slack["price_cap"] = x["max_price"] - price
    conf = x["slo_confidence"]
    band = x["band"]
    tps_low = tps / band
    slack["tps_slo"] = np.where(np.isfinite(slo), np.where(conf > 0, tps_low, tps) - slo, np.inf)
    slack["ttft_slo"] = x["ttft_slo"] - ttft
    slack["tpot_slo"] = x["tpot_slo"] - tpot
    slack["e2e_slo"] = x["e2e_slo"] - e2e
    ok = {name: v >= 0 for name, v in slack.items()}
    ok["feasible"] = functools.reduce(np.logical_and, ok.values())
    fields = {
        "instance_idx": x["instance_idx"],
        "batch_size": b,
        "offload_ratio": c,
        "tensor_parallel": t,
        "dtype_index": np.zeros(one),
        "allreduce_s": allreduce,
        "weights_gpu_bytes": w_gpu,
        "kv_cache_bytes": kv,
        "kv_per_layer_bytes": kv_layer,
        "activation_bytes": act,
        "gpu_used_bytes": used,
        "gpu_memory_bytes": gmem,
        "host_memory_bytes": hmem,
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "e2e_s": e2e,
        "ttft_s": ttft,
        "tpot_s": tpot,
        "tps": tps,
        "tps_low": tps_low,
        "tps_effective": tps_eff,
        "task_hours": hours,
        "billed_hours": billed,
        "price_per_hour": price,
        "total_cost_usd": total,
    }
    if records:
        fields["tps_high"] = tps * band
        fields["tps_band_pct"] = (band - 1.0) * 100.0
        fields["output_tps"] = reps * b * lout / e2e
        fields["cost_efficiency"] = cost_model.cost_efficiency(tps_eff, billed, price)
        fields = {name: fields[name] for name in _FIELD_ORDER}
    return w, fields, slack, ok


_FIELD_ORDER: tuple[str, ...] = (
    "instance_idx",
    "batch_size",
    "offload_ratio",
    "tensor_parallel",
    "dtype_index",
    "allreduce_s",
    "weights_gpu_bytes",
    "kv_cache_bytes",
    "kv_per_layer_bytes",
    "activation_bytes",
    "gpu_used_bytes",
    "gpu_memory_bytes",
    "host_memory_bytes",
    "prefill_s",
    "decode_s",
    "e2e_s",
    "ttft_s",
    "tpot_s",
    "tps",
    "tps_low",
    "tps_high",
    "tps_band_pct",
    "output_tps",
    "tps_effective",
    "task_hours",
    "billed_hours",
    "price_per_hour",
    "total_cost_usd",
    "cost_efficiency",
)
"""The fields of a candidate table, in the order :func:`_evaluate` returns them."""


def _flatten(a: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """A broadcast-shaped array as ``(W, N)`` if it varies by workload (or ``W`` is 1), else as
    ``(N,)``."""
    n_w, rest = shape[0], shape[1:]
    if a.shape[0] == 1 and n_w > 1:
        return np.ascontiguousarray(np.broadcast_to(a, (1, *rest))).reshape(-1)
    return np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(n_w, -1)


class _Flat(Mapping[str, np.ndarray]):
    """Broadcast-shaped arrays seen through :func:`_flatten`, each flattened (copied) on first
    use only: a batch reads a few columns in full and the rest at a few candidates."""

    def __init__(self, raw: Mapping[str, np.ndarray], shape: tuple[int, int, int, int]):
        self._raw = dict(raw)
        self._shape = shape
        self._done: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        out = self._done.get(name)
        if out is None:
            out = self._done[name] = _flatten(self._raw[name], self._shape)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def take(self, name: str, ws: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """``self[name][ws, ks]`` (or ``[ks]`` for a workload-independent array), read from the
        broadcast-shaped array without flattening it."""
        a = self._raw[name]
        if name in self._done or a.ndim != 4:
            flat = self[name]
            return flat[ws, ks] if flat.ndim == 2 else flat[ks]
        i, b, c = np.unravel_index(ks, self._shape[1:])
        idx = tuple(x if n > 1 else 0 for x, n in zip((ws, i, b, c), a.shape, strict=True))
        return np.broadcast_to(a[idx], ks.shape)

    def rows(self, ws: np.ndarray) -> _Flat:
        """The same arrays for workloads ``ws`` only (a workload-independent array as is)."""
        n_w = self._shape[0]
        raw = {k: a[ws] if a.shape[0] == n_w > 1 else a for k, a in self._raw.items()}
        return _Flat(raw, (len(ws), *self._shape[1:]))


def _row(a: np.ndarray, w: int) -> np.ndarray:
    return a[w] if a.ndim == 2 else a


@dataclass(frozen=True)
class TableBatch:
    """The candidate tables of many workloads that share model, instances, grid and options.

    ``arrays`` and ``ok`` hold shape ``(W, N)`` for what depends on the workload and ``(N,)``
    for what does not; :meth:`table` gives workload ``w``'s :class:`CandidateTable` (views, no
    copy), equal to what :func:`build_table` returns for that workload alone. Unless ``keep``
    is ``all``, the batch keeps one candidate per (instance, batch size) (``N = I x B``, see
    :func:`build_tables`) and its tables hold those candidates only.
    """

    workloads: tuple[Workload, ...]
    options: ModelOptions
    model: LLM
    inst: InstanceArrays
    batch_sizes: np.ndarray
    levels: np.ndarray
    weights_bytes: float
    arrays: Mapping[str, np.ndarray]
    slack: Mapping[str, np.ndarray]
    ok: Mapping[str, np.ndarray]
    keep: Keep = "all"

    def __len__(self) -> int:
        return len(self.workloads)

    def take(self, name: str, ws: np.ndarray, ks: np.ndarray, ok: bool = False) -> np.ndarray:
        """Column ``name`` of ``arrays`` (``ok`` of ``ok``) at candidate ``ks[j]`` of workload
        ``ws[j]``, without flattening the whole column."""
        m = self.ok if ok else self.arrays
        if isinstance(m, _Flat):
            return m.take(name, ws, ks)
        a = m[name]
        return a[ws, ks] if a.ndim == 2 else a[ks]

    def rows(self, ws: Sequence[int] | np.ndarray) -> TableBatch:
        """The batch of workloads ``ws`` only (for the tables of a few of many workloads: only
        their rows are flattened)."""
        ws = np.asarray(ws, dtype=np.intp)
        flat = (self.arrays, self.slack, self.ok)
        if not all(isinstance(m, _Flat) for m in flat):
            raise TypeError("rows() needs the arrays build_tables makes")
        arrays, slack, ok = (m.rows(ws) for m in flat)  # type: ignore[attr-defined]
        return dataclasses.replace(
            self,
            workloads=tuple(self.workloads[w] for w in ws.tolist()),
            arrays=arrays,
            slack=slack,
            ok=ok,
        )

    def table(self, w: int) -> CandidateTable:
        """The candidate table of workload ``w``."""
        names = [c.name for c in constraints.active(self.options)]
        ok = {name: _row(self.ok[name], w) for name in names}
        slack = {name: _row(self.slack[name], w) for name in names}
        return CandidateTable(
            workload=self.workloads[w],
            options=self.options,
            model=self.model,
            inst=self.inst,
            batch_sizes=self.batch_sizes,
            levels=self.levels,
            weights_bytes=self.weights_bytes,
            slack=slack,
            ok=ok,
            feasible=_row(self.ok["feasible"], w),
            **{name: _row(a, w) for name, a in self.arrays.items()},
        )


Keep = Literal["all", "fitting", "closest"]
"""Which candidates :func:`build_tables` keeps: ``all`` (the grid); ``fitting``, one per
(instance, batch size) at its smallest fitting offload level (the dominant one, see
:func:`build_tables`); ``closest``, one per (instance, batch size) at its level of least memory
shortfall (what the closest miss reports when nothing fits)."""


def _memory_pairs(inst: InstanceArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (GPU memory, host memory, TP degree) triples of ``inst`` as ``(gpu, host,
    tp, inverse)``: memory depends on an instance row through them only (27 for 48 instances
    on us-east-1 without TP); ``inverse[i]`` is row ``i``'s triple."""
    pairs, inverse = np.unique(
        np.column_stack([inst.gpu_memory_bytes, inst.host_memory_bytes, inst.tp_degrees()]),
        axis=0,
        return_inverse=True,
    )
    return pairs[:, 0], pairs[:, 1], pairs[:, 2], inverse.reshape(-1)


def _memory_slacks(
    model: LLM,
    lin: np.ndarray,
    lout: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    gmem: np.ndarray,
    hmem: np.ndarray,
    tp: np.ndarray,
    options: ModelOptions,
) -> dict[str, np.ndarray]:
    _, w_gpu, kv, act, kv_layer, used = _memory(model, lin, lout, b, c, tp, options)
    return constraints.memory_slacks(options, w_gpu, act, kv, kv_layer, c, used, gmem, hmem)


def _fits(slack: Mapping[str, np.ndarray]) -> np.ndarray:
    return functools.reduce(np.logical_and, (v >= 0 for v in slack.values()))


_THRESHOLDS: dict[tuple[object, ...], tuple[np.ndarray, object, object]] = {}
"""Cache of :func:`_fit_thresholds` (the model and instances are kept with each entry, so the
ids in its key stay theirs)."""


def _fit_thresholds(
    model: LLM, inst: InstanceArrays, bs: np.ndarray, lv: np.ndarray, options: ModelOptions,
    bound: int,
) -> np.ndarray:  # fmt: skip
    """Per (memory pair, batch size, offload level): the largest token count T = L_in + L_out
    in ``[0, bound)`` at which every memory constraint holds, -1 if none; shape (P, B, C).

    Every memory slack is non-increasing in T as computed: T enters the KV cache and the
    activations as a product with positive factors, and ``used``, ``free``, the per-layer and
    host slacks add, subtract from a constant or scale those (IEEE rounding is monotone). So
    the constraints hold exactly for ``T <= threshold``, which a bisection finds on the very
    slack formulas, evaluated at ``L_in = T``, ``L_out = 0``."""
    key = (id(model), id(inst), bs.tobytes(), lv.tobytes(), options, bound)
    hit = _THRESHOLDS.get(key)
    if hit is not None:
        return hit[0]
    gmem, hmem, tp, _ = _memory_pairs(inst)
    shape = (1, gmem.size, bs.size, lv.size)
    b, c = bs.reshape(1, 1, -1, 1), lv.reshape(1, 1, 1, -1)
    gmem, hmem, tp = _per_inst(gmem), _per_inst(hmem), _per_inst(tp)
    lo = np.full(shape, -1, dtype=np.int64)  # holds at lo (or lo = -1)
    hi = np.full(shape, bound, dtype=np.int64)  # fails at hi (or hi = bound)
    zero = np.zeros(shape)
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        mid_tokens = mid.astype(np.float64)
        ok = _fits(_memory_slacks(model, mid_tokens, zero, b, c, gmem, hmem, tp, options))
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    if len(_THRESHOLDS) >= 256:
        _THRESHOLDS.pop(next(iter(_THRESHOLDS)))
    _THRESHOLDS[key] = (lo[0], model, inst)
    return lo[0]


def memory_levels(
    model: LLM,
    wl: Workloads,
    inst: InstanceArrays,
    bs: np.ndarray,
    lv: np.ndarray,
    options: ModelOptions,
    keep: Keep,
) -> np.ndarray:
    """Per (workload, instance, batch size): an index into ``lv``, shape ``(W, I, B)``.

    ``keep="fitting"``: the smallest level at which every active memory constraint holds
    (:func:`.constraints.memory_slacks`, the very slacks of the full table), or -1 where no
    level fits. ``keep="closest"``: the level with the least shortfall, the largest of the
    memory constraints' ``-slack`` (the first of equal ones), as the closest miss ranks them.

    Memory depends on an instance row only through its (GPU memory, host memory, TP degree)
    triple and on a workload only through T = L_in + L_out. For ``fitting``, each (triple,
    batch size, level) gets the largest T at which it fits (:func:`_fit_thresholds`, once per
    grid); the running
    maximum of those over the levels is non-decreasing, so the smallest fitting level of a
    workload is one binary search of its T in it. ``closest`` (and huge token counts)
    evaluate the ``(W, pairs, B, C)`` grid.
    """
    gmem, hmem, tp, inverse = _memory_pairs(inst)
    n_w, n_p, n_b, n_c = len(wl), gmem.size, bs.size, lv.size
    tokens = wl.input_len + wl.output_len
    bound = 1 << int(tokens.max()).bit_length()  # a power of two above every T: reusable
    n_pb = n_p * n_b
    if keep == "fitting" and bound < 2**52 and n_pb * (bound + 1) < 2**62:
        thr = _fit_thresholds(model, inst, bs, lv, options, bound)
        reach = np.maximum.accumulate(thr, axis=-1).reshape(n_pb, n_c)
        # one sorted array of all (pair, batch size) blocks, offset by block: values
        # block * (bound + 1) + reach + 1, with reach + 1 in [0, bound]
        offset = np.arange(n_pb, dtype=np.int64) * (bound + 1)
        grid = (offset[:, None] + (reach + 1)).reshape(-1)
        query = offset[None, :] + (tokens.astype(np.int64)[:, None] + 1)
        pos = np.searchsorted(grid, query.reshape(-1), side="left").reshape(n_w, n_pb)
        pos -= (np.arange(n_pb) * n_c)[None, :]
        best = np.where(pos < n_c, pos, -1).reshape(n_w, n_p, n_b)
        return best[:, inverse, :]
    b = bs.reshape(1, 1, -1, 1)
    c = lv.reshape(1, 1, 1, -1)
    lin = wl.input_len.reshape(-1, 1, 1, 1)
    lout = wl.output_len.reshape(-1, 1, 1, 1)
    slack = _memory_slacks(
        model, lin, lout, b, c, _per_inst(gmem), _per_inst(hmem), _per_inst(tp), options
    )
    shape = (n_w, n_p, n_b, n_c)
    if keep == "closest":
        short = functools.reduce(np.maximum, (-v for v in slack.values()))
        best = np.broadcast_to(short, shape).argmin(axis=-1)
    else:
        fits = np.broadcast_to(_fits(slack), shape)
        best = fits.argmax(axis=-1)
        best[~fits.any(axis=-1)] = -1
    return best[:, inverse, :]


def build_tables(
    model: LLM,
    workloads: Sequence[Workload],
    inst: InstanceArrays,
    batch_sizes: Sequence[int] | np.ndarray,
    levels: np.ndarray,
    options: ModelOptions,
    keep: Keep = "all",
) -> TableBatch:
    """Evaluate every candidate for each of ``workloads`` at once (one vectorized pass).

    Memory is ``O(W x N)`` floats for ``N`` candidates: callers chunk large workload lists.
    Workload ``w``'s table equals ``build_table(model, workloads[w], ...)`` bit for bit.

    ``keep="fitting"`` keeps one candidate per (instance, batch size), ``N = I x B``: the one
    at its smallest fitting offload level (:func:`memory_levels`; level 0 where none fits,
    which then fails a memory constraint), so ``offload_ratio`` varies per workload. Every
    value of a kept candidate equals the full table's bit for bit. A larger offload never
    raises TPS nor lowers the cost, so the kept candidate dominates the other levels of its
    (instance, batch size) in the ranking order, and it is feasible whenever any of them is:
    the best feasible candidate, the best of each instance and the Max-Performance candidate
    are all kept (the argument is in :mod:`infersave.solver.batch`). ``keep="closest"`` keeps
    the level of least memory shortfall instead: enough for the closest miss when nothing
    fits. The feasible count needs the full table.

    Raises:
        ValueError: if ``workloads`` is empty.
    """
    if not workloads:
        raise ValueError("build_tables needs at least one workload")
    if len(inst.parts) > 1:  # searched precisions: each evaluated on its rows, then joined
        pieces = [
            _build_tables(model, workloads, sub, batch_sizes, levels, options.at(d), keep)
            for d, sub in inst.parts
        ]
        return _join(pieces, inst, options)
    if options.dtypes and inst.dtype_names:
        options = options.at(inst.dtype_names[0])
    return _build_tables(model, workloads, inst, batch_sizes, levels, options, keep)


def _join_flat(flats: Sequence[_Flat], offsets: Sequence[int]) -> _Flat:
    """Broadcast-shaped arrays of row blocks joined along the instance axis: each array of a
    block broadcast to its block's rows (and to the largest extent of the other axes any block
    has), then concatenated; ``instance_idx`` renumbered by the blocks' ``offsets``."""
    n_w, _, n_b, n_c = flats[0]._shape
    raw: dict[str, np.ndarray] = {}
    for name in flats[0]._raw:
        arrs = [f._raw[name] for f in flats]
        if name == "instance_idx":
            arrs = [a + off for a, off in zip(arrs, offsets, strict=True)]
        w = max(a.shape[0] for a in arrs)
        b = max(a.shape[2] for a in arrs)
        c = max(a.shape[3] for a in arrs)
        raw[name] = np.concatenate(
            [np.broadcast_to(a, (w, f._shape[1], b, c)) for a, f in zip(arrs, flats, strict=True)],
            axis=1,
        )
    return _Flat(raw, (n_w, sum(f._shape[1] for f in flats), n_b, n_c))


def _join(pieces: Sequence[TableBatch], inst: InstanceArrays, options: ModelOptions) -> TableBatch:
    """One :class:`TableBatch` over ``inst`` from the batches of its precision blocks (in the
    order of ``inst.parts``); each row's ``dtype_index`` is its block's position."""
    offsets = np.cumsum([0] + [len(p.inst.instances) for p in pieces[:-1]]).tolist()
    arrays = []
    for j, p in enumerate(pieces):
        raw = dict(p.arrays._raw)  # type: ignore[attr-defined]
        raw["dtype_index"] = np.full((1, len(p.inst.instances), 1, 1), float(j))
        arrays.append(_Flat(raw, p.arrays._shape))  # type: ignore[attr-defined]
    return dataclasses.replace(
        pieces[0],
        options=options,
        inst=inst,
        weights_bytes=min(p.weights_bytes for p in pieces),
        arrays=_join_flat(arrays, offsets),
        slack=_join_flat([p.slack for p in pieces], offsets),  # type: ignore[misc]
        ok=_join_flat([p.ok for p in pieces], offsets),  # type: ignore[misc]
    )


def _build_tables(
    model: LLM,
    workloads: Sequence[Workload],
    inst: InstanceArrays,
    batch_sizes: Sequence[int] | np.ndarray,
    levels: np.ndarray,
    options: ModelOptions,
    keep: Keep = "all",
) -> TableBatch:
    """:func:`build_tables` for rows of one weight precision, ``options.dtype``."""
    bs = np.asarray(batch_sizes, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    wl = Workloads.of(workloads)
    if keep == "all":
        c = lv.reshape(1, 1, 1, -1)
        shape = (len(wl), len(inst.instances), bs.size, lv.size)
    else:
        at = memory_levels(model, wl, inst, bs, lv, options, keep)
        c = lv[np.maximum(at, 0)][..., None]
        shape = (len(wl), len(inst.instances), bs.size, 1)
    w, fields, slack, ok = _evaluate(model, wl, inst, bs, c, options)
    return TableBatch(
        workloads=tuple(workloads),
        options=options,
        model=model,
        inst=inst,
        batch_sizes=bs,
        levels=lv,
        weights_bytes=w,
        arrays=_Flat(fields, shape),
        slack=_Flat(slack, shape),
        ok=_Flat(ok, shape),
        keep=keep,
    )


def build_table(
    model: LLM,
    workload: Workload,
    inst: InstanceArrays,
    batch_sizes: Sequence[int] | np.ndarray,
    levels: np.ndarray,
    options: ModelOptions,
) -> CandidateTable:
    """Evaluate every (instance, batch size, offload level) of ``inst`` for ``workload``.

    Memory feasibility follows Algorithm 1 on the offload grid ``levels``: a level C_off is
    feasible when weights + activations + (1 - C_off) x KV fit in usable GPU memory
    (memory_feasibility), the weights alone fit (Case 2, weights_fit), a layer's KV fits in what
    is left when anything is offloaded (per_layer_kv; the paper compares it with what is left
    after weights and activations), and C_off x KV fits in the replica's share of host memory
    (host_memory; the paper never checks it, so ``formulas="paper"`` skips it).
    Cost per Eq. 2-3 (:mod:`.cost_model`), time per Eq. 4-7 (:mod:`.time_model`). The math is
    shared with :func:`build_tables` (many workloads at once).
    """
    return build_tables(model, [workload], inst, batch_sizes, levels, options).table(0)


@dataclass(frozen=True)
class LeanChunk:
    """What a batch picks from for many workloads at once, evaluated only where it can pick.

    The candidates are those of a ``keep="fitting"`` :class:`TableBatch` (one per (instance,
    batch size) at its smallest fitting offload level, ``N = I x B``, index ``k = i * B + b``),
    but only those that run (hardware and memory) under the price cap are evaluated: the
    others are neither feasible nor in the Max-Performance pool. Arrays are ``(W, N)``:
    ``fits`` (runs under the cap), ``feasible`` (every constraint), and where ``fits`` the
    ranking inputs ``tps``, ``total_cost_usd`` and ``offload_ratio``, bit-identical to the
    table's (elsewhere 0). ``price_ok[w]``: some instance is under workload ``w``'s cap.
    :meth:`columns` evaluates every field at a few candidates.
    """

    model: LLM
    workloads: tuple[Workload, ...]
    wl: Workloads
    inst: InstanceArrays
    batch_sizes: np.ndarray
    levels: np.ndarray
    options: ModelOptions
    at: np.ndarray  # (W, I, B) index of the kept level, -1 where none fits
    band: np.ndarray  # (W, I, 1, 1) the error band factor
    fits: np.ndarray
    feasible: np.ndarray
    tps: np.ndarray
    total_cost_usd: np.ndarray
    offload_ratio: np.ndarray
    price_ok: np.ndarray

    rows: np.ndarray  # (R, I): the :func:`_instance_inputs` of ``inst`` (in its order)
    columns_wl: np.ndarray  # (V, W): the :data:`_WORKLOAD_INPUTS` of ``wl``

    def _inputs(self, ws: np.ndarray, ks: np.ndarray) -> dict[str, np.ndarray]:
        n_i, n_b = len(self.inst.instances), self.batch_sizes.size
        i, b = np.divmod(ks, n_b)
        # one gather per axis: rows of the stacked inputs (contiguous views, the same values)
        x = dict(zip(_WORKLOAD_INPUTS, np.take(self.columns_wl, ws, axis=1), strict=True))
        x.update(zip(_INSTANCE_INPUTS, np.take(self.rows, i, axis=1), strict=True))
        wi = ws * n_i + i
        x["band"] = self.band.reshape(-1)[wi]
        x["b"] = self.batch_sizes[b]
        x["c"] = self.levels[np.maximum(self.at.reshape(-1)[wi * n_b + b], 0)]
        return x

    def columns(
        self, ws: np.ndarray, ks: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every field (the :class:`TableBatch` arrays' names) and every constraint's ``ok`` at
        candidate ``ks[j]`` of workload ``ws[j]``, as arrays of ``ws``'s shape: the very values
        of the table (the same operations on the same numbers)."""
        _, fields, _, ok = _evaluate_at(
            self.model, self._inputs(ws, ks), self.options, _any_tp(self.inst), ndim=1
        )
        shape = np.shape(ws)
        return (
            {k: np.broadcast_to(v, shape) for k, v in fields.items()},
            {k: np.broadcast_to(v, shape) for k, v in ok.items()},
        )

    def tables(self, ws: Sequence[int] | np.ndarray) -> TableBatch:
        """The ``keep="fitting"`` :class:`TableBatch` of workloads ``ws`` (what
        :func:`build_tables` gives for them, from the levels already found)."""
        ws = np.asarray(ws, dtype=np.intp)
        wl = Workloads(*(getattr(self.wl, f.name)[ws] for f in dataclasses.fields(Workloads)))
        c = self.levels[np.maximum(self.at[ws], 0)][..., None]
        shape = (len(ws), len(self.inst.instances), self.batch_sizes.size, 1)
        w, fields, slack, ok = _evaluate(
            self.model, wl, self.inst, self.batch_sizes, c, self.options
        )
        return TableBatch(
            workloads=tuple(self.workloads[j] for j in ws.tolist()),
            options=self.options,
            model=self.model,
            inst=self.inst,
            batch_sizes=self.batch_sizes,
            levels=self.levels,
            weights_bytes=w,
            arrays=_Flat(fields, shape),
            slack=_Flat(slack, shape),
            ok=_Flat(ok, shape),
            keep="fitting",
        )


def lean_chunk(
    model: LLM,
    workloads: Sequence[Workload],
    inst: InstanceArrays,
    batch_sizes: Sequence[int] | np.ndarray,
    levels: np.ndarray,
    options: ModelOptions,
) -> LeanChunk:
    """The :class:`LeanChunk` of ``workloads`` (one weight precision: ``inst.parts`` of at most
    one block). Only the candidates that run under the price cap are evaluated, each as in
    :func:`build_tables` with ``keep="fitting"`` (:func:`_evaluate_at` on one entry per
    candidate), and of the fields only what picking needs.

    Raises:
        ValueError: if ``workloads`` is empty or ``inst`` searches several precisions.
    """
    if not workloads:
        raise ValueError("lean_chunk needs at least one workload")
    if len(inst.parts) > 1:
        raise ValueError("lean_chunk evaluates one weight precision")
    if options.dtypes and inst.dtype_names:
        options = options.at(inst.dtype_names[0])
    bs = np.asarray(batch_sizes, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    wl = Workloads.of(workloads)
    n_w, n_i, n_b = len(wl), len(inst.instances), bs.size
    # contiguous: the slices read it flattened (a reshape of a strided array copies it)
    at = np.ascontiguousarray(memory_levels(model, wl, inst, bs, lv, options, "fitting"))
    rows = _instance_inputs(model, inst)
    hardware = (rows["dtype_slack"] >= 0) & (rows["tp_slack"] >= 0)
    price_ok = wl.max_price.reshape(-1, 1) - inst.price_per_hour >= 0  # the table's slack
    candidates = (at >= 0) & (hardware & price_ok)[:, :, None]
    w, k = np.nonzero(candidates.reshape(n_w, n_i * n_b))
    conf = wl.slo_confidence.reshape(n_w, 1, 1, 1)
    band = np.ascontiguousarray(engine_model.band_factor(_per_inst(rows["sigma"]), conf))
    chunk = LeanChunk(
        model, tuple(workloads), wl, inst, bs, lv, options, at, band,
        *(np.zeros((n_w, n_i * n_b), dtype=t) for t in (bool, bool, float, float, float)),
        price_ok.any(axis=-1),
        np.array([np.asarray(rows[n], dtype=np.float64) for n in _INSTANCE_INPUTS]),
        np.array([getattr(wl, n) for n in _WORKLOAD_INPUTS]),
    )  # fmt: skip
    runnable = [c.name for c in constraints.runnable_constraints(options)]
    any_tp = _any_tp(inst)
    flat = w * (n_i * n_b) + k
    for start in range(0, w.size, LEAN_SLICE):
        part = slice(start, start + LEAN_SLICE)
        x = chunk._inputs(w[part], k[part])
        _, fields, _, ok = _evaluate_at(model, x, options, any_tp, 1, records=False)
        runs = functools.reduce(np.logical_and, (ok[name] for name in runnable))
        at_flat = flat[part]
        chunk.fits.reshape(-1)[at_flat] = runs & ok["price_cap"]
        chunk.feasible.reshape(-1)[at_flat] = ok["feasible"]
        for name in ("tps", "total_cost_usd", "offload_ratio"):
            getattr(chunk, name).reshape(-1)[at_flat] = fields[name]
    return chunk


LEAN_SLICE = 8192
"""Candidates :func:`lean_chunk` evaluates at a time: its ~100 temporary arrays of this many
floats (64 KiB each) stay in the CPU cache and in the allocator's heap (larger ones are
mapped and unmapped by the C allocator at each use: page faults)."""
