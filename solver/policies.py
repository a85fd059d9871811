"""Named selection policies other than the joint optimum, for comparison with it."""

from __future__ import annotations

import numpy as np

from infersave.formulations.candidates import CandidateTable
from infersave.solver.ranking import rank

PAPER_BATCH_SIZE = 32
"""The batch size of the paper's evaluation (section VI-C: OPT-2.7B at batch size 32)."""


def minimal_offload(table: CandidateTable, batch_size: int) -> np.ndarray:
    """Algorithm 1 on the grid: for each instance, the candidate at ``batch_size`` with the
    smallest offload ratio that satisfies every memory constraint. Returns candidate indices
    (at most one per instance)."""
    m = table.memory_ok & (table.batch_size == batch_size)
    idx = np.flatnonzero(m)
    if idx.size == 0:
        return idx
    # instance-major layout with offload levels ascending: first hit per instance is minimal
    _, first = np.unique(table.instance_idx[idx], return_index=True)
    return idx[first]


def paper_heuristic(table: CandidateTable, batch_size: int = PAPER_BATCH_SIZE) -> int | None:
    """The paper's procedure: fixed batch size, per instance the minimal offload ratio of
    Algorithm 1, then the cheapest that meets TPS >= SLO under the price cap (section IV-E).

    Returns the chosen candidate index, or None when no instance qualifies.

    Raises:
        ValueError: if ``batch_size`` is not among the table's batch sizes.
    """
    if batch_size not in table.batch_sizes:
        raise ValueError(f"batch size {batch_size} is not in the candidate table")
    chosen = minimal_offload(table, batch_size)
    mask = np.zeros(len(table), dtype=bool)
    mask[chosen] = True
    order = rank(table, mask & table.feasible)
    return int(order[0]) if order.size else None
