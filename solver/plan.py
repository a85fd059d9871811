"""Fleet and job plans (``infersave plan``): workload classes in, a fleet out.

:func:`read_classes` reads a workloads file (the batch input's fields plus ``rate_rps``,
``ttft_slo``, ``tpot_slo`` and ``instances``), :func:`plan` builds one candidate table per
class (:func:`infersave.solver.prepare.prepare`), the model of
:mod:`infersave.formulations.fleet`, searches it (:mod:`infersave.solver.plan_search`), and
returns a :class:`PlanResult`: the fleet's lines, per class its shares, predicted latency and
headroom, the fleet's $/h (and the job's $ offline), how it was solved, and the greedy baseline
with what the exact plan saves against it. An infeasible plan names the binding constraint
(:func:`explain_infeasible`).

Demand per class: online, ``rate_rps`` requests/s (and, when ``slo_tps`` is also given, at
least ``slo_tps / (input_len + output_len)``); offline, the job's ``requests``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from infersave.formulations import fleet
from infersave.formulations.fleet import ClassSpec, FleetData, PlanParams
from infersave.solver import plan_search
from infersave.solver.batch_io import PASSTHROUGH, is_blank, read_workloads, scenario_from_fields
from infersave.solver.plan_search import FleetSolution
from infersave.solver.scenario import InputError, Scenario, describe_validation_error

PLAN_COLUMNS: tuple[str, ...] = ("rate_rps", "ttft_slo", "tpot_slo", "instances")
"""Workload columns of a plan besides the scenario fields (and ``name``/``service``/``id``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanClass(_Frozen):
    """One workload class (a service): its scenario (model, lengths, dtype, region, ...), its
    request rate, latency SLOs and allowed instance types."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    scenario: Any  # Scenario (built from the field specs)
    rate_rps: float | None = Field(None, gt=0, allow_inf_nan=False)
    slo_tps_given: bool = False
    ttft_slo: float | None = Field(None, gt=0, allow_inf_nan=False)
    tpot_slo: float | None = Field(None, gt=0, allow_inf_nan=False)
    instances: tuple[str, ...] = ()

    def demand(self, mode: str) -> float:
        """Online: requests/s to serve; offline: requests in the job.

        Raises:
            InputError: online without a rate.
        """
        s = self.scenario
        if mode == "offline":
            return float(s.requests)
        rates = []
        if self.rate_rps is not None:
            rates.append(self.rate_rps)
        if self.slo_tps_given:
            rates.append(s.slo_tps / (s.input_len + s.output_len))
        if not rates:
            raise InputError(f"{self.name}: rate_rps: give the class's request rate (requests/s)")
        return max(rates)


class PlanOptions(_Frozen):
    """The plan-wide options (``infersave plan`` flags)."""

    mode: Literal["online", "offline"] = "online"
    deadline_h: float | None = Field(None, gt=0, allow_inf_nan=False)
    startup_s: float = Field(0.0, ge=0, allow_inf_nan=False)
    billing: Literal["hourly", "per-second"] = "hourly"
    budget: float | None = Field(None, gt=0, allow_inf_nan=False)
    quotas: dict[str, int] = Field(default_factory=dict)
    max_count: int | None = Field(None, ge=0)
    max_count_by_type: dict[str, int] = Field(default_factory=dict)
    split: bool = True
    spot_share: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    spot_interruption: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False)
    max_utilisation: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    backend: Literal["highs", "cbc", "cp", "brute"] = "highs"
    time_limit: float | None = Field(None, gt=0, allow_inf_nan=False)

    def params(self) -> PlanParams:
        """The model's view of these options.

        Raises:
            InputError: offline without a deadline.
        """
        if self.mode == "offline" and self.deadline_h is None:
            raise InputError("deadline: offline plans need --deadline HOURS")
        return PlanParams(
            mode=self.mode,
            deadline_h=self.deadline_h,
            startup_s=self.startup_s,
            billing=self.billing,
            budget=self.budget,
            quotas=dict(self.quotas),
            max_count=self.max_count,
            max_count_by_type=dict(self.max_count_by_type),
            split=self.split,
            spot_share=self.spot_share,
            spot_interruption=self.spot_interruption,
            max_utilisation=self.max_utilisation,
        )


class FleetLine(_Frozen):
    """One line of the fleet: ``count`` instances of one type and configuration serving
    ``share`` of one class's demand. Rates in requests/s, money in $/h and $, times in s/h."""

    class_name: str
    model: str
    instance_type: str
    region: str
    gpu: str
    gpu_count: float
    family: str
    count: int
    spot: bool
    tp: int = 1
    dtype: str
    batch_size: int
    offload_ratio: float
    share: float
    served_rps: float | None
    requests: int | None
    capacity_rps: float
    utilisation: float
    price_per_hour: float
    usd_per_hour: float
    billed_hours: float | None
    cost_usd: float | None
    ttft_s: float
    tpot_s: float | None
    e2e_s: float
    finish_h: float | None


class ClassPlan(_Frozen):
    """What the fleet does for one class: its lines, capacity and headroom, worst predicted
    latency over its lines against its SLOs (headroom in percent of the SLO), offline the
    finish time against the deadline."""

    name: str
    model: str
    rate_rps: float | None
    requests: int | None
    lines: int
    instances: int
    capacity_rps: float
    headroom_pct: float
    ttft_s: float
    tpot_s: float | None
    e2e_s: float
    ttft_slo: float | None
    tpot_slo: float | None
    ttft_headroom_pct: float | None
    tpot_headroom_pct: float | None
    finish_h: float | None
    deadline_headroom_h: float | None
    usd_per_hour: float
    cost_usd: float | None


class PlanSolver(_Frozen):
    """How the plan was searched; ``objective`` in ``objective_unit`` (integer);
    ``variables``/``constraints`` summed over the models actually solved (after the exact
    reductions of :func:`infersave.solver.plan_search.solve_reduced`)."""

    backend: str
    status: str
    solve_seconds: float
    objective: int | None
    objective_unit: str
    variables: int = 0
    constraints: int = 0
    note: str = ""


class GreedyPlan(_Frozen):
    """The baseline: each class alone on its cheapest single type, rounded up (budget, quotas
    and max counts ignored; ``note`` names what it breaks)."""

    usd_per_hour: float
    cost_usd: float | None
    instances: int
    lines: list[FleetLine]
    note: str = ""


class PlanResult(_Frozen):
    """The JSON contract of ``infersave plan``."""

    status: Literal["ok", "infeasible"]
    message: str = ""
    mode: str
    fleet_usd_per_hour: float | None
    total_cost_usd: float | None
    instances: int
    lines: list[FleetLine]
    classes: list[ClassPlan]
    solver: PlanSolver
    greedy: GreedyPlan | None
    savings_pct: float | None
    saved_usd_per_hour: float | None


# -- input ----------------------------------------------------------------------------------


def _number(value: Any, what: str, where: str) -> float | None:
    if is_blank(value):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}{what}: not a number (got {value!r})") from None
    if not math.isfinite(x) or x <= 0:
        raise InputError(f"{where}{what}: must be a finite number > 0 (got {value!r})")
    return x


