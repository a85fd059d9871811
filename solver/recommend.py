"""Solve one scenario: search the candidate table with a backend, rank alternatives, compare
with the Max-Performance baseline, and explain the closest miss when nothing is feasible."""

from __future__ import annotations

import numpy as np

from infersave.formulations import constraints
from infersave.formulations.candidates import CandidateTable, Workload
from infersave.solver import ranking, registry
from infersave.solver.prepare import Prepared, prepare
from infersave.solver.records import Baseline, Record, SolveResult, SolverInfo, make_record
from infersave.solver.scenario import Scenario

GB = 1e9


def closest_miss(table: CandidateTable) -> str:
    """One sentence on why nothing is feasible and what to change (exit code 1's message).

    Reads the table's slack columns (:mod:`infersave.formulations.constraints`): first the price
    cap, then the active memory constraints (the largest shortfall of a candidate under the cap,
    in GB), then the TPS SLO (the best TPS that fits under the cap). Fields are named as the
    scenario names them (``max_price``, ``slo_tps``, ``dtype``); the CLI shows them as flags.
    """
    w = table.workload
    capped = bool(np.isfinite(w.max_price))
    cap = f"under ${w.max_price:g}/h" if capped else "with no price cap"
    price_ok = table.ok["price_cap"]
    if not price_ok.any():
        i = int(np.argmin(table.inst.price_per_hour))
        inst = table.inst.instances[i]
        return (
            f"no instance costs at most ${w.max_price:g}/h; the cheapest is {inst.instance_type}"
            f" at ${table.inst.price_per_hour[i]:.4g}/h: raise max_price"
        )
    price_ok = price_ok & table.ok["dtype_support"]
    if not price_ok.any():
        raise_cap = "raise max_price or " if capped else ""
        o = table.options
        wanted = ", ".join(o.weight_dtypes) + (f" with an {o.kv_dtype} KV cache" if
                                               o.kv_dtype != "auto" else "")  # fmt: skip
        return (
            f"no GPU {cap} runs {wanted} (fp8 and an fp8 KV cache: Ada/Hopper and later; int8:"
            f" Turing and later; int4: compute capability 7.5 and later; bf16: Ampere and"
            f" later): {raise_cap}choose another dtype or kv_dtype"
        )
    price_ok = price_ok & table.ok["tensor_parallel"]  # degree 1 always shards: never empty
    fits = table.memory_ok & price_ok
    if not fits.any():
        mem = [c.name for c in table.constraints if c.kind == "memory"]
        short = np.maximum.reduce([-table.slack[name] for name in mem])
        short = np.where(price_ok, short, np.inf)
        k = int(np.argmin(short))
        inst = table.inst.instances[int(table.instance_idx[k])]
        raise_cap = "raise max_price, " if capped else ""
        if not (table.ok["weights_fit"] & price_ok).any():
            # the closest: the largest usable memory left after one GPU's share of the weights
            j = int(np.argmax(np.where(price_ok, table.slack["weights_fit"], -np.inf)))
            near = table.inst.instances[int(table.instance_idx[j])]
            tp = int(table.tensor_parallel[j])
            smaller = [d for d in ("fp8", "int8", "int4") if d not in table.options.weight_dtypes]
            dtype_hint = f"a smaller dtype ({', '.join(smaller)}) or " if smaller else ""
            return (
                f"the weights alone ({table.weights_bytes / GB:.1f} GB) fit no instance {cap},"
                f" even split by tensor parallelism over one instance's GPUs (closest:"
                f" {near.instance_type} at TP {tp}, {table.weights_gpu_bytes[j] / GB:.1f} GB per"
                f" GPU > {table.gpu_memory_bytes[j] / GB:.1f} GB usable); pipeline parallelism"
                f" across instances is not modelled"
                f"{', nor expert parallelism' if table.model.is_moe else ''}: {raise_cap}use"
                f" {dtype_hint}a smaller model"
            )
        return (
            f"no configuration fits in memory {cap}; closest: {inst.instance_type} at batch"
            f" {int(table.batch_size[k])}, offload {table.offload_ratio[k]:.2f}, short by"
            f" {short[k] / GB:.2f} GB of GPU or host memory: {raise_cap}shorten the sequences"
            " or lower the batch size"
        )
    idx = np.flatnonzero(fits)
    raise_cap = "raise max_price or " if capped else ""
    slos = [
        c
        for c in table.constraints
        if c.kind in ("slo", "latency") and np.isfinite(constraints.limit(c, w))
    ]
    k = int(idx[least_shortfall([table.slack[c.name][idx] for c in slos], slos, w)])
    inst = table.inst.instances[int(table.instance_idx[k])]
    where = candidate_text(inst.instance_type, table.batch_size[k], table.offload_ratio[k])
    missed = [c for c in slos if table.slack[c.name][k] < 0]
    if [c.name for c in missed] == ["tps_slo"]:
        return tps_miss(w, float(table.tps[int(idx[np.argmax(table.tps[idx])])]), where)
    parts = []
    for c in missed:
        limit = constraints.limit(c, w)
        if c.name == "tps_slo":
            parts.append(f"TPS {table.tps[k]:.1f} < {limit:g}")
        else:
            value = limit - table.slack[c.name][k]
            parts.append(f"{c.name.removesuffix('_slo').upper()} {value:.3g} s > {limit:g} s")
    names = " or ".join(c.name for c in missed)
    return (
        f"no configuration {cap} meets every SLO; closest: {where} ({', '.join(parts)}):"
        f" {raise_cap}relax {names}, or shorten the sequences"
    )


