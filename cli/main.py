"""infersave: which cloud GPU instance, batch size and KV-cache offload ratio meet an LLM
inference SLO at the lowest billed cost.

Exit codes: 0 found, 1 nothing feasible (the closest miss is explained), 2 bad input,
3 internal error (rerun with --debug for the traceback), 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, NoReturn

import typer

from infersave.cli import render
from infersave.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INFEASIBLE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
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
    SloConfidenceOpt,
    SloOpt,
    SolverOpt,
    TensorParallelOpt,
    TimeLimitOpt,
    TopOpt,
    TpotOpt,
    TtftOpt,
    as_flags,
    build_scenario,
    check_outputs,
    fail,
    user_errors,
)

app = typer.Typer(
    name="infersave",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SOLVE_EXAMPLE = """Recommend the cheapest instance for a real workload.

Example:

  infersave solve --model opt-2.7b --input-len 1024 --output-len 128 --requests 1000
  --slo-tps 100 --max-price 3 --region us-east-1
"""

RECORD_COLUMNS = (
    "role",
    "where",
    "instance",
    "gpu",
    "TP",
    "dtype",
    "batch",
    "offload",
    "TPS",
    "prefill s",
    "decode s",
    "task h",
    "billed h",
    "$/h",
    "total $",
)


def _row(role: str, r: Any) -> list[str]:
    gpus = f"{r.gpu}" if r.gpu_count == 1 else f"{r.gpu} x{r.gpu_count:g}"
    where = f"{r.provider} {r.region}" + (" spot" if r.market == "spot" else "")
    return [
        role,
        where,
        r.instance_type,
        gpus,
        str(r.tensor_parallel),
        r.dtype,
        str(r.batch_size),
        f"{r.offload_ratio:.2f}",
        render.num(r.tps),
        f"{r.prefill_s:.3g}",
        f"{r.decode_s:.3g}",
        f"{r.task_hours:.2f}",
        f"{r.billed_hours:.4g}",
        f"{r.price_per_hour:.4g}",
        render.money(r.total_cost_usd),
    ]


def _tp_text(r: Any) -> str:
    """``, tensor parallel 4 (2 replicas; all-reduce 3% of a batch)`` for TP > 1, else empty."""
    if r.tensor_parallel <= 1:
        return ""
    replicas = r.gpu_count / r.tensor_parallel
    share = r.allreduce_s / r.e2e_s if r.e2e_s > 0 else 0.0
    return (
        f", tensor parallel {r.tensor_parallel} ({replicas:g}"
        f" replica{'s' if replicas != 1 else ''}; all-reduce {share:.0%} of a batch)"
    )


def _print_solve_table(result: Any) -> None:
    s = result.scenario
    cap = "no cap" if s.max_price is None else f"<= ${s.max_price:g}/h"
    providers = "all providers" if s.provider == "all" else s.provider
    slos = [f"{s.slo_tps:g} TPS"] if s.slo_tps is not None else []
    slos += [
        f"{name.upper()} <= {v:g} s"
        for name, v in (("ttft", s.ttft_slo), ("tpot", s.tpot_slo), ("e2e", s.e2e_slo))
        if v is not None
    ]
    head = (
        f"{s.model}: {s.requests} requests of {s.input_len} in + {s.output_len} out tokens,"
        f" SLO {', '.join(slos)}, {cap}, region {s.region} ({providers}, {s.catalog} prices,"
        f" {s.pricing}, {s.billing} billing)"
    )
    render.echo(head)
    rows = []
    if result.recommendation is not None:
        rows.append(_row("recommended", result.recommendation))
        rows.extend(_row(f"alt {n}", a) for n, a in enumerate(result.alternatives, 1))
    base = result.baseline.max_performance
    if base is not None:
        rows.append(_row("max-perf", base))
    if rows:
        render.print_table(RECORD_COLUMNS, rows, highlight_first=result.recommendation is not None)
    if result.status != "ok":
        render.echo(f"Nothing feasible: {as_flags(result.message)}")
        return
    rec = result.recommendation
    line = (
        f"Recommended: {rec.instance_type} on {rec.provider} {rec.region}"
        f"{' (spot)' if rec.market == 'spot' else ''}"
        f" ({rec.gpu} x{rec.gpu_count:g}){_tp_text(rec)}, batch {rec.batch_size},"
        f" KV offload {rec.offload_ratio:.0%}: {rec.tps:,.0f} TPS predicted,"
        f" {rec.billed_hours:g} billed h, total {render.money(rec.total_cost_usd)}"
        f" ({rec.calibration}; {rec.market} price of {rec.price_date or 'unknown date'})."
    )
    render.echo(line)
    if base is not None and result.baseline.savings_pct is not None:
        render.echo(
            f"Max-Performance baseline {base.instance_type} ({base.tps:,.0f} TPS) costs"
            f" {render.money(base.total_cost_usd)}: {result.baseline.savings_pct:.1f}% saved."
        )
    if result.solver is not None and result.solver.note:
        render.echo(f"Note: {result.solver.note}")


def _emit_result(result: Any, fmt: Format) -> None:
    if fmt is Format.json:
        render.echo(result.model_dump_json(indent=2))
    elif fmt is Format.csv:
        rows = []
        if result.recommendation is not None:
            rows.append({"role": "recommendation", **result.recommendation.model_dump()})
            rows.extend({"role": "alternative", **a.model_dump()} for a in result.alternatives)
        if result.baseline.max_performance is not None:
            rows.append({"role": "max_performance", **result.baseline.max_performance.model_dump()})
        render.echo(render.csv_text(rows) if rows else "role\n")
    else:
        _print_solve_table(result)


@app.command(name="solve", help=SOLVE_EXAMPLE)
def solve_cmd(
    model: ModelOpt,
    input_len: InputLenOpt,
    output_len: OutputLenOpt,
    slo_tps: SloOpt = None,
    ttft_slo: TtftOpt = None,
    tpot_slo: TpotOpt = None,
    e2e_slo: E2eOpt = None,
    slo_confidence: SloConfidenceOpt = None,
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
    write_model: Annotated[
        str | None,
        typer.Option(
            "--write-model",
            help="Also write the exact model: .lp/.mps (milp) or the CP-SAT proto as text (cp).",
        ),
    ] = None,
    top: TopOpt = None,
    emit: Annotated[
        str | None,
        typer.Option(
            "--emit",
            help="Hand off the recommendation: skypilot (task YAML) or vllm (the vllm serve"
            " command); printed instead of the table unless --emit-file is given.",
        ),
    ] = None,
    emit_file: Annotated[
        str | None, typer.Option("--emit-file", help="Write --emit's output to FILE.")
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option("--plot", help="Also write the Pareto picture: FILE.png, .svg or .html."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    with user_errors():
        from infersave.cli import handoff
        from infersave.solver.recommend import solve as run_solve

        if emit is not None and emit not in handoff.EMIT_KINDS:
            fail(f"--emit: unknown target {emit!r}; use one of: {', '.join(handoff.EMIT_KINDS)}")
        if emit_file is not None and emit is None:
            fail("--emit-file needs --emit skypilot or --emit vllm")
        if plot is not None:
            from infersave.plots.pareto_plot import check_plot_path

            check_plot_path(plot)
        check_outputs(write_model, emit_file, plot)

        scenario = build_scenario(
            model=model,
            input_len=input_len,
            output_len=output_len,
            requests=requests,
            slo_tps=slo_tps,
            ttft_slo=ttft_slo,
            tpot_slo=tpot_slo,
            e2e_slo=e2e_slo,
            slo_confidence=slo_confidence,
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
            top=top,
        )
        if write_model is not None:
            from infersave.solver.prepare import prepare
            from infersave.solver.recommend import solve_prepared
            from infersave.solver.registry import write_model as write_exact_model

            prep = prepare(scenario)
            result = solve_prepared(prep)  # first: a bad solver name fails before any write
            write_exact_model(prep.table, scenario.backend, write_model)
        elif plot is not None:
            from infersave.solver.pareto import pareto

            front = pareto(scenario)  # one candidate table for the solve and the picture
            result = front.result
        else:
            result = run_solve(scenario)
        if plot is not None:
            handoff.plot(front if write_model is None else result, plot)
        if emit is not None and result.status == "ok":
            handoff.emit(result, emit, emit_file)
    if emit is None or emit_file is not None or result.status != "ok":
        _emit_result(result, fmt)
    if result.status != "ok":
        if fmt is not Format.table:
            sys.stderr.write(f"infersave: nothing feasible: {as_flags(result.message)}\n")
        raise typer.Exit(EXIT_INFEASIBLE)


PREDICT_HELP = """Predict memory, times, TPS and cost of one configuration.

