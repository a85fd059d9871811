"""The scenario's fields, declared once: name, type, default, unit, bounds and help.

:class:`infersave.solver.scenario.Scenario` (the pydantic model every solve validates) is built
from :data:`FIELDS`; the command line's options (:mod:`infersave.cli.common`), the columns of a
``batch`` workloads file and the HTTP service's request schema all come from that model or from
these specs, so a default, a unit or a bound can never hold in one interface and not another.

This module imports nothing heavy (no pydantic, no numpy; the modelling options it reads
import numpy only when used), so ``infersave --help`` can read the
help texts without loading the solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from infersave.formulations.options import (
    DEFAULT_BATCH_SIZES,
    KV_DTYPES,
    TP_DEGREES,
    WEIGHT_DTYPES,
)

REQUIRED: Any = ...
"""Default of a field the user must give."""

MAX_BATCH_SIZE = 4096
"""Largest batch size searched (requests per batch on one replica); larger is bad input."""
MAX_BATCH_SIZES = 64
"""Most batch sizes one scenario may search (the candidate table grows with each)."""
MIN_OFFLOAD_STEP = 0.01
"""Finest offload-ratio grid (101 levels): finer grids change no pick measurably and multiply
the candidate table."""
DTYPES: tuple[str, ...] = WEIGHT_DTYPES


@dataclass(frozen=True)
class FieldSpec:
    """One scenario field.

    Attributes:
        name: the field name (batch column, JSON key); the CLI flag is ``--name-with-dashes``.
        type: its Python type (``Literal`` for a fixed set of choices).
        default: the default, or :data:`REQUIRED`.
        help: one line for ``--help``, the JSON schema and error messages.
        unit: the unit of a number (``tokens``, ``tokens/s``, ``$/h``, ``s``), or empty.
        bounds: pydantic ``Field`` constraints (``gt``, ``ge``, ``le``, ``min_length``).
    """

    name: str
    type: Any
    default: Any
    help: str
    unit: str = ""
    bounds: dict[str, Any] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        """The command-line flag: ``--input-len`` for ``input_len``."""
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        """Whether the user must give it."""
        return self.default is REQUIRED

    def help_text(self) -> str:
        """``help`` with the unit and the default, for ``--help``."""
        unit = f" [{self.unit}]" if self.unit else ""
        if self.required or self.default is None or self.default is False:
            return f"{self.help}{unit}"
        shown = self.default
        if isinstance(shown, tuple):
            shown = ",".join(str(x) for x in shown)
        return f"{self.help}{unit} (default: {shown})"


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "model",
        str,
        REQUIRED,
        "Catalog name (opt-2.7b), Hugging Face id, or a local config.json path.",
        bounds={"min_length": 1},
    ),
    FieldSpec("input_len", int, REQUIRED, "Prompt tokens per request (L_in).", "tokens", {"gt": 0}),
    FieldSpec(
        "output_len", int, REQUIRED, "Generated tokens per request (L_out).", "tokens", {"gt": 0}
    ),
    FieldSpec("requests", int, 1000, "Requests in the task.", "requests", {"gt": 0}),
    FieldSpec(
        "slo_tps",
        float | None,
        None,
        "Throughput SLO: input + output tokens per second (Eq. 1); optional when a latency"
        " SLO (ttft_slo, tpot_slo, e2e_slo) is given.",
        "tokens/s",
        {"gt": 0},
    ),
    FieldSpec(
        "ttft_slo",
        float | None,
        None,
        "Time to first token of every request of a batch (the batch's prefill).",
        "s",
        {"gt": 0},
    ),
    FieldSpec(
        "tpot_slo",
        float | None,
        None,
        "Time per output token of a request (one decode step).",
        "s",
        {"gt": 0},
    ),
    FieldSpec(
        "e2e_slo",
        float | None,
        None,
        "End-to-end time of a batch (prefill + every decode step).",
        "s",
        {"gt": 0},
    ),
    FieldSpec(
        "slo_confidence",
        float | None,
        None,
        "Confidence P (e.g. 0.9) that TPS >= slo_tps holds: the SLO must hold at the lower"
        " bound of the time model's error band for the GPU (perf model v2).",
        "",
        {"gt": 0, "lt": 1},
    ),
    FieldSpec(
        "max_price",
        float | None,
        None,
        "Price cap P_max per instance; none: no cap.",
        "$/h",
        {"gt": 0},
    ),
    FieldSpec(
        "provider",
        str,
        "all",
        "Clouds to search: all, or a comma list of aws, gcp, azure, lambda.",
        bounds={"min_length": 1},
    ),
    FieldSpec(
        "region",
        str,
        "us-east-1",
        "Region, a comma list of regions, or all (infersave instances --regions).",
        bounds={"min_length": 1},
    ),
    FieldSpec(
        "catalog",
        str,
        "cloud",
        "Price set: cloud (the shipped provider catalogs), one provider's (aws, gcp, azure,"
        " lambda), or paper-2025 (the paper's Table IV).",
    ),
    FieldSpec(
        "batch_sizes",
        tuple[int, ...],
        DEFAULT_BATCH_SIZES,
        f"Batch sizes to search: 1,2,4,... or 1-256 (powers of 2); at most {MAX_BATCH_SIZES}"
        f" sizes, each at most {MAX_BATCH_SIZE}.",
    ),
    FieldSpec(
        "batch_size",
        int | None,
        None,
        "Fix the batch size instead of searching.",
        "requests",
        {"gt": 0, "le": MAX_BATCH_SIZE},
    ),
    FieldSpec(
        "offload_step",
        float,
        0.1,
        f"Grid step of the KV-cache offload ratio C_off, from {MIN_OFFLOAD_STEP:g} to 1,"
        " dividing 1.",
        bounds={"ge": MIN_OFFLOAD_STEP, "le": 1},
    ),
    FieldSpec(
        "billing",
        Literal["hourly", "per-second"],
        "hourly",
        "hourly (ceil, the paper) or per-second (60 s minimum).",
    ),
    FieldSpec(
        "pricing",
        Literal["on-demand", "spot", "both"],
        "on-demand",
        "on-demand or spot prices, or both (every instance in either market).",
    ),
    FieldSpec(
        "only",
        str | None,
        None,
        "Only these instance families or types, comma-separated (g6e,g6 or g6.xlarge).",
    ),
    FieldSpec(
        "exclude",
        str | None,
        None,
        "Exclude these instance families or types, comma-separated (g5g,p3).",
    ),
    FieldSpec(
        "arch", Literal["x86_64", "arm64"] | None, None, "Only hosts of this CPU architecture."
    ),
    FieldSpec(
        "max_gpus", int | None, None, "At most this many GPUs per instance.", "GPUs", {"gt": 0}
    ),
    FieldSpec(
        "gpu",
        str | None,
        None,
        "Only these GPUs, comma-separated (L4,L40S; A100 matches all A100s).",
    ),
    FieldSpec(
        "prices",
        str | None,
        None,
        "CSV of your own prices (negotiated, reserved) overriding the catalog's: columns provider,"
        " instance_type, region, on_demand_per_hour[, spot_per_hour, source, date].",
    ),
    FieldSpec(
        "dtype",
        Literal[DTYPES],
        "fp16",
        f"Weight precision: {', '.join(DTYPES)} (int4: AWQ/GPTQ weight-only, fp16 compute).",
    ),
    FieldSpec(
        "dtypes",
        str | None,
        None,
        "Search these weight precisions instead (comma list, e.g. fp16,fp8,int4; quality is"
        " your call); the record says which is used.",
    ),
    FieldSpec(
        "kv_dtype",
        Literal[KV_DTYPES],
        "auto",
        "KV-cache precision: auto (as the weights; fp16 beside int4), fp16, bf16 or fp8.",
    ),
    FieldSpec(
        "tensor_parallel",
        int | None,
        None,
        "Fix the tensor-parallel degree (GPUs per replica) instead of searching"
        f" {', '.join(map(str, TP_DEGREES))} (each that divides the instance's GPUs).",
        "GPUs",
        {"ge": 1, "le": 16},
    ),
    FieldSpec(
        "formulas",
        Literal["physics", "paper"],
        "physics",
        "physics (corrected) or paper (the paper's formulas as printed).",
    ),
    FieldSpec(
        "perf_model",
        Literal["v2", "paper", "roofline"],
        "v2",
        "Time model: v2 (engine-aware roofline), roofline or paper.",
    ),
    FieldSpec(
        "gpu_memory_utilization",
        float,
        0.9,
        "Share of the GPU's reported memory the serving engine may use.",
        bounds={"gt": 0, "le": 1},
    ),
    FieldSpec(
        "host_memory_utilization",
        float,
        0.8,
        "Share of host memory available for offloaded KV cache.",
        bounds={"gt": 0, "le": 1},
    ),
    FieldSpec("include_non_nvidia", bool, False, "Also consider non-NVIDIA accelerators."),
    FieldSpec(
        "calibration",
        str,
        "default",
        "CTCF coefficients: default (shipped), none, or a JSON file.",
    ),
    FieldSpec(
        "backend",
        Literal["exhaustive", "milp", "cp"],
        "milp",
        "Search: milp (HiGHS or CBC), cp (CP-SAT) or exhaustive (brute force).",
    ),
    FieldSpec("solver", str, "highs", "MILP solver: highs (in-process) or cbc."),
    FieldSpec("time_limit", float | None, None, "Solver time limit.", "s", {"gt": 0}),
    FieldSpec("top", int, 5, "Alternatives to show.", bounds={"ge": 0, "le": 1000}),
)
"""Every scenario field, in the order the CLI and the JSON schema show them."""

BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


def flag_of(name: str) -> str:
    """The command-line flag of field ``name`` (``max_price`` -> ``--max-price``)."""
    return "--" + name.replace("_", "-")


def markdown_table() -> str:
    """The fields as the README's Markdown table (``python -m infersave.solver.fields``)."""
    rows = ["| option | default | unit | meaning |", "|---|---|---|---|"]
    for f in FIELDS:
        if f.required:
            shown = "required"
        elif f.default is None:
            shown = "none"
        elif f.default is False:
            shown = "off"
        elif isinstance(f.default, tuple):
            shown = ",".join(str(x) for x in f.default)
        else:
            shown = str(f.default)
        rows.append(f"| `{f.flag}` | {shown} | {f.unit} | {f.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
