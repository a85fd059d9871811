"""The MILP searched with HiGHS in-process (highspy): the default exact backend.

The model is :func:`infersave.formulations.milp.columns` (numpy CSC arrays, no PuLP, no
per-candidate Python loop), passed in one call to one ``highspy.Highs`` per process; the
tie-break stage changes that model in place (objective ``P``, upper bound 0 on every ``x_k``
with ``C_k > C*``) instead of rebuilding it. The objective is the dense rank of ``C_k`` (same
order, same ties, coefficients of at most a few thousand), and each stage first solves the LP
relaxation by simplex: an integral LP optimum is the MILP optimum (the relaxation's bound is
attained), an infeasible relaxation proves the MILP infeasible, and anything else (a fractional
vertex, the LP stopped) goes on to HiGHS's branch and bound. Over the prefiltered candidates the
relaxation is always integral: every row holds for every kept candidate, so it holds for every
convex combination of them, and the ``x`` part of the relaxation is the simplex
``sum_k x_k = 1, x >= 0`` whose vertices are the candidates (``y``, ``z``, ``w`` follow from
``x``). HiGHS's presolve and MIP set-up on a few thousand binaries in one set-partitioning row
cost 10-500 ms; the simplex takes 1-3 ms.
"""

from __future__ import annotations

import time

import numpy as np

from infersave.formulations import arrays
from infersave.formulations.candidates import CandidateTable
from infersave.formulations.exact_model import (
    Encoding,
    ExactResult,
    Prefilter,
    SolverUnavailable,
    empty_note,
    encode,
    tied,
)
from infersave.formulations.milp import columns
from infersave.solver.ranking import tiebreak_positions

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
    ties = tied(enc, j)
    note = ""
    if ties.size > 1 and status == "optimal":
        # stage 2: the same model with x_k fixed to 0 where C_k > C* (cost <= C* exactly),
        # minimizing the tie-break position
        n = cm.n_x
        others = arrays.setdiff(np.arange(n), ties).astype(np.int32)
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


def solve_highs(
    table: CandidateTable, time_limit: float | None = None, prefilter: Prefilter = "feasible"
) -> ExactResult:
    """The cheapest feasible candidate by the MILP with HiGHS, ties broken as the ranker (two
    stages; the second only when two or more feasible candidates share the optimal cost).

    Args:
        table: the candidate table.
        time_limit: wall seconds for all stages; on expiry the best pick so far is returned
            with status ``time_limit`` (or ``no_solution``).
        prefilter: see :func:`infersave.formulations.exact_model.kept_candidates`. The default
            ``"feasible"`` solves over the candidates the table finds feasible on their own
            (the named rows stay in the model); when there is none the result is
            ``infeasible`` without calling the solver, and the note says so.

    Raises:
        SolverUnavailable: highspy cannot be imported.
        RuntimeError: HiGHS failed (unexpected status).
    """
    t0 = time.perf_counter()
    _highs()  # fail early if unavailable
    enc = encode(table, tiebreak_positions(table), prefilter)
    if enc.kept.size == 0:
        return ExactResult(
            None, "infeasible", None, time.perf_counter() - t0, empty_note(prefilter)
        )
    j, status, note, nvar, ncon = _solve_highs(enc, time_limit, t0)
    if j is None:
        return ExactResult(None, status, None, time.perf_counter() - t0, "", nvar, ncon)
    return ExactResult(
        int(enc.kept[j]), status, enc.cost_usd(j), time.perf_counter() - t0, note, nvar, ncon
    )
