"""Solve many scenarios at once (``infersave batch``).

Exhaustive scenarios are grouped by :func:`~infersave.solver.prepare.context_key` (same model,
catalog, region, options, calibration, batch sizes and offload grid) and evaluated in chunks of
workloads with one broadcast pass (:func:`~infersave.formulations.candidates.build_tables`);
the per-workload choice, alternatives and Max-Performance baseline are then picked with array
operations that reproduce :mod:`infersave.solver.ranking` exactly (cost rounded to 9 decimals
ascending, TPS descending, instance type name, batch size, offload ratio). Each result equals
``solve(scenario)`` except for ``solver.solve_seconds`` (here the chunk's share).

Scenarios of the exact backends (``milp``, ``cp``) are solved one by one with
:func:`~infersave.solver.recommend.solve`, in ``workers`` processes when ``workers > 1``.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from infersave.formulations.candidates import TableBatch, build_tables, instance_name_rank
from infersave.formulations.constraints import memory_constraints
from infersave.solver.prepare import Context, Prepared, context, context_key, workload_of
from infersave.solver.ranking import COST_DECIMALS
from infersave.solver.records import SolveResult, SolverInfo
from infersave.solver.scenario import InputError, Scenario

CHUNK_CELLS = 400_000
"""Workloads per vectorized chunk x candidates: bounds memory (~40 arrays of this many cells)."""

Outcome = SolveResult | Exception
"""A scenario's result, or the exception that made it fail (an error row)."""

Progress = Callable[[int], None]
"""Called with the number of scenarios just finished."""


