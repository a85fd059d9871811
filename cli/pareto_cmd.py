"""``infersave pareto``: the cost/throughput trade-off of every configuration that fits."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from infersave.cli import render
from infersave.cli.common import (
    EXIT_INFEASIBLE,
    ArchOpt,
    BackendOpt,
    BatchSizeOpt,
    BatchSizesOpt,
    BillingOpt,
    CalibrationOpt,
    CatalogOpt,
    DtypeOpt,
    DtypesOpt,
    E2eOpt,
    ExcludeOpt,
    Format,
    FormatOpt,
    FormulasOpt,
    GpuOpt,
    InputLenOpt,
    KvDtypeOpt,
    MaxGpusOpt,
    MaxPriceOpt,
    ModelOpt,
    NonNvidiaOpt,
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
    SolverOpt,
    TensorParallelOpt,
    TimeLimitOpt,
    TpotOpt,
    TtftOpt,
    build_scenario,
    check_outputs,
    user_errors,
)

PARETO_HELP = """Cost vs throughput of every configuration that fits in memory under the price
cap, with the Pareto front (lowest total cost, highest TPS), the SLO, the recommendation and the
Max-Performance baseline. Prints a text chart; --plot writes a picture (.png, .svg, .html).

Example:

  infersave pareto --model opt-2.7b --input-len 1024 --output-len 128 --requests 1000
  --slo-tps 100 --max-price 3 --plot docs/pareto_example.png
"""

PlotOpt = Annotated[
    str | None,
    typer.Option("--plot", help="Also write the picture: FILE.png, FILE.svg or FILE.html."),
]


def pareto(
    model: ModelOpt,
    input_len: InputLenOpt,
    output_len: OutputLenOpt,
    slo_tps: SloOpt = None,
    ttft_slo: TtftOpt = None,
    tpot_slo: TpotOpt = None,
    e2e_slo: E2eOpt = None,
    requests: RequestsOpt = None,
    max_price: MaxPriceOpt = None,
    provider: ProviderOpt = None,
    only: OnlyOpt = None,
    exclude: ExcludeOpt = None,
    arch: ArchOpt = None,
    max_gpus: MaxGpusOpt = None,
    gpu: GpuOpt = None,
    prices: PricesOpt = None,
    region: RegionOpt = None,
    catalog: CatalogOpt = None,
    batch_sizes: BatchSizesOpt = None,
    batch_size: BatchSizeOpt = None,
    offload_step: OffloadStepOpt = None,
    billing: BillingOpt = None,
    pricing: PricingOpt = None,
    dtype: DtypeOpt = None,
    tensor_parallel: TensorParallelOpt = None,
    dtypes: DtypesOpt = None,
    kv_dtype: KvDtypeOpt = None,
    formulas: FormulasOpt = None,
    perf_model: PerfModelOpt = None,
    calibration: CalibrationOpt = None,
    include_non_nvidia: NonNvidiaOpt = False,
    backend: BackendOpt = None,
    solver: SolverOpt = None,
    time_limit: TimeLimitOpt = None,
    plot: PlotOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    with user_errors():
        from infersave.plots.pareto_plot import check_plot_path, text_pareto, write_pareto
        from infersave.solver.pareto import pareto as run_pareto

        if plot is not None:
            check_plot_path(plot)  # a bad extension fails before any work
            check_outputs(plot)
        scenario = build_scenario(
            model=model,
            input_len=input_len,
            output_len=output_len,
            requests=requests,
            slo_tps=slo_tps,
            ttft_slo=ttft_slo,
            tpot_slo=tpot_slo,
            e2e_slo=e2e_slo,
            max_price=max_price,
            provider=provider,
            only=only,
            exclude=exclude,
            arch=arch,
            max_gpus=max_gpus,
            gpu=gpu,
            prices=prices,
            region=region,
            catalog=catalog,
            batch_sizes=batch_sizes,
            batch_size=batch_size,
            offload_step=offload_step,
            billing=billing,
            pricing=pricing,
            dtype=dtype,
            tensor_parallel=tensor_parallel,
            dtypes=dtypes,
            kv_dtype=kv_dtype,
            formulas=formulas,
            perf_model=perf_model,
            calibration=calibration,
            include_non_nvidia=include_non_nvidia,
            backend=backend,
            solver=solver,
            time_limit=time_limit,
        )
        result = run_pareto(scenario)
        if plot is not None:
            write_pareto(result, plot)
    if fmt is Format.json:
        render.echo(result.model_dump_json(indent=2))
    elif fmt is Format.csv:
        header = "instance_type\n"
        rows = [p.model_dump() for p in result.points]
        render.echo(render.csv_text(rows) if rows else header)
    else:
        render.echo(text_pareto(result))
    if plot is not None:
        sys.stderr.write(f"infersave: wrote {plot}\n")
    if result.result.status != "ok":
        if fmt is not Format.table:
            sys.stderr.write(f"infersave: nothing feasible: {result.result.message}\n")
        raise typer.Exit(EXIT_INFEASIBLE)


def register(app: typer.Typer) -> None:
    """Add ``infersave pareto`` to ``app``."""
    app.command(name="pareto", help=PARETO_HELP)(pareto)