def class_from_fields(fields: Mapping[str, Any], row: int | None = None) -> PlanClass:
    """A :class:`PlanClass` from one workload row (raw values, e.g. CSV strings).

    Raises:
        InputError: one line naming the row and field.
    """
    where = f"row {row}: " if row is not None else ""
    f = dict(fields)
    name = next((str(f[k]).strip() for k in PASSTHROUGH if not is_blank(f.get(k))), "")
    name = name or f"class{row or 1}"
    rate = _number(f.pop("rate_rps", None), "rate_rps", where)
    ttft = _number(f.pop("ttft_slo", None), "ttft_slo", where)
    tpot = _number(f.pop("tpot_slo", None), "tpot_slo", where)
    allowed = f.pop("instances", None)
    if is_blank(allowed):
        types: tuple[str, ...] = ()
    elif isinstance(allowed, list | tuple):
        types = tuple(str(x).strip() for x in allowed if str(x).strip())
    else:
        types = tuple(p.strip() for p in str(allowed).replace(";", ",").split(",") if p.strip())
    slo_given = not is_blank(f.get("slo_tps"))
    if not slo_given:
        f["slo_tps"] = 1.0  # placeholder for validation; a plan's demand is rate_rps
    if not is_blank(f.get("pricing")) and str(f["pricing"]).strip() != "on-demand":
        raise InputError(f"{where}pricing: a plan prices on-demand; use --spot-share for spot")
    scenario = scenario_from_fields(f, row)
    try:
        return PlanClass(
            name=name,
            scenario=scenario,
            rate_rps=rate,
            slo_tps_given=slo_given,
            ttft_slo=ttft,
            tpot_slo=tpot,
            instances=types,
        )
    except ValueError as exc:  # pragma: no cover - the numbers are checked above
        raise InputError(f"{where}{describe_validation_error(exc)}") from None


