"""What the exact models (MILP and CP-SAT) share: which candidates enter the model, the named
constraint rows read from the candidate table's slack columns, the integer cost, the variable
names, the tie-break stage and the result type.

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
name, the smaller batch and the smaller offload ratio. That order is the search's, defined once
in :mod:`infersave.solver.ranking`: the caller passes every candidate's position ``P_k`` in it
(``tiebreak``, which does not involve cost or feasibility) to :func:`encode`; minimizing ``P``
among the cost-optimal candidates (:func:`tied`, the second stage) is the ranker's tie-break,
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from infersave.formulations import arrays, constraints
from infersave.formulations.candidates import GIB, CandidateTable

Prefilter = Literal["feasible", "structural", "none"]
Sense = Literal["<=", ">="]

COST_DECIMALS = 9
"""$ amounts equal to 1e-9 are the same price (float products of $/h x hours): the ranker
(:mod:`infersave.solver.ranking`) sorts by ``round(cost, COST_DECIMALS)``."""
NANO = 10**9
MAX_EXACT_COST_USD = 1e6
"""Above this cost the nano-dollar integer may not map one-to-one to ``round(cost, 9)``."""


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


def encode(
    table: CandidateTable, tiebreak: np.ndarray, prefilter: Prefilter = "structural"
) -> Encoding:
    """Select the model's candidates and compute their integer costs and tie-break positions.

    Args:
        table: the candidate table.
        tiebreak: int64 of shape ``(N,)``: every candidate's position in the search's tie-break
            order (:func:`infersave.solver.ranking.tiebreak_positions`); only the order of the
            kept candidates matters (they are renumbered densely from 0).
        prefilter: see :func:`kept_candidates`.

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
        instances=arrays.unique(inst_of),
        batches=arrays.unique(batch_of),
        levels=arrays.unique(level_of),
        cost_nano=c - base,
        base_nano=base,
        position=np.unique(np.asarray(tiebreak)[kept], return_inverse=True)[1]
        .astype(np.int64)
        .reshape(-1),
        removed=removed,
        cost_unit=unit,
    )


def _rows(enc: Encoding, integer: bool) -> list[Row]:
    """The named rows of the kept candidates, read from the table's slack columns.

    Each active constraint ``c`` (:func:`.constraints.active`) is ``value sense limit`` with
    ``value`` = :func:`.constraints.row_values` of its slack: a memory excess against 0, the
    price against P_max (one coefficient per instance, on ``y_i``), the TPS against TPS_SLO.
    ``weights_fit`` is left out when the prefilter already removed every candidate violating
    it; ``price_cap`` when there is no cap.
    """
    t, k = enc.table, enc.kept
    w = t.workload
    out: list[Row] = []
    for c in t.constraints:
        if c.name == "weights_fit" and "weights_fit" in enc.removed:
            continue
        rhs = constraints.limit(c, w)
        if not np.isfinite(rhs):  # not asked for (no cap, no such SLO): no row
            continue
        scale, margin, unit = _UNITS[c.kind][integer]
        value = constraints.row_values(c, t.slack[c.name][k], rhs)
        ok = t.ok[c.name][k]
        over: Literal["candidate", "instance"] = "candidate"
        if c.kind in ("price", "hardware"):  # per instance: at its first kept candidate
            first = np.searchsorted(enc.instance_of, enc.instances)
            value, ok, over = value[first], ok[first], "instance"
        if integer:
            lim = round(rhs * scale)
            coef = guard_int(value * scale, lim, ok, c.sense)
            out.append(Row(c.row, coef, c.sense, lim, unit, over))
        else:
            coef = guard(value * scale, rhs * scale, ok, c.sense, margin)
            out.append(Row(c.row, coef, c.sense, rhs * scale, unit, over))
    return out


_UNITS: dict[str, dict[bool, tuple[float, float, str]]] = {
    # kind: {integer: (scale from the slack's unit, guard margin, row unit)}
    "memory": {False: (1.0 / GIB, 2**-10, "GiB"), True: (1.0 / 1024.0, 1.0, "KiB")},
    "hardware": {False: (1.0, 0.5, "supported"), True: (1.0, 1.0, "supported")},
    "price": {False: (1.0, 1e-6, "$/h"), True: (1e6, 1.0, "micro-$/h")},
    "slo": {False: (1.0, 1e-4, "tokens/s"), True: (1000.0, 1.0, "milli-tokens/s")},
    "latency": {False: (1.0, 1e-9, "s"), True: (1e6, 1.0, "microseconds")},
}
"""Row units: coefficients of order 1..1e5 for the MILP (GiB, $/h, tokens/s, with the guard
margins 1 MiB, 1e-6 $/h, 1e-4 tokens/s) and integers for CP-SAT (KiB, micro-$/h,
milli-tokens/s)."""


