"""Solve many scenarios at once (``infersave batch``).

Two entry points share one engine:

* :func:`solve_many` returns a full :class:`SolveResult` per scenario (alternatives, candidate
  counts, solver info), equal to ``solve(scenario)`` except for ``solver.solve_seconds`` (here
  the chunk's share);
* :func:`solve_stream` yields the outcomes one by one in input order while it reads its input
  a task at a time, so that memory stays flat in the number of scenarios; with ``lean=True``
  it yields the :class:`BatchResult` that a batch output row prints (recommendation and
  Max-Performance baseline), built from arrays without the full candidate table.

The input is cut into tasks of about :data:`TASK_ROWS` rows (an exact-backend row weighs
:data:`EXACT_WEIGHT`); with ``workers > 1`` the tasks run in a pool of processes (any backend)
and are reassembled in input order. Inside a task, exhaustive scenarios are grouped by
:func:`~infersave.solver.prepare.context_key` (same model, catalog, region, options,
calibration, batch sizes and offload grid) and evaluated in chunks of workloads with one
broadcast pass (:func:`~infersave.formulations.candidates.build_tables`); the per-workload
picks are made with array operations on the keys of :func:`~infersave.solver.ranking.order_keys`
(the ranking order, defined once). Scenarios of the exact backends (``milp``, ``cp``) are
solved one by one with :func:`~infersave.solver.recommend.solve`.

Dominance (the lean path evaluates one offload level per instance and batch size)
------------------------------------------------------------------------------------
Fix a workload, an instance ``i`` and a batch size ``b``, and let ``c0 < c1`` be offload levels.

1. TPS(c1) <= TPS(c0), as computed in floating point. The compute terms of Eq. 5-6 do not
   depend on C. The transfer terms are C times positive factors, divided by the PCIe bandwidth
   (the paper's decode term is 0 at C = 0 and ``(C*2*(L_in+1) + L_out) * ...`` above), and
   IEEE rounding is monotone, so each transfer term is non-decreasing in C; so are
   ``max(CTCF(compute), transfer)`` (Eq. 5), ``CTCF(compute) + transfer`` (Eq. 6), their
   L-weighted sum T_E2E, and TPS = replicas x BS x (L_in + L_out) / T_E2E is non-increasing.
2. cost(c1) >= cost(c0): TPS_eff = min(TPS, SLO) is non-increasing, task hours = R x (L_in +
   L_out) / (TPS_eff x 3600) non-decreasing, billing (ceil, max) and x price >= 0 monotone, and
   so is rounding to :data:`~infersave.solver.ranking.COST_DECIMALS` decimals.
3. So in the ranking order (rounded cost ascending, TPS descending, instance name, batch size,
   offload ratio ascending) ``c0`` comes before ``c1``: its cost is lower, or equal with a TPS
   at least as high, and on full ties the smaller offload wins. The ranking's last tie-break
   (smaller offload) agrees with the dominance, so no tie can go the other way.
4. Feasibility: let ``c*`` be the smallest level at which every memory constraint holds
   (:func:`~infersave.formulations.candidates.smallest_fitting_level`, found on the grid: the
   memory constraints are not monotone in C, since offloading frees GPU memory but needs host
   memory and C = 0 skips the per-layer check). Price cap and SLO are the only other
   constraints; the cap does not depend on C. If any level ``c`` of (i, b) is feasible then
   ``c* <= c`` and TPS(c*) >= TPS(c) >= SLO, so ``c*`` is feasible, and by 3 it ranks first
   among the feasible levels of (i, b).
5. Max-Performance (fits in memory under the cap; highest TPS, then lowest rounded cost, then
   the first index, ``k = (i * B + b) * C + c``): ``c*`` has the highest TPS of the fitting
   levels of (i, b), the lowest cost among those, and the smallest index.

Hence the recommendation, the best candidate of each instance and the baseline all lie in the
dominant table (one candidate per (i, b), at ``c*``; evaluated at level 0 where nothing fits,
which then fails a memory constraint). That table keeps the full table's index order and every
kept value is bit-identical (same operations on the same numbers), so picking in it gives the
very candidates the full ranking gives, ties included. The batch evaluates even less of it
(:func:`~infersave.formulations.candidates.lean_chunk`): of the dominant table only the
candidates that run under the price cap (every other one is neither feasible nor in the
Max-Performance pool) and of their fields only the ranking inputs; the two picks' records are
evaluated at the picks, by the same per-candidate operations, so every printed value is the
table's bit for bit. The closest miss of an infeasible row
reads the same dominant table (a price cap nothing meets, or the best TPS that fits: both kept),
except when nothing fits in memory under the cap: then it reports the level of least shortfall,
so those rows get a table at that level per (i, b) (``keep="closest"``). The feasible count of a
:class:`SolveResult` needs every level, so :func:`solve_many` evaluates the full tables.
``tests/test_batch_speed_equivalence.py`` checks all of this with hypothesis on random small
catalogs against :func:`~infersave.solver.ranking.rank`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from infersave.formulations import arrays
from infersave.formulations.candidates import (
    Keep,
    LeanChunk,
    TableBatch,
    build_tables,
    instance_name_rank,
    lean_chunk,
)
from infersave.formulations.constraints import active, limit, runnable_constraints
from infersave.solver.batch_io import RawRow, raw_backend
from infersave.solver.fields import BY_NAME
from infersave.solver.prepare import (
    Context,
    Prepared,
    check_window,
    context_key,
    shared_context,
    workload_of,
)
from infersave.solver.ranking import order_keys
from infersave.solver.records import (
    MEMORY_COLUMNS,
    TABLE_COLUMNS,
    BatchResult,
    RecordRow,
    SolveResult,
    SolverInfo,
    place_fields,
    record_fields,
    record_rows,
)
from infersave.solver.scenario import InputError, Scenario, without_traceback

if TYPE_CHECKING:
    from multiprocessing.pool import AsyncResult, Pool

CHUNK_CELLS = 100_000
"""Workloads per vectorized chunk x candidates per table (the full grid, or one per (instance,
batch size) for dominant tables): ~40 arrays of this many cells, which stay in cache (400,000
spilled it)."""

TASK_ROWS = 4096
"""Input rows per task (what one worker solves at a time): with the tasks in flight, this
bounds the memory of a streamed batch."""

EXACT_WEIGHT = 64
"""An exact-backend row (a MILP or CP-SAT solve, milliseconds) counts as this many exhaustive
rows (vectorized, microseconds) when the input is cut into tasks."""

Outcome = SolveResult | Exception
"""A scenario's result, or the exception that made it fail (an error row)."""