def read_classes(path: str | Path) -> list[PlanClass]:
    """Read a plan's workload classes (CSV, JSON Lines or YAML, as ``infersave batch``).

    Raises:
        InputError: any bad row (a plan is one problem: every row must be valid), repeated
            names, or an empty file.
        OSError: the file cannot be read.
    """
    out: list[PlanClass] = []
    seen: dict[str, int] = {}
    for row, fields in read_workloads(path):
        if isinstance(fields, Exception):
            raise fields if isinstance(fields, InputError) else InputError(str(fields))
        cls = class_from_fields(fields, row)
        if cls.name in seen:
            raise InputError(f"row {row}: name {cls.name!r} repeats row {seen[cls.name]}")
        seen[cls.name] = row
        out.append(cls)
    if not out:
        raise InputError(f"{str(path)!r} has no workload rows")
    return out


# -- from classes to the model --------------------------------------------------------------


def _specs(classes: Sequence[PlanClass], options: PlanOptions) -> list[ClassSpec]:
    return [
        ClassSpec(
            name=c.name,
            demand=c.demand(options.mode),
            ttft_slo=c.ttft_slo,
            tpot_slo=c.tpot_slo,
            max_price=c.scenario.max_price,
            instances=frozenset(c.instances),
        )
        for c in classes
    ]


def build_data(
    classes: Sequence[PlanClass], options: PlanOptions
) -> tuple[FleetData, list[dict[str, np.ndarray]], list[Any]]:
    """The model of ``classes`` under ``options``: (data, per-class filters, tables).

    Raises:
        InputError: bad input (unknown model, instance type, region, ...).
    """
    from infersave.solver.prepare import prepare

    if not classes:
        raise InputError("a plan needs at least one workload class")
    params = options.params()
    specs = _specs(classes, options)
    tables = []
    for c in classes:
        table = prepare(c.scenario).table
        if c.instances:
            known = {i.instance_type for i in table.inst.instances}
            unknown = [t for t in c.instances if t not in known]
            if unknown:
                raise InputError(
                    f"{c.name}: instances: {unknown[0]!r} is not an eligible instance type in"
                    f" {c.scenario.region} (list them with: infersave instances --region"
                    f" {c.scenario.region})"
                )
        tables.append(table)
    data, filters = fleet.build(params, specs, tables)
    return data, filters, tables


# -- explanations ---------------------------------------------------------------------------