def float_rows(enc: Encoding) -> list[Row]:
    """The named rows with float coefficients for the MILP (see :func:`_rows`, :func:`guard`)."""
    return _rows(enc, integer=False)


def int_rows(enc: Encoding) -> list[Row]:
    """The named rows with int64 coefficients for CP-SAT: each value rounded to the nearest
    unit and nudged by :func:`guard_int` so that every comparison with the (rounded) limit is
    the table's."""
    return _rows(enc, integer=True)


def empty_note(prefilter: Prefilter) -> str:
    """Why the model has no candidate left after ``prefilter`` (the solver is not called)."""
    if prefilter == "feasible":
        return "no candidate satisfies every constraint on its own; the solver was not called"
    if prefilter == "structural":
        return "no instance can hold the model weights (structural prefilter)"
    return "no candidates"


def tied(enc: Encoding, j: int) -> np.ndarray:
    """The tie-break stage's candidates: positions in ``enc.kept`` of the feasible candidates
    whose integer cost equals that of ``j``. The stage (minimize ``P`` over them) is needed only
    when there are two or more. The table decides feasibility here, which is sound because the
    model's feasible set is ``table.feasible`` (guarded rows)."""
    same = enc.cost_nano == enc.cost_nano[j]
    return np.flatnonzero(same & enc.table.feasible[enc.kept])


def _label(x: float) -> str:
    return f"{x * 100:g}".replace(".", "p")


def instance_label(table: CandidateTable, i: int) -> str:
    """Instance ``i`` as an identifier (:attr:`.candidates.InstanceArrays.labels`)."""
    return table.inst.labels[int(i)]


def candidate_name(table: CandidateTable, k: int) -> str:
    """The variable name of candidate ``k``: ``x_<instance>_bs<batch>_off<percent>`` (the
    instance label ends in ``_tp<t>`` for a tensor-parallel degree above 1)."""
    return (
        f"x_{instance_label(table, table.instance_idx[k])}_bs{int(table.batch_size[k])}"
        f"_off{_label(table.offload_ratio[k])}"
    )


@dataclass(frozen=True)
class Group:
    """One kind of indicator variable: ``y`` (instance row), ``t`` (tensor-parallel degree, when
    a degree above 1 is among the candidates), ``q`` (weight precision, when several are
    searched), ``z`` (batch size), ``w`` (offload level), with the group of each kept candidate
    and the label of a group id."""

    kind: str
    prefix: str
    of: np.ndarray

    def label(self, table: CandidateTable, g: int) -> str:
        """The name part of group ``g`` (``g5_xlarge``, ``tp4``, ``bs16``, ``off30``)."""
        if self.kind == "instance":
            return instance_label(table, g)
        if self.kind == "tensor_parallel":
            return f"tp{g}"
        if self.kind == "dtype":
            return [d for d, _ in table.inst.parts][g]
        if self.kind == "batch_size":
            return f"bs{int(table.batch_sizes[g])}"
        return f"off{_label(table.levels[g])}"


def groups(enc: Encoding, subset: np.ndarray | None = None) -> tuple[Group, ...]:
    """The indicator groups linked to the candidates ``subset`` (positions in ``enc.kept``):
    rows ``link_<kind>_<label>: sum of its x = indicator`` and ``exactly_one_<kind>``."""
    sub = np.arange(enc.kept.size) if subset is None else np.asarray(subset)
    out = [Group("instance", "y", enc.instance_of[sub])]
    tp = enc.table.inst.tp_degrees()[enc.instance_of[sub]].astype(np.int64)
    if tp.size and (tp > 1).any():  # choose a tensor-parallel degree (a row per degree)
        out.append(Group("tensor_parallel", "t", tp))
    if len(enc.table.inst.parts) > 1:  # choose a weight precision (searched: rows per dtype)
        q = enc.table.dtype_index.astype(np.int64)
        out.append(Group("dtype", "q", q[enc.kept[sub]]))
    out.append(Group("batch_size", "z", enc.batch_of[sub]))
    out.append(Group("offload_level", "w", enc.level_of[sub]))
    return tuple(out)


@dataclass(frozen=True)
class ExactResult:
    """What solving an exact model returns.

    Attributes:
        index: chosen candidate index into the table, or None.
        status: ``optimal``, ``infeasible``, ``time_limit`` (a feasible pick that is not proven
            optimal), or ``no_solution`` (time limit without any feasible pick).
        objective: billed cost in $ of the pick (stage-1 objective), or None.
        solve_seconds: wall seconds building and solving, all stages.
        note: what else the caller should know (e.g. stage 2 hit the time limit).
        variables / constraints: size of the stage-1 model.
    """

    index: int | None
    status: str
    objective: float | None
    solve_seconds: float
    note: str = ""
    variables: int = 0
    constraints: int = 0


class SolverUnavailable(RuntimeError):
    """The requested solver cannot run here (not installed, or its library fails to load)."""
