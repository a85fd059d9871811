"""Fleet plans: how many instances of which types serve several workload classes (services),
each at its own demand and latency SLOs, under a budget, vCPU quotas and per-type counts, for
the lowest fleet cost. The exact model of ``infersave plan`` (issue 10); searched by
:mod:`infersave.solver.plan_search`.

**Lines.** A class's candidate table (:mod:`.candidates`, one per class) gives every
configuration (instance type, batch size, offload level; tensor parallelism 1, the class's
dtype). A configuration is *eligible* for a class when it fits in memory (``memory_ok``), its
instance is under the class's ``max_price`` and it meets the class's latency SLOs, applied as
named filters with today's time model:

- ``ttft_within_slo``: TTFT ~ the prefill time of one batch (``prefill_s``) <= ``ttft_slo``;
- ``tpot_within_slo``: TPOT ~ one decode step, ``decode_s / (output_len - 1)`` <= ``tpot_slo``
  (undefined for one output token: the filter then does not apply).

A *line* serves one class on one instance type with that type's eligible configuration of the
highest sustainable request rate (ties: smaller batch, then smaller offload). Keeping only that
configuration per (class, type) cannot change the optimum: every row treats the instances of
one type alike (price, vCPUs, family, count) except capacity and the per-request cost, and both
improve with the rate, so any plan using another configuration of the type is matched or beaten
by the same counts of the best one. Instances are **dedicated to one class** (one deployment
per service, with its own model, lengths and SLOs); classes never share an instance, even of
the same model (sharing would need a mixed-batch time model that today's table does not have).

**Rates (queueing assumption).** A replica serves static batches of BS requests back to back;
one batch takes ``e2e_s`` = prefill + decode, so an instance sustains
``rate = replicas x BS / e2e_s`` requests/s (= TPS / (L_in + L_out)). There is no queueing
model: latency is the batch's own prefill/decode time, a request's wait for a batch to form or
to start is not predicted; the per-class capacity headroom says how far the fleet is from
saturation, and ``max_utilisation`` < 1 (``--max-utilisation``) plans every instance below its
sustainable rate.

**Model** (units and the integer data below; ``l`` a line, ``c`` its class, ``t`` its type)::

    count_l  integer in [0, ub_l]     instances on line l (on-demand or spot)
    share_l  continuous in [0, d_c]   demand of class c served by line l
    pin_g    binary (--no-split only) class c pinned to type t (group g = (c, t))

    min  fleet_cost: sum_l cost_l count_l + sum_l work_l share_l
    s.t. serve_class_<c>:         sum_{l of c} share_l = d_c
         capacity_<l>:            share_l - cap_l count_l <= 0
         cover_class_<c>:         sum_{l of c} cap_l count_l >= d_c   (implied; gives the
                                  solver the knapsack row for its cuts; not with --no-split)
         budget:                  sum_l price_l count_l <= B                 (fleet $/h)
         quota_<family>:          sum_{l of the family} vcpus_l count_l <= Q_f
         max_count_<type>:        sum_{l of the type} count_l <= M_t
         spot_share_<g>:          (1000 - S) spot counts of g - S on-demand counts of g <= 0
         pin_class_<c>:           sum_{g of c} pin_g = 1                    (--no-split)
         pin_<g>:                 sum_{l of g} share_l - d_c pin_g <= 0      (--no-split)

**Integer data (why every backend finds the same optimum).** All coefficients are integers,
fixed here once, and the MILP (HiGHS, CBC), CP-SAT, brute force and the greedy baseline all
read them:

- online: the demand is ``d_c`` = 1,000,000, parts per million of the class's rate, and a
  line's capacity per instance ``cap = min(d_c, floor(1e6 x rate / rate_c))``, rounded down
  (the plan never counts on more than the time model predicts; the rounding gives away at most
  one millionth of the class's rate per instance). Cost and price in micro-$/h (catalog prices
  have at most 6 decimals, so this is exact).
- offline: the demand is the job's ``N`` requests; a line's capacity is the whole requests one
  instance completes before the deadline, ``floor(rate x (work seconds))``.

With integer ``cap`` and ``d``, for fixed counts a feasible (continuous) share exists iff
``sum cap_l count_l >= d_c`` over the class's lines (of its pinned group, with --no-split), and
then also an integer one (fill the lines in turn). So the MILP with continuous shares, CP-SAT
with integer shares and the brute force's test ``sum cap x count >= d`` accept exactly the same
count vectors, with the same integer cost: the optima are equal, not just close. Counts are
bounded by ``ub_l = min(ceil(d_c / cap_l), M_t)``: a line holding more instances than it needs
alone to serve its class can drop to ``ceil(d_c / cap_l)`` (dropping the class's spot
instances too keeps every row), so the bound removes no optimum and no feasibility.

**Spot.** With ``spot_share > 0`` each (class, type) whose instance has a spot price gets a spot
line: price and cost at the spot price, capacity ``floor(... x (1 - interruption))`` (the
share of spot capacity that may be lost at any time, which the rest must still cover), at most
``spot_share`` of the group's instances (``spot_share_<g>``, in per mille). Spot instances
count against the family's spot quota (``G-spot``, ``P-spot``: AWS's separate "All G and VT
Spot Instance Requests", "All P Spot Instance Requests" vCPU quotas).

**Offline jobs** (``mode="offline"``): class c is a job of ``N_c`` requests run at each
configuration's full throughput (not paced at an SLO), finished before ``deadline_h``; every
instance starts after ``startup_s`` (billed, not working) and is billed on its own.

- ``billing="per-second"``: an instance that works ``w`` seconds is billed
  ``startup + w`` seconds at least 60 s; the model charges ``max(60, startup) + w``, which
  equals it when the start-up is at least 60 s (and overstates by under 60 s otherwise). That
  is linear: ``cost_l`` = price x max(60 s, startup) per instance and ``work_l`` = price /
  (3600 x rate) per request, both in integer nano-$ (rounded to the nearest nano-$ once, here).
  Capacity: ``floor(rate x (3600 x deadline - startup))`` requests per instance.
- ``billing="hourly"``: each (class, type) has one line per billed hour count ``h`` = 1 ..
  ceil(deadline): an instance billed ``h`` hours works ``3600 x min(h, deadline) - startup``
  seconds; ``cost_l`` = h x price (nano-$), ``work_l`` = 0.

The budget row always bounds the fleet's $/h (the sum of the running instances' prices); the
offline objective is the job's billed $.

**Quota families** (AWS EC2 on-demand vCPU quotas, per account and region; see
:data:`FAMILIES`): ``G`` = "Running On-Demand G and VT instances" (types ``g*``, ``vt*``),
``P`` = "Running On-Demand P instances" (``p*``), ``Inf``, ``Trn``, ``DL``, ``F``, ``X`` and
``Standard`` (A, C, D, H, I, M, R, T, Z). A quota applies in each region of the plan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from infersave.catalog.schemas import Instance
from infersave.formulations import arrays
from infersave.formulations.candidates import CandidateTable

Mode = Literal["online", "offline"]

PPM = 1_000_000
"""Online demand unit: parts per million of a class's request rate."""
MICRO = 10**6
NANO = 10**9
PER_MILLE = 1000