def explain_class(cls: PlanClass, table: Any, filters: Mapping[str, np.ndarray]) -> str:
    """Why no configuration can serve ``cls`` (the closest miss)."""
    s = cls.scenario
    mem = filters["memory"]
    head = f"class {cls.name!r} ({s.model}): no configuration can serve it"
    if not mem.any():
        return (
            f"{head}: {s.model} does not fit in any instance in {s.region} at any batch size,"
            f" tensor-parallel degree and offload ratio ({s.dtype}; pipeline and expert"
            " parallelism across instances are not modelled)"
        )
    base = mem.copy()
    if "instances" in filters:
        if not (base & filters["instances"]).any():
            return f"{head}: none of its allowed instances ({', '.join(cls.instances)}) fits it"
        base &= filters["instances"]
    if "price_cap" in filters:
        if not (base & filters["price_cap"]).any():
            k = np.flatnonzero(base)
            j = k[np.argmin(table.price_per_hour[k])]
            return (
                f"{head}: the cheapest instance it fits on, {_type(table, j)}, costs"
                f" ${table.price_per_hour[j]:.4g}/h > max_price ${s.max_price:g}/h"
            )
        base &= filters["price_cap"]
    misses = []
    if cls.ttft_slo is not None and not (base & filters["ttft_within_slo"]).any():
        k = np.flatnonzero(base)
        j = k[np.argmin(table.prefill_s[k])]
        misses.append(
            f"the fastest prefill (TTFT) is {table.prefill_s[j]:.3g} s ({_type(table, j)}, batch"
            f" {int(table.batch_size[j])}) > ttft_slo {cls.ttft_slo:g} s"
        )
    if "tpot_within_slo" in filters and not (base & filters["tpot_within_slo"]).any():
        k = np.flatnonzero(base)
        tpot = table.decode_s[k] / (s.output_len - 1)
        j = k[np.argmin(tpot)]
        misses.append(
            f"the fastest decode step (TPOT) is {tpot.min():.3g} s ({_type(table, j)}, batch"
            f" {int(table.batch_size[j])}) > tpot_slo {cls.tpot_slo:g} s"
        )
    if misses:
        return f"{head}: {'; '.join(misses)}"
    if "ttft_within_slo" in filters and "tpot_within_slo" in filters:
        return f"{head}: no configuration meets ttft_slo and tpot_slo together"
    return f"{head}: the start-up time leaves no working time before the deadline"


def _type(table: Any, k: int) -> str:
    return table.inst.instances[int(table.instance_idx[k])].instance_type


def _usd(data: FleetData, units: int) -> float:
    return units / data.cost_scale


def explain_infeasible(data: FleetData, backend: str, time_limit: float | None) -> str:
    """Name the binding constraint of an infeasible plan: the budget, a quota, the max counts
    or --no-split, whichever alone makes it infeasible (the plan without it exists), with what
    the cheapest plan without it needs; else the combination."""
    candidates: list[str] = []
    if data.budget is not None:
        candidates.append("budget")
    candidates.extend(f"quota:{f}" for f in sorted(data.quotas))
    if (data.type_max >= 0).any():
        candidates.append("max_count")
    if not data.split:
        candidates.append("no_split")
    solver = "highs" if backend in ("highs", "brute") else backend
    binding = []
    for what in candidates:
        relaxed = data.relaxed(what)
        sol = plan_search.search(relaxed, solver, time_limit)
        if sol.counts is not None:
            binding.append(_binding_text(data, what, sol))
    if binding:
        return "infeasible: " + "; or ".join(binding)
    names = {
        "budget": "the budget",
        "max_count": "the max counts",
        "no_split": "--no-split",
    }
    together = ", ".join(names.get(w, f"quota {w.split(':', 1)[1]}") for w in candidates)
    return f"infeasible: {together} together (each alone can be met)"