def _select(tb: TableBatch, name_rank: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per workload of ``tb``: the best candidate of each instance in ranking order.

    Returns ``(best_k, order, count, base_k, has_base)``: ``best_k[w, i]`` the best feasible
    candidate of instance ``i`` (valid where feasible), ``order[w]`` the instances best first,
    ``count[w]`` how many instances have a feasible candidate, ``base_k[w]`` the
    Max-Performance candidate (valid where ``has_base[w]``).
    """
    n_w, n_i = len(tb), len(tb.inst.instances)
    n_k = tb.ok["feasible"].shape[-1] // n_i
    feas = np.broadcast_to(tb.ok["feasible"], (n_w, n_i * n_k)).reshape(n_w, n_i, n_k)
    cost_r = np.round(tb.arrays["total_cost_usd"], COST_DECIMALS).reshape(n_w, n_i, n_k)
    tps = tb.arrays["tps"].reshape(n_w, n_i, n_k)

    # best per instance: lowest rounded cost, then highest TPS, then first (batch, offload)
    key = np.where(feas, cost_r, np.inf)
    cmin = key.min(axis=-1)
    eq = feas & (key == cmin[..., None])
    t = np.where(eq, tps, -np.inf)
    tmax = t.max(axis=-1)
    first = (eq & (t == tmax[..., None])).argmax(axis=-1)
    best_k = np.arange(n_i) * n_k + first
    count = eq.any(axis=-1).sum(axis=-1)
    ranks = np.broadcast_to(name_rank, (n_w, n_i))
    order = np.lexsort((ranks, -tmax, cmin), axis=-1)

    # Max-Performance: highest TPS that fits in memory under the cap, then lowest cost, first
    ok = tb.ok
    mem = [c.name for c in memory_constraints(tb.options)]
    fits = functools.reduce(np.logical_and, [ok[name] for name in (*mem, "price_cap")])
    fits = np.broadcast_to(fits, (n_w, n_i * n_k))
    tps2, cost2 = tps.reshape(n_w, -1), cost_r.reshape(n_w, -1)
    tv = np.where(fits, tps2, -np.inf)
    eq_t = fits & (tps2 == tv.max(axis=-1, keepdims=True))
    cv = np.where(eq_t, cost2, np.inf)
    base_k = (eq_t & (cost2 == cv.min(axis=-1, keepdims=True))).argmax(axis=-1)
    return best_k, order, count, base_k, fits.any(axis=-1)


def _solve_group(
    ctx: Context,
    items: Sequence[tuple[int, Scenario]],
    out: list[Outcome | None],
    progress: Progress | None,
) -> None:
    """Solve exhaustive scenarios sharing ``ctx``; write each result to ``out[index]``."""
    from infersave.solver.recommend import result_from

    n_cand = len(ctx.inst.instances) * len(ctx.batch_sizes) * len(ctx.levels)
    chunk = max(1, CHUNK_CELLS // max(1, n_cand))
    name_rank = instance_name_rank(ctx.inst)
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        t0 = time.perf_counter()
        tb = build_tables(
            ctx.model,
            [workload_of(s) for _, s in part],
            ctx.inst,
            ctx.batch_sizes,
            ctx.levels,
            ctx.options,
        )
        best_k, order, count, base_k, has_base = _select(tb, name_rank)
        share = (time.perf_counter() - t0) / len(part)
        total = tb.arrays["total_cost_usd"]
        for w, (index, s) in enumerate(part):
            n = int(count[w])
            ordered = best_k[w, order[w, :n]]
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
        if progress is not None:
            progress(len(part))


def _solve_one(s: Scenario) -> Outcome:
    """Solve one scenario, returning the exception instead of raising (worker entry point)."""
    from infersave.solver.recommend import solve

    try:
        return solve(s)
    except InputError as exc:
        return exc
    except Exception as exc:  # a bug or a solver failure: keep the other rows going
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _pool(workers: int) -> ProcessPoolExecutor:
    """A process pool: forked (cheap: caches and imports are inherited) unless a solver
    library with threads of its own is already loaded here, which a fork could deadlock."""
    import multiprocessing as mp

    threaded = any(m in sys.modules for m in ("ortools", "highspy"))
    method = "fork" if "fork" in mp.get_all_start_methods() and not threaded else "spawn"
    return ProcessPoolExecutor(workers, mp_context=mp.get_context(method))


def solve_many(
    scenarios: Sequence[Scenario | Exception],
    workers: int = 1,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Solve every scenario; an exception in ``scenarios`` is passed through as its outcome.

    Exhaustive scenarios are evaluated in-process, vectorized per group; the others with
    :func:`~infersave.solver.recommend.solve`, in a pool of ``workers`` processes when
    ``workers > 1`` (started before anything else, and shut down on any exit).

    Returns:
        One outcome per input, in input order: a :class:`SolveResult` (status ok or
        infeasible) or the exception of a bad scenario (:class:`InputError` for bad input).

    Raises:
        ValueError: if ``workers < 1``. KeyboardInterrupt and other interrupts propagate.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out: list[Outcome | None] = [None] * len(scenarios)
    groups: dict[tuple[object, ...], list[tuple[int, Scenario]]] = {}
    exact: list[tuple[int, Scenario]] = []
    for index, s in enumerate(scenarios):
        if isinstance(s, Exception):
            out[index] = s
        elif s.backend == "exhaustive":
            groups.setdefault(context_key(s), []).append((index, s))
        else:
            exact.append((index, s))
    if progress is not None and any(isinstance(s, Exception) for s in scenarios):
        progress(sum(isinstance(s, Exception) for s in scenarios))

    pool = _pool(workers) if workers > 1 and len(exact) > 1 else None
    try:
        futures: list[tuple[int, Future[Outcome]]] = []
        if pool is not None:
            futures = [(index, pool.submit(_solve_one, s)) for index, s in exact]
        for items in groups.values():
            try:
                ctx = context(items[0][1])
            except InputError as exc:
                for index, _ in items:
                    out[index] = exc
                if progress is not None:
                    progress(len(items))
                continue
            _solve_group(ctx, items, out, progress)
        if pool is None:
            for index, s in exact:
                out[index] = _solve_one(s)
                if progress is not None:
                    progress(1)
        for index, fut in futures:
            out[index] = fut.result()
            if progress is not None:
                progress(1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [o if o is not None else RuntimeError("not solved") for o in out]