Example:

  infersave predict --model llama-3.1-8b --instance g6.xlarge --batch-size 16
  --input-len 512 --output-len 256

  infersave predict --model opt-2.7b --gpu H100 --batch-size 32 --input-len 512 --output-len 128
"""


@app.command(name="predict", help=PREDICT_HELP)
def predict_cmd(
    model: ModelOpt,
    input_len: InputLenOpt,
    output_len: OutputLenOpt,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")],
    instance: Annotated[
        str | None, typer.Option("--instance", help="Instance type, e.g. g5.xlarge.")
    ] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="One GPU of this type.")] = None,
    offload_ratio: Annotated[
        float | None,
        typer.Option("--offload-ratio", help="KV share kept in host memory; default: minimal."),
    ] = None,
    requests: RequestsOpt = None,
    slo_tps: Annotated[
        float | None, typer.Option("--slo-tps", help="SLO for TPS_effective; default none.")
    ] = None,
    region: RegionOpt = None,
    catalog: CatalogOpt = None,
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
    fmt: FormatOpt = Format.table,
) -> None:
    with user_errors():
        from infersave.solver.predict import predict as run_predict

        if (instance is None) == (gpu is None):
            fail("give exactly one of --instance or --gpu")
        scenario = build_scenario(
            model=model,
            input_len=input_len,
            output_len=output_len,
            requests=requests,
            slo_tps=slo_tps if slo_tps is not None else 1e12,
            region=region,
            catalog=catalog,
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
            include_non_nvidia=True,
        )
        out = run_predict(scenario, instance=instance, gpu=gpu, offload_ratio=offload_ratio)
    rec, problems = out.record, out.problems
    if fmt is Format.json:
        render.echo(rec.model_dump_json(indent=2))
    elif fmt is Format.csv:
        render.echo(render.csv_text([rec.model_dump()]))
    else:
        render.print_table(RECORD_COLUMNS, [_row("predicted", rec)])
        m = rec.memory
        gb = 1e9
        render.echo(
            f"Memory per GPU{_tp_text(rec)}: weights {m.weights_bytes / gb:.2f} GB, KV cache"
            f" {m.kv_cache_bytes / gb:.2f} GB, activations {m.activation_bytes / gb:.3f} GB;"
            f" usable GPU {m.gpu_memory_bytes / gb:.2f} GB, host for KV"
            f" {m.host_memory_bytes / gb:.2f} GB. One batch end to end: {rec.e2e_s:.3g} s"
            f" ({rec.calibration})."
        )
        for p in problems:
            render.echo(f"Warning: {p}")
    if problems:
        sys.stderr.write(f"infersave: does not fit: {'; '.join(problems)}\n")
        raise typer.Exit(EXIT_INFEASIBLE)


INSTANCES_HELP = """List catalog instances, across providers and regions.

