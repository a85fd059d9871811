"""The MILP searched with CBC, the solver PuLP ships (a subprocess): ``--solver cbc``.

The model is :func:`infersave.formulations.milp.build` (PuLP, named variables and rows); the
tie-break stage builds it again over the tied candidates with the tie-break objective.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from infersave.formulations.candidates import CandidateTable
from infersave.formulations.exact_model import (
    ExactResult,
    Prefilter,
    SolverUnavailable,
    empty_note,
    encode,
    tied,
)
from infersave.formulations.milp import MilpModel, build
from infersave.solver.ranking import tiebreak_positions


def _solver(time_limit: float | None):
    """PuLP's CBC command with gaps 0 (absolute 0.5 < one unit of the integer objective).

    Raises:
        SolverUnavailable: PuLP's CBC binary cannot run here.
    """
    import pulp

    with warnings.catch_warnings():  # PuLP 3.3 deprecates the bundled CBC (not removed)
        warnings.simplefilter("ignore", DeprecationWarning)
        s = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0.0, gapAbs=0.5)
    if not s.available():
        raise SolverUnavailable("solver cbc is not available in this environment")
    return s


def _run(model: MilpModel, time_limit: float | None) -> tuple[int | None, str]:
    """Solve; return (position in ``model.subset`` of the chosen x, status)."""
    import pulp

    prob = model.problem
    t0 = time.perf_counter()
    prob.solve(_solver(time_limit))
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
        raise RuntimeError(f"cbc returned status {pulp.LpStatus.get(prob.status)!r}")
    vals = np.array([v.value() or 0.0 for v in model.x])
    j = int(np.argmax(vals))
    if vals[j] < 0.5:
        raise RuntimeError("cbc returned no chosen configuration")
    return j, "optimal" if sol == pulp.LpSolutionOptimal else "time_limit"


def solve_cbc(
    table: CandidateTable, time_limit: float | None = None, prefilter: Prefilter = "feasible"
) -> ExactResult:
    """The cheapest feasible candidate by the MILP with CBC, ties broken as the ranker (two
    stages; the second only when two or more feasible candidates share the optimal cost).

    Args: as :func:`infersave.solver.highs_backend.solve_highs`.

    Raises:
        SolverUnavailable: CBC cannot run here.
        RuntimeError: CBC failed (crash, unexpected status).
    """
    t0 = time.perf_counter()
    _solver(time_limit)  # fail early if unavailable
    enc = encode(table, tiebreak_positions(table), prefilter)
    if enc.kept.size == 0:
        return ExactResult(
            None, "infeasible", None, time.perf_counter() - t0, empty_note(prefilter)
        )
    m1 = build(enc)
    nvar, ncon = m1.problem.numVariables(), m1.problem.numConstraints()
    j, status = _run(m1, time_limit)
    if j is None:
        return ExactResult(None, status, None, time.perf_counter() - t0, "", nvar, ncon)
    ties = tied(enc, j)
    note = ""
    if ties.size > 1 and status == "optimal":
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
        j2, status2 = _run(build(enc, subset=ties, objective="tiebreak"), left)
        if j2 is None:  # cannot happen: stage 1's pick is feasible in stage 2
            note = f"tie-break stage returned {status2}; kept the stage-1 pick"
        else:
            j = int(ties[j2])
            if status2 != "optimal":
                status = "time_limit"
                note = "tie-break stage stopped at the time limit"
    elif status == "time_limit":
        note = "time limit reached: best configuration found so far, not proven cheapest"
    return ExactResult(
        int(enc.kept[j]), status, enc.cost_usd(j), time.perf_counter() - t0, note, nvar, ncon
    )
