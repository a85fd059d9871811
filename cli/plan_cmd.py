"""``infersave plan``: workload classes in, the cheapest fleet (or job plan) out; and the
cross-check of its backends that ``infersave compare --plan FILE`` prints."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from infersave.cli import render
from infersave.cli.common import (
    EXIT_INFEASIBLE,
    Format,
    FormatOpt,
    TimeLimitOpt,
    fail,
    user_errors,
)

PLAN_HELP = """Plan a fleet: how many instances of which types serve several services, each at
its own request rate and latency SLOs, for the lowest $/h, under a budget, vCPU quotas and
per-type counts (an exact MILP; classes may be split across types, a mixed fleet).

WORKLOADS is CSV, JSON Lines or YAML with one service per row: the batch input's fields (model,
input_len, output_len, dtype, region, max_price, batch_sizes, ...) plus rate_rps (requests/s),
optional ttft_slo and tpot_slo (seconds; TTFT ~ the batch's prefill time, TPOT ~ one decode
step) and instances (allowed types, comma-separated). Offline (--mode offline): each row is a
job of `requests` requests to finish before --deadline hours.

Examples:

  infersave plan tests/data/plan_example.csv

  infersave plan tests/data/plan_example.csv --budget 12 --quota G=64 --max-count 4

  infersave plan tests/data/plan_example.csv --no-split --format json

  infersave plan jobs.csv --mode offline --deadline 6 --startup-s 300 --billing per-second

  infersave plan tests/data/plan_example.csv --spot-share 0.5 --spot-interruption 0.1