Example:

  infersave instances --provider azure --gpu A100

  infersave instances --gpu L4 --max-price 2 --region us-east-1
"""


@app.command(name="instances", help=INSTANCES_HELP)
def instances_cmd(
    provider: Annotated[
        str, typer.Option("--provider", help="all, or a comma list of aws, gcp, azure, lambda.")
    ] = "all",
    region: Annotated[
        str | None, typer.Option("--region", help="Only these regions (comma list).")
    ] = None,
    gpu: Annotated[
        str | None,
        typer.Option("--gpu", help="Only these GPUs (comma list; A100 matches every A100)."),
    ] = None,
    max_price: MaxPriceOpt = None,
    catalog: Annotated[
        str, typer.Option("--catalog", help="cloud (the providers' prices) or paper-2025.")
    ] = "cloud",
    show_all: Annotated[
        bool, typer.Option("--all", help="Include excluded instances (and why).")
    ] = False,
    regions: Annotated[bool, typer.Option("--regions", help="List the regions only.")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    with user_errors():
        from infersave.catalog import load
        from infersave.solver.placement import Placement, gpu_matches, providers_of

        place = Placement(catalog, provider, "all", "on-demand", True)
        if catalog == "paper-2025":
            rows_all = load.instances("paper-2025")
        else:
            names = providers_of(place)
            rows_all = load.instances_for(names)
        offered = sorted({i.region for i in rows_all})
        if regions:
            if fmt is Format.json:
                render.echo(render.json_text(offered))
            else:
                render.echo("\n".join(offered))
            return
        wanted = [r.strip() for r in region.split(",")] if region else None
        for r in wanted or []:
            if r not in offered:
                fail(
                    f"--region: unknown region {r!r}; list them with: infersave instances --regions"
                )
        wanted_gpus = [g.strip().lower() for g in gpu.split(",")] if gpu else []
        if wanted_gpus and not any(gpu_matches(i.gpu or "", wanted_gpus) for i in rows_all):
            load.find_gpu(gpu or "")  # raises with close matches
            fail(f"--gpu: no instance has a {gpu} GPU")
        rows = [
            i
            for i in rows_all
            if (wanted is None or i.region in wanted)
            and (not wanted_gpus or gpu_matches(i.gpu or "", wanted_gpus))
            and (max_price is None or (i.on_demand_per_hour or 0) <= max_price)
            and (show_all or i.excluded is None)
        ]
        rows.sort(key=lambda i: (i.provider, i.region, i.on_demand_per_hour or 0, i.instance_type))
    if fmt is Format.json:
        render.echo(render.json_text([i.model_dump(exclude={"market"}) for i in rows]))
    elif fmt is Format.csv:
        render.echo(render.csv_text([i.model_dump(exclude={"market"}) for i in rows]))
    else:
        cols = ["provider", "instance", "region", "gpu", "count", "GiB/GPU", "vCPU", "host GiB"]
        cols += ["arch", "$/h", "spot"]
        if show_all:
            cols.append("excluded")
        table_rows = []
        for i in rows:
            row = [
                i.provider,
                i.instance_type,
                i.region,
                i.gpu or i.accelerator,
                f"{i.gpu_count:g}",
                f"{i.gpu_memory_gib:g}" if i.gpu_memory_gib else "-",
                str(i.vcpus),
                f"{i.host_memory_gib:g}",
                i.arch,
                f"{i.on_demand_per_hour:.4g}" if i.on_demand_per_hour else "-",
                f"{i.spot_per_hour:.4g}" if i.spot_per_hour else "-",
            ]
            if show_all:
                row.append(i.excluded or "")
            table_rows.append(row)
        dates = sorted({i.price_date for i in rows if i.price_date})
        when = f"; prices of {', '.join(dates)}" if dates else ""
        render.print_table(cols, table_rows, title=f"{len(rows)} instances{when}")


@app.command(help="List catalog models. Example: infersave models --format json")
def models(fmt: FormatOpt = Format.table) -> None:
    with user_errors():
        from infersave.catalog import load

        rows = list(load.models().values())
    if fmt is Format.json:
        render.echo(render.json_text([m.model_dump() for m in rows]))
    elif fmt is Format.csv:
        render.echo(render.csv_text([m.model_dump() for m in rows]))
    else:
        cols = ["name", "hf id", "params (B)", "layers", "hidden", "heads", "kv heads", "head dim"]
        render.print_table(
            cols,
            [
                [
                    m.name,
                    m.hf_id,
                    f"{m.num_parameters / 1e9:.2f}",
                    m.num_hidden_layers,
                    m.hidden_size,
                    m.num_attention_heads,
                    m.num_key_value_heads,
                    m.head_dim,
                ]
                for m in rows
            ],
        )


def _register_commands() -> None:
    """Commands that live in their own modules register themselves here."""
    import importlib

    for name in ("compare", "batch", "calibration_cmd", "pareto_cmd", "serve_cmd", "plan_cmd"):
        try:
            module = importlib.import_module(f"infersave.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"infersave.cli.{name}":
                raise
            continue
        module.register(app)


_register_commands()


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is a click/typer exception class ``name`` (typer vendors click)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


_DEBUG = "--debug"


def _finish(code: int) -> NoReturn:
    """Flush stdout and exit with ``code``; an unwritable stdout (a full disk, ``/dev/full``)
    is one line and exit 2; a reader that closed the pipe (``| head``) is not an error: the
    command's own code stands."""
    try:
        sys.stdout.flush()
        sys.__stdout__.flush()  # type: ignore[union-attr]
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        _silence_stdout()
        sys.stderr.write(f"infersave: error: cannot write the output: {exc.strerror or exc}\n")
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's own final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class _ClosedPipeGuard:
    """stdout that drops what it cannot write once the reader has gone (``| head -n 1``), so
    the command finishes and exits with its own code instead of click's EPIPE exit 1."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self.closed_by_reader = True
                _silence_stdout()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.closed_by_reader = True
                _silence_stdout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def run() -> None:
    """Console entry point. Exit codes (the contract): 0 found, 1 nothing feasible, 2 bad input
    or unwritable output (one line on stderr), 3 an unexpected internal error (one line naming
    it; ``--debug`` anywhere on the command line shows the traceback), 130 interrupted (Ctrl-C,
    SIGTERM)."""
    debug = _DEBUG in sys.argv[1:]
    if debug:
        sys.argv.remove(_DEBUG)
    sys.stdout = _ClosedPipeGuard(sys.stdout)  # type: ignore[assignment]
    try:
        from infersave.cli.lazy_commands import lazy_group

        code = lazy_group(app)(standalone_mode=False)
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except OSError as exc:
        if exc.errno is None or debug:
            raise
        _silence_stdout()
        sys.stderr.write(f"infersave: error: cannot write the output: {exc.strerror or exc}\n")
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        sys.stderr.write("infersave: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):
            render.echo(exc.format_message())  # type: ignore[attr-defined]
            _finish(EXIT_OK)
        if _is(exc, "UsageError"):
            ctx = getattr(exc, "ctx", None)
            where = f"infersave {ctx.info_name}" if ctx and ctx.info_name != "infersave" else ""
            hint = f" (see: {where or 'infersave'} --help)"
            sys.stderr.write(f"infersave: error: {exc.format_message()}{hint}\n")  # type: ignore[attr-defined]
            sys.exit(EXIT_BAD_INPUT)
        if _is(exc, "Abort"):
            sys.stderr.write("infersave: interrupted\n")
            sys.exit(EXIT_INTERRUPTED)
        if _is(exc, "Exit"):
            _finish(getattr(exc, "exit_code", 0))
        if debug:
            raise
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.stderr.write(
            f"infersave: internal error: {type(exc).__name__}{': ' + what if what else ''}"
            " (a bug; rerun with --debug for the traceback)\n"
        )
        sys.exit(EXIT_INTERNAL)
    if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into exit code 130
        sys.stderr.write("infersave: interrupted\n")
    _finish(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
