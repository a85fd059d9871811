"""The joint choice of instance, batch size and offload level as a MILP (PuLP; CBC or HiGHS).

Model (data from :mod:`.encoding`, which reads the same candidate table as the ranker)::

    x_k in {0,1}  candidate k = (instance i, batch size b, offload level c) is chosen
    y_i, z_b, w_c in {0,1}  instance i / batch size b / offload level c is chosen

    min   sum_k C_k x_k                               billed cost (Eq. 2-3), nano-$ above the
                                                      cheapest kept candidate
    s.t.  exactly_one_configuration:  sum_k x_k = 1
          link_instance_i:  sum_{k in i} x_k = y_i    exactly_one_instance:      sum_i y_i = 1
          link_batch_b:     sum_{k in b} x_k = z_b    exactly_one_batch_size:    sum_b z_b = 1
          link_offload_c:   sum_{k in c} x_k = w_c    exactly_one_offload_level: sum_c w_c = 1
          memory_feasibility:  sum_k (Mem_used_k - GPU_mem_k) x_k <= 0          [GiB]
          per_layer_kv:        sum_k (KV_layer_k - free_k) [C_off,k > 0] x_k <= 0  [GiB]
          host_memory_for_offloaded_kv: sum_k (C_off,k KV_k - Host_k) x_k <= 0     [GiB]
          price_cap:           sum_i price_i y_i <= P_max                        [$/h]
          tps_slo:             sum_k TPS_k x_k >= TPS_SLO  (CTCF-corrected)      [tokens/s]

Every row is linear in ``x`` because exactly one ``x_k`` is 1 (the TPS of each candidate is
precomputed with the CTCF-corrected Eq. 4-7, so no product of variables appears). Coefficients
are guarded (see :mod:`.encoding`) so the feasible set is exactly ``table.feasible``.

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

**What is solved.** :func:`solve` builds the model over the candidates the table finds feasible
on their own (prefilter ``"feasible"``, see :func:`.encoding.kept_candidates`): the named rows
are all there but cut nothing, and the model is about a third of the full one. If no candidate
is feasible the answer is ``infeasible`` and the solver is not called (the note says so).
:func:`write_model` writes the model with the structural prefilter, where the rows bite.

**Two paths.** ``--solver highs`` (default) builds the model as numpy CSC arrays
(:func:`columns`, no PuLP, no per-candidate Python loop) and passes it in one call to one
``highspy.Highs`` per process; stage 2 changes that model in place (objective ``P``, upper
bound 0 on every ``x_k`` with ``C_k > C*``) instead of rebuilding it. The objective there is the
dense rank of ``C_k`` (same order, same ties, coefficients of at most a few thousand), and each
stage first solves the LP relaxation by simplex: an integral LP optimum is the MILP optimum
(the relaxation's bound is attained), an infeasible relaxation proves the MILP infeasible, and
anything else (a fractional vertex, the LP stopped) goes on to HiGHS's branch and bound. Over the
prefiltered candidates the relaxation is always integral: every row holds for every kept
candidate, so it holds for every convex combination of them, and the ``x`` part of the
relaxation is the simplex ``sum_k x_k = 1, x >= 0`` whose vertices are the candidates (``y``,
``z``, ``w`` follow from ``x``). HiGHS's presolve and MIP set-up on a few thousand binaries in one
set-partitioning row cost 10-500 ms; the simplex takes 1-3 ms. ``--solver cbc`` builds
the same model with PuLP (:func:`build`, named variables) and runs the CBC binary PuLP ships.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from infersave.formulations.candidates import CandidateTable
from infersave.formulations.encoding import (
    Encoding,
    Prefilter,
    Row,
    empty_note,
    encode,
    float_rows,
)

MilpSolver = Literal["cbc", "highs"]
SOLVERS: tuple[str, ...] = ("cbc", "highs")


class SolverUnavailable(RuntimeError):
    """The requested solver cannot run here (not installed, or its library fails to load)."""


@dataclass(frozen=True)
class ExactResult:
    """What an exact model returns.

    Attributes:
        index: chosen candidate index into the table, or None.
        status: ``optimal``, ``infeasible``, ``time_limit`` (a feasible pick that is not proven
            optimal), or ``no_solution`` (time limit without any feasible pick).
        objective: billed cost in $ of the pick (stage-1 objective), or None.
        solve_seconds: wall seconds building and solving, all stages.
        note: what else the caller should know (e.g. stage 2 hit the time limit).
        variables / constraints: size of the stage-1 model.
    """

    index: int | None
    status: str
    objective: float | None
    solve_seconds: float
    note: str = ""
    variables: int = 0
    constraints: int = 0


def _label(x: float) -> str:
    return f"{x * 100:g}".replace(".", "p")


def _inst_name(table: CandidateTable, i: int) -> str:
    return table.inst.instances[int(i)].instance_type.replace(".", "_").replace("-", "_")


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
    x = []
    for j in sub:
        k = int(enc.kept[j])
        name = (
            f"x_{_inst_name(t, t.instance_idx[k])}_bs{int(t.batch_size[k])}"
            f"_off{_label(t.offload_ratio[k])}"
        )
        x.append(prob.add_variable(name, 0, 1, cat=pulp.LpInteger))
    rows = float_rows(enc)

    def expr(coefs: np.ndarray, vars_: list) -> pulp.LpAffineExpression:
        return pulp.LpAffineExpression(
            [(v, float(a)) for v, a in zip(vars_, coefs, strict=True) if a != 0]
        )

    obj = enc.cost_nano[sub] if objective == "cost" else enc.position[sub]
    prob += expr(obj.astype(np.float64), x), "billed_cost" if objective == "cost" else "tiebreak"
    prob += pulp.lpSum(x) == 1, "exactly_one_configuration"

    groups = (
        ("instance", enc.instance_of[sub], lambda g: _inst_name(t, g)),
        ("batch_size", enc.batch_of[sub], lambda g: f"bs{int(t.batch_sizes[g])}"),
        ("offload_level", enc.level_of[sub], lambda g: f"off{_label(t.levels[g])}"),
    )
    prefix = {"instance": "y", "batch_size": "z", "offload_level": "w"}
    ysel: dict[int, object] = {}
    for kind, of, label in groups:
        chosen = []
        for g in np.unique(of):
            v = prob.add_variable(f"{prefix[kind]}_{label(g)}", 0, 1, cat=pulp.LpInteger)
            members = [x[j] for j in np.flatnonzero(of == g)]
            prob += pulp.lpSum(members) - v == 0, f"link_{kind}_{label(g)}"
            chosen.append(v)
            if kind == "instance":
                ysel[int(g)] = v
        prob += pulp.lpSum(chosen) == 1, f"exactly_one_{kind}"

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
    for kind, of, label in (
        ("instance", enc.instance_of[sub], lambda g: _inst_name(t, g)),
        ("batch_size", enc.batch_of[sub], lambda g: f"bs{int(t.batch_sizes[g])}"),
        ("offload_level", enc.level_of[sub], lambda g: f"off{_label(t.levels[g])}"),
    ):
        ids, inv = np.unique(of, return_inverse=True)
        first = len(names)
        names.extend(f"link_{kind}_{label(g)}" for g in ids)
        one = len(names)
        names.append(f"exactly_one_{kind}")
        lower.extend([0.0] * ids.size + [1.0])
        upper.extend([0.0] * ids.size + [1.0])
        x_rows.append(first + inv.reshape(-1))
        x_vals.append(np.ones(n))
        for r in range(ids.size):
            aux_cols.append((np.array([first + r, one]), np.array([-1.0, 1.0])))
        if kind == "instance":
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


_HIGHS: list = []
"""The one ``highspy.Highs`` of this process (created on first use, reused by every solve)."""


def _highs():
    """This process's ``highspy.Highs``, with the options every solve uses.

    Raises:
        SolverUnavailable: highspy cannot be imported.
    """
    if not _HIGHS:
        try:
            import highspy
        except ImportError as exc:
            raise SolverUnavailable(f"solver highs is not available: {exc}") from exc
        h = highspy.Highs()
        for key, val in (
            ("output_flag", False),
            ("threads", 1),
            ("mip_rel_gap", 0.0),
            ("mip_abs_gap", 0.5),  # < one unit of the integer objective
        ):
            h.setOptionValue(key, val)
        _HIGHS.append(h)
    return _HIGHS[0]


def _highs_pick(h, n_x: int) -> int | None:
    """The chosen x column if HiGHS's solution is integral (one x at 1, every column at 0 or 1
    within 1e-9), else None."""
    x = np.asarray(h.getSolution().col_value)
    if not ((np.abs(x) <= 1e-9) | (np.abs(x - 1.0) <= 1e-9)).all():
        return None
    j = int(np.argmax(x[:n_x]))
    return j if x[j] >= 0.5 else None


def _highs_run(h, n_col: int, n_x: int, time_limit: float | None) -> tuple[int | None, str]:
    """Solve the MILP loaded in ``h``; return (chosen x column, status).

    First the LP relaxation, by simplex without presolve (HiGHS's presolve and MIP set-up on a
    few thousand binaries cost far more than the problem): if its optimum is integral it is the
    MILP's optimum (the relaxation's bound is attained by an integer point), and if the
    relaxation is infeasible so is the MILP. Otherwise (a fractional vertex, or the LP did not
    finish) the branch-and-bound MIP solve runs on the same model with the remaining time.
    """
    import highspy

    t0 = time.perf_counter()
    cols = np.arange(n_col, dtype=np.int32)
    st = highspy.HighsModelStatus
    h.changeColsIntegrality(n_col, cols, np.zeros(n_col, dtype=np.uint8))
    h.setOptionValue("presolve", "off")
    h.setOptionValue("time_limit", float("inf") if time_limit is None else float(time_limit))
    h.run()
    ms = h.getModelStatus()
    if ms == st.kInfeasible:
        return None, "infeasible"
    if ms == st.kOptimal:
        j = _highs_pick(h, n_x)
        if j is not None:
            return j, "optimal"
    return _highs_mip(h, n_col, n_x, _left(time_limit, t0))


def _highs_mip(h, n_col: int, n_x: int, time_limit: float | None) -> tuple[int | None, str]:
    """Branch and bound on the model loaded in ``h`` (all columns binary)."""
    import highspy

    cols = np.arange(n_col, dtype=np.int32)
    h.changeColsIntegrality(n_col, cols, np.ones(n_col, dtype=np.uint8))
    h.setOptionValue("presolve", "choose")
    h.setOptionValue("time_limit", float("inf") if time_limit is None else float(time_limit))
    h.run()
    ms = h.getModelStatus()
    st = highspy.HighsModelStatus
    if ms == st.kInfeasible:
        return None, "infeasible"
    if ms == st.kOptimal:
        status = "optimal"
    elif ms in (st.kTimeLimit, st.kInterrupt, st.kHighsInterrupt, st.kSolutionLimit):
        if h.getInfo().primal_solution_status != 2:  # 2: a feasible solution is known
            return None, "no_solution"
        status = "time_limit"
    else:
        raise RuntimeError(f"highs returned status {h.modelStatusToString(ms)!r}")
    vals = np.asarray(h.getSolution().col_value[:n_x])
    j = int(np.argmax(vals))
    if vals[j] < 0.5:
        raise RuntimeError("highs returned no chosen configuration")
    return j, status


def _left(time_limit: float | None, t0: float) -> float | None:
    """What is left of ``time_limit`` since ``t0`` (at least 10 ms), or None."""
    return None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)


def _solve_highs(
    enc: Encoding, time_limit: float | None, t0: float
) -> tuple[int | None, str, str, int, int]:
    """Both stages with highspy directly: (position in ``enc.kept`` or None, status, note,
    variables, constraints of stage 1)."""
    h = _highs()
    cm = columns(enc, objective="cost_rank")
    n_col = cm.num_col
    h.clearModel()
    h.passModel(
        n_col,
        cm.num_row,
        int(cm.index.size),
        1,  # MatrixFormat.kColwise
        1,  # ObjSense.kMinimize
        0.0,
        cm.cost,
        np.zeros(n_col),
        np.ones(n_col),
        cm.row_lower,
        cm.row_upper,
        cm.start,
        cm.index,
        cm.value,
        np.ones(n_col, dtype=np.int32),  # all binary
    )
    j, status = _highs_run(h, n_col, cm.n_x, time_limit)
    if j is None:
        return None, status, "", n_col, cm.num_row
    tied = _tied(enc, j)
    note = ""
    if tied.size > 1 and status == "optimal":
        # stage 2: the same model with x_k fixed to 0 where C_k > C* (cost <= C* exactly),
        # minimizing the tie-break position
        n = cm.n_x
        others = np.setdiff1d(np.arange(n), tied).astype(np.int32)
        if others.size:
            h.changeColsBounds(others.size, others, np.zeros(others.size), np.zeros(others.size))
        h.changeColsCost(n, np.arange(n, dtype=np.int32), enc.position.astype(np.float64))
        j2, status2 = _highs_run(h, n_col, n, _left(time_limit, t0))
        if j2 is None:  # cannot happen: stage 1's pick is feasible in stage 2
            note = f"tie-break stage returned {status2}; kept the stage-1 pick"
        else:
            j = j2
            if status2 != "optimal":
                status = "time_limit"
                note = "tie-break stage stopped at the time limit"
    elif status == "time_limit":
        note = "time limit reached: best configuration found so far, not proven cheapest"
    return j, status, note, n_col, cm.num_row


def _tied(enc: Encoding, j: int) -> np.ndarray:
    """Positions in ``enc.kept`` of the feasible candidates whose integer cost equals that of
    ``j``: the tie-break stage is needed only when there are two or more. The table decides
    feasibility here, which is sound because the model's feasible set is ``table.feasible``
    (guarded rows, see :mod:`.encoding`)."""
    same = enc.cost_nano == enc.cost_nano[j]
    return np.flatnonzero(same & enc.table.feasible[enc.kept])


def _bulk_highs_class():
    """PuLP's HiGHS API with the model passed to highspy in bulk (three calls instead of one
    per column and row; PuLP's per-column ``changeColIntegrality`` dominates the solve time
    of a 5,000-candidate model). Solving and reading the solution are PuLP's own."""
    import highspy
    import pulp

    class BulkHiGHS(pulp.HiGHS):
        def buildSolverModel(self, lp):
            h = lp.solverModel
            inf = highspy.kHighsInf
            variables = lp.variables()
            n = len(variables)
            sign = -1.0 if lp.sense == pulp.LpMaximize else 1.0
            cost = np.empty(n)
            lower = np.empty(n)
            upper = np.empty(n)
            integer = []
            for i, var in enumerate(variables):
                var.index = i
                cost[i] = sign * lp.objective.get(var, 0.0)
                lower[i] = -inf if var.lowBound is None else var.lowBound
                upper[i] = inf if var.upBound is None else var.upBound
                if var.cat == pulp.LpInteger and self.mip:
                    integer.append(i)
            h.addCols(
                n, cost, lower, upper, 0, np.zeros(n, np.int32), np.zeros(0, np.int32), np.zeros(0)
            )
            if integer:
                h.changeColsIntegrality(
                    len(integer),
                    np.array(integer, np.int32),
                    np.full(len(integer), highspy.HighsVarType.kInteger),
                )
            starts, index, value, lo, up = [], [], [], [], []
            for i, con in enumerate(lp._constraints.values()):
                con.index = i
                starts.append(len(index))
                for var, a in con.items():
                    if a != 0:
                        index.append(var.index)
                        value.append(a)
                lb, ub = con.getLb(), con.getUb()
                lo.append(-inf if lb is None else lb)
                up.append(inf if ub is None else ub)
            h.addRows(
                len(lo),
                np.array(lo),
                np.array(up),
                len(index),
                np.array(starts, np.int32),
                np.array(index, np.int32),
                np.array(value),
            )

    return BulkHiGHS


