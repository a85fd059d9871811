"""The batch's compact evaluation (:func:`~infersave.formulations.candidates.lean_chunk`)
carries the very values of the dominant tables (``build_tables(keep="fitting")``) wherever it
can pick, and the column-wise records equal :func:`~infersave.solver.records.record_fields`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from test_batch_speed_equivalence import (
    SETTINGS,
    _context,
    batch_sizes,
    instances,
    models,
    steps,
    workloads,
)

from infersave.formulations.candidates import Workload, build_tables, lean_chunk
from infersave.formulations.options import ModelOptions
from infersave.solver import batch as batch_mod
from infersave.solver.records import (
    BAND_COLUMNS,
    MEMORY_COLUMNS,
    TABLE_COLUMNS,
    RecordRow,
    record_fields,
    record_rows,
)

options = st.builds(
    ModelOptions,
    formulas=st.sampled_from(["physics", "paper"]),
    perf_model=st.sampled_from(["v2", "roofline", "paper"]),
    billing=st.sampled_from(["hourly", "per-second"]),
    tensor_parallel=st.sampled_from([None, 1]),
)
confidence = st.sampled_from([0.0, 0.0, 0.9])


@SETTINGS
@given(
    model=models,
    specs=instances,
    opts=options,
    bs=batch_sizes,
    step=steps,
    wls=workloads,
    conf=confidence,
)
def test_lean_chunk_equals_dominant_tables(
    model: Any,
    specs: list,
    opts: ModelOptions,
    bs: list[int],
    step: float,
    wls: list[Workload],
    conf: float,
) -> None:
    wls = [Workload(**{**vars(w), "slo_confidence": conf}) for w in wls]
    ctx = _context(model, specs, opts, bs, step)
    tb = build_tables(model, wls, ctx.inst, bs, ctx.levels, opts, keep="fitting")
    ch = lean_chunk(model, wls, ctx.inst, bs, ctx.levels, opts)
    fits = batch_mod._fits(tb)
    feasible = np.broadcast_to(tb.ok["feasible"], fits.shape)
    assert np.array_equal(ch.fits, fits)
    assert np.array_equal(ch.feasible, feasible)
    for name in ("tps", "total_cost_usd", "offload_ratio"):
        full = np.broadcast_to(tb.arrays[name], fits.shape)
        assert np.array_equal(ch.__getattribute__(name)[fits], full[fits]), name
    # every field and constraint at every candidate (the records read them at the picks)
    ws, ks = np.divmod(np.arange(fits.size), fits.shape[1])
    values, ok = ch.columns(ws, ks)
    for name, a in tb.arrays.items():
        full = np.broadcast_to(a, fits.shape).reshape(-1)
        assert np.array_equal(values[name], full, equal_nan=True), name
    for name, a in tb.ok.items():
        assert np.array_equal(ok[name], np.broadcast_to(a, fits.shape).reshape(-1)), name
    assert ch.tables(range(len(wls))).arrays["tps"].tobytes() == tb.arrays["tps"].tobytes()


finite = st.floats(0, 1e12, allow_nan=False)
N_PLAIN = 2 + len(TABLE_COLUMNS) - len(BAND_COLUMNS) + len(MEMORY_COLUMNS)
band = st.one_of(finite, st.sampled_from([math.nan, math.inf]))


@SETTINGS
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.lists(finite, min_size=N_PLAIN, max_size=N_PLAIN),
            st.lists(band, min_size=3, max_size=3),
            st.booleans(),
        ),
        max_size=5,
    )
)
def test_record_rows_equal_record_fields(data: list) -> None:
    places = [
        {
            "instance_type": f"t{i}.x",
            "provider": "aws",
            "region": "r",
            "zone": None if i else "z",
            "market": "on-demand",
            "price_source": None,
            "price_date": "2026-01-01",
            "gpu": "g",
            "gpu_count": float(i + 1),
        }
        for i in range(3)
    ]
    cals, dtypes = ["fit", "uncalibrated", "fit"], ["fp16", "fp8", "int4"]
    names = ["batch_size", "offload_ratio", *TABLE_COLUMNS, *MEMORY_COLUMNS]
    plain = [n for n in names if n not in BAND_COLUMNS]
    rows: list[int] = []
    values: dict[str, list[float]] = {n: [] for n in names}
    meets: list[bool] = []
    expected = []
    for i, nums, bands, meet in data:
        one = dict(zip(plain, nums, strict=True)) | dict(zip(BAND_COLUMNS, bands, strict=True))
        for n in names:
            values[n].append(one[n])
        rows.append(i)
        meets.append(meet)
        expected.append(RecordRow(**record_fields(places[i], one, meet, cals[i], dtypes[i])))
    got = record_rows(rows, places, values, meets, cals, dtypes)
    assert [tuple(map(repr, r)) for r in got] == [tuple(map(repr, r)) for r in expected]