def _binding_text(data: FleetData, what: str, sol: FleetSolution) -> str:
    counts = sol.counts
    assert counts is not None
    if what == "budget":
        need = int((data.line_price * counts).sum()) / fleet.MICRO
        assert data.budget is not None
        return (
            f"budget ${data.budget / fleet.MICRO:g}/h is binding: the cheapest plan without it"
            f" runs at ${need:.4g}/h"
        )
    if what.startswith("quota:"):
        fam = what.split(":", 1)[1]
        sel = np.array([f == fam for f in data.line_family])
        used = int((data.type_vcpus[data.line_type] * counts)[sel].sum())
        long = next((q for f, q, _ in fleet.FAMILIES if fam.split("@")[0] == f), fam)
        return (
            f"quota {fam} ({long}) = {data.quotas[fam]} vCPUs is binding: the cheapest plan"
            f" without it uses {used} vCPUs of {fam}"
        )
    if what == "max_count":
        per_type = np.bincount(data.line_type, weights=counts, minlength=len(data.type_keys))
        over = [
            f"{int(per_type[t])} x {data.type_keys[t][1]}"
            for t in np.flatnonzero((data.type_max >= 0) & (per_type > data.type_max))
        ]
        return (
            "max count per type is binding: the cheapest plan without it needs"
            f" {', '.join(over) or 'more instances of one type'}"
        )
    pins = []
    for c in range(data.num_classes):
        used = {data.type_keys[int(data.line_type[j])][1] for j in np.flatnonzero(counts) if
                int(data.line_class[j]) == c}  # fmt: skip
        if len(used) > 1:
            pins.append(f"{data.class_names[c]} ({' + '.join(sorted(used))})")
    return "--no-split is binding: the cheapest plan without it splits " + (
        ", ".join(pins) or "a class across types"
    )


# -- results --------------------------------------------------------------------------------


def _lines(
    data: FleetData, counts: np.ndarray, shares: np.ndarray, classes: Sequence[PlanClass]
) -> list[FleetLine]:
    out: list[FleetLine] = []
    online = data.params.mode == "online"
    interrupt = data.params.spot_interruption
    for j in np.flatnonzero(counts):
        info = data.info[j]
        c = int(data.line_class[j])
        cls = classes[c]
        n = int(counts[j])
        q = int(shares[j])
        d = int(data.demand[c])
        share = q / d
        eff = info.rate_rps * ((1.0 - interrupt) if info.spot else 1.0)
        cap_rps = n * eff
        line_cost = (int(data.line_cost[j]) * n + int(data.line_work[j]) * q) / data.cost_scale
        if online:
            served = share * cls.demand("online")
            util = served / cap_rps
            billed = cost = finish = None
            reqs = None
        else:
            reqs = q
            served = None
            work_s = q / (n * eff) if n else 0.0
            finish = (data.params.startup_s + work_s) / 3600.0
            cost = line_cost
            billed = cost / (n * info.price_per_hour)
            util = work_s / (billed * 3600.0) if billed else 0.0
        out.append(
            FleetLine(
                class_name=cls.name,
                model=cls.scenario.model,
                instance_type=info.instance.instance_type,
                region=info.instance.region,
                gpu=info.instance.gpu or info.instance.accelerator,
                gpu_count=float(info.instance.gpu_count),
                family=data.line_family[j],
                count=n,
                spot=info.spot,
                tp=info.tensor_parallel,
                dtype=info.dtype or cls.scenario.dtype,
                batch_size=info.batch_size,
                offload_ratio=info.offload_ratio,
                share=share,
                served_rps=served,
                requests=reqs,
                capacity_rps=cap_rps,
                utilisation=util,
                price_per_hour=info.price_per_hour,
                usd_per_hour=n * info.price_per_hour,
                billed_hours=billed,
                cost_usd=cost,
                ttft_s=info.prefill_s,
                tpot_s=info.tpot_s,
                e2e_s=info.e2e_s,
                finish_h=finish,
            )
        )
    return out


