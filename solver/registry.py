"""The one registry of search backends by name (``--backend``): ``exhaustive`` (the ranker),
``milp`` (HiGHS in-process, or CBC, over :mod:`infersave.formulations.milp`) and ``cp``
(CP-SAT over :mod:`infersave.formulations.cpsat`), with the fault handling that keeps the exact
ones from ever giving a silent wrong answer. Every backend takes the same candidate table and
returns ``(chosen index or None, SolverInfo)``; ``solve``, ``batch`` and ``compare`` all look
backends up here.

The solver libraries are imported inside the functions, so ``infersave --help`` loads none.

The exact models are solved over the candidates the table finds feasible on their own (the
named rows stay in the model); ``--write-model`` writes them with only the structural
prefilter, so the rows visibly exclude candidates.

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

BackendFn = Callable[[CandidateTable, Scenario], tuple[int | None, SolverInfo]]

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
    """Run an exact solve (``run`` returns an
    :class:`~infersave.formulations.exact_model.ExactResult`)
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


def exhaustive_backend(table: CandidateTable, scenario: Scenario) -> tuple[int | None, SolverInfo]:
    """Search ``table`` by brute force (:func:`infersave.solver.ranking.exhaustive`)."""
    t0 = time.perf_counter()
    k = ranking.exhaustive(table)
    return k, SolverInfo(
        backend="exhaustive",
        solver="numpy",
        status="optimal" if k is not None else "infeasible",
        solve_seconds=time.perf_counter() - t0,
        objective=float(table.total_cost_usd[k]) if k is not None else None,
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
        raise InputError(f"solver: unknown {solver!r}; use one of: {', '.join(MILP_SOLVERS)}")

    def run() -> object:
        if solver == "highs":
            from infersave.solver.highs_backend import solve_highs

            return solve_highs(table, time_limit=scenario.time_limit)
        from infersave.solver.cbc_backend import solve_cbc

        return solve_cbc(table, time_limit=scenario.time_limit)

    return _checked(table, "milp", solver, run)


def cp_backend(table: CandidateTable, scenario: Scenario) -> tuple[int | None, SolverInfo]:
    """Search ``table`` with the CP-SAT model of :mod:`infersave.formulations.cpsat` within
    ``scenario.time_limit`` seconds (``scenario.solver`` is ignored).

    Returns the chosen candidate index (None: infeasible) and how it was found.
    """

    def run() -> object:
        from infersave.solver.cpsat_backend import solve_cpsat

        return solve_cpsat(table, time_limit=scenario.time_limit)

    return _checked(table, "cp", CP_SOLVER, run)


BACKENDS: dict[str, BackendFn] = {
    "exhaustive": exhaustive_backend,
    "milp": milp_backend,
    "cp": cp_backend,
}
"""Search backends by name: each takes the candidate table and returns the chosen index."""


def search(table: CandidateTable, scenario: Scenario) -> tuple[int | None, SolverInfo]:
    """Search ``table`` with ``scenario.backend``.

    Raises:
        InputError: unknown backend or solver name.
    """
    fn = BACKENDS.get(scenario.backend)
    if fn is None:
        raise InputError(
            f"backend: unknown {scenario.backend!r}; use one of: {', '.join(BACKENDS)}"
        )
    return fn(table, scenario)


def write_model(table: CandidateTable, backend: str, path: str) -> None:
    """Write the exact model of ``backend`` for ``table`` to ``path``: LP (or MPS when the
    path ends in ``.mps``) for ``milp``, the CP-SAT model proto as text for ``cp``.

    Raises:
        InputError: for the exhaustive backend (it has no model) or an unwritable path.
    """
    from infersave.formulations.exact_model import encode

    if backend not in ("milp", "cp"):
        raise InputError("write_model: needs backend milp or cp (exhaustive has no model)")
    enc = encode(table, ranking.tiebreak_positions(table), "structural")
    try:
        if backend == "milp":
            from infersave.formulations import milp

            milp.write_model(enc, path)
        else:
            from infersave.formulations import cpsat

            cpsat.write_model(enc, path)
    except OSError as exc:
        raise InputError(f"write_model: cannot write {path}: {exc.strerror or exc}") from exc
