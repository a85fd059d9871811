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
Optimality gaps are set to 0 (absolute gap 0.5 < one unit of the integer objective).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from infersave.formulations.candidates import CandidateTable
from infersave.formulations.encoding import Encoding, Prefilter, Row, encode, float_rows

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
    solver: str = "cbc",
    time_limit: float | None = None,
    prefilter: Prefilter = "structural",
) -> ExactResult:
    """The cheapest feasible candidate by MILP, ties broken as the ranker (two stages).

    Args:
        table: the candidate table.
        solver: ``"cbc"`` or ``"highs"``.
        time_limit: wall seconds for all stages; on expiry the best pick so far is returned
            with status ``time_limit`` (or ``no_solution``).
        prefilter: see :func:`.encoding.kept_candidates`.

    Raises:
        ValueError: unknown solver or prefilter.
        SolverUnavailable: the solver cannot run here.
        RuntimeError: the solver failed (crash, unexpected status).
    """
    t0 = time.perf_counter()
    _solver(solver, time_limit)  # fail early if unavailable
    enc = encode(table, prefilter)
    if enc.kept.size == 0:
        return ExactResult(
            None,
            "infeasible",
            None,
            time.perf_counter() - t0,
            note="no instance can hold the model weights (structural prefilter)",
        )
    m1 = build(enc)
    nvar, ncon = m1.problem.numVariables(), m1.problem.numConstraints()
    j, status = _run(m1, solver, time_limit)
    if j is None:
        return ExactResult(None, status, None, time.perf_counter() - t0, "", nvar, ncon)
    best = int(enc.cost_nano[j])
    tied = np.flatnonzero(enc.cost_nano == best)
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

    Raises:
        OSError: if the file cannot be written.
    """
    m = build(encode(table, prefilter))
    if str(path).lower().endswith(".mps"):
        m.problem.writeMPS(str(path))
    else:
        m.problem.writeLP(str(path))


__all__ = ["SOLVERS", "ExactResult", "MilpModel", "Row", "SolverUnavailable", "build", "solve"]
