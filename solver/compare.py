"""Cross-check the exact backends against the exhaustive ranker, and the joint optimum against
the paper's heuristic, over many scenarios (``infersave compare``).

For each scenario the candidate table is built once and searched by every backend
(:data:`BACKENDS`: exhaustive, MILP with CBC, MILP with HiGHS, CP-SAT) and by the paper's
heuristic (:func:`infersave.solver.policies.paper_heuristic`: batch size 32, per instance the
minimal offload ratio of Algorithm 1, then the cheapest meeting the SLO under the cap).

Summary (:func:`summarize`):

- ``agreement_rate``: share of (scenario, exact backend) pairs whose pick has the exhaustive
  optimum's billed cost (both rounded to 9 decimals, "nothing feasible" agreeing with nothing
  feasible) and is the same configuration or one tied with it on (cost, TPS); per backend in
  ``backends[name]["agreement_rate"]``. Fallbacks to the exhaustive ranker count as
  disagreements (a fallback is a solver failure).
- ``beats_paper_heuristic``: share of the scenarios with a feasible optimum where the optimum is
  strictly cheaper than the heuristic's pick or the heuristic finds nothing.
- ``median_saving_pct``: median of ``100 x (heuristic cost - optimum cost) / heuristic cost``
  over the scenarios where the optimum is strictly cheaper and the heuristic finds something.
- ``backends[name]``: ``median_s`` and ``p95_s`` of the wall seconds of each backend's search
  (model building included; building the candidate table excluded, it is shared).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from infersave.formulations.candidates import CandidateTable
from infersave.solver import policies, ranking, registry
from infersave.solver.prepare import prepare
from infersave.solver.records import SolverInfo
from infersave.solver.scenario import InputError, Scenario

BackendRun = Callable[[CandidateTable, Scenario], tuple[int | None, SolverInfo]]


BACKENDS: dict[str, tuple[BackendRun, str | None]] = {
    "exhaustive": (registry.BACKENDS["exhaustive"], None),
    "milp-cbc": (registry.BACKENDS["milp"], "cbc"),
    "milp-highs": (registry.BACKENDS["milp"], "highs"),
    "cp": (registry.BACKENDS["cp"], None),
}
"""Compared backends: name -> (backend function, solver name to set on the scenario)."""
EXACT: tuple[str, ...] = ("milp-cbc", "milp-highs", "cp")

RANDOM_INPUT_LENS = (128, 256, 512, 1024, 2048, 4096, 8192)
RANDOM_OUTPUT_LENS = (32, 64, 128, 256, 512, 1024)
RANDOM_REQUESTS = (100, 1000, 10_000, 50_000)
RANDOM_CAPS = (1.0, 2.0, 5.0, 10.0, 20.0, 40.0, None)


def random_scenarios(n: int, seed: int, **fixed: Any) -> list[Scenario]:
    """``n`` random scenarios (numpy ``default_rng(seed)``) over the catalog's models, lengths,
    SLOs and price caps, drawn so that most are feasible and some are not.

    Models: 85% from those whose fp16 weights fit one 80 GB GPU (< 35e9 parameters; replicas are
    data parallel), 15% from all. Lengths and request counts from :data:`RANDOM_INPUT_LENS`,
    :data:`RANDOM_OUTPUT_LENS`, :data:`RANDOM_REQUESTS`; SLO log-uniform in [1, 3000] tokens/s
    (rounded to 2 significant digits); cap from :data:`RANDOM_CAPS` ($/h, None: no cap);
    billing hourly (80%) or per-second. ``fixed`` fields (e.g. region, calibration) apply to all.

    Raises:
        InputError: if ``n`` < 1.
    """
    from infersave.catalog import load as catalog

    if n < 1:
        raise InputError(f"--random: need at least 1 scenario, got {n}")
    rng = np.random.default_rng(seed)
    models = catalog.models()
    every = sorted(models)
    small = sorted(name for name, m in models.items() if m.num_parameters < 35e9)
    out = []
    for _ in range(n):
        pool = small if rng.random() < 0.85 else every
        slo = float(f"{10 ** rng.uniform(0, np.log10(3000)):.2g}")
        cap = RANDOM_CAPS[int(rng.integers(len(RANDOM_CAPS)))]
        name = pool[int(rng.integers(len(pool)))]
        lin = int(rng.choice(RANDOM_INPUT_LENS))
        lout = int(rng.choice(RANDOM_OUTPUT_LENS))
        window = models[name].max_position_embeddings
        if window is not None and lin + lout > window:  # the longest prompt that fits
            lin = max(x for x in RANDOM_INPUT_LENS if x + lout <= window)
        fields: dict[str, Any] = {
            "model": name,
            "input_len": lin,
            "output_len": lout,
            "requests": int(rng.choice(RANDOM_REQUESTS)),
            "slo_tps": slo,
            "max_price": cap,
            "billing": "hourly" if rng.random() < 0.8 else "per-second",
        }
        fields.update(fixed)
        out.append(Scenario(**fields))
    return out


def _pick(table: CandidateTable, k: int | None) -> dict[str, Any]:
    if k is None:
        return {
            "instance_type": None,
            "batch_size": None,
            "offload_ratio": None,
            "total_cost_usd": None,
            "tps": None,
        }
    inst = table.inst.instances[int(table.instance_idx[k])]
    return {
        "instance_type": inst.instance_type,
        "batch_size": int(table.batch_size[k]),
        "offload_ratio": round(float(table.offload_ratio[k]), 10),
        "total_cost_usd": float(table.total_cost_usd[k]),
        "tps": float(table.tps[k]),
    }


def _agrees(table: CandidateTable, k: int | None, ref: int | None) -> bool:
    if k is None or ref is None:
        return k is None and ref is None
    cost = np.round(table.total_cost_usd[[k, ref]], ranking.COST_DECIMALS)
    if cost[0] != cost[1]:
        return False
    return k == ref or table.tps[k] == table.tps[ref]


def compare_scenario(scenario: Scenario) -> dict[str, Any]:
    """Search one scenario's table with every backend and the paper heuristic.

    Returns a JSON-ready dict: ``scenario`` (its key fields), ``candidates``, ``feasible``
    (candidate count), one entry per backend (pick, ``total_cost_usd``, ``tps``, ``status``,
    ``solve_seconds``, ``note``, ``agrees``), ``paper_heuristic`` (pick) and ``saving_pct``.

    Raises:
        InputError: on a scenario the catalog or the models reject.
    """
    prep = prepare(scenario)
    table = prep.table
    row: dict[str, Any] = {
        "scenario": scenario.model_dump(
            include={
                "model",
                "input_len",
                "output_len",
                "requests",
                "slo_tps",
                "max_price",
                "billing",
                "region",
            }
        ),
        "candidates": len(table),
        "feasible": int(table.feasible.sum()),
    }
    picks: dict[str, int | None] = {}
    for name, (fn, solver) in BACKENDS.items():
        s = scenario.model_copy(update={"solver": solver}) if solver else scenario
        t0 = time.perf_counter()
        k, info = fn(table, s)
        wall = time.perf_counter() - t0
        picks[name] = k
        row[name] = {
            **_pick(table, k),
            "status": info.status,
            "solve_seconds": wall,
            "note": info.note,
        }
    ref = picks["exhaustive"]
    for name in EXACT:
        row[name]["agrees"] = row[name]["status"] != "fallback" and _agrees(table, picks[name], ref)
    try:
        h = policies.paper_heuristic(table)
        note = ""
    except ValueError as exc:  # batch size 32 not searched
        h, note = None, str(exc)
    row["paper_heuristic"] = {**_pick(table, h), "note": note}
    saving = None
    if ref is not None and h is not None and table.total_cost_usd[h] > 0:
        saving = 100.0 * float(
            (table.total_cost_usd[h] - table.total_cost_usd[ref]) / table.total_cost_usd[h]
        )
    row["saving_pct"] = saving
    row["beats_paper_heuristic"] = ref is not None and (
        h is None
        or round(float(table.total_cost_usd[ref]), 9) < round(float(table.total_cost_usd[h]), 9)
    )
    return row


def summarize(rows: Sequence[dict[str, Any]], errors: int = 0) -> dict[str, Any]:
    """The summary of :func:`compare_scenario` rows (see the module docstring)."""
    n = len(rows)
    per: dict[str, dict[str, Any]] = {}
    for name in BACKENDS:
        secs = np.array([r[name]["solve_seconds"] for r in rows]) if rows else np.zeros(0)
        per[name] = {
            "median_s": float(np.median(secs)) if secs.size else None,
            "p95_s": float(np.percentile(secs, 95)) if secs.size else None,
        }
        if name in EXACT:
            agree = [r[name]["agrees"] for r in rows]
            per[name]["agreement_rate"] = float(np.mean(agree)) if agree else None
            per[name]["fallbacks"] = sum(r[name]["status"] == "fallback" for r in rows)
    pairs = [r[name]["agrees"] for r in rows for name in EXACT]
    feasible = [r for r in rows if r["exhaustive"]["total_cost_usd"] is not None]
    beats = [r for r in feasible if r["beats_paper_heuristic"]]
    savings = [
        r["saving_pct"] for r in beats if r["saving_pct"] is not None and r["saving_pct"] > 0
    ]
    return {
        "scenarios": n,
        "errors": errors,
        "feasible_scenarios": len(feasible),
        "agreement_rate": float(np.mean(pairs)) if pairs else None,
        "beats_paper_heuristic": len(beats) / len(feasible) if feasible else None,
        "beats_paper_heuristic_count": len(beats),
        "paper_heuristic_infeasible": sum(
            1 for r in feasible if r["paper_heuristic"]["total_cost_usd"] is None
        ),
        "median_saving_pct": float(np.median(savings)) if savings else None,
        "backends": per,
    }


def warm_up() -> None:
    """Import the solver libraries before any timing, so the first scenario's solve times do not
    include loading PuLP, highspy and OR-Tools."""
    import highspy  # noqa: F401
    import pulp  # noqa: F401
    from ortools.sat.python import cp_model  # noqa: F401


def compare(
    scenarios: Iterable[Scenario | Exception],
    on_done: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Compare every backend on each scenario; ``{"summary": ..., "scenarios": [...]}``.

    An exception in ``scenarios`` (an unreadable workload row) or an :class:`InputError` while
    preparing a scenario becomes ``{"error": message}`` in the list and counts in
    ``summary["errors"]``. ``on_done`` is called after each scenario (progress).
    """
    rows: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    errors = 0
    warm_up()
    for s in scenarios:
        try:
            if isinstance(s, Exception):
                raise s
            r = compare_scenario(s)
            rows.append(r)
            out.append(r)
        except InputError as exc:
            errors += 1
            out.append({"error": str(exc)})
        if on_done is not None:
            on_done()
    return {"summary": summarize(rows, errors), "scenarios": out}