Progress = Callable[[int], None]
"""Called with the number of scenarios just finished."""


# --- picking in arrays, in the ranking order ---------------------------------------------


def _first_min(keys: Sequence[np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``mask`` (shape ``(R, N)``): the index of the candidate that
    ``numpy.lexsort(keys)`` puts first among those of ``mask`` (last key primary; full ties go
    to the smaller index, as lexsort is stable), and whether the row has any.

    Each key has shape ``(R, N)`` or ``(N,)``. Rows leave as soon as one candidate is left, so
    the later keys (tie-breaks) cost little. Returns ``(index, any)``; index 0 where none.
    """
    first = np.zeros(mask.shape[0], dtype=np.intp)
    has = mask.any(axis=-1)
    rows = np.flatnonzero(has)
    every = rows.size == mask.shape[0]
    m = mask.copy() if every else mask[rows]
    for key in reversed(keys):
        if rows.size == 0:
            break
        sub = key if key.ndim == 1 or every else key[rows]
        v = np.where(m, sub, np.inf)
        m &= v == v.min(axis=-1, keepdims=True)
        tied = np.count_nonzero(m, axis=-1) > 1
        if not tied.all():
            first[rows] = m.argmax(axis=-1)
            rows, m, every = rows[tied], m[tied], False
    if rows.size:
        first[rows] = m.argmax(axis=-1)
    return first, has


def _fits(tb: TableBatch) -> np.ndarray:
    """Candidates that run (hardware and memory) under the price cap (the Max-Performance
    pool, :func:`~infersave.solver.ranking.max_performance`), (W, N)."""
    out = np.ones(tb.arrays["tps"].shape, dtype=bool)
    for name in [c.name for c in runnable_constraints(tb.options)] + ["price_cap"]:
        out &= tb.ok[name]
    return out


def _keys(tb: TableBatch, name_rank: np.ndarray) -> tuple[np.ndarray, ...]:
    """The ranking keys (:func:`~infersave.solver.ranking.order_keys`) of ``tb``'s candidates:
    ``(offload, batch, name rank, -TPS, rounded cost)``, each ``(W, N)`` or ``(N,)``."""
    a = tb.arrays
    return order_keys(
        a["total_cost_usd"],
        a["tps"],
        name_rank[a["instance_idx"]],
        a["batch_size"],
        a["offload_ratio"],
    )


def _baseline(keys: tuple[np.ndarray, ...], fits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max-Performance per workload (:func:`~infersave.solver.ranking.max_performance`): the
    highest TPS among ``fits``, then the lowest rounded cost, then the first index."""
    return _first_min((keys[4], keys[3]), fits)


def _record_rows(
    tb: TableBatch, ks: np.ndarray, sel: np.ndarray, calibration_name: str
) -> list[RecordRow | None]:
    """The :class:`RecordRow` of candidate ``ks[w]`` of workload ``w`` of ``tb`` where
    ``sel[w]``, else None; values as :func:`~infersave.solver.records.make_record` gives."""
    out: list[RecordRow | None] = [None] * len(ks)
    ws = np.flatnonzero(sel)
    if ws.size == 0:
        return out
    k = ks[ws]

    def at(name: str, ok: bool = False) -> list[float]:
        return tb.take(name, ws, k, ok).tolist()

    inst = tb.inst
    places = [place_fields(x) for x in inst.instances]
    cals = [calibration_name if c else "uncalibrated" for c in inst.calibrated]
    dtypes = inst.dtype_of_rows(tb.options)
    names = ("batch_size", "offload_ratio", *TABLE_COLUMNS, *MEMORY_COLUMNS)
    slos = [c.name for c in active(tb.options) if c.kind in ("slo", "latency")]
    meets = functools.reduce(np.logical_and, (tb.take(n, ws, k, True) for n in slos))
    columns = [at(name) for name in names]
    for j, (w, i) in enumerate(zip(ws.tolist(), at("instance_idx"), strict=True)):
        values = {name: col[j] for name, col in zip(names, columns, strict=True)}
        fields = record_fields(places[int(i)], values, meets[j], cals[int(i)], dtypes[int(i)])
        out[w] = RecordRow(**fields)
    return out


# --- one group of exhaustive scenarios (same context) -------------------------------------


def _chunks(
    ctx: Context, items: Sequence[tuple[int, Scenario]], keep: Keep, cells: int | None = None
) -> Iterator[list[tuple[int, Scenario]]]:
    """Slices of ``items`` of at most ``cells`` (default :data:`CHUNK_CELLS`) candidates
    (workloads x candidates of a table: the full grid, or one level per (instance, batch
    size))."""
    n_cand = len(ctx.inst.instances) * len(ctx.batch_sizes)
    if keep == "all":
        n_cand *= len(ctx.levels)
    chunk = max(1, (CHUNK_CELLS if cells is None else cells) // max(1, n_cand))
    for start in range(0, len(items), chunk):
        yield list(items[start : start + chunk])


def _tables(ctx: Context, part: Sequence[tuple[int, Scenario]], keep: Keep) -> TableBatch:
    return build_tables(
        ctx.model,
        [workload_of(s) for _, s in part],
        ctx.inst,
        ctx.batch_sizes,
        ctx.levels,
        ctx.options,
        keep=keep,
    )


def _lean_records(
    ch: LeanChunk,
    picks: Sequence[tuple[np.ndarray, np.ndarray]],
    places: Sequence[dict[str, object]],
    calibration_name: str,
) -> list[list[RecordRow | None]]:
    """For each ``(ks, sel)`` of ``picks``: the :class:`RecordRow` of candidate ``ks[w]`` of
    workload ``w`` of ``ch`` where ``sel[w]``, else None (values as
    :func:`~infersave.solver.records.make_record` gives); ``places`` are the
    :func:`~infersave.solver.records.place_fields` of ``ch.inst``'s rows. All picks are
    evaluated at once."""
    outs: list[list[RecordRow | None]] = [[None] * len(ks) for ks, _ in picks]
    which = [np.flatnonzero(sel) for _, sel in picks]
    ws = np.concatenate(which)
    if ws.size == 0:
        return outs
    ks = np.concatenate([ks[w] for (ks, _), w in zip(picks, which, strict=True)])
    values, ok = ch.columns(ws, ks)
    inst = ch.inst
    slos = [c.name for c in active(ch.options) if c.kind in ("slo", "latency")]
    meets = functools.reduce(np.logical_and, (ok[n] for n in slos))
    names = ("batch_size", "offload_ratio", *TABLE_COLUMNS, *MEMORY_COLUMNS)
    rows = record_rows(
        values["instance_idx"].astype(np.intp).tolist(),
        places,
        {name: values[name].tolist() for name in names},
        meets.tolist(),
        [calibration_name if c else "uncalibrated" for c in inst.calibrated],
        inst.dtype_of_rows(ch.options),
    )
    it = iter(rows)
    for out, w in zip(outs, which, strict=True):
        for j in w.tolist():
            out[j] = next(it)
    return outs


LEAN_CHUNKS = 4
"""A lean chunk holds this many times :data:`CHUNK_CELLS` cells (workloads x candidates per
(instance, batch size)): the lean path evaluates only a part of them, in cache-sized slices,
so its chunks can be larger (fewer per-chunk costs)."""


def _lean_group(ctx: Context, items: Sequence[tuple[int, Scenario]], out: list[object]) -> None:
    """Printed results (:class:`BatchResult`) of exhaustive scenarios sharing ``ctx``, from
    dominant tables (see the module docstring); written to ``out[index]``.

    One weight precision: :func:`~infersave.formulations.candidates.lean_chunk` evaluates only
    the candidates that run under the price cap (the only ones the recommendation and the
    baseline can be), the records are evaluated at the two picks, and full dominant tables are
    built only for the workloads whose closest miss needs them."""
    if len(ctx.inst.parts) > 1:
        _lean_group_tables(ctx, items, out)
        return
    cal = ctx.calibration_name
    n_b = len(ctx.batch_sizes)
    # the ranking keys that do not depend on the workload, per candidate k = i * B + b
    rank = np.repeat(instance_name_rank(ctx.inst), n_b)
    batch = np.tile(np.asarray(ctx.batch_sizes, dtype=np.float64), len(ctx.inst.instances))
    places = [place_fields(x) for x in ctx.inst.instances]
    for part in _chunks(ctx, items, "fitting", LEAN_CHUNKS * CHUNK_CELLS):
        ch = lean_chunk(
            ctx.model,
            [workload_of(s) for _, s in part],
            ctx.inst,
            ctx.batch_sizes,
            ctx.levels,
            ctx.options,
        )
        keys = order_keys(ch.total_cost_usd, ch.tps, rank, batch, ch.offload_ratio)
        k, ok = _first_min(keys, ch.feasible)
        base_k, has_base = _baseline(keys, ch.fits)
        recs, bases = _lean_records(ch, [(k, ok), (base_k, has_base)], places, cal)
        missing = np.flatnonzero(~ok)
        messages = _tps_misses(ch, missing)
        rest = missing[[w not in messages for w in missing.tolist()]]
        messages.update(
            _miss_messages(ctx, part, rest, ch.price_ok[rest], ch.fits[rest], ch.tables)
        )
        _put(part, recs, bases, messages, out)


def _tps_misses(ch: LeanChunk, missing: np.ndarray) -> dict[int, str]:
    """The closest miss of each infeasible workload ``missing[j]`` of ``ch`` that asks for the
    TPS SLO alone and has candidates that run under its cap, read from the chunk's arrays (the
    dominant table's values, bit for bit) instead of a table; the others are left out.

    For those :func:`~infersave.solver.recommend.closest_miss` passes its price, precision,
    tensor-parallel and memory branches (a candidate fits) and explains the SLO: the fitting
    candidate of least relative shortfall ``max(-slack, 0) / SLO`` (the first of equal ones, in
    the table's order ``k = i * B + b``), and the highest TPS of the fitting ones. The slack is
    the table's: ``TPS / band - SLO`` under ``slo_confidence``, else ``TPS - SLO``."""
    from infersave.solver.recommend import candidate_text, least_shortfall, tps_miss

    out: dict[int, str] = {}
    asked = [c for c in active(ch.options) if c.kind in ("slo", "latency")]
    n_b = ch.batch_sizes.size
    band = ch.band.reshape(len(ch.workloads), -1)
    for w in missing.tolist():
        wl = ch.workloads[w]
        slos = [c for c in asked if np.isfinite(limit(c, wl))]
        idx = np.flatnonzero(ch.fits[w])
        if [c.name for c in slos] != ["tps_slo"] or not idx.size:
            continue
        tps = ch.tps[w, idx]
        slack = (tps / band[w, idx // n_b] if wl.slo_confidence > 0 else tps) - wl.slo_tps
        j = least_shortfall([slack], slos, wl)
        if slack[j] >= 0:  # never for an infeasible workload; the table would say
            continue
        i, b = divmod(int(idx[j]), n_b)
        inst = ch.inst.instances[i].instance_type
        where = candidate_text(inst, ch.batch_sizes[b], ch.offload_ratio[w, idx[j]])
        out[w] = tps_miss(wl, float(tps[np.argmax(tps)]), where)
    return out


def _miss_messages(
    ctx: Context,
    part: Sequence[tuple[int, Scenario]],
    missing: np.ndarray,
    price_ok: np.ndarray,
    fits: np.ndarray,
    dominant: Callable[[np.ndarray], TableBatch],
) -> dict[int, str]:
    """The closest-miss explanation of each workload ``missing[j]`` of ``part`` (infeasible):
    ``price_ok[j]`` some instance is under its cap, ``fits[j]`` which of its candidates run
    under the cap (``(M, N)``), ``dominant(ws)`` the ``keep="fitting"`` tables of workloads
    ``ws``. Where nothing fits in memory under the cap the closest miss wants the level of
    least shortfall of each (instance, batch size), not the smallest fitting one, so those
    rows get ``keep="closest"`` tables."""
    from infersave.solver.recommend import closest_miss

    messages: dict[int, str] = {}
    if not missing.size:
        return messages
    short = missing[price_ok & ~fits.any(axis=-1)]
    rest = arrays.setdiff(missing, short)
    if rest.size:
        tb = dominant(rest)
        for j, w in enumerate(rest.tolist()):
            messages[w] = closest_miss(tb.table(j))
    if short.size:
        tb = _tables(ctx, [part[w] for w in short.tolist()], keep="closest")
        for j, w in enumerate(short.tolist()):
            messages[w] = closest_miss(tb.table(j))
    return messages


def _put(
    part: Sequence[tuple[int, Scenario]],
    recs: Sequence[RecordRow | None],
    bases: Sequence[RecordRow | None],
    messages: dict[int, str],
    out: list[object],
) -> None:
    """The :class:`BatchResult` of each workload of ``part`` to ``out[index]``."""
    for w, (index, _) in enumerate(part):
        rec, base = recs[w], bases[w]
        if rec is None:
            out[index] = BatchResult("infeasible", messages[w], None, base, None)
            continue
        savings = None
        if base is not None and base.total_cost_usd > 0:
            savings = 100.0 * (base.total_cost_usd - rec.total_cost_usd) / base.total_cost_usd
        out[index] = BatchResult("ok", "", rec, base, savings)


def _lean_group_tables(
    ctx: Context, items: Sequence[tuple[int, Scenario]], out: list[object]
) -> None:
    """:func:`_lean_group` from whole dominant tables (searched precisions)."""
    name_rank = instance_name_rank(ctx.inst)
    cal = ctx.calibration_name
    for part in _chunks(ctx, items, "fitting"):
        tb = _tables(ctx, part, keep="fitting")
        keys = _keys(tb, name_rank)
        feasible = np.broadcast_to(tb.ok["feasible"], tb.arrays["tps"].shape)
        k, ok = _first_min(keys, feasible)
        fits = _fits(tb)
        base_k, has_base = _baseline(keys, fits)
        recs = _record_rows(tb, k, ok, cal)
        bases = _record_rows(tb, base_k, has_base, cal)
        missing = np.flatnonzero(~ok)
        price_ok = np.broadcast_to(tb.ok["price_cap"], fits.shape)[missing].any(axis=-1)
        messages = _miss_messages(ctx, part, missing, price_ok, fits[missing], tb.rows)
        _put(part, recs, bases, messages, out)


def _select(tb: TableBatch, name_rank: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per workload of a full ``tb``: the best candidate of each instance in ranking order,
    and the Max-Performance candidate.

    Returns ``(best_k, order, count, base_k, has_base)``: ``best_k[w, i]`` the best feasible
    candidate of instance ``i`` (valid where feasible), ``order[w]`` the instances best first,
    ``count[w]`` how many instances have a feasible candidate, ``base_k[w]`` the
    Max-Performance candidate (valid where ``has_base[w]``).
    """
    n_w, n_i = len(tb), len(tb.inst.instances)
    n = tb.arrays["tps"].shape[-1]
    n_k = n // n_i
    keys = _keys(tb, name_rank)
    feasible = np.broadcast_to(tb.ok["feasible"], (n_w, n))
    # within an instance: every instance has the same (batch, offload) pattern (instance-major
    # layout), so 1-D keys are the first instance's; the name rank is constant there
    per_inst = [
        np.broadcast_to(key, (n_w, n)).reshape(n_w * n_i, n_k) if key.ndim == 2 else key[:n_k]
        for key in keys
    ]
    local, has = _first_min(per_inst, feasible.reshape(n_w * n_i, n_k))
    best_k = np.arange(n_i) * n_k + local.reshape(n_w, n_i)
    has = has.reshape(n_w, n_i)
    at_best = [
        np.take_along_axis(key, best_k, axis=-1) if key.ndim == 2 else key[best_k] for key in keys
    ]
    order = np.lexsort((*at_best, ~has), axis=-1)
    base_k, has_base = _baseline(keys, _fits(tb))
    return best_k, order, has.sum(axis=-1), base_k, has_base


def _full_group(ctx: Context, items: Sequence[tuple[int, Scenario]], out: list[object]) -> None:
    """Full :class:`SolveResult` of exhaustive scenarios sharing ``ctx``; to ``out[index]``."""
    from infersave.solver.recommend import result_from

    name_rank = instance_name_rank(ctx.inst)
    physical = ctx.inst.instance_of_row()
    for part in _chunks(ctx, items, "all"):
        t0 = time.perf_counter()
        tb = _tables(ctx, part, keep="all")
        best_k, order, count, base_k, has_base = _select(tb, name_rank)
        per_row = tb.arrays["tps"].shape[-1] // len(ctx.inst.instances)
        share = (time.perf_counter() - t0) / len(part)
        total = tb.arrays["total_cost_usd"]
        for w, (index, s) in enumerate(part):
            n = int(count[w])
            ordered = best_k[w, order[w, :n]]
            # one per instance (its best row of every TP degree and precision), as solve lists
            _, first = np.unique(physical[ordered // per_row], return_index=True)
            ordered = ordered[np.sort(first)]
            k = int(ordered[0]) if n else None
            info = SolverInfo(
                backend="exhaustive",
                solver="numpy",
                status="optimal" if k is not None else "infeasible",
                solve_seconds=share,
                objective=float(total[w, k]) if k is not None else None,
            )
            prep = Prepared(s, ctx.model, tb.table(w), ctx.calibration_name)
            base = int(base_k[w]) if has_base[w] else None
            out[index] = result_from(prep, k, info, (ordered, base))


# --- tasks: a slice of the input, solved in one process ------------------------------------


_SOLVE_LOCK = threading.Lock()
"""One :func:`_solve_one` at a time per process: a dask worker runs tasks in threads, and two
HiGHS solves at once in one process crash it (a segmentation fault; seen with highspy 1.14)."""


def _solve_one(s: Scenario) -> Outcome:
    """Solve one scenario, returning the exception instead of raising."""
    from infersave.solver.recommend import solve

    try:
        with _SOLVE_LOCK:
            return solve(s)
    except InputError as exc:
        return without_traceback(exc)
    except Exception as exc:  # a bug or a solver failure: keep the other rows going
        return RuntimeError(f"{type(exc).__name__}: {exc}")


HEAP_MMAP_THRESHOLD = 32 * 2**20
"""Bytes from which the C allocator maps a block of its own instead of taking it from the
heap (glibc's largest; its default, 128 KiB rising with use, maps most of a chunk's arrays)."""

HEAP_TRIM_THRESHOLD = 256 * 2**20
"""Free bytes at the top of the heap that the C allocator keeps instead of returning them."""

_HEAP_SET: list[bool] = []


def keep_heap() -> None:
    """Have the C allocator (glibc) keep the memory of freed arrays for the next ones, once
    per process: a chunk's arrays (a few hundred KiB to a few MiB each, allocated and freed
    thousands of times) are otherwise mapped and unmapped, and the page faults of touching
    new mappings cost more than the arithmetic. The peak memory is unchanged (what is kept is
    what was in use); a no-op where there is no glibc ``mallopt``."""
    if _HEAP_SET:
        return
    _HEAP_SET.append(True)
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, HEAP_MMAP_THRESHOLD)
    mallopt(m_trim_threshold, HEAP_TRIM_THRESHOLD)


Lean = bool | Literal["csv"]
"""What a stream yields: False, :class:`SolveResult`; True, :class:`BatchResult`; ``"csv"``,
the :class:`~infersave.solver.batch_io.RenderedRow` of each :class:`BatchResult` (rendered
where it was solved, a worker)."""


Item = Scenario | Exception | RawRow
"""An input of :func:`solve_stream`: a scenario, the exception of a row that failed (its own
outcome), or a :class:`~infersave.solver.batch_io.RawRow` validated where it is solved (an
InputError there is its outcome, as if it had failed before)."""


def _parsed(items: Sequence[Item]) -> list[Scenario | Exception]:
    """``items`` with every raw row validated (:func:`~infersave.solver.batch_io.parse_row`)."""
    if not any(isinstance(s, RawRow) for s in items):
        return list(items)  # type: ignore[arg-type]
    from infersave.solver.batch_io import parse_row

    return [parse_row(s) if isinstance(s, RawRow) else s for s in items]


def _solve_task(items: Sequence[Item], lean: Lean) -> list[object]:
    """The outcomes of ``items`` in order (a worker's entry point): raw rows are validated
    first, exceptions pass through, exhaustive scenarios are solved vectorized per context, the
    others one by one; with ``lean="csv"`` each :class:`BatchResult` is rendered here (the
    parent writes text)."""
    keep_heap()
    parsed = _parsed(items)
    out = _solve_items(parsed, bool(lean))
    if lean == "csv":
        from infersave.solver.batch_io import render_results

        # each lean result, and each error of a row validated here (its error row shows the
        # validated fields, which only this process has)
        todo = [
            (j, (r, s, raw.row if isinstance(raw, RawRow) else 0))
            for j, (r, s, raw) in enumerate(zip(out, parsed, items, strict=True))
            if isinstance(r, BatchResult) or (isinstance(raw, RawRow) and isinstance(s, Scenario))
        ]
        rendered = render_results([t for _, t in todo])
        for (j, _), text in zip(todo, rendered, strict=True):
            out[j] = text
    return out


def _solve_items(items: Sequence[Scenario | Exception], lean: bool) -> list[object]:
    """:func:`_solve_task` before any rendering."""
    out: list[object] = list(items)
    groups: dict[tuple[object, ...], list[tuple[int, Scenario]]] = {}
    exact: list[tuple[int, Scenario]] = []
    for index, s in enumerate(items):
        if isinstance(s, Exception):
            continue
        if s.backend == "exhaustive":
            groups.setdefault(context_key(s), []).append((index, s))
        else:
            exact.append((index, s))
    for whole in groups.values():
        group = []  # the lengths are each scenario's own: a bad one fails alone
        for index, s in whole:
            try:
                check_window(s)
            except InputError as exc:
                out[index] = without_traceback(exc)
            else:
                group.append((index, s))
        if not group:
            continue
        try:
            ctx = shared_context(group[0][1])
        except InputError as exc:
            for index, _ in group:
                out[index] = without_traceback(exc)
            continue
        (_lean_group if lean else _full_group)(ctx, group, out)
    for index, s in exact:
        r = _solve_one(s)
        out[index] = BatchResult.of(r) if lean and isinstance(r, SolveResult) else r
    return out


def _weight(s: Item) -> int:
    if isinstance(s, RawRow):
        backend = raw_backend(s, BY_NAME["backend"].default)
    elif isinstance(s, Scenario):
        backend = s.backend
    else:
        return 1
    return 1 if backend == "exhaustive" else EXACT_WEIGHT


def _tasks(scenarios: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive slices of ``scenarios`` of about ``size`` weight each (read lazily)."""
    task: list[Item] = []
    weight = 0
    for s in scenarios:
        task.append(s)
        weight += _weight(s)
        if weight >= size:
            yield task
            task, weight = [], 0
    if task:
        yield task


def _task_size(scenarios: Iterable[Item], workers: int, total: int | None) -> int:
    """:data:`TASK_ROWS`, or less when the input's weight is known (a sequence, or ``total``
    rows counted as exhaustive ones) and whole tasks would leave a worker idle: then a
    multiple of ``workers`` tasks of equal weight."""
    if workers == 1:
        return TASK_ROWS
    if isinstance(scenarios, Sequence):
        total = sum(_weight(s) for s in scenarios)
    if total is None:
        return TASK_ROWS
    n_tasks = workers * max(1, math.ceil(total / (TASK_ROWS * workers)))
    return max(1, math.ceil(total / n_tasks))


def _worker_init() -> None:
    """In a worker: the parent handles Ctrl-C (and terminates the pool); SIGTERM kills."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Pool]:
    """A process pool that is closed and joined on success and terminated (workers killed,
    nothing left behind) on any exception, interrupt or generator close.

    Forked (cheap: caches and imports are inherited) unless a solver library with threads of
    its own is already loaded here, which a fork could deadlock; spawned otherwise."""
    import multiprocessing as mp

    threaded = any(m in sys.modules for m in ("ortools", "highspy"))
    method = "fork" if "fork" in mp.get_all_start_methods() and not threaded else "spawn"
    pool = mp.get_context(method).Pool(workers, initializer=_worker_init)
    try:
        yield pool
    except BaseException:
        _terminate(pool)
        raise
    pool.close()
    pool.join()


TERMINATE_WAIT_S = 2.0
"""Seconds an interrupted batch waits for its pool's clean-up before it leaves the rest."""


def _terminate(pool: Pool) -> None:
    """Terminate ``pool`` (workers killed) without hanging: ``Pool.terminate`` kills the
    workers and then joins the thread that feeds them, which never returns when that thread is
    blocked writing a large task into the workers' pipe that no process reads any more
    (CPython's multiprocessing; seen here once in a few SIGTERMs of a 150,000-row batch). The
    clean-up runs in a daemon thread; after :data:`TERMINATE_WAIT_S` what is left is that
    stuck daemon thread (it ends with the process) and the workers, which are reaped here."""
    import multiprocessing as mp
    import threading

    def stop() -> None:
        pool.terminate()
        pool.join()

    t = threading.Thread(target=stop, name="pool-terminate", daemon=True)
    t.start()
    t.join(TERMINATE_WAIT_S)
    if t.is_alive():  # the workers were sent SIGTERM before the join that hangs
        for child in mp.active_children():
            child.join(1.0)
            if child.is_alive():
                child.kill()
                child.join(1.0)


def clamp_workers(workers: int) -> int:
    """``workers`` bounded by the CPUs of this machine (a note on stderr when it is cut).

    Raises:
        ValueError: if ``workers < 1``.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cpus = os.cpu_count() or 1
    if workers > cpus:
        sys.stderr.write(f"infersave: note: {workers} workers for {cpus} CPUs; using {cpus}\n")
        return cpus
    return workers


def solve_stream(
    scenarios: Iterable[Item],
    workers: int = 1,
    progress: Progress | None = None,
    lean: Lean = False,
    total: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> Iterator[Outcome | BatchResult]:
    """Solve every scenario, yielding one outcome per input in input order.

    ``scenarios`` is read lazily, a task at a time (:data:`TASK_ROWS`); at most two tasks per
    worker are in flight, so memory does not grow with the input. An exception in
    ``scenarios`` is passed through as its outcome; a
    :class:`~infersave.solver.batch_io.RawRow` is validated in the worker that solves it (its
    InputError, if any, is its outcome). ``workers`` (clamped to the CPU count)
    processes share the tasks of every backend. ``lean=True`` yields :class:`BatchResult`
    (what a batch output row prints), ``lean="csv"`` its
    :class:`~infersave.solver.batch_io.RenderedRow` (rendered in the worker), else
    :class:`SolveResult` (as ``solve`` gives). ``total``
    (the number of scenarios of an iterator, if known) evens out the tasks of the workers. Close
    the iterator (``contextlib.closing``) to stop early: the pool is then terminated.

    ``engine="dask"`` sends the same tasks to a dask.distributed cluster instead
    (:mod:`~infersave.solver.distributed`; the same outcomes, bit for bit): the scheduler at
    ``scheduler`` (``tcp://HOST:PORT``), or a local cluster of ``workers`` processes when it is
    None.

    Raises:
        ValueError: if ``workers < 1`` or ``engine`` is unknown (at the call).
        ~infersave.solver.distributed.ClusterError: (an InputError) a bad scheduler address
            (at the call), an unreachable scheduler or unusable workers (on the first
            ``next``). KeyboardInterrupt and other interrupts propagate after the pool is
            terminated (the cluster's tasks cancelled and its client closed).
    """
    workers = clamp_workers(workers)
    if engine == "dask":
        from infersave.solver import distributed

        if scheduler is not None:
            scheduler = distributed.check_address(scheduler)

        def size(threads: int) -> int:
            return _task_size(scenarios, threads, total)

        return distributed.dask_stream(scenarios, scheduler, workers, progress, lean, size)
    if engine != "local":
        raise ValueError(f"engine must be 'local' or 'dask', got {engine!r}")
    if scheduler is not None:
        raise ValueError("a scheduler needs engine='dask'")
    size = _task_size(scenarios, workers, total)
    if isinstance(scenarios, Sequence):
        total = len(scenarios)
    # more rows than a task holds: several tasks (a row weighs at least 1)
    eager = total is not None and total > size
    return _stream(scenarios, workers, progress, lean, size, eager)


def _stream(
    scenarios: Iterable[Item],
    workers: int,
    progress: Progress | None,
    lean: Lean,
    size: int,
    eager: bool = False,
) -> Iterator[Outcome | BatchResult]:
    """:func:`solve_stream` on this machine, in tasks of ``size``; ``eager``: there are
    several tasks (known from the input's length), so the pool starts with the first one."""
    tasks = _tasks(scenarios, size)
    head: list[list[Item]] = []
    if not eager or workers == 1:  # is there more than one task? (else: no pool)
        head = [t for t in (next(tasks, None), next(tasks, None)) if t is not None]
    if workers == 1 or (not eager and len(head) < 2):
        for task in itertools.chain(head, tasks):
            done = _solve_task(task, lean)
            if progress is not None:
                progress(len(task))
            yield from done
        return
    # the input's exceptions stay here (they are their own outcome): only scenarios travel
    pending: deque[tuple[list[Item], AsyncResult[list[object]]]] = deque()

    def collect() -> Iterator[Outcome | BatchResult]:
        task, result = pending.popleft()
        solved = iter(result.get())
        if progress is not None:
            progress(len(task))
        for s in task:
            yield s if isinstance(s, Exception) else next(solved)  # type: ignore[misc]

    with _pool(workers) as pool:
        for task in itertools.chain(head, tasks):
            todo = [s for s in task if not isinstance(s, Exception)]
            pending.append((task, pool.apply_async(_solve_task, (todo, lean))))
            if len(pending) > 2 * workers:
                yield from collect()
        while pending:
            yield from collect()


def solve_many(
    scenarios: Sequence[Scenario | Exception],
    workers: int = 1,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Solve every scenario; an exception in ``scenarios`` is passed through as its outcome.

    Exhaustive scenarios are evaluated vectorized per group; the others with
    :func:`~infersave.solver.recommend.solve`; with ``workers > 1`` (clamped to the CPU count)
    the tasks of both run in a pool of processes, shut down on any exit.

    Returns:
        One outcome per input, in input order: a :class:`SolveResult` (status ok or
        infeasible) or the exception of a bad scenario (:class:`InputError` for bad input).

    Raises:
        ValueError: if ``workers < 1``. KeyboardInterrupt and other interrupts propagate.
    """
    stream = solve_stream(scenarios, workers, progress, lean=False)
    with contextlib.closing(stream):
        return list(stream)  # type: ignore[arg-type]