def _solver(name: str, time_limit: float | None):
    import pulp

    if name == "cbc":
        with warnings.catch_warnings():  # PuLP 3.3 deprecates the bundled CBC (not removed)
            warnings.simplefilter("ignore", DeprecationWarning)
            s = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0.0, gapAbs=0.5)
    elif name == "highs":
        try:
            cls = _bulk_highs_class()
        except ImportError as exc:
            raise SolverUnavailable(f"solver highs is not available: {exc}") from exc
        s = cls(msg=False, timeLimit=time_limit, gapRel=0.0, gapAbs=0.5, threads=1)
    else:
        raise ValueError(f"unknown MILP solver {name!r}; use one of: {', '.join(SOLVERS)}")
    if not s.available():
        raise SolverUnavailable(f"solver {name} is not available in this environment")
    return s


def _run(model: MilpModel, solver: str, time_limit: float | None) -> tuple[int | None, str]:
    """Solve; return (position in ``model.subset`` of the chosen x, status)."""
    import pulp

    prob = model.problem
    t0 = time.perf_counter()
    prob.solve(_solver(solver, time_limit))
    spent = time.perf_counter() - t0
    sol = prob.sol_status
    if sol == pulp.LpSolutionInfeasible or prob.status == pulp.LpStatusInfeasible:
        # CBC reports "infeasible" when stopped by the time limit before any solution
        if time_limit is not None and spent >= 0.9 * time_limit:
            return None, "no_solution"
        return None, "infeasible"
    if sol not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        if time_limit is not None:
            return None, "no_solution"
        raise RuntimeError(f"{solver} returned status {pulp.LpStatus.get(prob.status)!r}")
    vals = np.array([v.value() or 0.0 for v in model.x])
    j = int(np.argmax(vals))
    if vals[j] < 0.5:
        raise RuntimeError(f"{solver} returned no chosen configuration")
    return j, "optimal" if sol == pulp.LpSolutionOptimal else "time_limit"


