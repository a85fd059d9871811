"""``infersave compare``: every backend and the paper's heuristic on the same scenarios."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from infersave.cli import render
from infersave.cli.common import (
    ArchOpt,
    BatchSizesOpt,
    BillingOpt,
    CalibrationOpt,
    CatalogOpt,
    ExcludeOpt,
    Format,
    FormulasOpt,
    GpuOpt,
    InputLenOpt,
    MaxGpusOpt,
    MaxPriceOpt,
    ModelOpt,
    OffloadStepOpt,
    OnlyOpt,
    OutputLenOpt,
    PerfModelOpt,
    PricesOpt,
    PricingOpt,
    ProviderOpt,
    RegionOpt,
    RequestsOpt,
    SloOpt,
    TimeLimitOpt,
    build_scenario,
    fail,
    user_errors,
)

COMPARE_HELP = """Cross-check the exact backends (milp with CBC and HiGHS, cp with CP-SAT)
against the exhaustive ranker, and the joint optimum against the paper's heuristic (batch 32,
minimal offload), on one scenario, a workloads file, or random scenarios.

The summary gives the agreement rate of the exact backends with the exhaustive optimum (same
billed cost, same configuration unless tied), how often the joint optimum beats the paper's
heuristic and its median saving, and median / p95 search seconds per backend.

Examples:

  infersave compare --random 500 --seed 1

  infersave compare --model opt-2.7b --input-len 1024 --output-len 128 --slo-tps 100

  infersave compare --workloads tests/data/workloads_example.csv --format json

  infersave compare --model opt-2.7b --input-len 1024 --output-len 128 --slo-tps 100 --repeat 20
  (solve-time medians per backend for one scenario)

  infersave compare --plan tests/data/plan_small.csv
  (a fleet plan: HiGHS, CBC and CP-SAT against brute force, and the greedy baseline)
