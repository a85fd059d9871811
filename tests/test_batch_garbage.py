"""A batch's outcomes are freed when the last reference goes: no exception kept as an error
row holds its traceback (whose frames held a whole task's results in a reference cycle, freed
only by the garbage collector's full passes)."""

from __future__ import annotations

import gc
import types

import pytest

from infersave.solver import batch_io
from infersave.solver.batch import _solve_task, solve_many

ROWS = [
    {"model": "llama-3.1-8b", "input_len": "512", "output_len": "128", "slo_tps": "800"},
    # beyond opt-1.3b's context window of 2,048 tokens: fails when solved
    {"model": "opt-1.3b", "input_len": "2000", "output_len": "100", "slo_tps": "10"},
    {"model": "nope", "input_len": "10", "output_len": "10", "slo_tps": "1"},  # unknown model
    {"model": "opt-1.3b", "input_len": "-3", "output_len": "10", "slo_tps": "1"},  # invalid
    {"model": "opt-1.3b", "input_len": "100", "output_len": "10", "slo_tps": "1e9"},  # infeasible
    {
        "model": "opt-1.3b",
        "input_len": "100",
        "output_len": "10",
        "slo_tps": "50",
        "backend": "milp",
    },
]


def _ours(o: object) -> bool:
    """An object of this tool in a cycle: of one of its types, a frame of its code, or an
    exception (other libraries' threads, such as a dask cluster's left by another test, may
    make garbage of their own meanwhile)."""
    if isinstance(o, BaseException):
        return True
    if isinstance(o, types.FrameType):
        return "infersave" in o.f_code.co_filename or "solver" in o.f_code.co_filename
    return type(o).__module__.startswith("infersave")


def _raw() -> list[batch_io.RawRow]:
    rows = [{**r, "backend": r.get("backend", "exhaustive")} for r in ROWS]
    return [batch_io.RawRow(n, f) for n, f in enumerate(rows, 1)]


@pytest.mark.parametrize("lean", ["csv", True, False])
def test_a_task_with_error_rows_leaves_no_cyclic_garbage(lean: object) -> None:
    _solve_task(_raw(), lean)  # type: ignore[arg-type]  (warm: caches built outside the count)
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    start = len(gc.garbage)
    try:
        out = _solve_task(_raw(), lean)  # type: ignore[arg-type]
        errors = [o for o in out if isinstance(o, Exception)]
        if lean == "csv":  # rendered where solved: only the invalid row stays an exception
            assert [type(e).__name__ for e in errors] == ["InputError"]
        else:
            assert len(errors) == 3
        assert all(e.__traceback__ is None for e in errors)
        del out, errors
        gc.collect()
        garbage = [o for o in gc.garbage[start:] if _ours(o)]
        assert not garbage, f"{len(garbage)} objects in cycles: {type(garbage[0]).__name__}"
    finally:
        del gc.garbage[start:]
        gc.set_debug(flags)


def test_loaded_and_solved_errors_carry_no_traceback() -> None:
    scenarios = [batch_io.parse_row(r) for r in _raw()]
    assert isinstance(scenarios[3], Exception) and scenarios[3].__traceback__ is None
    out = solve_many(scenarios)
    assert [type(o).__name__ for o in out].count("InputError") == 3
    assert all(o.__traceback__ is None for o in out if isinstance(o, Exception))