def solve(
    table: CandidateTable,
    solver: str = "highs",
    time_limit: float | None = None,
    prefilter: Prefilter = "feasible",
) -> ExactResult:
    """The cheapest feasible candidate by MILP, ties broken as the ranker (two stages).

    ``highs`` builds the model as numpy arrays (:func:`columns`) and passes it to this
    process's ``highspy.Highs`` in one call (no PuLP); ``cbc`` builds it with PuLP
    (:func:`build`) and runs PuLP's bundled CBC as a subprocess. The tie-break stage runs only
    when two or more feasible candidates share the optimal integer cost.

    Args:
        table: the candidate table.
        solver: ``"highs"`` or ``"cbc"``.
        time_limit: wall seconds for all stages; on expiry the best pick so far is returned
            with status ``time_limit`` (or ``no_solution``).
        prefilter: see :func:`.encoding.kept_candidates`. The default ``"feasible"`` solves
            over the candidates the table finds feasible on their own (the named rows stay in
            the model); when there is none the result is ``infeasible`` without calling the
            solver, and the note says so.

    Raises:
        ValueError: unknown solver or prefilter.
        SolverUnavailable: the solver cannot run here.
        RuntimeError: the solver failed (crash, unexpected status).
    """
    t0 = time.perf_counter()
    if solver == "highs":
        _highs()  # fail early if unavailable
    else:
        _solver(solver, time_limit)
    enc = encode(table, prefilter)
    if enc.kept.size == 0:
        note = empty_note(prefilter)
        return ExactResult(None, "infeasible", None, time.perf_counter() - t0, note=note)
    if solver == "highs":
        j, status, note, nvar, ncon = _solve_highs(enc, time_limit, t0)
        if j is None:
            return ExactResult(None, status, None, time.perf_counter() - t0, "", nvar, ncon)
        return ExactResult(
            int(enc.kept[j]), status, enc.cost_usd(j), time.perf_counter() - t0, note, nvar, ncon
        )
    m1 = build(enc)
    nvar, ncon = m1.problem.numVariables(), m1.problem.numConstraints()
    j, status = _run(m1, solver, time_limit)
    if j is None:
        return ExactResult(None, status, None, time.perf_counter() - t0, "", nvar, ncon)
    tied = _tied(enc, j)
    note = ""
    if tied.size > 1 and status == "optimal":
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
        m2 = build(enc, subset=tied, objective="tiebreak")
        j2, status2 = _run(m2, solver, left)
        if j2 is None:  # cannot happen: stage 1's pick is feasible in stage 2
            note = f"tie-break stage returned {status2}; kept the stage-1 pick"
        else:
            j = int(tied[j2])
            if status2 != "optimal":
                status = "time_limit"
                note = "tie-break stage stopped at the time limit"
    elif status == "time_limit":
        note = "time limit reached: best configuration found so far, not proven cheapest"
    return ExactResult(
        int(enc.kept[j]), status, enc.cost_usd(j), time.perf_counter() - t0, note, nvar, ncon
    )


def write_model(table: CandidateTable, path: str, prefilter: Prefilter = "structural") -> None:
    """Write the stage-1 model to ``path``: MPS if it ends in ``.mps``, else LP format.

    The written model uses the ``"structural"`` prefilter by default (only instances that
    cannot hold the weights leave it), not the ``"feasible"`` one :func:`solve` uses: a reader
    then sees the memory, per-layer KV, host memory, price and TPS rows exclude candidates,
    which the solved model has no candidate left for them to exclude. Both have the same
    optimum (the feasible set is ``table.feasible`` either way).

    Raises:
        OSError: if the file cannot be written.
    """
    m = build(encode(table, prefilter))
    if str(path).lower().endswith(".mps"):
        m.problem.writeMPS(str(path))
    else:
        m.problem.writeLP(str(path))


__all__ = [
    "SOLVERS",
    "ColumnModel",
    "ExactResult",
    "MilpModel",
    "Row",
    "SolverUnavailable",
    "build",
    "columns",
    "solve",
]
