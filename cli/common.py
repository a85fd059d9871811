"""Options shared by the commands, the scenario builder, and the bad-input handler.

Commands import their heavy modules (solver, numpy) inside their bodies so that
``infersave --help`` stays light.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from enum import Enum, StrEnum
from typing import Annotated, Any, NoReturn

import typer

EXIT_OK, EXIT_INFEASIBLE, EXIT_BAD_INPUT = 0, 1, 2


class Format(StrEnum):
    """Output formats."""

    table = "table"
    json = "json"
    csv = "csv"


def fail(message: str) -> NoReturn:
    """Print one line ``infersave: error: message`` on stderr and exit 2."""
    sys.stderr.write(f"infersave: error: {message}\n")
    raise typer.Exit(EXIT_BAD_INPUT)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad-input exceptions (InputError, CatalogError, pydantic ValidationError, OSError on
    user files) into one line on stderr and exit code 2."""
    from pydantic import ValidationError

    from infersave.catalog.load import CatalogError
    from infersave.solver.scenario import InputError, describe_validation_error

    try:
        yield
    except ValidationError as exc:
        fail(describe_validation_error(exc))
    except (InputError, CatalogError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def build_scenario(**fields: Any) -> Any:
    """A validated :class:`~infersave.solver.scenario.Scenario` from CLI fields (None = default).

    Raises:
        pydantic.ValidationError, InputError: on bad values (handled by :func:`user_errors`).
    """
    from infersave.solver.scenario import Scenario, parse_batch_sizes

    if "batch_sizes" in fields and isinstance(fields["batch_sizes"], str):
        fields["batch_sizes"] = parse_batch_sizes(fields["batch_sizes"])
    clean = {k: (v.value if isinstance(v, Enum) else v) for k, v in fields.items() if v is not None}
    return Scenario(**clean)


# Shared option declarations -------------------------------------------------------------

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Catalog name (opt-2.7b), Hugging Face id, or a config.json path."
    ),
]
InputLenOpt = Annotated[int, typer.Option("--input-len", help="Prompt tokens per request (L_in).")]
OutputLenOpt = Annotated[
    int, typer.Option("--output-len", help="Generated tokens per request (L_out).")
]
RequestsOpt = Annotated[int, typer.Option("--requests", help="Requests in the task.")]
SloOpt = Annotated[
    float, typer.Option("--slo-tps", help="Throughput SLO: input+output tokens per second.")
]
MaxPriceOpt = Annotated[
    float | None, typer.Option("--max-price", help="Price cap P_max, $/h per instance.")
]
RegionOpt = Annotated[str, typer.Option("--region", help="Cloud region.")]
CatalogOpt = Annotated[
    str, typer.Option("--catalog", help="Price set: aws, or paper-2025 (the paper's Table IV).")
]
BatchSizesOpt = Annotated[
    str | None,
    typer.Option("--batch-sizes", help="Batch sizes to search: 1,2,4,... or 1-256 (powers of 2)."),
]
BatchSizeOpt = Annotated[
    int | None, typer.Option("--batch-size", help="Fix the batch size instead of searching.")
]
OffloadStepOpt = Annotated[
    float, typer.Option("--offload-step", help="Grid step of the KV-cache offload ratio.")
]
BillingOpt = Annotated[
    str, typer.Option("--billing", help="hourly (ceil, the paper) or per-second (60 s minimum).")
]
PricingOpt = Annotated[str, typer.Option("--pricing", help="on-demand or spot prices.")]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", help="Weights/KV precision: fp16, bf16, fp32, int8.")
]
FormulasOpt = Annotated[
    str,
    typer.Option(
        "--formulas", help="physics (corrected) or paper (the paper's formulas as printed)."
    ),
]
PerfModelOpt = Annotated[
    str | None, typer.Option("--perf-model", help="Time model: roofline or paper (Eq. 5-6).")
]
CalibrationOpt = Annotated[
    str,
    typer.Option(
        "--calibration", help="CTCF coefficients: default (shipped), none, or a JSON file."
    ),
]
NonNvidiaOpt = Annotated[
    bool, typer.Option("--include-non-nvidia", help="Also consider non-NVIDIA accelerators.")
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="Search: milp (PuLP), cp (CP-SAT) or exhaustive (brute force)."),
]
SolverOpt = Annotated[
    str | None, typer.Option("--solver", help="MILP solver: highs (default; in-process) or cbc.")
]
TimeLimitOpt = Annotated[
    float | None, typer.Option("--time-limit", help="Solver time limit, seconds.")
]
