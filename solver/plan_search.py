"""The searches over a fleet plan's model (:mod:`infersave.formulations.fleet`): the MILP with
HiGHS (in process) or CBC (through PuLP), CP-SAT, a brute-force enumerator for small problems,
and the greedy baseline (each class alone on its cheapest single type, rounded up).

Every exact backend returns integer counts; the shares are then recomputed exactly
(:func:`~infersave.formulations.fleet.allocate`: the cheapest integer shares for those counts)
and the plan is checked row by row in integers (:func:`~infersave.formulations.fleet.violations`).
A MILP answer that fails that check (a solver tolerance let a row slip) is discarded and CP-SAT,
an integer solver, answers instead; the note says so. The MILP is solved with gaps 0 (absolute
0.5 < one unit of the integer objective) and feasibility tolerances of 1e-9, far below the one
unit by which any row of the integer data can be violated.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from infersave.formulations import arrays, fleet
from infersave.formulations.fleet import FleetData

EXACT_BACKENDS: tuple[str, ...] = ("highs", "cbc", "cp")
BACKENDS: tuple[str, ...] = (*EXACT_BACKENDS, "brute")
BRUTE_LIMIT = 2_000_000
"""Most count vectors (per class, and partial plans across classes) the brute force holds."""


class TooLarge(ValueError):
    """The problem is too large for the brute-force enumerator."""


@dataclass(frozen=True)
class FleetSolution:
    """What a search returns.

    Attributes:
        status: ``optimal``, ``infeasible``, ``time_limit`` (a plan, not proven cheapest),
            ``no_solution`` (time limit without a plan) or, for the greedy baseline,
            ``heuristic``.
        counts / shares: int64 per line (None without a plan).
        objective: the plan's cost in ``data.cost_unit`` (exact int), or None.
    """

    backend: str
    status: str
    counts: np.ndarray | None
    shares: np.ndarray | None
    objective: int | None
    solve_seconds: float
    note: str = ""
    variables: int = 0
    constraints: int = 0


def _finish(
    data: FleetData,
    backend: str,
    counts: np.ndarray,
    status: str,
    t0: float,
    size: tuple[int, int],
    note: str = "",
) -> FleetSolution:
    """Exact shares and cost for integer ``counts``; a check failure raises ValueError."""
    counts = np.rint(np.asarray(counts, dtype=np.float64)).astype(np.int64)
    alloc = fleet.allocate(data, counts)
    if alloc is None:
        raise ValueError(f"{backend} returned counts that do not serve every class")
    shares, _ = alloc
    bad = fleet.violations(data, counts, shares)
    if bad:
        raise ValueError(f"{backend} returned a plan violating {', '.join(bad[:3])}")
    return FleetSolution(
        backend,
        status,
        counts,
        shares,
        fleet.cost_of(data, counts, shares),
        time.perf_counter() - t0,
        note,
        *size,
    )


def _none(backend: str, status: str, t0: float, size: tuple[int, int], note="") -> FleetSolution:
    return FleetSolution(backend, status, None, None, None, time.perf_counter() - t0, note, *size)


def solve_highs(data: FleetData, time_limit: float | None = None) -> FleetSolution:
    """The MILP with HiGHS (highspy), from :func:`~infersave.formulations.fleet.columns`.

    Raises:
        ImportError: highspy is not installed.
        RuntimeError: unexpected solver status.
        ValueError: the returned plan fails the exact check.
    """
    import highspy

    t0 = time.perf_counter()
    cm = fleet.columns(data)
    n_col, n_row = cm.cost.size, cm.row_lower.size
    size = (n_col, n_row)
    if data.num_lines == 0:
        return _none("highs", "infeasible", t0, size)
    h = highspy.Highs()
    for key, val in (
        ("output_flag", False),
        ("threads", 1),
        ("mip_rel_gap", 0.0),
        ("mip_abs_gap", 0.5),
        ("mip_feasibility_tolerance", 1e-9),
        ("primal_feasibility_tolerance", 1e-9),
        ("random_seed", 0),
    ):
        h.setOptionValue(key, val)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    h.passModel(
        n_col,
        n_row,
        int(cm.index.size),
        1,  # column-wise
        1,  # minimize
        0.0,
        cm.cost,
        cm.col_lower,
        cm.col_upper,
        cm.row_lower,
        cm.row_upper,
        cm.start,
        cm.index,
        cm.value,
        cm.integrality.astype(np.int32),
    )
    h.run()
    st = highspy.HighsModelStatus
    ms = h.getModelStatus()
    if ms == st.kInfeasible:
        return _none("highs", "infeasible", t0, size)
    if ms == st.kOptimal:
        status = "optimal"
    elif ms in (st.kTimeLimit, st.kInterrupt, st.kSolutionLimit):
        if h.getInfo().primal_solution_status != 2:
            return _none("highs", "no_solution", t0, size)
        status = "time_limit"
    else:
        raise RuntimeError(f"highs returned status {h.modelStatusToString(ms)!r}")
    x = np.asarray(h.getSolution().col_value)[: data.num_lines]
    return _finish(data, "highs", x, status, t0, size)


def solve_cbc(data: FleetData, time_limit: float | None = None) -> FleetSolution:
    """The MILP with CBC through PuLP (:func:`~infersave.formulations.fleet.build_pulp`).

    Raises:
        ImportError: PuLP is not installed; RuntimeError: CBC cannot run or fails.
        ValueError: the returned plan fails the exact check.
    """
    import pulp

    t0 = time.perf_counter()
    prob, xs = fleet.build_pulp(data)
    size = (prob.numVariables(), prob.numConstraints())
    if data.num_lines == 0:
        return _none("cbc", "infeasible", t0, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0.0, gapAbs=0.5)
    if not solver.available():
        raise RuntimeError("solver cbc is not available in this environment")
    prob.solve(solver)
    spent = time.perf_counter() - t0
    if prob.sol_status == pulp.LpSolutionInfeasible or prob.status == pulp.LpStatusInfeasible:
        if time_limit is not None and spent >= 0.9 * time_limit:
            return _none("cbc", "no_solution", t0, size)
        return _none("cbc", "infeasible", t0, size)
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        if time_limit is not None:
            return _none("cbc", "no_solution", t0, size)
        raise RuntimeError(f"cbc returned status {pulp.LpStatus.get(prob.status)!r}")
    status = "optimal" if prob.sol_status == pulp.LpSolutionOptimal else "time_limit"
    x = np.array([v.value() or 0.0 for v in xs[: data.num_lines]])
    return _finish(data, "cbc", x, status, t0, size)


def solve_cp(data: FleetData, time_limit: float | None = None, workers: int = 1) -> FleetSolution:
    """The model with CP-SAT (:class:`~infersave.formulations.fleet.CpFleet`), integer shares.

    Raises:
        ImportError: OR-Tools is not installed; RuntimeError: unexpected status.
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    cp = fleet.CpFleet(data)
    proto = cp.model.proto
    size = (len(proto.variables), len(proto.constraints))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    solver.parameters.catch_sigint_signal = False
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    st = solver.status_name(solver.solve(cp.model))
    if st == "INFEASIBLE":
        return _none("cp", "infeasible", t0, size)
    if st == "UNKNOWN":
        if time_limit is not None:
            return _none("cp", "no_solution", t0, size)
        raise RuntimeError("CP-SAT stopped without a solution or a proof of infeasibility")
    if st not in ("OPTIMAL", "FEASIBLE"):
        raise RuntimeError(f"CP-SAT returned {st}")
    x = np.array([solver.value(v) for v in cp.vars[: data.num_lines]], dtype=np.int64)
    return _finish(data, "cp", x, "optimal" if st == "OPTIMAL" else "time_limit", t0, size)