FAMILIES: tuple[tuple[str, str, str], ...] = (
    # (family, AWS quota name, instance-type prefixes (regex on the part before the dot))
    ("G", "Running On-Demand G and VT instances", r"^(g|vt)"),
    ("P", "Running On-Demand P instances", r"^p"),
    ("Inf", "Running On-Demand Inf instances", r"^inf"),
    ("Trn", "Running On-Demand Trn instances", r"^trn"),
    ("DL", "Running On-Demand DL instances", r"^dl"),
    ("F", "Running On-Demand F instances", r"^f"),
    ("X", "Running On-Demand X instances", r"^x"),
    ("Standard", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", r"^."),
)
"""AWS EC2 vCPU quota families, first match wins (source: the Amazon EC2 User Guide, "Amazon
EC2 service quotas" and "Spot Instance quotas"). Spot instances count against the family's
spot quota, named ``<family>-spot`` here ("All G and VT Spot Instance Requests", ...)."""


def family_of(instance_type: str, spot: bool = False) -> str:
    """The vCPU quota family of an AWS instance type (``g6.xlarge`` -> ``G``; on spot
    ``G-spot``)."""
    prefix = instance_type.split(".", 1)[0].lower()
    for fam, _, pattern in FAMILIES:
        if re.match(pattern, prefix):
            return f"{fam}-spot" if spot else fam
    return "Standard-spot" if spot else "Standard"  # pragma: no cover - "^." matches all


def ident(text: str) -> str:
    """``text`` as an identifier part of a row or variable name (``g6.xlarge`` ->
    ``g6_xlarge``)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_") or "x"


@dataclass(frozen=True)
class ClassSpec:
    """One workload class as the model sees it (the solver layer builds it from the input).

    Attributes:
        name: the class's name (``chat``).
        demand: online: requests/s to serve; offline: requests in the job.
        ttft_slo / tpot_slo: seconds, or None.
        max_price: $/h cap per instance, or None.
        instances: instance types allowed (empty: all of the table).
    """

    name: str
    demand: float
    ttft_slo: float | None = None
    tpot_slo: float | None = None
    max_price: float | None = None
    instances: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlanParams:
    """Plan-wide options in the user's units.

    Attributes:
        mode: ``online`` (serve rates) or ``offline`` (finish jobs by the deadline).
        deadline_h / startup_s / billing: offline job timing and billing.
        budget: fleet $/h cap, or None.
        quotas: vCPUs per family (``G``, ``P``, ``G-spot``, ...).
        max_count: instances per type (all classes together), or None; ``max_count_by_type``
            overrides it for named types.
        split: a class may be served by several types (False: ``--no-split``).
        spot_share: at most this share of each (class, type)'s instances on spot (0: none).
        spot_interruption: share of spot capacity that may be lost at any time.
        max_utilisation: online, the share of each instance's sustainable rate the plan may
            use (below 1 leaves room for the queueing the model does not predict).
    """

    mode: Mode = "online"
    deadline_h: float | None = None
    startup_s: float = 0.0
    billing: Literal["hourly", "per-second"] = "hourly"
    budget: float | None = None
    quotas: Mapping[str, int] = field(default_factory=dict)
    max_count: int | None = None
    max_count_by_type: Mapping[str, int] = field(default_factory=dict)
    split: bool = True
    spot_share: float = 0.0
    spot_interruption: float = 0.1
    max_utilisation: float = 1.0


@dataclass(frozen=True)
class LineInfo:
    """What a line is, for reports (the solvers read only :class:`FleetData`'s arrays)."""

    cls: int
    type_index: int
    instance: Instance
    candidate: int  # index in the class's candidate table
    tensor_parallel: int
    dtype: str
    batch_size: int
    offload_ratio: float
    prefill_s: float
    decode_s: float
    e2e_s: float
    tpot_s: float | None
    rate_rps: float  # requests/s one instance sustains (nominal, before spot interruption)
    spot: bool
    hours: int  # offline hourly: billed hours per instance; else 0
    price_per_hour: float  # $/h of one instance (spot price on spot lines)
    work_s: float  # offline: seconds one instance may work; online: 0


@dataclass(frozen=True)
class FleetData:
    """The plan model's data: classes, types, lines (all integer), and the coupling limits.

    Lines are sorted by class, then type, then hours, on-demand before spot. Arrays have shape
    ``(L,)`` (lines), ``(T,)`` (types), ``(G,)`` (groups = (class, type)), ``(C,)`` (classes).
    """

    params: PlanParams
    class_names: tuple[str, ...]
    class_labels: tuple[str, ...]  # identifiers for names
    demand: np.ndarray  # (C,) int64
    demand_unit: str
    type_keys: tuple[tuple[str, str], ...]  # (region, instance_type)
    type_labels: tuple[str, ...]
    type_vcpus: np.ndarray  # (T,) int64
    type_max: np.ndarray  # (T,) int64, -1: no limit
    line_class: np.ndarray
    line_type: np.ndarray
    line_group: np.ndarray
    line_spot: np.ndarray  # bool
    line_hours: np.ndarray
    line_cap: np.ndarray  # int64 demand units per instance
    line_cost: np.ndarray  # int64 objective units per instance
    line_work: np.ndarray  # int64 objective units per demand unit
    line_price: np.ndarray  # int64 micro-$/h per instance (budget)
    line_family: tuple[str, ...]  # quota family (region-qualified when several regions)
    group_class: np.ndarray
    group_type: np.ndarray
    info: tuple[LineInfo, ...]
    budget: int | None  # micro-$/h
    quotas: Mapping[str, int]  # family (as in line_family) -> vCPUs
    cost_unit: str  # "micro-$/h" or "nano-$"
    cost_scale: int  # objective units per $ (or $/h)
    split: bool
    spot_share_pm: int  # per mille
    projected: bool = False  # shares eliminated (see :func:`projected`)

    @property
    def num_lines(self) -> int:
        return int(self.line_class.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_groups(self) -> int:
        return int(self.group_class.size)

    @property
    def upper(self) -> np.ndarray:
        """``ub_l = min(ceil(d_c / cap_l), M_t)`` (int64; see the module docstring)."""
        need = -(-self.demand[self.line_class] // np.maximum(self.line_cap, 1))
        lim = self.type_max[self.line_type]
        return np.where(lim >= 0, np.minimum(need, lim), need).astype(np.int64)

    def relaxed(self, what: str) -> FleetData:
        """This model without ``budget``, ``quota:<family>``, ``quotas``, ``max_count`` or
        ``no_split`` (for naming the binding constraint of an infeasible plan)."""
        if what == "budget":
            return replace(self, budget=None)
        if what == "quotas":
            return replace(self, quotas={})
        if what.startswith("quota:"):
            fam = what.split(":", 1)[1]
            return replace(self, quotas={k: v for k, v in self.quotas.items() if k != fam})
        if what == "max_count":
            return replace(self, type_max=np.full_like(self.type_max, -1))
        if what == "no_split":
            return replace(self, split=True)
        raise ValueError(f"unknown relaxation {what!r}")

    def line_name(self, line: int) -> str:
        """``<class>_<type>[_tp<t>]_bs<batch>_off<percent>[_h<hours>][_spot]``."""
        i = self.info[line]
        tp = f"_tp{i.tensor_parallel}" if i.tensor_parallel > 1 else ""
        base = (
            f"{self.class_labels[int(self.line_class[line])]}_"
            f"{self.type_labels[int(self.line_type[line])]}{tp}_bs{i.batch_size}"
            f"_off{round(i.offload_ratio * 100):d}"
        )
        if i.hours:
            base += f"_h{i.hours}"
        return base + ("_spot" if i.spot else "")

    def group_name(self, g: int) -> str:
        return (
            f"{self.class_labels[int(self.group_class[g])]}_"
            f"{self.type_labels[int(self.group_type[g])]}"
        )


# -- from candidate tables to lines ---------------------------------------------------------


def latency_filters(table: CandidateTable, spec: ClassSpec) -> dict[str, np.ndarray]:
    """The class's named eligibility filters over its candidate table (True: passes)."""
    out: dict[str, np.ndarray] = {"memory": table.memory_ok}
    if spec.max_price is not None:
        out["price_cap"] = table.price_per_hour <= spec.max_price
    if spec.instances:
        names = np.array([i.instance_type for i in table.inst.instances], dtype=object)
        allowed = np.isin(names, sorted(spec.instances))
        out["instances"] = allowed[table.instance_idx]
    if spec.ttft_slo is not None:
        out["ttft_within_slo"] = table.prefill_s <= spec.ttft_slo
    lout = table.workload.output_len
    if spec.tpot_slo is not None and lout > 1:
        out["tpot_within_slo"] = table.decode_s / (lout - 1) <= spec.tpot_slo
    return out


def best_per_type(table: CandidateTable, eligible: np.ndarray) -> dict[int, int]:
    """Per instance of the table (over its rows at every tensor-parallel degree), its eligible
    candidate of the highest request rate (ties: smaller TP degree, smaller batch, then smaller
    offload: the table's order), keyed by that candidate's instance row."""
    rate = table.tps / float(table.workload.input_len + table.workload.output_len)
    k = np.flatnonzero(eligible)
    if k.size == 0:
        return {}
    # sort by instance, rate descending, then table order (TP, batch, offload ascending)
    physical = table.inst.instance_of_row()[table.instance_idx[k]]
    order = np.lexsort((k, -rate[k], physical))
    ks = k[order]
    inst = physical[order]
    first = np.flatnonzero(np.r_[True, inst[1:] != inst[:-1]])
    return {int(table.instance_idx[ks[f]]): int(ks[f]) for f in first}


def _capacity_units(
    params: PlanParams, rate: float, demand: float, hours: int
) -> tuple[int, float]:
    """(capacity per instance in demand units, seconds it works) for one line."""
    if params.mode == "online":
        return min(PPM, math.floor(PPM * rate * params.max_utilisation / demand)), 0.0
    assert params.deadline_h is not None
    limit_s = 3600.0 * params.deadline_h
    if hours:
        limit_s = min(3600.0 * hours, limit_s)
    work = limit_s - params.startup_s
    if work <= 0:
        return 0, 0.0
    return min(int(demand), math.floor(rate * work)), work


@dataclass(frozen=True)
class Offer:
    """One class's best configuration on one instance type (before spot and hour variants)."""

    cls: int
    instance: Instance
    rate_rps: float
    candidate: int = -1
    tensor_parallel: int = 1
    dtype: str = ""
    batch_size: int = 1
    offload_ratio: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    e2e_s: float = 0.0
    tpot_s: float | None = None


def offers_from_table(c: int, table: CandidateTable, eligible: np.ndarray) -> list[Offer]:
    """Class ``c``'s offers: per instance type, its best eligible configuration."""
    best = best_per_type(table, eligible)
    lin, lout = table.workload.input_len, table.workload.output_len
    out = []
    for i, k in best.items():
        out.append(
            Offer(
                cls=c,
                instance=table.inst.instances[i],
                rate_rps=float(table.tps[k]) / (lin + lout),
                candidate=k,
                tensor_parallel=int(table.tensor_parallel[k]),
                dtype=table.inst.dtype_of_rows(table.options)[i],
                batch_size=int(table.batch_size[k]),
                offload_ratio=float(table.offload_ratio[k]),
                prefill_s=float(table.prefill_s[k]),
                decode_s=float(table.decode_s[k]),
                e2e_s=float(table.e2e_s[k]),
                tpot_s=float(table.decode_s[k]) / (lout - 1) if lout > 1 else None,
            )
        )
    return out


def build(
    params: PlanParams,
    specs: Sequence[ClassSpec],
    tables: Sequence[CandidateTable],
) -> tuple[FleetData, list[dict[str, np.ndarray]]]:
    """The model's data from one candidate table per class. Returns the data and, per class,
    its eligibility filters (for explaining a class no line can serve).

    Raises:
        ValueError: offline mode without a deadline, or no classes.
    """
    filters_out: list[dict[str, np.ndarray]] = []
    offers: list[Offer] = []
    for c, (spec, table) in enumerate(zip(specs, tables, strict=True)):
        filters = latency_filters(table, spec)
        filters_out.append(filters)
        eligible = np.logical_and.reduce(list(filters.values()))
        offers.extend(offers_from_table(c, table, eligible))
    return assemble(params, specs, offers), filters_out


def assemble(params: PlanParams, specs: Sequence[ClassSpec], offers: Sequence[Offer]) -> FleetData:
    """The model's data from the classes and their offers (lines: one per offer, plus its
    spot twin and, offline with hourly billing, one per billed hour count).

    Raises:
        ValueError: offline mode without a deadline, or no classes.
    """
    if not specs:
        raise ValueError("a plan needs at least one class")
    if params.mode == "offline" and (params.deadline_h is None or params.deadline_h <= 0):
        raise ValueError("offline plans need a deadline in hours")
    online = params.mode == "online"
    scale = MICRO if online else NANO
    regions = sorted({o.instance.region for o in offers})
    multi_region = len(regions) > 1
    type_index: dict[tuple[str, str], int] = {}
    type_inst: list[Instance] = []
    rows: list[tuple] = []
    info: list[LineInfo] = []
    spot_on = params.spot_share > 0
    interrupt = params.spot_interruption
    if params.mode == "offline" and params.billing == "hourly":
        assert params.deadline_h is not None
        hour_options = list(range(1, math.ceil(params.deadline_h - 1e-9) + 1))
    else:
        hour_options = [0]
    ordered = sorted(offers, key=lambda o: (o.cls, o.instance.instance_type, o.instance.region))
    for o in ordered:
        inst = o.instance
        spec = specs[o.cls]
        key = (inst.region, inst.instance_type)
        if key not in type_index:
            type_index[key] = len(type_inst)
            type_inst.append(inst)
        t = type_index[key]
        variants = [(False, inst.on_demand_per_hour)]
        if spot_on and inst.spot_per_hour is not None:
            variants.append((True, inst.spot_per_hour))
        for spot, price in variants:
            if price is None:
                continue
            eff = o.rate_rps * (1.0 - interrupt) if spot else o.rate_rps
            for h in hour_options:
                cap, work_s = _capacity_units(params, eff, spec.demand, h)
                if cap <= 0:
                    continue
                if online:
                    cost, work = round(price * MICRO), 0
                elif h:
                    cost, work = h * round(price * NANO), 0
                else:
                    cost = round(price * max(60.0, params.startup_s) / 3600.0 * NANO)
                    work = round(price / (3600.0 * eff) * NANO)
                rows.append((o.cls, t, h, spot, cap, cost, work, round(price * MICRO)))
                info.append(
                    LineInfo(
                        cls=o.cls,
                        type_index=t,
                        instance=inst,
                        candidate=o.candidate,
                        tensor_parallel=o.tensor_parallel,
                        dtype=o.dtype,
                        batch_size=o.batch_size,
                        offload_ratio=o.offload_ratio,
                        prefill_s=o.prefill_s,
                        decode_s=o.decode_s,
                        e2e_s=o.e2e_s,
                        tpot_s=o.tpot_s,
                        rate_rps=o.rate_rps,
                        spot=spot,
                        hours=h,
                        price_per_hour=float(price),
                        work_s=work_s,
                    )
                )
    n_t = len(type_inst)
    labels = []
    for inst in type_inst:
        lab = ident(inst.instance_type)
        labels.append(f"{lab}_{ident(inst.region)}" if multi_region else lab)
    by_type = {ident(k).lower(): v for k, v in params.max_count_by_type.items()}
    type_max = np.full(n_t, -1 if params.max_count is None else params.max_count, dtype=np.int64)
    for t, inst in enumerate(type_inst):
        m = by_type.get(ident(inst.instance_type).lower())
        if m is not None:
            type_max[t] = m
    arr = np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)
    ints = np.array([r[4:] for r in rows], dtype=np.int64).reshape(-1, 4)
    line_class, line_type = arr[:, 0], arr[:, 1]
    pairs = line_class * max(n_t, 1) + line_type
    uniq, group = np.unique(pairs, return_inverse=True)
    group = group.reshape(-1).astype(np.int64)
    fam = []
    for r in rows:
        inst = type_inst[r[1]]
        f = family_of(inst.instance_type, bool(r[3]))
        fam.append(f"{f}@{inst.region}" if multi_region else f)
    quotas: dict[str, int] = {}
    for f, q in params.quotas.items():
        if multi_region:
            for reg in regions:
                quotas[f"{f}@{reg}"] = int(q)
        else:
            quotas[f] = int(q)
    demand_units = np.array([PPM if online else math.ceil(s.demand) for s in specs], dtype=np.int64)
    return FleetData(
        params=params,
        class_names=tuple(s.name for s in specs),
        class_labels=_unique_labels([ident(s.name) for s in specs]),
        demand=demand_units,
        demand_unit="ppm of the class's rate" if online else "requests",
        type_keys=tuple(type_index),
        type_labels=tuple(labels),
        type_vcpus=np.array([i.vcpus for i in type_inst], dtype=np.int64),
        type_max=type_max,
        line_class=line_class.copy(),
        line_type=line_type.copy(),
        line_group=group,
        line_spot=arr[:, 3].astype(bool),
        line_hours=arr[:, 2].copy(),
        line_cap=ints[:, 0].copy(),
        line_cost=ints[:, 1].copy(),
        line_work=ints[:, 2].copy(),
        line_price=ints[:, 3].copy(),
        line_family=tuple(fam),
        group_class=(uniq // max(n_t, 1)).astype(np.int64),
        group_type=(uniq % max(n_t, 1)).astype(np.int64),
        info=tuple(info),
        budget=None if params.budget is None else math.floor(params.budget * MICRO + 1e-6),
        quotas=quotas,
        cost_unit="micro-$/h" if online else "nano-$",
        cost_scale=scale,
        split=params.split,
        spot_share_pm=round(params.spot_share * PER_MILLE) if spot_on else 0,
    )


def _unique_labels(labels: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        n = seen.get(lab, 0)
        seen[lab] = n + 1
        out.append(lab if n == 0 else f"{lab}_{n + 1}")
    return tuple(out)


# -- the model as named rows ----------------------------------------------------------------


@dataclass(frozen=True)
class FleetRow:
    """One named row ``lower <= sum coef x var <= upper`` (None: unbounded side) over the
    model's columns (see :func:`columns_layout`)."""

    name: str
    cols: np.ndarray  # int64 column indices
    coefs: np.ndarray  # int64
    lower: int | None
    upper: int | None


@dataclass(frozen=True)
class Layout:
    """Column layout: ``count`` columns ``[0, L)``, ``share`` columns ``[L, 2L)`` (none in the
    projected model), then one ``pin`` column per group when classes are pinned (--no-split)."""

    n_lines: int
    n_pins: int
    n_shares: int

    @property
    def num_cols(self) -> int:
        return self.n_lines + self.n_shares + self.n_pins

    def count(self, line: np.ndarray | int) -> np.ndarray | int:
        return line

    def share(self, line: np.ndarray | int) -> np.ndarray | int:
        return self.n_lines + line

    def pin(self, group: np.ndarray | int) -> np.ndarray | int:
        return self.n_lines + self.n_shares + group


def layout(data: FleetData) -> Layout:
    n = data.num_lines
    return Layout(n, 0 if data.split else data.num_groups, 0 if data.projected else n)


def projected(data: FleetData) -> FleetData | None:
    """The same model with the share columns eliminated, when that is exact, else None.

    For fixed counts, shares meeting ``serve_class`` and ``capacity`` exist iff
    ``sum_l cap_l count_l >= d_c`` over the class's lines (over its pinned group with
    --no-split): Fourier-Motzkin elimination of the shares. When no line has a per-request
    cost (online, or offline with hourly billing) the objective does not involve the shares
    either, so the projected model (``serve_class_<c>: sum cap x count >= d``, or
    ``pin_<g>: sum_{l of g} cap x count - d x pin_g >= 0``) has the same feasible counts and
    the same objective; its branch and bound works on the knapsack rows directly (ten times
    faster on 20 coupled classes). The shares are then the cheapest exact ones
    (:func:`allocate`). :func:`write_model` writes the full model.
    """
    if data.projected or (data.line_work != 0).any():
        return data if data.projected else None
    return replace(data, projected=True)


def variable_names(data: FleetData) -> list[str]:
    """``count_<line>``, ``share_<line>``, ``pin_<class>_<type>``, in column order."""
    lines = [data.line_name(j) for j in range(data.num_lines)]
    names = [f"count_{n}" for n in lines]
    if not data.projected:
        names += [f"share_{n}" for n in lines]
    if not data.split:
        names += [f"pin_{data.group_name(g)}" for g in range(data.num_groups)]
    return names


def bounds(data: FleetData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, integer) per column: counts ``[0, ub]`` integer, shares ``[0, d_c]``
    continuous, pins binary."""
    lay = layout(data)
    lo = np.zeros(lay.num_cols, dtype=np.int64)
    shares = data.demand[data.line_class][: lay.n_shares]
    hi = np.concatenate([data.upper, shares, np.ones(lay.n_pins, dtype=np.int64)])
    integer = np.concatenate(
        [
            np.ones(data.num_lines, dtype=bool),
            np.zeros(lay.n_shares, dtype=bool),
            np.ones(lay.n_pins, dtype=bool),
        ]
    )
    return lo, hi, integer


def objective(data: FleetData) -> np.ndarray:
    """``fleet_cost`` coefficients per column (int64, in ``data.cost_unit``)."""
    lay = layout(data)
    return np.concatenate(
        [data.line_cost, data.line_work[: lay.n_shares], np.zeros(lay.n_pins, dtype=np.int64)]
    )


def rows(data: FleetData) -> list[FleetRow]:
    """The named rows of the model (see the module docstring), built with numpy."""
    lay = layout(data)
    n = data.num_lines
    lines = np.arange(n, dtype=np.int64)
    out: list[FleetRow] = []
    one = np.ones(n, dtype=np.int64)
    for c in range(data.num_classes):
        sel = lines[data.line_class == c]
        if data.projected and data.split:  # the shares eliminated: capacity covers demand
            out.append(
                FleetRow(
                    f"serve_class_{data.class_labels[c]}",
                    np.asarray(lay.count(sel)),
                    data.line_cap[sel].copy(),
                    int(data.demand[c]),
                    None,
                )
            )
        elif not data.projected:
            out.append(
                FleetRow(
                    f"serve_class_{data.class_labels[c]}",
                    np.asarray(lay.share(sel)),
                    one[: sel.size],
                    int(data.demand[c]),
                    int(data.demand[c]),
                )
            )
    for c in range(data.num_classes):  # implied by serve + capacity; the knapsack for cuts
        if not data.split or data.projected:
            break
        sel = lines[data.line_class == c]
        out.append(
            FleetRow(
                f"cover_class_{data.class_labels[c]}",
                np.asarray(lay.count(sel)),
                data.line_cap[sel].copy(),
                int(data.demand[c]),
                None,
            )
        )
    for j in range(0 if data.projected else n):
        out.append(
            FleetRow(
                f"capacity_{data.line_name(j)}",
                np.array([lay.share(j), lay.count(j)], dtype=np.int64),
                np.array([1, -int(data.line_cap[j])], dtype=np.int64),
                None,
                0,
            )
        )
    if data.budget is not None:
        out.append(FleetRow("budget", lines.copy(), data.line_price.copy(), None, data.budget))
    fam = np.array(data.line_family, dtype=object)
    vcpu = data.type_vcpus[data.line_type]
    for f in sorted(data.quotas):
        sel = lines[fam == f] if n else lines
        if sel.size:
            out.append(FleetRow(f"quota_{ident(f)}", sel, vcpu[sel], None, int(data.quotas[f])))
    for t in range(len(data.type_keys)):
        if data.type_max[t] < 0:
            continue
        sel = lines[data.line_type == t]
        if sel.size == 0:
            continue
        out.append(
            FleetRow(
                f"max_count_{data.type_labels[t]}",
                sel,
                one[: sel.size],
                None,
                int(data.type_max[t]),
            )
        )
    if data.spot_share_pm > 0:
        s = data.spot_share_pm
        for g in range(data.num_groups):
            sel = lines[data.line_group == g]
            if not data.line_spot[sel].any() or s >= PER_MILLE:
                continue
            coef = np.where(data.line_spot[sel], PER_MILLE - s, -s).astype(np.int64)
            out.append(FleetRow(f"spot_share_{data.group_name(g)}", sel, coef, None, 0))
    if not data.split:
        for c in range(data.num_classes):
            gs = np.flatnonzero(data.group_class == c)
            out.append(
                FleetRow(
                    f"pin_class_{data.class_labels[c]}",
                    np.asarray(lay.pin(gs)),
                    np.ones(gs.size, dtype=np.int64),
                    1,
                    1,
                )
            )
        for g in range(data.num_groups):
            sel = lines[data.line_group == g]
            c = int(data.group_class[g])
            if data.projected:
                out.append(
                    FleetRow(
                        f"pin_{data.group_name(g)}",
                        np.concatenate([sel, [lay.pin(g)]]).astype(np.int64),
                        np.concatenate([data.line_cap[sel], [-int(data.demand[c])]]).astype(
                            np.int64
                        ),
                        0,
                        None,
                    )
                )
                continue
            out.append(
                FleetRow(
                    f"pin_{data.group_name(g)}",
                    np.concatenate([np.asarray(lay.share(sel)), [lay.pin(g)]]).astype(np.int64),
                    np.concatenate([np.ones(sel.size), [-int(data.demand[c])]]).astype(np.int64),
                    None,
                    0,
                )
            )
    return out


@dataclass(frozen=True)
class FleetColumns:
    """The model as column-wise (CSC) arrays for HiGHS: float copies of the integer data."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray  # uint8/int32: 1 integer
    row_lower: np.ndarray
    row_upper: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray
    row_names: tuple[str, ...]
    col_names: tuple[str, ...]


def columns(data: FleetData, names: bool = False) -> FleetColumns:
    """:func:`rows` as CSC arrays (no Python loop per nonzero)."""
    rs = rows(data)
    lo, hi, integer = bounds(data)
    n_col = lo.size
    r_idx = np.concatenate(
        [np.full(r.cols.size, i, dtype=np.int64) for i, r in enumerate(rs)] or [np.zeros(0)]
    ).astype(np.int64)
    c_idx = np.concatenate([r.cols for r in rs] or [np.zeros(0)]).astype(np.int64)
    vals = np.concatenate([r.coefs for r in rs] or [np.zeros(0)]).astype(np.float64)
    keep = vals != 0
    r_idx, c_idx, vals = r_idx[keep], c_idx[keep], vals[keep]
    order = np.lexsort((r_idx, c_idx))
    r_idx, c_idx, vals = r_idx[order], c_idx[order], vals[order]
    counts = np.bincount(c_idx, minlength=n_col)
    start = np.zeros(n_col + 1, dtype=np.int32)
    np.cumsum(counts, out=start[1:])
    return FleetColumns(
        cost=objective(data).astype(np.float64),
        col_lower=lo.astype(np.float64),
        col_upper=hi.astype(np.float64),
        integrality=integer.astype(np.uint8),
        row_lower=np.array([-np.inf if r.lower is None else r.lower for r in rs], dtype=float),
        row_upper=np.array([np.inf if r.upper is None else r.upper for r in rs], dtype=float),
        start=start,
        index=r_idx.astype(np.int32),
        value=vals,
        row_names=tuple(r.name for r in rs),
        col_names=tuple(variable_names(data)) if names else (),
    )


def build_pulp(data: FleetData):
    """The model as a PuLP problem with named variables and rows (CBC, ``--write-model``).

    Raises:
        ImportError: PuLP is not installed.
    """
    import pulp

    unit = "micro_usd_per_h" if data.cost_unit == "micro-$/h" else "nano_usd"
    prob = pulp.LpProblem(f"infersave_fleet_plan_cost_in_{unit}", pulp.LpMinimize)
    lo, hi, integer = bounds(data)
    names = variable_names(data)
    xs = [
        prob.add_variable(
            name, int(lo[j]), int(hi[j]), cat=pulp.LpInteger if integer[j] else pulp.LpContinuous
        )
        for j, name in enumerate(names)
    ]
    obj = objective(data)
    prob += (
        pulp.LpAffineExpression([(xs[j], int(a)) for j, a in enumerate(obj) if a != 0]),
        "fleet_cost",
    )
    for r in rows(data):
        expr = pulp.LpAffineExpression(
            [(xs[int(c)], int(a)) for c, a in zip(r.cols, r.coefs, strict=True) if a != 0]
        )
        if r.lower is not None and r.upper is not None and r.lower == r.upper:
            prob += expr == r.lower, r.name
        elif r.upper is not None:
            prob += expr <= r.upper, r.name
        elif r.lower is not None:
            prob += expr >= r.lower, r.name
    return prob, xs


class CpFleet:
    """The same model for CP-SAT: the same integer data; shares are integer demand units
    (ppm of the rate online, requests offline), which by the argument in the module docstring
    accepts exactly the count vectors the MILP accepts, so the optimum is the same integer.

    Raises (on construction):
        ImportError: OR-Tools is not installed.
    """

    def __init__(self, data: FleetData) -> None:
        from ortools.sat.python import cp_model

        m = cp_model.CpModel()
        m.name = "infersave_fleet_plan"
        lo, hi, _ = bounds(data)
        names = variable_names(data)
        self.vars = [m.new_int_var(int(lo[j]), int(hi[j]), names[j]) for j in range(lo.size)]
        for r in rows(data):
            expr = cp_model.LinearExpr.weighted_sum(
                [self.vars[int(c)] for c in r.cols], [int(a) for a in r.coefs]
            )
            if r.lower is not None and r.upper is not None and r.lower == r.upper:
                ct = m.add(expr == r.lower)
            elif r.upper is not None:
                ct = m.add(expr <= r.upper)
            else:
                ct = m.add(expr >= r.lower)
            ct.with_name(r.name)
        obj = objective(data)
        m.minimize(cp_model.LinearExpr.weighted_sum(self.vars, [int(a) for a in obj]))
        self.model = m
        self.data = data


def write_model(data: FleetData, path: str, backend: str = "milp") -> None:
    """Write the model: LP (or MPS for ``.mps``) through PuLP, or the CP-SAT proto as text
    (``backend="cp"``).

    Raises:
        OSError: the file cannot be written.
    """
    data = replace(data, projected=False)
    if backend == "cp":
        text = str(CpFleet(data).model.proto)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    prob, _ = build_pulp(data)
    if str(path).lower().endswith(".mps"):
        prob.writeMPS(str(path))
    else:
        prob.writeLP(str(path))


# -- exact reductions (used by the exact backends; brute force reads the full model) ---------


def dominated(data: FleetData) -> np.ndarray:
    """Lines that another line of the same class dominates (bool per line): dropping them
    cannot change the optimum's cost or feasibility.

    Line ``a`` dominates line ``b`` when replacing every instance of ``b`` by one of ``a``
    keeps every row and costs no more: capacity ``cap_a >= cap_b``; cost, work cost and price
    no higher; ``a``'s quota family either has no quota or is ``b``'s with no more vCPUs per
    instance; ``a``'s type has no max count (or is ``b``'s type); neither is spot and ``b``'s
    (class, type) has no spot line (its spot share row would tighten); with --no-split, both
    are alone in their (class, type) or share it. Of two identical lines the later is dropped.
    """
    n = data.num_lines
    out = np.zeros(n, dtype=bool)
    fam = np.array(data.line_family, dtype=object)
    has_quota = np.array([f in data.quotas for f in data.line_family], dtype=bool)
    vcpu = data.type_vcpus[data.line_type]
    limited = data.type_max[data.line_type] >= 0
    spot_group = np.zeros(data.num_groups, dtype=bool)
    spot_group[data.line_group[data.line_spot]] = True
    group_size = np.bincount(data.line_group, minlength=data.num_groups)
    for c in range(data.num_classes):
        sel = np.flatnonzero(data.line_class == c)
        if sel.size < 2:
            continue
        a, b = sel[:, None], sel[None, :]  # a (rows) dominates b (columns)?
        better = (
            (data.line_cap[a] >= data.line_cap[b])
            & (data.line_cost[a] <= data.line_cost[b])
            & (data.line_work[a] <= data.line_work[b])
            & (data.line_price[a] <= data.line_price[b])
        )
        same = (
            (data.line_cap[a] == data.line_cap[b])
            & (data.line_cost[a] == data.line_cost[b])
            & (data.line_work[a] == data.line_work[b])
            & (data.line_price[a] == data.line_price[b])
        )
        quota_ok = ~has_quota[a] | ((fam[a] == fam[b]) & (vcpu[a] <= vcpu[b]))
        count_ok = ~limited[a] | (data.line_type[a] == data.line_type[b])
        spot_ok = ~data.line_spot[a] & ~data.line_spot[b] & ~spot_group[data.line_group[b]]
        if data.split:
            pin_ok = np.ones_like(better)
        else:
            ga, gb = data.line_group[a], data.line_group[b]
            pin_ok = (ga == gb) | ((group_size[ga] == 1) & (group_size[gb] == 1))
        strict = ~same | (a < b)
        dom = better & quota_ok & count_ok & spot_ok & pin_ok & strict & (a != b)
        hit = dom.any(axis=0)
        # keep a line that only identical-but-dropped lines dominate: order makes one survive
        out[sel] = hit
    return out


def components(data: FleetData, lines: np.ndarray | None = None) -> list[np.ndarray]:
    """Groups of classes that share no row (budget, quota, max count) over ``lines``: each can
    be solved on its own, exactly. Classes in ascending order within and across groups."""
    sel = np.arange(data.num_lines) if lines is None else np.asarray(lines)
    parent = list(range(data.num_classes))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(classes: np.ndarray) -> None:
        cs = arrays.unique(classes)
        for c in cs[1:]:
            parent[find(int(c))] = find(int(cs[0]))

    if data.budget is not None:
        join(np.arange(data.num_classes))
    fam = np.array(data.line_family, dtype=object)
    for f in data.quotas:
        join(data.line_class[sel[fam[sel] == f]])
    for t in np.flatnonzero(data.type_max >= 0):
        join(data.line_class[sel[data.line_type[sel] == t]])
    roots: dict[int, list[int]] = {}
    for c in range(data.num_classes):
        roots.setdefault(find(c), []).append(c)
    return [np.array(v, dtype=np.int64) for v in roots.values()]


def restrict(data: FleetData, classes: np.ndarray, lines: np.ndarray) -> FleetData:
    """The model over ``classes`` (renumbered in order) and those of ``lines`` that serve them;
    types, families and limits unchanged (rows over no line are left out)."""
    classes = np.asarray(classes, dtype=np.int64)
    new_of = np.full(data.num_classes, -1, dtype=np.int64)
    new_of[classes] = np.arange(classes.size)
    keep = np.asarray(lines, dtype=np.int64)
    keep = np.sort(keep[new_of[data.line_class[keep]] >= 0])
    groups, group = np.unique(data.line_group[keep], return_inverse=True)
    return replace(
        data,
        class_names=tuple(data.class_names[int(c)] for c in classes),
        class_labels=tuple(data.class_labels[int(c)] for c in classes),
        demand=data.demand[classes],
        line_class=new_of[data.line_class[keep]],
        line_type=data.line_type[keep],
        line_group=group.reshape(-1).astype(np.int64),
        line_spot=data.line_spot[keep],
        line_hours=data.line_hours[keep],
        line_cap=data.line_cap[keep],
        line_cost=data.line_cost[keep],
        line_work=data.line_work[keep],
        line_price=data.line_price[keep],
        line_family=tuple(data.line_family[int(j)] for j in keep),
        group_class=new_of[data.group_class[groups]],
        group_type=data.group_type[groups],
        info=tuple(data.info[int(j)] for j in keep),
    )


# -- exact checks on a plan -----------------------------------------------------------------


def class_capacity(data: FleetData, counts: np.ndarray) -> np.ndarray:
    """Capacity per line (``cap x count``, int64)."""
    return data.line_cap * np.asarray(counts, dtype=np.int64)


def allocate(data: FleetData, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The cheapest integer shares for fixed counts (each class fills its lines in order of
    work cost, the LP optimum of one covering row), and the pin group per class (-1: split).
    None when some class's demand cannot be covered (in its best group with --no-split)."""
    counts = np.asarray(counts, dtype=np.int64)
    cap = class_capacity(data, counts)
    share = np.zeros(data.num_lines, dtype=np.int64)
    pins = np.full(data.num_classes, -1, dtype=np.int64)
    for c in range(data.num_classes):
        d = int(data.demand[c])
        sel = np.flatnonzero(data.line_class == c)
        if data.split:
            options = [sel]
        else:
            options = [sel[data.line_group[sel] == g] for g in arrays.unique(data.line_group[sel])]
        best = None
        for opt in options:
            if int(cap[opt].sum()) < d:
                continue
            order = opt[np.lexsort((opt, data.line_work[opt]))]
            fill = np.minimum(cap[order], np.maximum(d - np.r_[0, np.cumsum(cap[order])[:-1]], 0))
            w = int((data.line_work[order] * fill).sum())
            if best is None or w < best[0]:
                best = (w, order, fill)
        if best is None:
            return None
        share[best[1]] = best[2]
        if not data.split and best[1].size:
            pins[c] = int(data.line_group[best[1][0]])
    return share, pins


def violations(data: FleetData, counts: np.ndarray, shares: np.ndarray) -> list[str]:
    """Names of the rows that integer ``counts`` and ``shares`` violate (exact, in integers;
    the pins are implied by the shares)."""
    data = replace(data, projected=False)
    counts = np.asarray(counts, dtype=np.int64)
    shares = np.asarray(shares, dtype=np.int64)
    bad: list[str] = []
    _, hi, _ = bounds(data)
    if (counts < 0).any() or (counts > hi[: data.num_lines]).any() or (shares < 0).any():
        bad.append("bounds")
    lay = layout(data)
    x = np.concatenate([counts, shares, np.zeros(lay.n_pins, dtype=np.int64)])
    if not data.split:
        for c in range(data.num_classes):
            used = arrays.unique(data.line_group[(data.line_class == c) & (shares > 0)])
            if used.size > 1:
                bad.append(f"pin_class_{data.class_labels[c]}")
            elif used.size == 1:
                x[lay.pin(int(used[0]))] = 1
            else:
                gs = np.flatnonzero(data.group_class == c)
                if gs.size:
                    x[lay.pin(int(gs[0]))] = 1
    for r in rows(data):
        v = int((r.coefs * x[r.cols]).sum())
        if (r.lower is not None and v < r.lower) or (r.upper is not None and v > r.upper):
            bad.append(r.name)
    return bad


def cost_of(data: FleetData, counts: np.ndarray, shares: np.ndarray) -> int:
    """The objective in ``data.cost_unit`` (exact int)."""
    return int(
        (data.line_cost * np.asarray(counts, dtype=np.int64)).sum()
        + (data.line_work * np.asarray(shares, dtype=np.int64)).sum()
    )


__all__ = [
    "FAMILIES",
    "PPM",
    "ClassSpec",
    "CpFleet",
    "FleetColumns",
    "FleetData",
    "FleetRow",
    "LineInfo",
    "Offer",
    "PlanParams",
    "allocate",
    "assemble",
    "best_per_type",
    "bounds",
    "build",
    "build_pulp",
    "class_capacity",
    "columns",
    "components",
    "cost_of",
    "dominated",
    "family_of",
    "latency_filters",
    "objective",
    "projected",
    "restrict",
    "rows",
    "variable_names",
    "violations",
    "write_model",
]