Exit codes: 0 a plan, 1 infeasible (the binding constraint is named), 2 bad input.
"""


class Mode(StrEnum):
    online = "online"
    offline = "offline"


class PlanBackend(StrEnum):
    highs = "highs"
    cbc = "cbc"
    cp = "cp"
    brute = "brute"


class PlanBilling(StrEnum):
    hourly = "hourly"
    per_second = "per-second"


def parse_quotas(items: list[str] | None) -> dict[str, int]:
    """``["G=64", "P=0"]`` -> ``{"G": 64, "P": 0}``; families as in
    :data:`infersave.formulations.fleet.FAMILIES` (``G-spot`` for spot quotas), any case.

    Raises:
        InputError: malformed item or unknown family.
    """
    from infersave.formulations.fleet import FAMILIES
    from infersave.solver.scenario import InputError

    known = {f.lower(): f for f, _, _ in FAMILIES}
    known.update({f"{f.lower()}-spot": f"{f}-spot" for f, _, _ in FAMILIES})
    out: dict[str, int] = {}
    for item in items or []:
        fam, sep, value = item.partition("=")
        name = known.get(fam.strip().lower())
        if not sep or name is None:
            raise InputError(
                f"quota: cannot read {item!r}; give FAMILY=VCPUS with FAMILY one of"
                f" {', '.join(f for f, _, _ in FAMILIES)} (or G-spot, P-spot, ...)"
            )
        out[name] = _count(value, "quota", item)
    return out


def _count(value: str, what: str, item: str) -> int:
    from infersave.solver.scenario import InputError

    try:
        n = int(value.strip())
    except ValueError:
        raise InputError(f"{what}: {item!r}: not a whole number") from None
    if n < 0:
        raise InputError(f"{what}: {item!r}: must be >= 0")
    return n


def parse_max_count(items: list[str] | None) -> tuple[int | None, dict[str, int]]:
    """``["4", "g6.xlarge=2"]`` -> (4, {"g6.xlarge": 2}).

    Raises:
        InputError: malformed item.
    """
    from infersave.solver.scenario import InputError

    overall: int | None = None
    per_type: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if sep:
            if not name.strip():
                raise InputError(f"max_count: cannot read {item!r}; give N or TYPE=N")
            per_type[name.strip()] = _count(value, "max_count", item)
        else:
            overall = _count(name, "max_count", item)
    return overall, per_type


def options_from_flags(**flags: Any) -> Any:
    """A validated :class:`~infersave.solver.plan.PlanOptions` from CLI values (None: default).

    Raises:
        pydantic.ValidationError, InputError: bad values (handled by ``user_errors``).
    """
    from infersave.solver.plan import PlanOptions

    quotas = parse_quotas(flags.pop("quota", None))
    overall, per_type = parse_max_count(flags.pop("max_count", None))
    clean = {
        k: (v.value if isinstance(v, StrEnum) else v) for k, v in flags.items() if v is not None
    }
    return PlanOptions(quotas=quotas, max_count=overall, max_count_by_type=per_type, **clean)


def _f(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}%"


def print_plan(result: Any) -> None:
    """The plan as tables: its lines, its classes, and the greedy baseline beside it."""
    offline = result.mode == "offline"
    if result.status != "ok":
        render.echo(f"No plan: {result.message}")
        return
    cols = ["class", "instance", "count", "gpu", "TP", "dtype", "batch", "offload", "share"]
    cols += ["requests", "billed h", "finish h", "$"] if offline else ["capacity rps", "util"]
    cols += ["$/h"]
    rows = []
    for ln in result.lines:
        gpu = ln.gpu if ln.gpu_count == 1 else f"{ln.gpu} x{ln.gpu_count:g}"
        row = [
            ln.class_name,
            ln.instance_type + (" (spot)" if ln.spot else ""),
            ln.count,
            gpu,
            ln.tp,
            ln.dtype,
            ln.batch_size,
            f"{ln.offload_ratio:.2f}",
            f"{ln.share:.1%}",
        ]
        if offline:
            row += [
                f"{ln.requests:,}",
                _f(ln.billed_hours),
                _f(ln.finish_h),
                render.money(ln.cost_usd),
            ]
        else:
            row += [_f(ln.capacity_rps), f"{ln.utilisation:.0%}"]
        row.append(f"{ln.usd_per_hour:.4g}")
        rows.append(row)
    what = "job plan" if offline else "fleet"
    render.print_table(
        cols,
        rows,
        title=f"{what}: {result.instances} instances, ${result.fleet_usd_per_hour:.4g}/h"
        + (f", job ${result.total_cost_usd:,.2f}" if offline else ""),
    )
    ccols = ["class", "model", "requests" if offline else "rate rps", "instances"]
    ccols += ["finish h", "deadline left h"] if offline else ["capacity rps", "headroom"]
    ccols += ["TTFT s", "TTFT SLO", "TPOT ms", "TPOT SLO", "e2e s"]
    crows = []
    for c in result.classes:
        row = [c.name, c.model, f"{c.requests:,}" if offline else _f(c.rate_rps), c.instances]
        if offline:
            row += [_f(c.finish_h), _f(c.deadline_headroom_h)]
        else:
            row += [_f(c.capacity_rps), _pct(c.headroom_pct)]
        row += [
            _f(c.ttft_s),
            "-" if c.ttft_slo is None else f"{c.ttft_slo:g} ({_pct(c.ttft_headroom_pct)} left)",
            _f(None if c.tpot_s is None else c.tpot_s * 1000),
            "-"
            if c.tpot_slo is None
            else f"{c.tpot_slo * 1000:g} ({_pct(c.tpot_headroom_pct)} left)",
            _f(c.e2e_s),
        ]
        crows.append(row)
    render.print_table(ccols, crows, title="per class (worst line; latency of one batch)")
    g = result.greedy
    if g is not None:
        parts = [f"{ln.class_name} {ln.count} x {ln.instance_type}" for ln in g.lines]
        cost = f"${g.usd_per_hour:.4g}/h" + (f", job ${g.cost_usd:,.2f}" if offline else "")
        render.echo(
            f"Greedy baseline (each class alone on its cheapest single type): {', '.join(parts)}:"
            f" {cost}." + (f" Note: {g.note}." if g.note else "")
        )
        if result.savings_pct is not None:
            unit = (
                f"${result.total_cost_usd:,.2f}"
                if offline
                else f"${result.fleet_usd_per_hour:.4g}/h"
            )
            if result.savings_pct >= 0:
                render.echo(
                    f"The exact plan costs {unit}: {result.savings_pct:.1f}% less than greedy."
                )
            else:
                render.echo(
                    f"The exact plan costs {unit}: {-result.savings_pct:.1f}% more than greedy,"
                    " which is not a valid plan under these limits."
                )
    s = result.solver
    render.echo(
        f"Solved by {s.backend} ({s.status}) in {s.solve_seconds:.3f} s: {s.variables} variables,"
        f" {s.constraints} rows after exact reductions (dominated lines dropped, independent"
        " classes solved apart)."
    )
    if s.note:
        render.echo(f"Note: {s.note}")


def emit_plan(result: Any, fmt: Format) -> None:
    if fmt is Format.json:
        render.echo(result.model_dump_json(indent=2))
    elif fmt is Format.csv:
        rows = [{"role": "plan", **ln.model_dump()} for ln in result.lines]
        if result.greedy is not None:
            rows += [{"role": "greedy", **ln.model_dump()} for ln in result.greedy.lines]
        render.echo(render.csv_text(rows) if rows else "role\n")
    else:
        print_plan(result)


def plan_command(
    workloads: Annotated[Path, typer.Argument(help="Services: .csv, .jsonl or .yaml (see above).")],
    budget: Annotated[
        float | None, typer.Option("--budget", help="Most the fleet may cost [$/h].")
    ] = None,
    quota: Annotated[
        list[str] | None,
        typer.Option(
            "--quota",
            help="vCPU quota of a family, FAMILY=VCPUS (repeat): G (AWS 'Running On-Demand G"
            " and VT instances'), P, Inf, Trn, DL, F, X, Standard; G-spot, P-spot for spot.",
        ),
    ] = None,
    max_count: Annotated[
        list[str] | None,
        typer.Option("--max-count", help="Most instances per type: N, or TYPE=N (repeat)."),
    ] = None,
    no_split: Annotated[
        bool, typer.Option("--no-split", help="Serve each class with one instance type.")
    ] = False,
    mode: Annotated[
        Mode, typer.Option("--mode", help="online (serve rates) or offline (finish jobs).")
    ] = Mode.online,
    deadline: Annotated[
        float | None, typer.Option("--deadline", help="Offline: finish every job within [h].")
    ] = None,
    startup_s: Annotated[
        float | None,
        typer.Option("--startup-s", help="Offline: instance start-up, billed [s] (default 0)."),
    ] = None,
    billing: Annotated[
        PlanBilling,
        typer.Option("--billing", help="Offline billing: hourly (ceil) or per-second (60 s min)."),
    ] = PlanBilling.hourly,
    spot_share: Annotated[
        float | None,
        typer.Option("--spot-share", help="Up to this share of each line on spot (default 0)."),
    ] = None,
    spot_interruption: Annotated[
        float | None,
        typer.Option(
            "--spot-interruption",
            help="Share of spot capacity that may be lost at any time (default 0.1).",
        ),
    ] = None,
    max_utilisation: Annotated[
        float | None,
        typer.Option(
            "--max-utilisation",
            help="Online: use at most this share of each instance's rate (default 1).",
        ),
    ] = None,
    backend: Annotated[
        PlanBackend,
        typer.Option("--backend", help="highs (MILP), cbc (MILP), cp (CP-SAT), brute (small)."),
    ] = PlanBackend.highs,
    time_limit: TimeLimitOpt = None,
    write_model: Annotated[
        str | None,
        typer.Option(
            "--write-model", help="Also write the model: .lp/.mps, or the CP-SAT proto (cp)."
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    with user_errors():
        from infersave.solver import plan as planner

        options = options_from_flags(
            budget=budget,
            quota=quota,
            max_count=max_count,
            split=not no_split,
            mode=mode,
            deadline_h=deadline,
            startup_s=startup_s,
            billing=billing,
            spot_share=spot_share,
            spot_interruption=spot_interruption,
            max_utilisation=max_utilisation,
            backend=backend,
            time_limit=time_limit,
        )
        if options.mode == "online" and deadline is not None:
            fail("--deadline is for --mode offline")
        classes = planner.read_classes(workloads)
        data, filters, tables = planner.build_data(classes, options)
        if write_model is not None:
            planner.write_model(data, options.backend, write_model)
        result = planner.plan_data(data, classes, options, filters, tables)
    emit_plan(result, fmt)
    if result.status != "ok":
        if fmt is not Format.table:
            sys.stderr.write(f"infersave: no plan: {result.message}\n")
        raise typer.Exit(EXIT_INFEASIBLE)


def run_compare_plan(path: Path, fmt: Format, time_limit: float | None = None) -> None:
    """``infersave compare --plan FILE``: every backend on the plan, against brute force
    (when the plan is small enough) and the greedy baseline."""
    with user_errors():
        from infersave.solver import plan as planner

        options = options_from_flags(time_limit=time_limit)
        classes = planner.read_classes(path)
        out = planner.compare_plan(classes, options)
    if fmt is Format.json:
        render.echo(render.json_text(out))
        return
    rows = []
    for name, r in out["backends"].items():
        rows.append(
            [
                name,
                r["status"],
                "-" if r.get("objective") is None else f"{r['objective']:,}",
                "-" if r.get("usd_per_hour") is None else f"{r['usd_per_hour']:.4g}",
                "-" if "agrees" not in r else ("yes" if r["agrees"] else "NO"),
                "-" if r.get("seconds") is None else f"{r['seconds'] * 1000:.1f}",
            ]
        )
    render.print_table(
        ["backend", "status", f"objective ({out['objective_unit']})", "$/h", "agrees", "ms"],
        rows,
        title=f"plan of {out['classes']} classes, {out['lines']} lines; reference:"
        f" {out['reference']}",
    )
    for name, r in out["backends"].items():
        if r["status"] == "skipped":
            render.echo(f"{name}: skipped: {r['note']}")
    render.echo(f"Exact backends agree with {out['reference']}: {out['agreement']}")
    g = out["greedy"]
    if out["savings_pct"] is not None and g["usd_per_hour"] is not None:
        render.echo(
            f"Greedy baseline ${g['usd_per_hour']:.4g}/h; the exact optimum saves"
            f" {out['savings_pct']:.1f}%." + (f" Note: {g['note']}." if g["note"] else "")
        )


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the ``infersave`` app."""
    app.command(name="plan", help=PLAN_HELP)(plan_command)
