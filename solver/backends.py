"""The exact search backends (MILP via PuLP, CP-SAT via OR-Tools) behind ``--backend``, with
the fault handling that keeps them from ever giving a silent wrong answer.

PuLP and OR-Tools are imported inside the functions, so ``infersave --help`` loads neither.

The MILP is solved over the candidates the table finds feasible on their own (the named rows
stay in the model; see :func:`infersave.formulations.milp.solve`), with HiGHS in-process by
default; ``--write-model`` writes it with only the structural prefilter, so the rows visibly
exclude candidates.

Faults and what the user gets (``SolverInfo.status`` / ``note``):

- nothing is feasible in the table: the MILP solver is not called; status ``infeasible``, the
  note says so.
- solver proves the model infeasible: no recommendation (the closest miss is explained), status
  ``infeasible``; if the table nevertheless has a feasible candidate, that contradiction is a bug,
  so the exhaustive ranker answers and the note says so (status ``fallback``).
- time limit reached with a feasible pick: that pick, status ``time_limit``, note "not proven
  cheapest"; with no feasible pick yet: the exhaustive ranker answers (status ``fallback``).
- solver missing, failing to load or crashing: the exhaustive ranker answers (``fallback``), the
  note names the error.
- any pick is checked against ``table.feasible`` (cheap, not a re-solve); an infeasible pick is
  discarded and the exhaustive ranker answers (``fallback``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infersave.formulations.candidates import CandidateTable
from infersave.solver import ranking
from infersave.solver.records import SolverInfo
from infersave.solver.scenario import InputError, Scenario

MILP_SOLVERS: tuple[str, ...] = ("cbc", "highs")
CP_SOLVER = "cp-sat"


def _fallback(
    table: CandidateTable, backend: str, solver: str, why: str, t0: float
) -> tuple[int | None, SolverInfo]:
    k = ranking.exhaustive(table)
    return k, SolverInfo(
        backend=backend,
        solver=solver,
        status="fallback",
        solve_seconds=time.perf_counter() - t0,
        objective=float(table.total_cost_usd[k]) if k is not None else None,
        note=f"{why}; answered by the exhaustive ranker instead",
    )


def _checked(
    table: CandidateTable, backend: str, solver: str, run: Callable[[], object]
) -> tuple[int | None, SolverInfo]:
    """Run an exact solve (``run`` returns a :class:`~infersave.formulations.milp.ExactResult`)
    and turn its outcome or failure into ``(index, SolverInfo)``."""
    t0 = time.perf_counter()
    try:
        res = run()
    except InputError:
        raise
    except ImportError as exc:
        return _fallback(table, backend, solver, f"{solver} cannot be loaded ({exc})", t0)
    except Exception as exc:  # solver crash or unexpected status: never a silent wrong answer
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fallback(table, backend, solver, f"{solver} failed: {msg}", t0)
    k, status, note = res.index, res.status, res.note  # type: ignore[attr-defined]
    if status == "no_solution":
        return _fallback(
            table, backend, solver, "time limit reached before any feasible configuration", t0
        )
    if k is None:
        if table.feasible.any():
            return _fallback(
                table, backend, solver, f"{solver} reported {status} but a feasible one exists", t0
            )
        return None, SolverInfo(
            backend=backend,
            solver=solver,
            status=status,
            solve_seconds=res.solve_seconds,  # type: ignore[attr-defined]
            objective=None,
            note=note,
        )
    if not table.feasible[k]:
        return _fallback(
            table, backend, solver, f"{solver} returned a configuration the table rejects", t0
        )
    return k, SolverInfo(
        backend=backend,
        solver=solver,
        status=status,
        solve_seconds=res.solve_seconds,  # type: ignore[attr-defined]
        objective=float(table.total_cost_usd[k]),
        note=note,
    )


def milp_backend(table: CandidateTable, scenario: Scenario) -> tuple[int | None, SolverInfo]:
    """Search ``table`` with the MILP of :mod:`infersave.formulations.milp` and
    ``scenario.solver`` (highs, the default, or cbc) within ``scenario.time_limit`` seconds.

    Returns the chosen candidate index (None: infeasible) and how it was found.

    Raises:
        InputError: unknown solver name.
    """
    solver = scenario.solver
    if solver not in MILP_SOLVERS:
        raise InputError(f"unknown --solver {solver!r}; use one of: {', '.join(MILP_SOLVERS)}")

    def run() -> object:
        from infersave.formulations import milp

        return milp.solve(table, solver=solver, time_limit=scenario.time_limit)

    return _checked(table, "milp", solver, run)


def cp_backend(table: CandidateTable, scenario: Scenario) -> tuple[int | None, SolverInfo]:
    """Search ``table`` with the CP-SAT model of :mod:`infersave.formulations.cpsat` within
    ``scenario.time_limit`` seconds (``scenario.solver`` is ignored).

    Returns the chosen candidate index (None: infeasible) and how it was found.
    """

    def run() -> object:
        from infersave.formulations import cpsat

        return cpsat.solve(table, time_limit=scenario.time_limit)

    return _checked(table, "cp", CP_SOLVER, run)


def write_model(table: CandidateTable, backend: str, path: str) -> None:
    """Write the exact model of ``backend`` for ``table`` to ``path``: LP (or MPS when the
    path ends in ``.mps``) for ``milp``, the CP-SAT model proto as text for ``cp``.

    Raises:
        InputError: for the exhaustive backend (it has no model) or an unwritable path.
    """
    try:
        if backend == "milp":
            from infersave.formulations import milp

            milp.write_model(table, path)
        elif backend == "cp":
            from infersave.formulations import cpsat

            cpsat.write_model(table, path)
        else:
            raise InputError("--write-model needs --backend milp or cp (exhaustive has no model)")
    except OSError as exc:
        raise InputError(f"cannot write the model to {path}: {exc.strerror or exc}") from exc