def _class_plans(
    data: FleetData, lines: list[FleetLine], classes: Sequence[PlanClass]
) -> list[ClassPlan]:
    out = []
    online = data.params.mode == "online"
    for cls in classes:
        mine = [ln for ln in lines if ln.class_name == cls.name]
        cap = sum(ln.capacity_rps for ln in mine)
        demand = cls.demand(data.params.mode)
        ttft = max(ln.ttft_s for ln in mine)
        tpots = [ln.tpot_s for ln in mine if ln.tpot_s is not None]
        tpot = max(tpots) if tpots else None
        finish = None if online else max(ln.finish_h or 0.0 for ln in mine)
        deadline = data.params.deadline_h
        if online:
            headroom = 100.0 * (cap / demand - 1.0)
        else:
            assert deadline is not None and finish is not None
            headroom = 100.0 * (deadline / finish - 1.0) if finish > 0 else math.inf
        out.append(
            ClassPlan(
                name=cls.name,
                model=cls.scenario.model,
                rate_rps=demand if online else None,
                requests=None if online else int(demand),
                lines=len(mine),
                instances=sum(ln.count for ln in mine),
                capacity_rps=cap,
                headroom_pct=headroom,
                ttft_s=ttft,
                tpot_s=tpot,
                e2e_s=max(ln.e2e_s for ln in mine),
                ttft_slo=cls.ttft_slo,
                tpot_slo=cls.tpot_slo,
                ttft_headroom_pct=None
                if cls.ttft_slo is None
                else 100.0 * (1 - ttft / cls.ttft_slo),
                tpot_headroom_pct=None
                if cls.tpot_slo is None or tpot is None
                else 100.0 * (1 - tpot / cls.tpot_slo),
                finish_h=finish,
                deadline_headroom_h=None
                if finish is None or deadline is None
                else deadline - finish,
                usd_per_hour=sum(ln.usd_per_hour for ln in mine),
                cost_usd=None if online else sum(ln.cost_usd or 0.0 for ln in mine),
            )
        )
    return out


def _fleet_usd_per_hour(data: FleetData, counts: np.ndarray) -> float:
    return int((data.line_price * counts).sum()) / fleet.MICRO


def result_of(
    data: FleetData,
    sol: FleetSolution,
    greedy: FleetSolution | None,
    classes: Sequence[PlanClass],
    message: str = "",
) -> PlanResult:
    """The :class:`PlanResult` of a search."""
    online = data.params.mode == "online"
    solver = PlanSolver(
        backend=sol.backend,
        status=sol.status,
        solve_seconds=sol.solve_seconds,
        objective=sol.objective,
        objective_unit=data.cost_unit,
        variables=sol.variables,
        constraints=sol.constraints,
        note=sol.note,
    )
    g = None
    if greedy is not None and greedy.counts is not None and greedy.shares is not None:
        glines = _lines(data, greedy.counts, greedy.shares, classes)
        g = GreedyPlan(
            usd_per_hour=_fleet_usd_per_hour(data, greedy.counts),
            cost_usd=None if online else _usd(data, int(greedy.objective or 0)),
            instances=int(greedy.counts.sum()),
            lines=glines,
            note=greedy.note,
        )
    if sol.counts is None or sol.shares is None:
        return PlanResult(
            status="infeasible",
            message=message,
            mode=data.params.mode,
            fleet_usd_per_hour=None,
            total_cost_usd=None,
            instances=0,
            lines=[],
            classes=[],
            solver=solver,
            greedy=g,
            savings_pct=None,
            saved_usd_per_hour=None,
        )
    lines = _lines(data, sol.counts, sol.shares, classes)
    usd_h = _fleet_usd_per_hour(data, sol.counts)
    total = None if online else _usd(data, int(sol.objective or 0))
    savings = saved = None
    if g is not None and greedy is not None and greedy.objective:
        savings = 100.0 * (greedy.objective - int(sol.objective or 0)) / greedy.objective
        saved = g.usd_per_hour - usd_h
    return PlanResult(
        status="ok",
        message=message,
        mode=data.params.mode,
        fleet_usd_per_hour=usd_h,
        total_cost_usd=total,
        instances=int(sol.counts.sum()),
        lines=lines,
        classes=_class_plans(data, lines, classes),
        solver=solver,
        greedy=g,
        savings_pct=savings,
        saved_usd_per_hour=saved,
    )


def plan(classes: Sequence[PlanClass], options: PlanOptions | None = None) -> PlanResult:
    """The cheapest fleet (online) or job plan (offline) for ``classes`` under ``options``.

    Raises:
        InputError: bad input; plan_search.TooLarge: brute force on a large problem.
    """
    options = options or PlanOptions()
    data, filters, tables = build_data(classes, options)
    return plan_data(data, classes, options, filters, tables)