# -- brute force ----------------------------------------------------------------------------


def _class_vectors(data: FleetData, c: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Every count vector of class ``c``'s lines within the bounds that serves the class and
    keeps its spot-share rows: (counts (V, lines of c), exact cost incl. the cheapest work)."""
    sel = np.flatnonzero(data.line_class == c)
    if sel.size == 0:  # no configuration serves the class
        return np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
    ub = data.upper[sel]
    total = math.prod(int(u) + 1 for u in ub)
    if total > limit:
        raise TooLarge(
            f"brute force: class {data.class_names[c]!r} has {total:,} count vectors"
            f" (limit {limit:,}); use fewer types (instances column) or --max-count"
        )
    grid = np.indices(tuple(int(u) + 1 for u in ub)).reshape(sel.size, -1).T.astype(np.int64)
    cap = grid * data.line_cap[sel]
    d = int(data.demand[c])
    groups = data.line_group[sel]
    ok = np.ones(grid.shape[0], dtype=bool)
    if data.spot_share_pm and data.spot_share_pm < fleet.PER_MILLE:
        s = data.spot_share_pm
        coef = np.where(data.line_spot[sel], fleet.PER_MILLE - s, -s)
        for g in arrays.unique(groups):
            m = groups == g
            ok &= (grid[:, m] * coef[m]).sum(axis=1) <= 0

    def work_of(cols: np.ndarray) -> np.ndarray:
        """Cheapest work cost filling demand from ``cols`` (positions in sel), inf if short."""
        order = cols[np.lexsort((cols, data.line_work[sel][cols]))]
        cp = cap[:, order]
        before = np.cumsum(cp, axis=1) - cp
        fill = np.minimum(cp, np.maximum(d - before, 0))
        w = (fill * data.line_work[sel][order]).sum(axis=1).astype(np.float64)
        return np.where(cp.sum(axis=1) >= d, w, np.inf)

    if data.split:
        work = work_of(np.arange(sel.size))
    else:
        work = np.full(grid.shape[0], np.inf)
        for g in arrays.unique(groups):
            work = np.minimum(work, work_of(np.flatnonzero(groups == g)))
    ok &= np.isfinite(work)
    cost = grid[ok] @ data.line_cost[sel] + work[ok].astype(np.int64)
    return grid[ok], cost


def solve_brute(data: FleetData, limit: int = BRUTE_LIMIT) -> FleetSolution:
    """Enumerate every plan of a small problem: per class every count vector of its lines
    (within the bounds of the model) that serves it, then the classes together, dropping
    partial plans that already break the budget, a quota or a max count (all ``<=`` rows with
    nonnegative coefficients, so a partial plan that breaks one cannot be completed) and
    keeping the cheapest partial plan per resource use. Exact; ties go to the first found.

    Raises:
        TooLarge: more than ``limit`` count vectors for a class or partial plans.
    """
    t0 = time.perf_counter()
    n_l = data.num_lines
    # coupling resources: one column per limited type, quota family, and the budget
    res_cols: list[np.ndarray] = []
    res_lim: list[int] = []
    for t in np.flatnonzero(data.type_max >= 0):
        res_cols.append((data.line_type == t).astype(np.int64))
        res_lim.append(int(data.type_max[t]))
    fam = np.array(data.line_family, dtype=object)
    for f, q in sorted(data.quotas.items()):
        res_cols.append(np.where(fam == f, data.type_vcpus[data.line_type], 0).astype(np.int64))
        res_lim.append(int(q))
    if data.budget is not None:
        res_cols.append(data.line_price.astype(np.int64))
        res_lim.append(int(data.budget))
    res = np.stack(res_cols, axis=1) if res_cols else np.zeros((n_l, 0), dtype=np.int64)
    lim = np.array(res_lim, dtype=np.int64)
    # partial plans: resource use (S, R), cost (S,), chosen vector per class (S, classes so far)
    use = np.zeros((1, res.shape[1]), dtype=np.int64)
    cost = np.zeros(1, dtype=np.int64)
    picks = np.zeros((1, 0), dtype=np.int64)
    vectors: list[np.ndarray] = []
    for c in range(data.num_classes):
        sel = np.flatnonzero(data.line_class == c)
        vec, vcost = _class_vectors(data, c, limit)
        vectors.append(vec)
        if vec.shape[0] == 0:
            return _none("brute", "infeasible", t0, (n_l, 0))
        vuse = vec @ res[sel]
        if use.shape[0] * vec.shape[0] > limit:
            raise TooLarge(
                f"brute force: {use.shape[0] * vec.shape[0]:,} partial plans (limit {limit:,})"
            )
        u = (use[:, None, :] + vuse[None, :, :]).reshape(use.shape[0] * vec.shape[0], res.shape[1])
        k = (cost[:, None] + vcost[None, :]).reshape(-1)
        p = np.concatenate(
            [
                np.repeat(picks, vec.shape[0], axis=0),
                np.tile(np.arange(vec.shape[0]), use.shape[0])[:, None],
            ],
            axis=1,
        )
        ok = (u <= lim).all(axis=1)
        u, k, p = u[ok], k[ok], p[ok]
        if k.size == 0:
            return _none("brute", "infeasible", t0, (n_l, 0))
        # the cheapest partial plan per resource use (stable: first of equal cost)
        order = np.lexsort((np.arange(k.size), k))
        u, k, p = u[order], k[order], p[order]
        if u.shape[1]:
            _, first = np.unique(u, axis=0, return_index=True)
            first = np.sort(first)
        else:  # no coupling row: the cheapest plan so far is all that matters
            first = np.zeros(1, dtype=np.int64)
        use, cost, picks = u[first], k[first], p[first]
    best = int(np.argmin(cost))
    counts = np.zeros(n_l, dtype=np.int64)
    for c in range(data.num_classes):
        sel = np.flatnonzero(data.line_class == c)
        counts[sel] = vectors[c][picks[best, c]]
    sol = _finish(data, "brute", counts, "optimal", t0, (n_l, 0))
    if sol.objective != int(cost[best]):  # pragma: no cover - a bug in one of the two
        raise RuntimeError("brute force: enumerated cost differs from the plan's cost")
    return sol


# -- greedy baseline ------------------------------------------------------------------------


def solve_greedy(data: FleetData) -> FleetSolution:
    """The baseline: each class alone on its cheapest single type, on-demand, the count rounded
    up (offline hourly: all instances billed the same hours), ignoring the budget, quotas and
    max counts (``note`` names the rows it breaks)."""
    t0 = time.perf_counter()
    counts = np.zeros(data.num_lines, dtype=np.int64)
    shares = np.zeros(data.num_lines, dtype=np.int64)
    for c in range(data.num_classes):
        d = int(data.demand[c])
        sel = np.flatnonzero((data.line_class == c) & ~data.line_spot)
        if sel.size == 0:
            return _none("greedy", "infeasible", t0, (0, 0))
        n = -(-d // data.line_cap[sel])
        total = n * data.line_cost[sel] + d * data.line_work[sel]
        labels = np.array([data.type_labels[t] for t in data.line_type[sel]], dtype=object)
        j = sel[np.lexsort((data.line_hours[sel], labels, total))[0]]
        counts[j] = -(-d // data.line_cap[j])
        shares[j] = d
    bad = [
        r
        for r in fleet.violations(data, counts, shares)
        if r != "bounds" and not r.startswith("pin")
    ]
    note = f"the greedy plan breaks {', '.join(bad)}" if bad else ""
    return FleetSolution(
        "greedy",
        "heuristic",
        counts,
        shares,
        fleet.cost_of(data, counts, shares),
        time.perf_counter() - t0,
        note,
    )


_SOLVERS = {"highs": solve_highs, "cbc": solve_cbc, "cp": solve_cp}


def solve_reduced(data: FleetData, backend: str, time_limit: float | None = None) -> FleetSolution:
    """Solve with an exact backend after two exact reductions: dominated lines are dropped
    (:func:`~infersave.formulations.fleet.dominated`) and classes that share no row are solved
    as separate models (:func:`~infersave.formulations.fleet.components`; a budget joins them
    all). Branch and bound over independent classes multiplies their search trees; solved apart
    each is small. The counts are mapped back and checked against the full model.

    Raises:
        as the backend's solve function.
    """
    t0 = time.perf_counter()
    fn = _SOLVERS[backend]
    keep = np.flatnonzero(~fleet.dominated(data))
    counts = np.zeros(data.num_lines, dtype=np.int64)
    statuses: list[str] = []
    n_var = n_con = 0
    for classes in fleet.components(data, keep):
        sub_lines = keep[np.isin(data.line_class[keep], classes)]
        sub = fleet.restrict(data, classes, sub_lines)
        sub = fleet.projected(sub) or sub
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
        sol = fn(sub, left)
        n_var += sol.variables
        n_con += sol.constraints
        statuses.append(sol.status)
        if sol.counts is None:
            return _none(backend, sol.status, t0, (n_var, n_con))
        counts[sub_lines] = sol.counts
    status = "time_limit" if "time_limit" in statuses else "optimal"
    return _finish(data, backend, counts, status, t0, (n_var, n_con))


def search(
    data: FleetData, backend: str, time_limit: float | None = None, reduce: bool = True
) -> FleetSolution:
    """Solve with ``backend`` (``highs``, ``cbc``, ``cp``, ``brute``); the exact backends use
    :func:`solve_reduced` unless ``reduce`` is False, brute force always reads the full model.
    A MILP solver that fails (missing, crashing, or a plan failing the exact check) is replaced
    by CP-SAT and the note says why.

    Raises:
        ValueError: unknown backend; TooLarge: brute force on a large problem.
    """
    if backend == "brute":
        return solve_brute(data)
    if backend not in _SOLVERS:
        raise ValueError(f"backend: unknown {backend!r}; use one of: {', '.join(BACKENDS)}")

    def run(be: str) -> FleetSolution:
        return solve_reduced(data, be, time_limit) if reduce else _SOLVERS[be](data, time_limit)

    if backend == "cp":
        return run("cp")
    try:
        return run(backend)
    except Exception as exc:  # never a silent wrong answer: CP-SAT is exact in integers
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sol = run("cp")
        return FleetSolution(
            backend,
            sol.status,
            sol.counts,
            sol.shares,
            sol.objective,
            sol.solve_seconds,
            f"{backend} failed ({why}); answered by CP-SAT instead",
            sol.variables,
            sol.constraints,
        )
