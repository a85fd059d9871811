"""The CP-SAT model (:mod:`infersave.formulations.cpsat`) searched with OR-Tools: ``--backend cp``.

One stage when the objective ``M x cost + position`` fits in int64, else two (cost, then the
tie-break position at that cost); one worker; SIGINT is left to Python.
"""

from __future__ import annotations

import time

from infersave.formulations.candidates import CandidateTable
from infersave.formulations.cpsat import CpModel
from infersave.formulations.exact_model import ExactResult, Prefilter, empty_note, encode
from infersave.solver.ranking import tiebreak_positions

_STATUS = {"OPTIMAL": "optimal", "FEASIBLE": "time_limit", "INFEASIBLE": "infeasible"}


def _run(cp: CpModel, time_limit: float | None) -> tuple[int | None, str]:
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    # CP-SAT catches SIGINT by default and ends the process on it; let Ctrl-C reach Python so
    # the CLI can clean up (batch output stays whole-or-nothing) and say "interrupted".
    solver.parameters.catch_sigint_signal = False
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    st = solver.solve(cp.model)
    name = solver.status_name(st)
    if name == "INFEASIBLE":
        return None, "infeasible"
    if name == "UNKNOWN":
        if time_limit is not None:
            return None, "no_solution"
        raise RuntimeError("CP-SAT stopped without a solution or a proof of infeasibility")
    if name not in _STATUS:
        raise RuntimeError(f"CP-SAT returned {name}")
    vals = [solver.boolean_value(v) for v in cp.x]
    j = vals.index(True)
    return j, _STATUS[name]


def solve_cpsat(
    table: CandidateTable, time_limit: float | None = None, prefilter: Prefilter = "feasible"
) -> ExactResult:
    """The cheapest feasible candidate by CP-SAT, ties broken as the ranker.

    Like the MILP, it solves over the candidates that satisfy every constraint on their own
    (issue #3: "after removing candidates that are infeasible on their own"); the named
    constraints stay in the model, and :func:`write_model` keeps the structural prefilter.

    Args:
        table: the candidate table.
        time_limit: wall seconds; on expiry the best pick so far is returned with status
            ``time_limit`` (or ``no_solution``).
        prefilter: see :func:`infersave.formulations.exact_model.kept_candidates`.

    Raises:
        ValueError: unknown prefilter, or a cost too large for exact scaling.
        ImportError: OR-Tools is not installed.
        RuntimeError: CP-SAT failed (invalid model, unexpected status).
    """
    t0 = time.perf_counter()
    enc = encode(table, tiebreak_positions(table), prefilter)
    if enc.kept.size == 0:
        return ExactResult(
            None,
            "infeasible",
            None,
            time.perf_counter() - t0,
            note=empty_note(prefilter),
        )
    cp = CpModel(enc)
    proto = cp.model.proto
    nvar, ncon = len(proto.variables), len(proto.constraints)
    j, status = _run(cp, time_limit)
    note = ""
    if j is not None and not cp.single and status == "optimal":
        best = int(enc.cost_nano[j])
        cp.model.add(cp.cost == best)
        cp.model.minimize(cp.pos)
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
        j2, st2 = _run(cp, left)
        if j2 is not None:
            j = j2
            if st2 != "optimal":
                status, note = "time_limit", "tie-break stage stopped at the time limit"
    if status == "time_limit" and not note:
        note = "time limit reached: best configuration found so far, not proven cheapest"
    if j is None:
        return ExactResult(None, status, None, time.perf_counter() - t0, note, nvar, ncon)
    return ExactResult(
        int(enc.kept[j]), status, enc.cost_usd(j), time.perf_counter() - t0, note, nvar, ncon
    )
