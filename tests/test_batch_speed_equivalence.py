"""The batch's fast path picks exactly what the full ranking picks.

``infersave batch`` evaluates one offload level per (instance, batch size), the smallest that
fits in memory (``build_tables(keep="fitting")``), and picks with array operations. Here random
small catalogs (few prices and GPUs, so that ties in cost, TPS and memory are common) are
solved both ways: the lean result must equal the records of the full table's
:func:`~infersave.solver.ranking.rank` (recommendation), :func:`max_performance` (baseline) and
:func:`closest_miss` (message), and the kept candidates must carry the full table's values bit
for bit.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from conftest import gpu, instance, tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersave.formulations.candidates import (
    Workload,
    Workloads,
    build_table,
    build_tables,
    instance_arrays,
    instance_name_rank,
    memory_levels,
)
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver import batch as batch_mod
from infersave.solver import ranking
from infersave.solver.prepare import Context
from infersave.solver.recommend import closest_miss
from infersave.solver.records import BatchResult, RecordRow, make_record

GPUS = {
    "small": gpu("small", 6e9, tflops=50.0, bw_gbs=500.0),
    "mid": gpu("mid", 24e9, tflops=100.0, bw_gbs=1000.0),
    "big": gpu("big", 80e9, tflops=300.0, bw_gbs=3000.0),
}

instances = st.lists(
    st.tuples(
        st.sampled_from(sorted(GPUS)),
        st.sampled_from([1.0, 2.0, 3.0]),  # few prices: cost ties across instances
        st.sampled_from([0.5e9, 8e9, 64e9, 512e9, 512e9]),  # host memory: some too small
        st.sampled_from([1, 2, 4]),
    ),
    min_size=1,
    max_size=4,
)
workloads = st.lists(
    st.builds(
        Workload,
        input_len=st.one_of(st.integers(1, 16_000), st.integers(8_000, 16_000)),
        output_len=st.integers(1, 4_000),
        requests=st.sampled_from([1, 100, 10_000, 1_000_000]),
        slo_tps=st.sampled_from([1.0, 1.0, 100.0, 1_000.0, 10_000.0, 100_000.0]),
        max_price=st.sampled_from([float("inf"), 1.5, 2.5, 10.0]),
    ),
    min_size=1,
    max_size=6,
)
options = st.builds(
    ModelOptions,
    formulas=st.sampled_from(["physics", "paper"]),
    perf_model=st.sampled_from(["roofline", "paper"]),
    billing=st.sampled_from(["hourly", "per-second"]),
    gpu_memory_utilization=st.just(1.0),
    host_memory_utilization=st.just(1.0),
)
_general_models = st.builds(
    lambda params, layers, heads: tiny_model(
        num_parameters=params,
        num_active_parameters=params,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
    ),
    params=st.sampled_from([100_000_000, 1_000_000_000, 6_000_000_000, 50_000_000_000]),
    layers=st.sampled_from([2, 10, 40]),
    heads=st.sampled_from([4, 32]),
)
_kv_heavy_models = st.builds(  # small weights, a large KV cache: offloading often pays
    lambda params: tiny_model(
        num_parameters=params,
        num_active_parameters=params,
        num_hidden_layers=40,
        num_attention_heads=32,
        num_key_value_heads=32,
    ),
    params=st.sampled_from([100_000_000, 1_000_000_000]),
)
models = st.one_of(_general_models, _kv_heavy_models)
batch_sizes = st.lists(
    st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]), min_size=1, max_size=5, unique=True
).map(sorted)
steps = st.sampled_from([0.1, 0.25, 0.5, 1.0])

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _context(model: Any, specs: list, opts: ModelOptions, bs: list[int], step: float) -> Context:
    # names in random order against the list order, so the name tie-break is exercised
    insts = [
        instance(f"t{(7 * n) % 10}{n}.x", g, price, host, count)
        for n, (g, price, host, count) in enumerate(specs)
    ]
    inst = instance_arrays(insts, GPUS, opts)
    return Context(model, inst, tuple(bs), offload_levels(step), opts, "test-fit")


def _key(table: Any, k: int) -> tuple[int, float, float]:
    return (int(table.instance_idx[k]), float(table.batch_size[k]), float(table.offload_ratio[k]))


def check_lean_equals_full(
    model: Any,
    specs: list,
    opts: ModelOptions,
    bs: list[int],
    step: float,
    wls: list[Workload],
) -> int:
    """Solve ``wls`` on the catalog ``specs`` both ways and compare; returns how many
    recommendations offload some KV cache (to check that the tests reach them)."""
    offloading = 0
    ctx = _context(model, specs, opts, bs, step)
    items = [(w, SimpleNamespace(**vars(wl))) for w, wl in enumerate(wls)]
    out: list[Any] = [None] * len(wls)
    batch_mod._lean_group(ctx, items, out)  # type: ignore[arg-type]
    tb = build_tables(model, wls, ctx.inst, bs, ctx.levels, opts, keep="fitting")
    name_rank = instance_name_rank(ctx.inst)
    best_k, order, count, _, _ = batch_mod._select(tb, name_rank)
    n_b, n_c = len(bs), ctx.levels.size
    for w, wl in enumerate(wls):
        full = build_table(model, wl, ctx.inst, bs, ctx.levels, opts)
        kept = tb.table(w)

        # the lemma: over the memory-fitting levels of an (instance, batch size), TPS never
        # rises and the cost never falls as the offload grows (exactly, as computed)
        fits = (full.memory_ok & full.ok["price_cap"]).reshape(-1, n_c)
        tps, cost = full.tps.reshape(-1, n_c), full.total_cost_usd.reshape(-1, n_c)
        for row in range(fits.shape[0]):
            lv = np.flatnonzero(fits[row])
            assert (np.diff(tps[row, lv]) <= 0).all()
            assert (np.diff(cost[row, lv]) >= 0).all()

        # the kept level is the smallest fitting one, and its values are the full table's
        first = np.where(
            full.memory_ok.reshape(-1, n_c).any(-1), full.memory_ok.reshape(-1, n_c).argmax(-1), -1
        )
        at = memory_levels(
            model, Workloads.of([wl]), ctx.inst, tb.batch_sizes, tb.levels, opts, "fitting"
        )
        assert np.array_equal(at.reshape(-1), first)  # fmt: skip
        full_k = np.arange(first.size) * n_c + np.maximum(first, 0)
        for name in ("tps", "total_cost_usd", "e2e_s", "cost_efficiency", "gpu_used_bytes"):
            assert np.array_equal(getattr(kept, name), getattr(full, name)[full_k]), name
        for name in full.ok:
            assert np.array_equal(kept.ok[name], full.ok[name][full_k]), name

        # recommendation, baseline and message: the full ranking's
        k = ranking.exhaustive(full)
        base = ranking.max_performance(full)
        rec = make_record(full, k, "test-fit") if k is not None else None
        b = make_record(full, base, "test-fit") if base is not None else None
        got: BatchResult = out[w]
        assert got.recommendation == (RecordRow.of(rec) if rec else None)
        assert got.baseline == (RecordRow.of(b) if b else None)
        assert got.status == ("ok" if k is not None else "infeasible")
        assert got.message == ("" if k is not None else closest_miss(full))

        # the best candidate of each instance, in ranking order (the alternatives)
        ranked = ranking.best_per_instance(full, ranking.rank(full))
        mine = best_k[w, order[w, : int(count[w])]]
        assert [_key(full, j) for j in ranked] == [_key(kept, j) for j in mine]
        assert n_b * len(specs) == len(kept)
        offloading += k is not None and full.offload_ratio[k] > 0

    return offloading


@SETTINGS
@given(model=models, specs=instances, opts=options, bs=batch_sizes, step=steps, wls=workloads)
def test_lean_batch_equals_full_ranking(
    model: Any,
    specs: list,
    opts: ModelOptions,
    bs: list[int],
    step: float,
    wls: list[Workload],
) -> None:
    check_lean_equals_full(model, specs, opts, bs, step, wls)


def test_lean_batch_equals_full_ranking_when_offloading() -> None:
    """Random catalogs where the KV cache is large and the SLO low, so that many
    recommendations and baselines offload (hypothesis rarely draws them)."""
    rng = np.random.default_rng(7)
    offloading = 0
    for _ in range(40):
        params = int(rng.choice([100_000_000, 1_000_000_000]))
        model = tiny_model(
            num_parameters=params,
            num_active_parameters=params,
            num_hidden_layers=40,
            num_attention_heads=32,
            num_key_value_heads=32,
        )
        specs = [
            (str(rng.choice(sorted(GPUS))), float(rng.choice([1.0, 2.0])), 512e9, int(c))
            for c in rng.choice([1, 2, 4], size=int(rng.integers(1, 4)))
        ]
        opts = ModelOptions(
            formulas=str(rng.choice(["physics", "paper"])),  # type: ignore[arg-type]
            perf_model=str(rng.choice(["roofline", "paper"])),  # type: ignore[arg-type]
            billing=str(rng.choice(["hourly", "per-second"])),  # type: ignore[arg-type]
            gpu_memory_utilization=1.0,
            host_memory_utilization=1.0,
        )
        wls = [
            Workload(int(n), int(m), 10_000, float(slo), float("inf"))
            for n, m, slo in zip(
                rng.integers(4_000, 16_000, 4),
                rng.integers(1, 2_000, 4),
                rng.choice([1.0, 10.0, 100.0], 4),
                strict=True,
            )
        ]
        step = float(rng.choice([0.1, 0.25]))
        offloading += check_lean_equals_full(model, specs, opts, [2, 8, 32, 128], step, wls)
    assert offloading >= 10


def test_first_min_matches_lexsort() -> None:
    """The selector's lexicographic minimum is lexsort's first, ties to the smaller index."""
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        rows = int(rng.integers(1, 5))
        keys = [rng.integers(0, 3, size=(rows, n)).astype(float) for _ in range(3)]
        keys.append(rng.integers(0, 2, size=n).astype(float))  # a 1-D key
        mask = rng.random((rows, n)) < 0.6
        first, has = batch_mod._first_min(keys, mask)
        for r in range(rows):
            idx = np.flatnonzero(mask[r])
            assert has[r] == bool(idx.size)
            if idx.size:
                order = np.lexsort([np.broadcast_to(k, (rows, n))[r, idx] for k in keys])
                assert first[r] == idx[order[0]]
