"""CP-SAT model: the integer scaling cannot flip a comparison, the two-stage path, the model
proto, and CP-SAT beside HiGHS in one process (issue #3, part 6)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gpu, instance
from hypothesis import given, settings
from hypothesis import strategies as st
from test_milp import table_for

from infersave.formulations import cpsat, exact_model
from infersave.formulations.options import ModelOptions
from infersave.solver import cbc_backend, cpsat_backend, highs_backend, ranking, registry
from infersave.solver.ranking import COST_DECIMALS

costs = st.one_of(
    # hourly billing: whole hours x a $/h with 4 decimals
    st.builds(lambda h, p: h * (p / 1e4), st.integers(1, 500), st.integers(1, 1_000_000)),
    # per-second billing: seconds / 3600 x $/h
    st.builds(lambda s, p: s / 3600.0 * (p / 1e4), st.integers(60, 10**7), st.integers(1, 10**6)),
    st.floats(0, 999_999.0, allow_nan=False),
)


def milp_solve(table, solver: str = "highs", **kw):
    """The MILP searched with ``solver`` (the backend modules of the search layer)."""
    fn = highs_backend.solve_highs if solver == "highs" else cbc_backend.solve_cbc
    return fn(table, **kw)


def encode(table, prefilter: str = "structural"):
    """The exact-model encoding with the ranker's tie-break positions."""
    return exact_model.encode(table, ranking.tiebreak_positions(table), prefilter)


@settings(max_examples=2000, deadline=None)
@given(costs, costs)
def test_nano_dollar_integers_order_costs_exactly_as_the_ranker(a: float, b: float) -> None:
    ca, cb = exact_model.nano_cost(np.array([a, b]))
    ra, rb = np.round(np.array([a, b]), COST_DECIMALS)  # the ranker's rounding (numpy)
    assert (ca < cb) == (ra < rb)
    assert (ca == cb) == (ra == rb)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["<=", ">="]),
)
def test_integer_rows_accept_exactly_what_the_table_accepts(values, limit, sense) -> None:
    """Scaled to milli-units and rounded, values and limit may collapse onto one integer; the
    guard moves such a coefficient by one unit so the integer comparison keeps the table's."""
    v = np.array(values)
    ok = v <= limit if sense == "<=" else v >= limit  # the table's verdict, in floats
    lim = round(limit * 1000)
    coef = exact_model.guard_int(v * 1000, lim, ok, sense)
    assert coef.dtype == np.int64
    accepted = coef <= lim if sense == "<=" else coef >= lim
    assert (accepted == ok).all()
    assert (np.abs(coef - v * 1000) <= 1.5 + 1e-9 * np.abs(v * 1000)).all()


def test_nano_cost_rejects_costs_beyond_exact_scaling() -> None:
    with pytest.raises(ValueError, match="below"):
        exact_model.nano_cost(np.array([2e6]))


def _two_tier(exact_options: ModelOptions):
    gpus = [gpu("S", 2.6e9), gpu("L", 8e9)]
    insts = [instance("cheap", "S", 1.0, 8e9), instance("big", "L", 3.0, 8e9)]
    return table_for(gpus, insts, exact_options, batch_sizes=(1, 8, 100), step=0.25)


def test_cp_matches_ranker_and_model_is_named(exact_options: ModelOptions, tmp_path) -> None:
    t = _two_tier(exact_options)
    r = cpsat_backend.solve_cpsat(t)
    assert r.index == ranking.exhaustive(t) and r.status == "optimal"
    path = tmp_path / "model.pbtxt"
    registry.write_model(t, "cp", str(path))
    text = path.read_text()
    for name in (
        "exactly_one_configuration",
        "memory_feasibility",
        "per_layer_kv",
        "host_memory_for_offloaded_kv",
        "price_cap",
        "tps_slo",
        "x_cheap_bs100_off75",
        "y_big",
    ):
        assert f'"{name}"' in text, name


def test_two_stage_objective_when_the_single_one_would_overflow(
    exact_options: ModelOptions, monkeypatch
) -> None:
    t = _two_tier(exact_options)
    monkeypatch.setattr(cpsat, "INT_LIMIT", 1)  # force cost first, then tie-break position
    cp = cpsat.CpModel(encode(t))
    assert not cp.single
    r = cpsat_backend.solve_cpsat(t)
    assert r.index == ranking.exhaustive(t) and r.status == "optimal"


def test_cp_sat_and_highs_solve_in_one_process(exact_options: ModelOptions) -> None:
    """OR-Tools 9.15 bundles its own HiGHS; highspy 1.15 then fails to import beside it.
    The pins (ortools<9.16, highspy<1.15) must keep both working in one process."""
    import highspy  # noqa: F401
    import ortools.sat.python.cp_model  # noqa: F401

    t = _two_tier(exact_options)
    k = ranking.exhaustive(t)
    assert cpsat_backend.solve_cpsat(t).index == k
    assert milp_solve(t, solver="highs").index == k
    assert cpsat_backend.solve_cpsat(t).index == k
