"""The constraints of the joint choice, each defined once as a named signed-slack column of the
candidate table (``slack >= 0`` means satisfied).

Every reader takes the columns from here: the exhaustive ranker and the batch selector through
``table.ok`` (``slack >= 0``), the MILP and CP-SAT rows (:mod:`.exact_model` turns each slack
back into the row ``value  sense  limit``), the closest-miss explanation, ``predict``'s list of
problems and ``batch``. None of them re-derives a constraint.

==================================  ======  ========  ==============================  ===========
column (model row)                  sense   slack in  slack                           paper
==================================  ======  ========  ==============================  ===========
``dtype_support``                   >=      GPU       supported (0) or not (-1)       (ours)
(``dtype_supported``)
``tensor_parallel``                 >=      GPU       shards the heads (0) or not (-1) (ours)
(``tensor_parallel_shards_heads``)
``weights_fit``                     <=      bytes     GPU memory - weights            Alg. 1 l.10
``memory_feasibility``              <=      bytes     GPU memory - used               Alg. 1 l.6
``per_layer_kv``                    <=      bytes     free - one layer's KV (C_off>0) Alg. 1 l.15
``host_memory``                     <=      bytes     host share - C_off x KV         (ours)
(``host_memory_for_offloaded_kv``)
``price_cap``                       <=      $/h       P_max - price                   Alg. 1 l.4
``tps_slo``                         >=      tokens/s  TPS - TPS_SLO                   III-A
==================================  ======  ========  ==============================  ===========

"used" is weights + activations + (1 - C_off) x KV cache on one GPU of a replica (weights and KV
split over its tensor-parallel GPUs, :mod:`.parallel_model`); "free" is GPU memory - used
(physics) or GPU memory - weights - activations (the paper's Algorithm 1 as printed). When
nothing is offloaded the per-layer check does not apply and its slack is 0.
Under ``formulas="paper"`` the host-memory constraint does not exist (the paper never checks
it): :func:`active` leaves it out, so no reader can apply it.

Each comparison ``a <= b`` is computed as ``b - a >= 0``, which is exact for IEEE doubles (the
difference of two finite doubles is 0 only when they are equal and keeps the sign otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from infersave.formulations.options import ModelOptions

Kind = Literal["hardware", "memory", "price", "slo", "latency"]
Sense = Literal["<=", ">="]


@dataclass(frozen=True)
class Constraint:
    """One constraint of the joint choice.

    Attributes:
        name: the candidate-table column (``table.slack[name]``, ``table.ok[name]``).
        row: the row name in the MILP and CP-SAT models (the paper's term).
        sense: how the row reads, ``value <= limit`` or ``value >= limit``.
        unit: unit of the slack and of the value (``bytes``, ``$/h``, ``tokens/s``).
        kind: ``memory`` (per candidate limit), ``price`` (the cap, per instance) or ``slo``.
        paper: where the paper states it.
        meaning: one line for explanations (``predict``'s problems, the closest miss).
    """

    name: str
    row: str
    sense: Sense
    unit: str
    kind: Kind
    paper: str
    meaning: str


CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(
        "dtype_support",
        "dtype_supported",
        ">=",
        "GPU",
        "hardware",
        "ours: the GPU has tensor cores for the dtype (datasheet)",
        "the GPU has no tensor-core support for the dtype (FP8: Ada/Hopper and later; INT8:"
        " Turing and later; BF16: Ampere and later)",
    ),
    Constraint(
        "tensor_parallel",
        "tensor_parallel_shards_heads",
        ">=",
        "GPU",
        "hardware",
        "ours: the TP degree divides the attention heads, and the KV heads divide by it (or it"
        " by them), as vLLM requires",
        "the tensor-parallel degree does not divide the model's attention heads (or KV heads)",
    ),
    Constraint(
        "weights_fit",
        "weights_fit",
        "<=",
        "bytes",
        "memory",
        "Algorithm 1 line 10 (Case 2)",
        "the weights do not fit in the GPU's usable memory",
    ),
    Constraint(
        "memory_feasibility",
        "memory_feasibility",
        "<=",
        "bytes",
        "memory",
        "Algorithm 1 line 6",
        "weights + activations + resident KV cache exceed usable GPU memory",
    ),
    Constraint(
        "per_layer_kv",
        "per_layer_kv",
        "<=",
        "bytes",
        "memory",
        "Algorithm 1 line 15",
        "one layer's KV cache does not fit beside the resident data",
    ),
    Constraint(
        "host_memory",
        "host_memory_for_offloaded_kv",
        "<=",
        "bytes",
        "memory",
        "not in the paper (ours)",
        "the offloaded KV cache does not fit in the replica's host memory",
    ),
    Constraint(
        "price_cap",
        "price_cap",
        "<=",
        "$/h",
        "price",
        "Algorithm 1 line 4 (P_max)",
        "the instance costs more per hour than the price cap",
    ),
    Constraint(
        "tps_slo",
        "tps_slo",
        ">=",
        "tokens/s",
        "slo",
        "section III-A (TPS >= TPS_SLO)",
        "the predicted TPS is below the SLO",
    ),
    Constraint(
        "ttft_slo",
        "ttft_slo",
        "<=",
        "s",
        "latency",
        "ours (latency SLO): TTFT = the batch's prefill time",
        "the time to first token exceeds its SLO",
    ),
    Constraint(
        "tpot_slo",
        "tpot_slo",
        "<=",
        "s",
        "latency",
        "ours (latency SLO): TPOT = one decode step",
        "the time per output token exceeds its SLO",
    ),
    Constraint(
        "e2e_slo",
        "e2e_slo",
        "<=",
        "s",
        "latency",
        "ours (latency SLO): one batch end to end (Eq. 4)",
        "the end-to-end time of a batch exceeds its SLO",
    ),
)
"""All constraints, in the order a closest miss is explained."""

BY_NAME: dict[str, Constraint] = {c.name: c for c in CONSTRAINTS}


def active(options: ModelOptions) -> tuple[Constraint, ...]:
    """The constraints that exist under ``options`` (the paper's formulas have no host-memory
    check)."""
    if options.formulas == "paper":
        return tuple(c for c in CONSTRAINTS if c.name != "host_memory")
    return CONSTRAINTS


def runnable_constraints(options: ModelOptions) -> tuple[Constraint, ...]:
    """The active constraints that decide whether a configuration can run at all: hardware
    support (dtype, tensor-parallel sharding) and memory. Price and SLOs come on top (the
    Max-Performance baseline is the fastest runnable configuration under the price cap)."""
    return tuple(c for c in active(options) if c.kind in ("hardware", "memory"))


def memory_constraints(options: ModelOptions) -> tuple[Constraint, ...]:
    """The active memory constraints (Algorithm 1, plus host memory under physics)."""
    return tuple(c for c in active(options) if c.kind == "memory")


def memory_slacks(
    options: ModelOptions,
    weights: float,
    activations: np.ndarray,
    kv_cache: np.ndarray,
    kv_per_layer: np.ndarray,
    offload: np.ndarray,
    used: np.ndarray,
    gpu_memory: np.ndarray,
    host_memory: np.ndarray,
) -> dict[str, np.ndarray]:
    """Slack (bytes, >= 0 satisfied) of each active memory constraint; arrays broadcast together.

    Args:
        weights: bytes of the weights on one GPU of a replica (the whole model / TP degree).
        activations, kv_cache, kv_per_layer: bytes on one GPU of a replica (Table II).
        offload: C_off in [0, 1]; used: weights + activations + (1 - C_off) x KV, bytes.
        gpu_memory: usable bytes of one GPU; host_memory: host bytes one GPU's share may use.
    """
    free = gpu_memory - used
    if options.formulas == "paper":
        free = gpu_memory - weights - activations
    out = {
        "weights_fit": gpu_memory - weights,
        "memory_feasibility": gpu_memory - used,
        "per_layer_kv": np.where(offload > 0, free - kv_per_layer, 0.0),
    }
    if options.formulas != "paper":
        out["host_memory"] = host_memory - offload * kv_cache
    return out


def limit(c: Constraint, workload: Any) -> float:
    """The right-hand side of ``c``'s row: 0 for memory (value = excess), P_max ($/h) for the
    price cap, TPS_SLO (tokens/s), or the latency SLO (s) of the same name. An infinite limit
    means the constraint is not asked for (no cap, no SLO): models leave its row out."""
    if c.kind == "price":
        return float(workload.max_price)
    if c.kind == "hardware":
        return 1.0  # the instance supports it (1) or not (0)
    if c.kind in ("slo", "latency"):
        return float(getattr(workload, WORKLOAD_FIELD[c.name]))
    return 0.0


WORKLOAD_FIELD: dict[str, str] = {
    "tps_slo": "slo_tps",
    "ttft_slo": "ttft_slo",
    "tpot_slo": "tpot_slo",
    "e2e_slo": "e2e_slo",
}
"""The workload field that holds each SLO constraint's limit."""


def row_values(c: Constraint, slack: np.ndarray, rhs: float) -> np.ndarray:
    """The row coefficients ``value`` with ``value sense rhs`` iff ``slack >= 0``:
    ``rhs - slack`` for ``<=`` and ``rhs + slack`` for ``>=`` (e.g. the TPS, the price, or a
    memory excess against 0)."""
    s = np.asarray(slack, dtype=np.float64)
    return rhs - s if c.sense == "<=" else rhs + s


def violated(slack: Mapping[str, np.ndarray], k: int, names: tuple[Constraint, ...]) -> list[str]:
    """Meanings of the constraints of ``names`` that candidate ``k`` violates."""
    return [c.meaning for c in names if slack[c.name][k] < 0]
