"""The ranking order of candidates (section IV-E), defined once, and the exhaustive backend.

Order: lowest billed cost first (rounded to :data:`COST_DECIMALS`), then higher TPS (the paper's
tie-break), then instance type name, smaller batch size and smaller offload ratio. Every search
path uses it: the exhaustive ranker (:func:`rank`), the exact backends' tie-break stage
(:func:`tiebreak_positions`), ``batch`` (:func:`order_keys` on many workloads at once) and
``compare``.
"""

from __future__ import annotations

import numpy as np

from infersave.formulations.candidates import CandidateTable, instance_name_rank
from infersave.formulations.exact_model import COST_DECIMALS

__all__ = [
    "COST_DECIMALS",
    "best_per_instance",
    "exhaustive",
    "max_performance",
    "order_keys",
    "rank",
    "tiebreak_positions",
]


def order_keys(
    cost: np.ndarray | None,
    tps: np.ndarray,
    name_rank: np.ndarray,
    batch: np.ndarray,
    offload: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The ranking order as ``numpy.lexsort`` keys (last key primary): rounded cost ascending,
    TPS descending, instance name rank, batch size, offload ratio ascending. ``cost=None`` gives
    the tie-break order alone (everything after cost). Arrays of any one shape; with 2-D arrays
    ``numpy.lexsort(keys, axis=-1)`` orders each row (one workload per row)."""
    keys = (offload, batch, name_rank, -tps)
    if cost is None:
        return keys
    return (*keys, np.round(cost, COST_DECIMALS))


def _keys(table: CandidateTable, idx: np.ndarray, with_cost: bool) -> tuple[np.ndarray, ...]:
    return order_keys(
        table.total_cost_usd[idx] if with_cost else None,
        table.tps[idx],
        instance_name_rank(table.inst)[table.instance_idx[idx]],
        table.batch_size[idx],
        table.offload_ratio[idx],
    )


def rank(table: CandidateTable, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the candidates selected by ``mask`` (default: feasible), best first."""
    m = table.feasible if mask is None else mask
    idx = np.flatnonzero(m)
    if idx.size == 0:
        return idx
    return idx[np.lexsort(_keys(table, idx, with_cost=True))]


def tiebreak_positions(table: CandidateTable) -> np.ndarray:
    """Every candidate's position (0 = preferred) in the tie-break order (the ranking order
    without cost): TPS descending, instance type name, batch size, offload ratio. Equal keys
    get equal positions. Returns int64 of shape ``(N,)``; the exact backends minimize it among
    the cost-optimal candidates."""
    n = len(table)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    keys = _keys(table, np.arange(n), with_cost=False)
    order = np.lexsort(keys)
    stacked = np.stack([k[order] for k in keys])
    new = np.ones(n, dtype=bool)
    new[1:] = (stacked[:, 1:] != stacked[:, :-1]).any(axis=0)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.cumsum(new) - 1
    return pos


def best_per_instance(table: CandidateTable, ranked: np.ndarray) -> np.ndarray:
    """From ``ranked`` indices, keep the first (best) candidate of each instance (over its rows
    at every tensor-parallel degree and precision), in order."""
    physical = table.inst.instance_of_row()[table.instance_idx[ranked]]
    _, first = np.unique(physical, return_index=True)
    return ranked[np.sort(first)]


def exhaustive(table: CandidateTable) -> int | None:
    """The optimum by brute force: index of the best feasible candidate, or None."""
    order = rank(table)
    return int(order[0]) if order.size else None


def max_performance(table: CandidateTable) -> int | None:
    """The paper's Max-Performance baseline: the highest-TPS candidate that runs (hardware
    support and memory, :attr:`~.CandidateTable.runs`) under the price cap (SLO ignored); ties
    go to the lower cost. None if nothing runs."""
    idx = np.flatnonzero(table.runs & table.ok["price_cap"])
    if idx.size == 0:
        return None
    keys = (
        np.round(table.total_cost_usd[idx], COST_DECIMALS),
        -table.tps[idx],
    )
    return int(idx[np.lexsort(keys)[0]])