def least_shortfall(
    slacks: list[np.ndarray], slos: list[constraints.Constraint], w: Workload
) -> int:
    """Of candidates whose ``slacks`` (one array of shape ``(n,)`` per SLO of ``slos``) miss
    some SLO: the position of the one that misses them by the least, its largest shortfall
    relative to its SLO ``max(-slack, 0) / limit`` (the first of equal ones). The rule of
    :func:`closest_miss`, which the batch's arrays use too."""
    rel = np.maximum.reduce(
        [np.maximum(-v, 0.0) / constraints.limit(c, w) for v, c in zip(slacks, slos, strict=True)]
    )
    return int(np.argmin(rel))


def candidate_text(instance_type: str, batch: float, offload: float) -> str:
    """A candidate as :func:`closest_miss` names it: ``instance, batch B, offload C``."""
    return f"{instance_type}, batch {int(batch)}, offload {offload:.2f}"


def tps_miss(w: Workload, best_tps: float, where: str) -> str:
    """:func:`closest_miss`'s sentence when the TPS SLO is the only one missed: ``best_tps``
    (tokens/s) the highest TPS of the candidates that fit under the cap, ``where`` the
    candidate of least shortfall (``instance, batch B, offload C``)."""
    capped = bool(np.isfinite(w.max_price))
    cap = f"under ${w.max_price:g}/h" if capped else "with no price cap"
    raise_cap = "raise max_price or " if capped else ""
    return (
        f"the best TPS reachable {cap} is {best_tps:.1f} ({where}), below the SLO of"
        f" {w.slo_tps:g} TPS: {raise_cap}lower slo_tps"
    )


def result_from(
    prep: Prepared,
    k: int | None,
    info: SolverInfo | None,
    ranked: tuple[np.ndarray, int | None] | None = None,
) -> SolveResult:
    """Assemble the :class:`SolveResult` of chosen candidate ``k`` (None: infeasible).

    ``ranked`` passes ``(best_per_instance(table, rank(table)), max_performance(table))`` when
    the caller already has them (batch runs compute them for many workloads at once).
    """
    table, s, cal = prep.table, prep.scenario, prep.calibration_name
    if ranked is None:
        ordered = ranking.best_per_instance(table, ranking.rank(table))
        base_k = ranking.max_performance(table)
    else:
        ordered, base_k = ranked
    base = make_record(table, base_k, cal) if base_k is not None else None
    if k is None:
        return SolveResult(
            scenario=s,
            status="infeasible",
            message=closest_miss(table),
            recommendation=None,
            alternatives=[],
            baseline=Baseline(max_performance=base, savings_pct=None),
            solver=info,
            candidates=len(table),
            feasible_candidates=int(table.feasible.sum()),
        )
    rec = make_record(table, k, cal)
    chosen_inst = table.instance_idx[k]
    others = [int(j) for j in ordered if table.instance_idx[j] != chosen_inst][: s.top]
    alts: list[Record] = [make_record(table, j, cal) for j in others]
    savings = None
    if base is not None and base.total_cost_usd > 0:
        savings = 100.0 * (base.total_cost_usd - rec.total_cost_usd) / base.total_cost_usd
    return SolveResult(
        scenario=s,
        status="ok",
        message="",
        recommendation=rec,
        alternatives=alts,
        baseline=Baseline(max_performance=base, savings_pct=savings),
        solver=info,
        candidates=len(table),
        feasible_candidates=int(table.feasible.sum()),
    )


def solve_prepared(prep: Prepared) -> SolveResult:
    """Search a prepared scenario with its backend and assemble the result.

    Raises:
        InputError: unknown backend or solver.
    """
    k, info = registry.search(prep.table, prep.scenario)
    return result_from(prep, k, info)


def solve(scenario: Scenario) -> SolveResult:
    """Recommend the cheapest configuration that meets the scenario's SLO under its price cap.

    Raises:
        InputError: on input the catalog or the models reject.
    """
    return solve_prepared(prepare(scenario))
