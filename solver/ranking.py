"""Ranking of candidates (section IV-E) and the exhaustive backend.

Order: lowest billed cost first, then higher TPS (the paper's tie-break), then instance type
name, smaller batch size and smaller offload ratio, so that every backend breaks the remaining
ties the same way.
"""

from __future__ import annotations

import numpy as np

from infersave.formulations.candidates import CandidateTable, instance_name_rank

COST_DECIMALS = 9  # $ amounts equal to 1e-9 are the same price (float products of $/h x hours)


def rank(table: CandidateTable, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the candidates selected by ``mask`` (default: feasible), best first."""
    m = table.feasible if mask is None else mask
    idx = np.flatnonzero(m)
    if idx.size == 0:
        return idx
    keys = (
        table.offload_ratio[idx],
        table.batch_size[idx],
        instance_name_rank(table.inst)[table.instance_idx[idx]],
        -table.tps[idx],
        np.round(table.total_cost_usd[idx], COST_DECIMALS),
    )
    return idx[np.lexsort(keys)]


def best_per_instance(table: CandidateTable, ranked: np.ndarray) -> np.ndarray:
    """From ``ranked`` indices, keep the first (best) candidate of each instance, in order."""
    _, first = np.unique(table.instance_idx[ranked], return_index=True)
    return ranked[np.sort(first)]


def exhaustive(table: CandidateTable) -> int | None:
    """The optimum by brute force: index of the best feasible candidate, or None."""
    order = rank(table)
    return int(order[0]) if order.size else None


def max_performance(table: CandidateTable) -> int | None:
    """The paper's Max-Performance baseline: the highest-TPS candidate that fits in memory
    under the price cap (SLO ignored); ties go to the lower cost. None if nothing fits."""
    idx = np.flatnonzero(table.memory_ok & table.ok["price_cap"])
    if idx.size == 0:
        return None
    keys = (
        np.round(table.total_cost_usd[idx], COST_DECIMALS),
        -table.tps[idx],
    )
    return int(idx[np.lexsort(keys)[0]])
