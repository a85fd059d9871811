"""``infersave calibrate`` and ``infersave validate``: CTCF (paper Eq. 7) from measurements.

Registered by :func:`register`; the work is in :mod:`infersave.formulations.calibration_report`.
Every check that can refuse the command (perf model, measurements file, output path) runs
before any fitting, so a refused command writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from infersave.cli import render
from infersave.cli.common import Format, FormatOpt, fail, user_errors

MeasurementsArg = Annotated[
    Path,
    typer.Argument(
        help="Measurement CSV: gpu, model, phase, batch_size, input_len, output_len, time_s,"
        " layers, source[, tensor_parallel, dtype, engine]. Use 'shipped' for the packaged"
        " data (Helix; for v2 also the lmdeploy/TensorRT-LLM rows)."
    ),
]
PerfModelsOpt = Annotated[
    str,
    typer.Option(
        "--perf-model",
        help="Time model(s) to fit for: v2, roofline, paper, or all (a calibration applies only"
        " to the perf model it was fitted for; v2 fits per-GPU scales on top of its constants).",
    ),
]


def _measurements(path: Path) -> Path:
    from infersave.catalog.measurements import shipped_measurements_path

    if str(path) == "shipped":
        return shipped_measurements_path()
    if not path.is_file():
        fail(f"measurements file not found: {path}")
    return path


_PERF_CHOICES = ("v2", "roofline", "paper", "all")


def _pct(x: Any) -> str:
    return "-" if x is None else f"{x:.1f}"


def _pct_or_na(x: Any) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def calibrate_cmd(
    measurements: MeasurementsArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Calibration JSON to write (atomically).")
    ] = Path("calibration.json"),
    perf_model: PerfModelsOpt = "all",
    name: Annotated[str | None, typer.Option("--name", help="Name recorded in results.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Fit CTCF alpha, beta per (GPU, phase) by least squares (paper Eq. 7, Table III).

    Example:

      infersave calibrate shipped -o calibration.json
    """
    from infersave.catalog.output_files import check_output_path, write_json_atomic
    from infersave.formulations import calibration_report as wf

    with user_errors():
        models = wf.PERF_MODELS if perf_model == "all" else (perf_model,)
        if perf_model != "all" and perf_model not in wf.PERF_MODELS:
            fail(f"unknown perf model {perf_model!r}; use one of: {', '.join(_PERF_CHOICES)}")
        path = _measurements(measurements)
        check_output_path(output, inputs=(path,))
        if str(measurements) == "shipped":
            doc = wf.shipped_calibration(models)
        else:
            doc = wf.calibrate(path, models, name=name)
        if name:
            doc["name"] = name
        try:
            write_json_atomic(doc, output)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    rows = [wf.fit_table_rows(doc, pm) for pm in doc["fits"]]
    flat = [r for rs in rows for r in rs]
    if fmt is Format.json:
        render.echo(render.json_text(doc))
    elif fmt is Format.csv:
        render.echo(render.csv_text(flat))
    else:
        render.print_table(
            [
                "perf model",
                "gpu",
                "phase",
                "alpha",
                "beta (ms/layer)",
                "points",
                "MAPE before %",
                "MAPE after %",
                "worst after %",
            ],
            [
                [
                    r["perf_model"],
                    r["gpu"],
                    r["phase"],
                    f"{r['alpha']:.4f}",
                    f"{r['beta_s'] * 1e3:.4f}",
                    r["points"],
                    _pct(r["mape_before"]),
                    _pct(r["mape_after"]),
                    _pct(r["worst_after"]),
                ]
                for r in flat
            ],
            title=f"CTCF fit (Eq. 7) -> {output}",
        )
        for r in flat:
            if r.get("warning"):
                render.echo(f"warning: {r['gpu']} {r['phase']}: {r['warning']}")
        for s in doc.get("skipped", []):
            render.echo(f"skipped: {s}")


def validate_cmd(
    measurements: MeasurementsArg,
    calibration: Annotated[
        str,
        typer.Option(
            "--calibration",
            help="default (shipped), none, refit (fit on these rows), or a calibration JSON.",
        ),
    ] = "default",
    perf_model: Annotated[
        str,
        typer.Option(
            "--perf-model",
            help="Time model: v2 (shipped Helix + engine rows, with leave-one-source-out and"
            " median errors), roofline or paper.",
        ),
    ] = "v2",
    fmt: FormatOpt = Format.table,
) -> None:
    """MAPE and worst error per GPU and phase, with leave-one-model-out (LOMO) and
    leave-one-GPU-out (LOGO) cross-validation.

    'before' is the uncalibrated time model. 'calibrated' applies --calibration; LOMO refits
    each (GPU, phase) without the held-out model; LOGO predicts each GPU with one pooled,
    GPU-agnostic CTCF fitted on the other GPUs. A held-out figure that cannot be computed
    (one GPU, one model) shows n/a with the reason.

    Example:

      infersave validate shipped
    """
    from infersave.formulations import calibration_report as wf

    with user_errors():
        if perf_model not in wf.PERF_MODELS:
            fail(f"unknown perf model {perf_model!r}; use one of: {', '.join(wf.PERF_MODELS)}")
        report = wf.validate(_measurements(measurements), calibration, perf_model)
    if fmt is Format.json:
        render.echo(render.json_text({"perf_model": perf_model, "rows": report}))
        return
    if fmt is Format.csv:
        render.echo(render.csv_text(report))
        return
    if perf_model == "v2":
        render.print_table(
            ["check", "gpu", "phase", "points", "median before %", "median after %",
             "MAPE after %", "worst after %"],
            [
                [r["check"], r["gpu"], r["phase"], r["points"], _pct_or_na(r["median_before"]),
                 _pct_or_na(r["median_after"]), _pct_or_na(r["mape_after"]),
                 _pct_or_na(r["worst_after"])]
                for r in report
            ],
            title=f"Prediction error, perf model v2, calibration {calibration}",
        )  # fmt: skip
        for line in wf.summary_lines(report):
            render.echo(line)
        return
    render.print_table(
        [
            "check",
            "gpu",
            "phase",
            "points",
            "MAPE before %",
            "worst before %",
            "MAPE after %",
            "worst after %",
        ],
        [
            [
                r["check"],
                r["gpu"],
                r["phase"],
                r["points"],
                _pct_or_na(r["mape_before"]),
                _pct_or_na(r["worst_before"]),
                _pct_or_na(r["mape_after"]),
                _pct_or_na(r["worst_after"]),
            ]
            for r in report
        ],
        title=f"Prediction error, perf model {perf_model}, calibration {calibration}",
    )
    notes = sorted({(r["check"], r["gpu"], r["phase"], r["note"]) for r in report if r["note"]})
    for check, gpu, phase, note in notes:
        render.echo(f"note: {check} {gpu} {phase}: {note}")
    for line in wf.summary_lines(report):
        render.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` and ``validate`` to ``app``."""
    app.command("calibrate")(calibrate_cmd)
    app.command("validate")(validate_cmd)
