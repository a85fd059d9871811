"""What the exact models (MILP and CP-SAT) share: which candidates enter the model, the named
constraint rows built from the candidate table, the integer cost and the tie-break order.

Both models read the SAME :class:`~.candidates.CandidateTable` as the exhaustive ranker and
choose one candidate ``k`` (binary ``x_k``), so each constraint of the paper is one linear row
``sum_k a_k x_k  (<= | >=)  rhs`` whose coefficient ``a_k`` is candidate ``k``'s value:

==============================  =================================================  ==========
row                             meaning (per chosen candidate)                      paper
==============================  =================================================  ==========
``weights_fit``                 weights <= usable GPU memory                        Alg. 1 l.10
``memory_feasibility``          weights + activations + (1-C_off) KV <= GPU memory  Alg. 1 l.6
``per_layer_kv``                one layer's KV <= free GPU memory (if C_off > 0)    Alg. 1 l.15
``host_memory_for_offloaded_kv`` C_off x KV <= host memory of the replica           (ours)
``price_cap``                   $/h of the chosen instance <= P_max                 Alg. 1 l.4
``tps_slo``                     CTCF-corrected TPS (Eq. 1, 4-7) >= TPS_SLO          III-A
==============================  =================================================  ==========

Because exactly one ``x_k`` is 1, each row holds exactly when the chosen candidate satisfies it.

**Guarded coefficients.** A solver accepts a row violated by up to its feasibility tolerance
(about 1e-6 to 1e-9) and CP-SAT needs integers, so the raw values are turned into coefficients
with :func:`guard`: each coefficient keeps its value, except that a candidate the table marks as
violating the constraint (``table.ok[name]`` False) is put at least ``margin`` beyond the limit,
and one the table marks as satisfying it is put no further than the limit. Then the model's
feasible set equals ``table.feasible`` (on the kept candidates) whatever the tolerance below
``margin``, and the table stays the single source of truth. Values are converted to units where
coefficients are of order 1..1e5 (GiB, tokens/s, $/h) for the MILP and to integers (KiB,
milli-tokens/s, micro-$/h) for CP-SAT.

**Cost.** The objective is the billed cost in integer nano-dollars, ``C_k = rint(cost_k x 1e9)``,
i.e. exactly ``round(cost_k, 9)`` that :func:`infersave.solver.ranking.rank` sorts by
(``COST_DECIMALS`` = 9; numpy rounds by ``rint(x * 1e9) / 1e9``). Division by 1e9 is monotone,
and for costs below $1e6 distinct integers stay distinct doubles (the spacing of doubles there is
< 1.2e-10 < 1e-9/2), so ``C_a < C_b`` if and only if ``round(cost_a, 9) < round(cost_b, 9)``:
integer costs cannot flip or create a tie of the ranker. The models subtract the smallest kept
``C_k`` (a constant) so the coefficients stay small. When some kept candidate costs $1e6 or
more (a huge task at a tiny SLO), nano-dollars are no longer exact in doubles, so ``C_k`` is
instead the dense rank of ``round(cost_k, 9)`` among the kept candidates (``cost_unit`` says
which): an order-preserving integer, equal exactly where the ranker sees a tie, so the optimum
and its ties are unchanged; only the objective's unit differs.

**Ties.** Among candidates of equal cost the ranker prefers higher TPS, then the instance type
name, the smaller batch and the smaller offload ratio. :func:`tiebreak_position` gives every
kept candidate its position ``P_k`` in that order (which does not involve cost or feasibility);
minimizing ``P`` among the cost-optimal candidates is the ranker's tie-break, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from infersave.formulations.candidates import GIB, CandidateTable, instance_name_rank

Prefilter = Literal["feasible", "structural", "none"]
Sense = Literal["<=", ">="]

COST_DECIMALS = 9
"""As :data:`infersave.solver.ranking.COST_DECIMALS` (not imported: formulations stay below
solver)."""
NANO = 10**9
MAX_EXACT_COST_USD = 1e6
"""Above this cost the nano-dollar integer may not map one-to-one to ``round(cost, 9)``."""

ROW_NAMES: dict[str, str] = {
    "weights_fit": "weights_fit",
    "memory_feasibility": "memory_feasibility",
    "per_layer_kv": "per_layer_kv",
    "host_memory": "host_memory_for_offloaded_kv",
    "tps_slo": "tps_slo",
}
"""Table constraint name -> model row name (the price cap is a row over instances)."""


def guard(
    values: np.ndarray, limit: float, ok: np.ndarray, sense: Sense, margin: float
) -> np.ndarray:
    """Coefficients whose comparison with ``limit`` agrees with ``ok``, with a safety margin.

    For ``sense="<="``: where ``ok``, ``min(value, limit)``; elsewhere ``max(value,
    limit + margin)``. For ``">="`` mirrored. Values already on the right side are unchanged,
    so only candidates within ``margin`` of the limit (or disagreeing with the table by float
    round-off) move, and never across the limit.

    Raises:
        ValueError: on an unknown ``sense``.
    """
    v = np.asarray(values, dtype=np.float64)
    if sense == "<=":
        return np.where(ok, np.minimum(v, limit), np.maximum(v, limit + margin))
    if sense == ">=":
        return np.where(ok, np.maximum(v, limit), np.minimum(v, limit - margin))
    raise ValueError(f"unknown sense {sense!r}")


def guard_int(values: np.ndarray, limit: int, ok: np.ndarray, sense: Sense) -> np.ndarray:
    """Integer version of :func:`guard` with a margin of one unit: ``rint(values)`` nudged so
    that ``coef <= limit`` (or ``>=``) holds exactly where ``ok`` does. Returns int64.

    Raises:
        ValueError: on an unknown ``sense``.
    """
    v = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
    if sense == "<=":
        return np.where(ok, np.minimum(v, limit), np.maximum(v, limit + 1))
    if sense == ">=":
        return np.where(ok, np.maximum(v, limit), np.minimum(v, limit - 1))
    raise ValueError(f"unknown sense {sense!r}")


def nano_cost(cost_usd: np.ndarray) -> np.ndarray:
    """Billed cost in integer nano-dollars, ``rint(cost x 1e9)`` (= ``round(cost, 9)`` x 1e9).

    Raises:
        ValueError: if a cost is not finite or not below :data:`MAX_EXACT_COST_USD`.
    """
    c = np.asarray(cost_usd, dtype=np.float64)
    if c.size and (not np.isfinite(c).all() or c.max() >= MAX_EXACT_COST_USD):
        raise ValueError(
            f"costs must be finite and below ${MAX_EXACT_COST_USD:g} for exact integer scaling"
        )
    return np.rint(c * NANO).astype(np.int64)


def tiebreak_position(table: CandidateTable, idx: np.ndarray) -> np.ndarray:
    """Position (0 = preferred) of each candidate of ``idx`` in the ranker's tie-break order:
    TPS descending, instance type name, batch size ascending, offload ratio ascending.
    Equal keys get equal positions. Returns int64 of shape ``idx.shape``."""
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    keys = (
        table.offload_ratio[idx],
        table.batch_size[idx],
        instance_name_rank(table.inst)[table.instance_idx[idx]],
        -table.tps[idx],
    )
    order = np.lexsort(keys)
    stacked = np.stack([k[order] for k in keys])
    new = np.ones(order.size, dtype=bool)
    new[1:] = (stacked[:, 1:] != stacked[:, :-1]).any(axis=0)
    dense = np.cumsum(new) - 1
    pos = np.empty(idx.size, dtype=np.int64)
    pos[order] = dense
    return pos


@dataclass(frozen=True)
class Row:
    """One named linear constraint ``sum_k coef_k x_k  sense  rhs`` over the kept candidates
    (or ``sum_i coef_i y_i`` over instances when ``over == "instance"``)."""

    name: str
    coef: np.ndarray
    sense: Sense
    rhs: float
    unit: str
    over: Literal["candidate", "instance"] = "candidate"


@dataclass(frozen=True)
class Encoding:
    """The data of an exact model: kept candidates and their rows, costs and tie-break order.

    Attributes:
        table: the candidate table.
        kept: indices into the table of the candidates in the model, ascending.
        instances: table instance indices present among ``kept``, ascending.
        batches / levels: the same for batch-size and offload-level indices.
        cost_nano: ``C_k - base_nano`` (int64) of the kept candidates, in ``cost_unit``.
        base_nano: the smallest kept ``C_k``.
        cost_unit: ``"nano-$"`` or ``"cost rank"`` (see the module docstring).
        position: tie-break position ``P_k`` of the kept candidates (int64).
        removed: candidates dropped by the prefilter, by reason (``weights_fit``: the instance
            cannot hold the weights; ``infeasible``: another constraint fails).
    """

    table: CandidateTable
    kept: np.ndarray
    instance_of: np.ndarray
    batch_of: np.ndarray
    level_of: np.ndarray
    instances: np.ndarray
    batches: np.ndarray
    levels: np.ndarray
    cost_nano: np.ndarray
    base_nano: int
    position: np.ndarray
    removed: dict[str, int]
    cost_unit: str = "nano-$"

    def cost_usd(self, j: int) -> float:
        """Billed cost in $ of kept candidate ``j`` (position in ``kept``), rounded as the
        ranker rounds it."""
        return float(np.round(self.table.total_cost_usd[self.kept[j]], COST_DECIMALS))


def kept_candidates(table: CandidateTable, prefilter: Prefilter = "structural") -> np.ndarray:
    """Indices of the candidates that enter the model.

    ``"feasible"`` keeps only the candidates that satisfy every constraint on their own
    (``table.feasible``), as issue #3 allows ("after removing candidates that are infeasible on
    their own, so models stay small"). The named rows stay in the model, and the guarded
    coefficients (see :func:`guard`) make each of them hold for every kept candidate, so they
    cut nothing: the model is smaller (about a third of the columns on the us-east-1 catalog)
    and the solver's work is the cost minimization and the tie-break. The optimum is unchanged
    because every dropped candidate is one the full model rejects anyway (its feasible set is
    ``table.feasible``). This is what :func:`~.milp.solve` uses by default.
    ``"structural"`` drops the candidates whose instance cannot hold the model's weights at all
    (Algorithm 1, Case 2: no batch size or offload ratio helps): whole instances leave the
    model, which keeps it small without deciding anything a constraint row is for; the other
    rows do the filtering, so a written model (``--write-model``) shows them biting.
    ``"none"`` keeps every candidate (and adds the ``weights_fit`` row instead).

    Raises:
        ValueError: on an unknown ``prefilter``.
    """
    if prefilter == "feasible":
        return np.flatnonzero(table.feasible)
    if prefilter == "structural":
        return np.flatnonzero(table.ok["weights_fit"])
    if prefilter == "none":
        return np.arange(len(table))
    raise ValueError(f"unknown prefilter {prefilter!r}; use feasible, structural or none")


def encode(table: CandidateTable, prefilter: Prefilter = "structural") -> Encoding:
    """Select the model's candidates and compute their costs and tie-break positions.

    Raises:
        ValueError: on an unknown ``prefilter`` or a cost too large for exact scaling.
    """
    kept = kept_candidates(table, prefilter)
    inst_of = table.instance_idx[kept]
    bs_index = np.searchsorted(table.batch_sizes, table.batch_size)
    lv_index = np.searchsorted(table.levels, table.offload_ratio)
    batch_of = bs_index[kept]
    level_of = lv_index[kept]
    cost = table.total_cost_usd[kept]
    try:
        c, unit = nano_cost(cost), "nano-$"
    except ValueError:  # beyond exact nano-dollars: rank of the ranker's rounded cost
        _, inv = np.unique(np.round(cost, COST_DECIMALS), return_inverse=True)
        c, unit = inv.astype(np.int64).reshape(-1), "cost rank"
    base = int(c.min()) if c.size else 0
    removed: dict[str, int] = {}
    if prefilter in ("structural", "feasible"):
        removed["weights_fit"] = int(np.count_nonzero(~table.ok["weights_fit"]))
    if prefilter == "feasible":  # failing another constraint, with the weights fitting
        removed["infeasible"] = len(table) - kept.size - removed["weights_fit"]
    return Encoding(
        table=table,
        kept=kept,
        instance_of=inst_of,
        batch_of=batch_of,
        level_of=level_of,
        instances=np.unique(inst_of),
        batches=np.unique(batch_of),
        levels=np.unique(level_of),
        cost_nano=c - base,
        base_nano=base,
        position=tiebreak_position(table, kept),
        removed=removed,
        cost_unit=unit,
    )


def _raw_rows(enc: Encoding) -> list[tuple[str, np.ndarray, str]]:
    """(table constraint name, excess value in bytes or tokens/s, kind) of the kept candidates,
    in the form ``excess <= 0`` for memory rows."""
    t, k = enc.table, enc.kept
    gmem, used = t.gpu_memory_bytes[k], t.gpu_used_bytes[k]
    rows: list[tuple[str, np.ndarray, str]] = []
    if enc.removed.get("weights_fit") is None:
        rows.append(("weights_fit", t.weights_bytes - gmem, "memory"))
    rows.append(("memory_feasibility", used - gmem, "memory"))
    if t.options.formulas == "paper":
        free = gmem - t.weights_bytes - t.activation_bytes[k]
    else:
        free = gmem - used
    layer = np.where(t.offload_ratio[k] > 0, t.kv_per_layer_bytes[k] - free, 0.0)
    rows.append(("per_layer_kv", layer, "memory"))
    if t.options.formulas != "paper":  # the paper never checks host memory
        host = t.offload_ratio[k] * t.kv_cache_bytes[k] - t.host_memory_bytes[k]
        rows.append(("host_memory", host, "memory"))
    return rows


def float_rows(enc: Encoding) -> list[Row]:
    """The named rows with float coefficients for the MILP.

    Memory rows: ``sum_k excess_k x_k <= 0`` in GiB with a 1 MiB margin; ``price_cap``:
    ``sum_i price_i y_i <= P_max`` in $/h with a 1e-6 $/h margin; ``tps_slo``:
    ``sum_k tps_k x_k >= SLO`` in tokens/s with a 1e-4 tokens/s margin (see :func:`guard`).
    """
    t, k = enc.table, enc.kept
    out: list[Row] = []
    for name, excess, _ in _raw_rows(enc):
        coef = guard(excess / GIB, 0.0, t.ok[name][k], "<=", 2**-10)
        out.append(Row(ROW_NAMES[name], coef, "<=", 0.0, "GiB"))
    if np.isfinite(t.workload.max_price):  # no cap: no row
        out.append(_price_row(enc, scale=1.0, integer=False))
    slo = float(t.workload.slo_tps)
    coef = guard(t.tps[k], slo, t.ok["tps_slo"][k], ">=", 1e-4)
    out.append(Row("tps_slo", coef, ">=", slo, "tokens/s"))
    return out


def _price_row(enc: Encoding, scale: float, integer: bool) -> Row:
    t = enc.table
    ii = enc.instances
    price = t.inst.price_per_hour[ii]
    cap = float(t.workload.max_price)
    ok = price <= cap  # the table's price_cap is this comparison, per instance
    if integer:
        lim = round(cap * scale)
        return Row(
            "price_cap",
            guard_int(price * scale, lim, ok, "<="),
            "<=",
            lim,
            "micro-$/h",
            over="instance",
        )
    return Row("price_cap", guard(price, cap, ok, "<=", 1e-6), "<=", cap, "$/h", over="instance")


def int_rows(enc: Encoding) -> list[Row]:
    """The named rows with int64 coefficients for CP-SAT: memory in KiB, price in micro-$/h,
    TPS in milli-tokens/s, each rounded to the nearest unit and nudged by :func:`guard_int` so
    that every comparison with the (rounded) limit is the table's."""
    t, k = enc.table, enc.kept
    out: list[Row] = []
    for name, excess, _ in _raw_rows(enc):
        coef = guard_int(excess / 1024.0, 0, t.ok[name][k], "<=")
        out.append(Row(ROW_NAMES[name], coef, "<=", 0, "KiB"))
    if np.isfinite(t.workload.max_price):  # no cap: no row
        out.append(_price_row(enc, scale=1e6, integer=True))
    slo = round(float(t.workload.slo_tps) * 1000)
    coef = guard_int(t.tps[k] * 1000.0, slo, t.ok["tps_slo"][k], ">=")
    out.append(Row("tps_slo", coef, ">=", slo, "milli-tokens/s"))
    return out


def empty_note(prefilter: Prefilter) -> str:
    """Why the model has no candidate left after ``prefilter`` (the solver is not called)."""
    if prefilter == "feasible":
        return "no candidate satisfies every constraint on its own; the solver was not called"
    if prefilter == "structural":
        return "no instance can hold the model weights (structural prefilter)"
    return "no candidates"