"""


def _scenarios(
    model: str | None,
    fields: dict[str, Any],
    workloads: Path | None,
    random_n: int | None,
    seed: int,
) -> list[Any]:
    from infersave.solver import compare as cmp

    sources = sum(x is not None for x in (model, workloads, random_n))
    if sources != 1:
        fail("give exactly one of --model (one scenario), --workloads FILE or --random N")
    common = {k: v for k, v in fields.items() if v is not None}
    if random_n is not None:
        return list(cmp.random_scenarios(random_n, seed, **common))
    if workloads is not None:
        from infersave.solver import batch_io

        out: list[Any] = []
        for _, _raw, s in batch_io.load_scenarios(workloads):
            if isinstance(s, Exception):
                out.append(s)
            else:
                out.append(
                    s.model_copy(update={"time_limit": common["time_limit"]})
                    if "time_limit" in common
                    else s
                )
        return out
    missing = [k for k in ("input_len", "output_len", "slo_tps") if fields.get(k) is None]
    if missing:
        fail(f"--model needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
    if fields.get("requests") is None:
        fields = {**fields, "requests": 1000}  # solve's default
    return [build_scenario(model=model, **fields)]


def _print_summary(result: dict[str, Any]) -> None:
    s = result["summary"]
    rows = []
    for name, b in s["backends"].items():
        rate = b.get("agreement_rate")
        rows.append(
            [
                name,
                "-" if rate is None else f"{rate:.3f}",
                "-" if b["median_s"] is None else f"{b['median_s'] * 1000:.1f}",
                "-" if b["p95_s"] is None else f"{b['p95_s'] * 1000:.1f}",
                b.get("fallbacks", "-"),
            ]
        )
    render.print_table(
        ["backend", "agreement", "median ms", "p95 ms", "fallbacks"],
        rows,
        title=f"{s['scenarios']} scenarios ({s['feasible_scenarios']} feasible,"
        f" {s['errors']} errors)",
    )
    beats = s["beats_paper_heuristic"]
    saving = s["median_saving_pct"]
    render.echo(
        f"Exact backends agree with the exhaustive optimum: {s['agreement_rate']}"
        if s["agreement_rate"] is not None
        else "No scenario was compared."
    )
    if beats is not None:
        render.echo(
            f"Joint optimum beats the paper heuristic (batch 32, minimal offload) in"
            f" {s['beats_paper_heuristic_count']} of {s['feasible_scenarios']} feasible"
            f" scenarios ({100 * beats:.1f}%; the heuristic finds nothing in"
            f" {s['paper_heuristic_infeasible']}); median saving"
            f" {'-' if saving is None else f'{saving:.1f}%'} where both find one."
        )
    for n, r in enumerate(result["scenarios"], 1):
        if "error" in r:
            render.echo(f"scenario {n}: error: {r['error']}")
            continue
        bad = [k for k in ("milp-cbc", "milp-highs", "cp") if not r[k]["agrees"]]
        if bad:
            render.echo(f"scenario {n}: {', '.join(bad)} disagree with exhaustive: {r}")


def compare(
    model: ModelOpt = None,
    input_len: InputLenOpt = None,
    output_len: OutputLenOpt = None,
    slo_tps: SloOpt = None,
    requests: RequestsOpt = None,
    max_price: MaxPriceOpt = None,
    workloads: Annotated[
        Path | None,
        typer.Option("--workloads", help="Scenarios: .csv, .jsonl or .yaml (as for batch)."),
    ] = None,
    random_n: Annotated[
        int | None, typer.Option("--random", help="N random scenarios over the catalog.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of --random (>= 0).")] = 0,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, help="Run each scenario this many times (timing).")
    ] = 1,
    provider: ProviderOpt = None,
    only: OnlyOpt = None,
    exclude: ExcludeOpt = None,
    arch: ArchOpt = None,
    max_gpus: MaxGpusOpt = None,
    gpu: GpuOpt = None,
    prices: PricesOpt = None,
    region: RegionOpt = None,  # type: ignore[assignment]
    catalog: CatalogOpt = None,  # type: ignore[assignment]
    batch_sizes: BatchSizesOpt = None,
    offload_step: OffloadStepOpt = None,  # type: ignore[assignment]
    billing: BillingOpt = None,  # type: ignore[assignment]
    pricing: PricingOpt = None,  # type: ignore[assignment]
    formulas: FormulasOpt = None,  # type: ignore[assignment]
    perf_model: PerfModelOpt = None,
    calibration: CalibrationOpt = None,  # type: ignore[assignment]
    time_limit: TimeLimitOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="Output format: table or json.")
    ] = Format.table,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Cross-check a fleet plan instead (a workloads file as for infersave plan):"
            " HiGHS, CBC and CP-SAT against brute force, and the greedy baseline.",
        ),
    ] = None,
) -> None:
    if fmt is Format.csv:
        fail("compare prints table or json (use --format json)")
    if plan is not None:  # fleet plans: their own cross-check (infersave.cli.plan_cmd)
        from infersave.cli.plan_cmd import run_compare_plan

        run_compare_plan(plan, fmt, time_limit)
        return
    if random_n is not None and random_n < 1:
        fail(f"--random needs at least 1 scenario, got {random_n}")
    fields = {
        "input_len": input_len,
        "output_len": output_len,
        "slo_tps": slo_tps,
        "requests": requests,
        "max_price": max_price,
        "provider": provider,
        "only": only,
        "exclude": exclude,
        "arch": arch,
        "max_gpus": max_gpus,
        "gpu": gpu,
        "prices": prices,
        "region": region,
        "catalog": catalog,
        "batch_sizes": batch_sizes,
        "offload_step": offload_step,
        "billing": billing,
        "pricing": pricing,
        "formulas": formulas,
        "perf_model": perf_model,
        "calibration": calibration,
        "time_limit": time_limit,
    }
    with user_errors():
        from infersave.solver import compare as cmp
        from infersave.solver.scenario import parse_batch_sizes

        if random_n is not None or workloads is not None:
            for key in ("input_len", "output_len", "slo_tps", "requests", "max_price"):
                if fields[key] is not None and random_n is not None:
                    fail(f"--{key.replace('_', '-')} is drawn by --random; leave it out")
            if batch_sizes is not None:
                fields["batch_sizes"] = parse_batch_sizes(batch_sizes)
        scenarios = [
            s for s in _scenarios(model, fields, workloads, random_n, seed) for _ in range(repeat)
        ]
        result = _run(cmp, scenarios, quiet)
        summary = result["summary"]
        if summary["scenarios"] == 0 and summary["errors"]:  # nothing could be compared
            fail(next(r["error"] for r in result["scenarios"] if "error" in r))
    if fmt is Format.json:
        render.echo(render.json_text(result))
    else:
        _print_summary(result)


def _run(cmp: Any, scenarios: list[Any], quiet: bool) -> dict[str, Any]:
    """Compare with a progress bar on a terminal (quiet otherwise)."""
    if quiet or not sys.stderr.isatty() or len(scenarios) < 2:
        return cmp.compare(scenarios)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("comparing", total=len(scenarios))
        return cmp.compare(scenarios, on_done=lambda: progress.advance(task))


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the ``infersave`` app."""
    app.command(name="compare", help=COMPARE_HELP)(compare)
