"""The cost/throughput trade-off of a scenario: every configuration that fits, its Pareto front,
the recommendation and the Max-Performance baseline (issue 13, part 3).

The points are the Max-Performance candidate set: every (instance, batch size, offload ratio)
that fits in memory under the price cap, whether or not it meets the SLO (``meets_slo`` says).
One :func:`~infersave.solver.prepare.prepare` call builds the candidate table; the solve and the
points both read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from infersave.formulations import arrays
from infersave.solver.records import Record, SolveResult
from infersave.solver.scenario import Scenario

if TYPE_CHECKING:
    from infersave.formulations.candidates import CandidateTable

COST_DECIMALS = 9
"""$ amounts equal to 1e-9 are the same cost (as in :mod:`infersave.solver.ranking`)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ParetoPoint(_Frozen):
    """One configuration: where it sits (``tps``, ``total_cost_usd``) and what it is.

    ``prefill_s`` and ``decode_s`` are one batch on one replica (all decode steps), for latency
    views (TTFT ~ prefill_s, TPOT ~ decode_s / output_len)."""

    instance_type: str
    gpu: str
    gpu_count: float
    batch_size: int
    offload_ratio: float
    tps: float
    total_cost_usd: float
    price_per_hour: float
    prefill_s: float
    decode_s: float
    meets_slo: bool
    on_front: bool


class CapPoint(_Frozen):
    """A point of the price-cap line: the most a configuration at ``tps`` can cost in total
    under the cap (cap $/h x the hours billed at that TPS)."""

    tps: float
    total_cost_usd: float


class ParetoResult(_Frozen):
    """The trade-off view of one scenario.

    ``points`` are sorted by TPS, then cost. ``result`` is the solve of the same candidate table
    (recommendation, alternatives, baseline). ``cap_line`` is empty without a price cap.
    """

    scenario: Scenario
    points: list[ParetoPoint]
    result: SolveResult
    slo_tps: float | None
    max_price: float | None
    cap_line: list[CapPoint]

    @property
    def front(self) -> list[ParetoPoint]:
        """The points on the Pareto front, by increasing TPS."""
        return [p for p in self.points if p.on_front]

    @property
    def recommendation(self) -> Record | None:
        """The cheapest configuration that meets the SLO (None if nothing is feasible)."""
        return self.result.recommendation

    @property
    def max_performance(self) -> Record | None:
        """The Max-Performance baseline: the highest TPS under the cap, SLO ignored."""
        return self.result.baseline.max_performance


def pareto_front(cost: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """Boolean mask of the Pareto-optimal points for (minimize ``cost``, maximize ``tps``).

    Point ``p`` is *dominated* when some point ``q`` costs no more and delivers no less
    (``cost[q] <= cost[p]`` and ``tps[q] >= tps[p]``) and is strictly better in at least one of
    the two. The front is every point that is not dominated. Points with identical cost and TPS
    do not dominate each other, so duplicates are on the front together. Costs are compared
    after rounding to :data:`COST_DECIMALS` decimals (float products of $/h x hours that differ
    by 1e-12 are the same price). Inputs must be finite; ``O(n log n)``.
    """
    cost = np.round(np.asarray(cost, dtype=np.float64), COST_DECIMALS)
    tps = np.asarray(tps, dtype=np.float64)
    if cost.shape != tps.shape or cost.ndim != 1:
        raise ValueError("cost and tps must be 1-D arrays of one length")
    if cost.size == 0:
        return np.zeros(0, dtype=bool)
    # Group equal costs; p is on the front iff it has the best TPS of its cost group and beats
    # the best TPS of every strictly cheaper group.
    levels, group = np.unique(cost, return_inverse=True)
    best_in_group = np.full(levels.size, -np.inf)
    np.maximum.at(best_in_group, group, tps)
    best_cheaper = np.concatenate(([-np.inf], np.maximum.accumulate(best_in_group)[:-1]))
    return (tps >= best_in_group[group]) & (tps > best_cheaper[group])


def _cap_line(table: CandidateTable, tps_lo: float, tps_hi: float, cap: float) -> list[CapPoint]:
    """Cap x billed hours over a log grid of TPS (plus the SLO, where the line turns flat)."""
    from infersave.formulations import cost_model as cost

    w, billing = table.workload, table.options.billing
    grid = arrays.unique(np.append(np.geomspace(tps_lo, tps_hi, 240), w.slo_tps))
    grid = grid[(grid >= tps_lo) & (grid <= tps_hi)]
    hours = cost.task_hours(
        w.requests, w.input_len, w.output_len, cost.effective_tps(grid, w.slo_tps)
    )
    total = cost.total_cost(cost.billed_hours(hours, billing), cap)
    return [
        CapPoint(tps=float(x), total_cost_usd=float(y)) for x, y in zip(grid, total, strict=True)
    ]


def pareto(scenario: Scenario) -> ParetoResult:
    """Every configuration that fits in memory under the price cap, its Pareto front (minimum
    total cost, maximum TPS; see :func:`pareto_front`), and the scenario's solve.

    Raises:
        InputError: on input the catalog or the models reject.
    """
    from infersave.solver.prepare import prepare
    from infersave.solver.recommend import solve_prepared

    prep = prepare(scenario)
    result = solve_prepared(prep)
    t = prep.table
    mask = t.memory_ok & t.ok["price_cap"] & np.isfinite(t.tps) & np.isfinite(t.total_cost_usd)
    idx = np.flatnonzero(mask)
    idx = idx[np.lexsort((t.total_cost_usd[idx], t.tps[idx]))]
    on_front = pareto_front(t.total_cost_usd[idx], t.tps[idx])
    meets = t.ok["tps_slo"][idx]
    points = []
    for n, k in enumerate(idx):
        inst = t.inst.instances[int(t.instance_idx[k])]
        points.append(
            ParetoPoint(
                instance_type=inst.instance_type,
                gpu=inst.gpu or inst.accelerator,
                gpu_count=float(inst.gpu_count),
                batch_size=int(t.batch_size[k]),
                offload_ratio=round(float(t.offload_ratio[k]), 10),
                tps=float(t.tps[k]),
                total_cost_usd=float(t.total_cost_usd[k]),
                price_per_hour=float(t.price_per_hour[k]),
                prefill_s=float(t.prefill_s[k]),
                decode_s=float(t.decode_s[k]),
                meets_slo=bool(meets[n]),
                on_front=bool(on_front[n]),
            )
        )
    cap_line: list[CapPoint] = []
    if scenario.max_price is not None:
        xs = [*([scenario.slo_tps] if scenario.slo_tps else []), *(p.tps for p in points)] or [1.0]
        cap_line = _cap_line(t, 0.8 * min(xs), 1.25 * max(xs), scenario.max_price)
    return ParetoResult(
        scenario=scenario,
        points=points,
        result=result,
        slo_tps=scenario.slo_tps,
        max_price=scenario.max_price,
        cap_line=cap_line,
    )
