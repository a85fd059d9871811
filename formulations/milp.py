"""The joint choice of instance, tensor-parallel degree, precision, batch size and offload level
as a MILP (PuLP; CBC or HiGHS).

Model (data from :mod:`.exact_model`, which reads the same candidate table as the ranker)::

    x_k in {0,1}  candidate k = (instance row i: instance, TP degree, precision; batch size b,
                  offload level c) is chosen
    y_i, t_T, q_D, z_b, w_c in {0,1}  instance row i / TP degree T / precision D / batch size b /
                  offload level c is chosen

    min   sum_k C_k x_k                               billed cost (Eq. 2-3), nano-$ above the
                                                      cheapest kept candidate
    s.t.  exactly_one_configuration:  sum_k x_k = 1
          link_instance_i:  sum_{k in i} x_k = y_i    exactly_one_instance:      sum_i y_i = 1
          link_batch_b:     sum_{k in b} x_k = z_b    exactly_one_batch_size:    sum_b z_b = 1
          link_offload_c:   sum_{k in c} x_k = w_c    exactly_one_offload_level: sum_c w_c = 1
          link_tensor_parallel_tpT: sum_{k at TP T} x_k = t_tpT   (when a degree > 1 is a row)
          link_dtype_D:     sum_{k in D} x_k = q_D    (when several precisions are searched)
          memory_feasibility:  sum_k (Mem_used_k - GPU_mem_k) x_k <= 0          [GiB]
          per_layer_kv:        sum_k (KV_layer_k - free_k) [C_off,k > 0] x_k <= 0  [GiB]
          host_memory_for_offloaded_kv: sum_k (C_off,k KV_k - Host_k) x_k <= 0     [GiB]
          price_cap:           sum_i price_i y_i <= P_max                        [$/h]
          tps_slo:             sum_k TPS_k x_k >= TPS_SLO  (CTCF-corrected)      [tokens/s]
          dtype_supported, tensor_parallel_shards_heads: sum_i ok_i y_i >= 1    [supported]
          ttft_slo, tpot_slo, e2e_slo: sum_k latency_k x_k <= SLO (when asked)  [s]

Every row is linear in ``x`` because exactly one ``x_k`` is 1 (the TPS of each candidate is
precomputed with the CTCF-corrected Eq. 4-7, so no product of variables appears). Coefficients
are guarded (see :mod:`.exact_model`) so the feasible set is exactly ``table.feasible``.

**Ties (lexicographic, two solves).** Stage 1 minimizes the integer nano-dollar cost ``C``, whose
order is exactly the ranker's ``round(cost, 9)`` order. If more than one kept candidate has the
optimal ``C*``, stage 2 solves the same model restricted to those candidates (the others are the
ones with ``C_k > C*``, so dropping them is ``fix cost <= C*`` done exactly, without a tolerance)
and minimizes the tie-break position ``P_k`` (TPS descending, then instance name, batch size,
offload ratio, as :func:`infersave.solver.ranking.rank`). Positions are distinct for distinct
keys, so the answer is the ranker's first candidate whenever both stages are optimal.
Optimality gaps are set to 0 (absolute gap 0.5 < one unit of the integer objective). Stage 2
runs only when two or more feasible candidates share ``C*`` (counted on the table, whose
feasible set the model's is); otherwise stage 1's pick is the ranker's first candidate already.

**Who solves it.** This module is the formulation only: :func:`build` (a PuLP problem with
named variables and rows, for CBC and for ``--write-model``) and :func:`columns` (the same model
as numpy CSC arrays, for HiGHS in one call). The search over it (HiGHS, CBC, the two stages,
time limits, faults) lives in :mod:`infersave.solver.highs_backend` and
:mod:`infersave.solver.cbc_backend`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infersave.formulations import arrays
from infersave.formulations.exact_model import (
    Encoding,
    Row,
    candidate_name,
    float_rows,
    groups,
)


@dataclass
class MilpModel:
    """A built PuLP problem and its candidate variables (``x[j]`` for ``enc.kept[subset[j]]``)."""

    problem: object  # pulp.LpProblem
    x: list
    subset: np.ndarray
    enc: Encoding


def build(enc: Encoding, subset: np.ndarray | None = None, objective: str = "cost") -> MilpModel:
    """Build the PuLP problem over kept candidates ``subset`` (positions in ``enc.kept``;
    default all) minimizing ``"cost"`` (nano-$) or ``"tiebreak"`` (positions ``P_k``).

    Raises:
        ValueError: on an unknown objective.
        ImportError: if PuLP is not installed.
    """
    import pulp

    if objective not in ("cost", "tiebreak"):
        raise ValueError(f"unknown objective {objective!r}")
    t = enc.table
    sub = np.arange(enc.kept.size) if subset is None else np.asarray(subset)
    # the name heads LP/MPS files: it states the objective's unit and offset
    unit = "nano_usd" if enc.cost_unit == "nano-$" else "rank"
    what = f"cost_{unit}_above" if objective == "cost" else "tiebreak_position_at"
    prob = pulp.LpProblem(f"infersave_joint_choice_{what}_{enc.base_nano}", pulp.LpMinimize)
    x = [
        prob.add_variable(candidate_name(t, int(enc.kept[j])), 0, 1, cat=pulp.LpInteger)
        for j in sub
    ]
    rows = float_rows(enc)

    def expr(coefs: np.ndarray, vars_: list) -> pulp.LpAffineExpression:
        return pulp.LpAffineExpression(
            [(v, float(a)) for v, a in zip(vars_, coefs, strict=True) if a != 0]
        )

    obj = enc.cost_nano[sub] if objective == "cost" else enc.position[sub]
    prob += expr(obj.astype(np.float64), x), "billed_cost" if objective == "cost" else "tiebreak"
    prob += pulp.lpSum(x) == 1, "exactly_one_configuration"

    ysel: dict[int, object] = {}
    for grp in groups(enc, sub):
        chosen = []
        for g in arrays.unique(grp.of):
            label = grp.label(t, g)
            v = prob.add_variable(f"{grp.prefix}_{label}", 0, 1, cat=pulp.LpInteger)
            members = [x[j] for j in np.flatnonzero(grp.of == g)]
            prob += pulp.lpSum(members) - v == 0, f"link_{grp.kind}_{label}"
            chosen.append(v)
            if grp.kind == "instance":
                ysel[int(g)] = v
        prob += pulp.lpSum(chosen) == 1, f"exactly_one_{grp.kind}"

    for row in rows:
        if row.over == "instance":
            pos = {int(i): n for n, i in enumerate(enc.instances)}
            terms = [(ysel[i], float(row.coef[pos[i]])) for i in ysel]
            lhs = pulp.LpAffineExpression([(v, a) for v, a in terms if a != 0])
        else:
            lhs = expr(row.coef[sub], x)
        prob += (lhs <= row.rhs if row.sense == "<=" else lhs >= row.rhs), row.name
    return MilpModel(prob, x, sub, enc)


@dataclass(frozen=True)
class ColumnModel:
    """The MILP of :func:`build` as column-wise (CSC) arrays, for passing to HiGHS in one call.

    Columns: ``x_k`` for the kept candidates ``enc.kept[subset]`` (first ``n_x`` columns), then
    ``y_i``, ``z_b``, ``w_c``; all binary. Rows (``row_names``) as in :func:`build`:
    ``exactly_one_configuration``, ``link_instance_*`` ... ``exactly_one_instance``,
    ``link_batch_size_*`` ... ``exactly_one_batch_size``, ``link_offload_level_*`` ...
    ``exactly_one_offload_level``, then the named rows of :func:`.encoding.float_rows`.
    """

    cost: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray
    n_x: int
    row_names: tuple[str, ...]

    @property
    def num_col(self) -> int:
        """Columns: ``x``, then ``y``, ``z``, ``w``."""
        return int(self.cost.size)

    @property
    def num_row(self) -> int:
        """Rows, named in ``row_names``."""
        return int(self.row_lower.size)


def columns(
    enc: Encoding, subset: np.ndarray | None = None, objective: str = "cost"
) -> ColumnModel:
    """The model of :func:`build` (same variables, rows and coefficients) as numpy CSC arrays,
    built without a per-candidate Python loop. ``objective`` is ``"cost"`` (``C_k``, as
    :func:`build`), ``"cost_rank"`` (the dense rank of ``C_k`` among the columns: the same order
    and the same ties, so the same optimal set, with coefficients below the number of
    candidates, far from any solver tolerance) or ``"tiebreak"`` (``P_k``).

    Raises:
        ValueError: on an unknown objective.
    """
    if objective not in ("cost", "cost_rank", "tiebreak"):
        raise ValueError(f"unknown objective {objective!r}")
    t = enc.table
    sub = np.arange(enc.kept.size) if subset is None else np.asarray(subset)
    n = sub.size
    names: list[str] = ["exactly_one_configuration"]
    lower: list[float] = [1.0]
    upper: list[float] = [1.0]
    # per group kind: the group of each x column, the link row of each group, the group ids
    x_rows = [np.zeros(n, dtype=np.int64)]
    x_vals = [np.ones(n)]
    aux_cols: list[tuple[np.ndarray, np.ndarray]] = []  # per aux column: (rows, values)
    inst_ids = np.zeros(0, dtype=np.int64)
    for grp in groups(enc, sub):
        ids, inv = np.unique(grp.of, return_inverse=True)
        first = len(names)
        names.extend(f"link_{grp.kind}_{grp.label(t, g)}" for g in ids)
        one = len(names)
        names.append(f"exactly_one_{grp.kind}")
        lower.extend([0.0] * ids.size + [1.0])
        upper.extend([0.0] * ids.size + [1.0])
        x_rows.append(first + inv.reshape(-1))
        x_vals.append(np.ones(n))
        for r in range(ids.size):
            aux_cols.append((np.array([first + r, one]), np.array([-1.0, 1.0])))
        if grp.kind == "instance":
            inst_ids = ids
    n_inst = inst_ids.size
    for row in float_rows(enc):
        r = len(names)
        names.append(row.name)
        lower.append(row.rhs if row.sense == ">=" else -np.inf)
        upper.append(row.rhs if row.sense == "<=" else np.inf)
        if row.over == "instance":  # coefficients of the y columns (the first aux columns)
            coef = row.coef[np.searchsorted(enc.instances, inst_ids)]
            for c in range(n_inst):
                if coef[c] != 0:
                    rows_c, vals_c = aux_cols[c]
                    aux_cols[c] = (np.append(rows_c, r), np.append(vals_c, float(coef[c])))
        else:
            x_rows.append(np.full(n, r, dtype=np.int64))
            x_vals.append(np.asarray(row.coef[sub], dtype=np.float64))
    rows = np.stack(x_rows, axis=1)  # (n, entries per x column), rows ascending
    vals = np.stack(x_vals, axis=1)
    nz = vals != 0
    counts = np.concatenate([nz.sum(axis=1), [rc.size for rc, _ in aux_cols]])
    start = np.zeros(counts.size + 1, dtype=np.int32)
    np.cumsum(counts, out=start[1:])
    index = np.concatenate([rows[nz], *(rc for rc, _ in aux_cols)]).astype(np.int32)
    value = np.concatenate([vals[nz], *(vc for _, vc in aux_cols)])
    if objective == "cost":
        obj = enc.cost_nano[sub]
    elif objective == "cost_rank":  # dense rank of C: same order, same ties, small numbers
        obj = np.unique(enc.cost_nano[sub], return_inverse=True)[1].reshape(-1)
    else:
        obj = enc.position[sub]
    cost = np.concatenate([obj.astype(np.float64), np.zeros(len(aux_cols))])
    return ColumnModel(
        cost=cost,
        row_lower=np.array(lower),
        row_upper=np.array(upper),
        start=start,
        index=index,
        value=value,
        n_x=n,
        row_names=tuple(names),
    )


def write_model(enc: Encoding, path: str) -> None:
    """Write the stage-1 model of ``enc`` to ``path``: MPS if it ends in ``.mps``, else LP.

    Callers write the model of the ``"structural"`` prefilter (only instances that cannot hold
    the weights leave it), not the ``"feasible"`` one the backends solve: a reader then sees the
    memory, per-layer KV, host memory, price and TPS rows exclude candidates. Both have the
    same optimum (the feasible set is ``table.feasible`` either way).

    Raises:
        OSError: if the file cannot be written.
    """
    m = build(enc)
    if str(path).lower().endswith(".mps"):
        m.problem.writeMPS(str(path))
    else:
        m.problem.writeLP(str(path))


__all__ = ["ColumnModel", "MilpModel", "Row", "build", "columns", "write_model"]