def plan_data(
    data: FleetData,
    classes: Sequence[PlanClass],
    options: PlanOptions,
    filters: Sequence[Mapping[str, np.ndarray]] | None = None,
    tables: Sequence[Any] | None = None,
) -> PlanResult:
    """Search a built model and report it (``filters``/``tables`` explain unservable classes)."""
    served = set(data.line_class.tolist())
    missing = [c for c in range(len(classes)) if c not in served]
    greedy = plan_search.solve_greedy(data) if not missing else None
    if missing:
        c = missing[0]
        if filters is not None and tables is not None:
            msg = explain_class(classes[c], tables[c], filters[c])
        else:
            msg = f"class {classes[c].name!r}: no configuration can serve it"
        empty = FleetSolution(options.backend, "infeasible", None, None, None, 0.0)
        return result_of(data, empty, None, classes, f"infeasible: {msg}")
    sol = plan_search.search(data, options.backend, options.time_limit)
    if sol.counts is None:
        if sol.status == "no_solution":
            msg = "time limit reached before any plan was found; raise --time-limit"
        else:
            msg = explain_infeasible(data, options.backend, options.time_limit)
        return result_of(data, sol, greedy, classes, msg)
    return result_of(data, sol, greedy, classes)


def compare_plan(
    classes: Sequence[PlanClass], options: PlanOptions | None = None
) -> dict[str, Any]:
    """Every exact backend and brute force (when small enough) on one plan, and the greedy
    baseline: per backend its status, objective, $/h and seconds, whether it equals the
    reference optimum (brute force, else HiGHS), and the saving of the optimum against greedy.

    Raises:
        InputError: bad input.
    """
    options = options or PlanOptions()
    data, _, _ = build_data(classes, options)
    runs: dict[str, Any] = {}
    sols: dict[str, FleetSolution] = {}
    for be in plan_search.BACKENDS:
        try:
            sol = plan_search.search(data, be, options.time_limit)
        except plan_search.TooLarge as exc:
            runs[be] = {"status": "skipped", "note": str(exc)}
            continue
        sols[be] = sol
        runs[be] = {
            "status": sol.status,
            "objective": sol.objective,
            "usd_per_hour": None if sol.counts is None else _fleet_usd_per_hour(data, sol.counts),
            "cost_usd": None
            if sol.objective is None or data.params.mode == "online"
            else _usd(data, sol.objective),
            "seconds": sol.solve_seconds,
            "note": sol.note,
        }
    ref_name = "brute" if "brute" in sols else "highs"
    ref = sols[ref_name].objective
    for be, sol in sols.items():
        runs[be]["agrees"] = sol.objective == ref
    greedy = plan_search.solve_greedy(data)
    saving = None
    if ref is not None and greedy.objective:
        saving = 100.0 * (greedy.objective - ref) / greedy.objective
    return {
        "classes": len(classes),
        "lines": data.num_lines,
        "objective_unit": data.cost_unit,
        "reference": ref_name,
        "backends": runs,
        "agreement": all(r.get("agrees", True) for r in runs.values()),
        "greedy": {
            "objective": greedy.objective,
            "usd_per_hour": None
            if greedy.counts is None
            else _fleet_usd_per_hour(data, greedy.counts),
            "note": greedy.note,
        },
        "savings_pct": saving,
    }


def write_model(data: FleetData, backend: str, path: str) -> None:
    """Write the plan's model (LP/MPS, or the CP-SAT proto as text for ``cp``).

    Raises:
        InputError: the file cannot be written.
    """
    try:
        fleet.write_model(data, path, "cp" if backend == "cp" else "milp")
    except OSError as exc:
        raise InputError(f"write_model: cannot write {path}: {exc.strerror or exc}") from exc


__all__ = [
    "ClassPlan",
    "FleetLine",
    "GreedyPlan",
    "PlanClass",
    "PlanOptions",
    "PlanResult",
    "PlanSolver",
    "Scenario",
    "build_data",
    "class_from_fields",
    "compare_plan",
    "explain_infeasible",
    "plan",
    "plan_data",
    "read_classes",
    "result_of",
    "write_model",
]
