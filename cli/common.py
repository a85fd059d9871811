"""Options shared by the commands, the scenario builder, and the bad-input handler.

Commands import their heavy modules (solver, numpy) inside their bodies so that
``infersave --help`` stays light.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from enum import Enum, StrEnum
from typing import Annotated, Any, NoReturn

import typer

from infersave.solver.fields import BY_NAME

EXIT_OK, EXIT_INFEASIBLE, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
"""Exit codes: 0 found, 1 nothing feasible, 2 bad input (or unwritable output), 3 an
unexpected internal error (a bug: rerun with --debug for the traceback), 130 interrupted."""

_FLAGS: dict[str, str] = {
    **{name: spec.flag for name, spec in BY_NAME.items()},
    "offload_ratio": "--offload-ratio",  # predict's own option
}
_FIELD_WORDS = re.compile(
    r"(?<![\w-])("
    + "|".join(sorted((n for n in _FLAGS if "_" in n), key=len, reverse=True))
    + r")(?![\w-])"
)
_LEADING_FIELD = re.compile(r"^(" + "|".join(_FLAGS) + r"):")


def as_flags(message: str) -> str:
    """A solver-layer message with scenario field names shown as the CLI's flags
    (``raise max_price`` -> ``raise --max-price``; a leading ``dtype:`` -> ``--dtype:``)."""
    message = _LEADING_FIELD.sub(lambda m: _FLAGS[m.group(1)] + ":", message)
    return _FIELD_WORDS.sub(lambda m: _FLAGS[m.group(1)], message)


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
        fail(as_flags(describe_validation_error(exc)))
    except (InputError, CatalogError) as exc:
        fail(as_flags(str(exc)))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def check_outputs(*paths: str | None) -> None:
    """Refuse, before any work, output files that would replace something they should not
    (a FIFO, device, directory or symlink), or whose directory is missing or unwritable.

    Raises:
        OSError (UnsafeOutputError): handled by :func:`user_errors` (one line, exit 2).
    """
    from infersave.catalog.output_files import check_output_path

    given = [p for p in paths if p is not None]
    if len(set(given)) < len(given):
        fail("two outputs name the same file; give each its own")
    for p in given:
        check_output_path(p)


def build_scenario(**fields: Any) -> Any:
    """A validated :class:`~infersave.solver.scenario.Scenario` from CLI fields (None: the
    scenario's default).

    Raises:
        pydantic.ValidationError, InputError: on bad values (handled by :func:`user_errors`).
    """
    from infersave.solver.scenario import Scenario, parse_batch_sizes

    if "batch_sizes" in fields and isinstance(fields["batch_sizes"], str):
        fields["batch_sizes"] = parse_batch_sizes(fields["batch_sizes"])
    clean = {k: (v.value if isinstance(v, Enum) else v) for k, v in fields.items() if v is not None}
    return Scenario(**clean)


# Shared option declarations -------------------------------------------------------------
# Scenario options come from the scenario's field specs (infersave.solver.fields): flag, help,
# unit and default are declared there once. Their CLI default is None, meaning "the scenario's
# default", which the help text shows.


def scenario_option(name: str, *short: str, cli_type: Any = None) -> Any:
    """``Annotated[type | None, typer.Option(...)]`` for scenario field ``name`` (flag, help
    with unit and default from its :class:`~infersave.solver.fields.FieldSpec`)."""
    spec = BY_NAME[name]
    t = cli_type or (spec.type if spec.type in (int, float, str, bool) else str)
    if t is not bool:
        t = t | None
    return Annotated[t, typer.Option(spec.flag, *short, help=spec.help_text())]


ModelOpt = scenario_option("model", "-m")
InputLenOpt = scenario_option("input_len")
OutputLenOpt = scenario_option("output_len")
RequestsOpt = scenario_option("requests")
SloOpt = scenario_option("slo_tps", cli_type=float)
MaxPriceOpt = scenario_option("max_price", cli_type=float)
RegionOpt = scenario_option("region")
CatalogOpt = scenario_option("catalog")
BatchSizesOpt = scenario_option("batch_sizes")
BatchSizeOpt = scenario_option("batch_size", cli_type=int)
OffloadStepOpt = scenario_option("offload_step")
BillingOpt = scenario_option("billing")
PricingOpt = scenario_option("pricing")
DtypeOpt = scenario_option("dtype")
TensorParallelOpt = scenario_option("tensor_parallel")
DtypesOpt = scenario_option("dtypes")
KvDtypeOpt = scenario_option("kv_dtype")
FormulasOpt = scenario_option("formulas")
PerfModelOpt = scenario_option("perf_model")
CalibrationOpt = scenario_option("calibration")
NonNvidiaOpt = scenario_option("include_non_nvidia")
BackendOpt = scenario_option("backend")
SolverOpt = scenario_option("solver")
TimeLimitOpt = scenario_option("time_limit", cli_type=float)
TopOpt = scenario_option("top")
TtftOpt = scenario_option("ttft_slo", cli_type=float)
TpotOpt = scenario_option("tpot_slo", cli_type=float)
E2eOpt = scenario_option("e2e_slo", cli_type=float)
SloConfidenceOpt = scenario_option("slo_confidence", cli_type=float)
ProviderOpt = scenario_option("provider")
OnlyOpt = scenario_option("only", cli_type=str)
ExcludeOpt = scenario_option("exclude", cli_type=str)
ArchOpt = scenario_option("arch", cli_type=str)
MaxGpusOpt = scenario_option("max_gpus", cli_type=int)
GpuOpt = scenario_option("gpu", cli_type=str)
PricesOpt = scenario_option("prices", cli_type=str)
PLACEMENT_FIELDS = ("provider", "only", "exclude", "arch", "max_gpus", "gpu", "prices")
"""Where a scenario may run (see infersave.solver.placement): options of every scenario command."""
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
