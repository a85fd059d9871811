"""From a scenario to the candidate table: catalog look-ups, instance eligibility, calibration.

Everything that does not depend on the workload (catalog, eligible instances, their arrays) is
cached, so batch runs and comparisons reuse it across scenarios.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from dataclasses import dataclass

import numpy as np

from infersave.catalog import load as catalog
from infersave.catalog.schemas import LLM, Instance
from infersave.formulations.candidates import (
    Calibration,
    CandidateTable,
    InstanceArrays,
    Workload,
    build_table,
    instance_arrays,
)
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver.placement import (
    PAPER_PRICE_SET,
    Placement,
    gpu_specs,
    select_instances,
)
from infersave.solver.scenario import InputError, Scenario


@dataclass(frozen=True)
class Prepared:
    """A scenario's candidate table and the names needed to report it."""

    scenario: Scenario
    model: LLM
    table: CandidateTable
    calibration_name: str


def placement_of(s: Scenario) -> Placement:
    """The placement fields of scenario ``s`` (where it may run)."""
    return Placement(
        catalog=s.catalog,
        provider=s.provider,
        region=s.region,
        pricing=s.pricing,
        include_non_nvidia=s.include_non_nvidia,
        only=s.only,
        exclude=s.exclude,
        arch=s.arch,
        max_gpus=s.max_gpus,
        gpu=s.gpu,
        prices=s.prices,
    )


def region_instances(
    price_set: str, region: str, include_non_nvidia: bool, pricing: str
) -> tuple[Instance, ...]:
    """Eligible instances of ``region`` in ``price_set`` (a provider name or ``paper-2025``).

    Raises:
        InputError: unknown price set or region, or no eligible instance there.
    """
    provider = price_set if price_set in catalog.PROVIDERS else "all"
    return select_instances(Placement(price_set, provider, region, pricing, include_non_nvidia))


@functools.lru_cache(maxsize=64)
def _arrays(p: Placement, options: ModelOptions, calibration_key: str) -> InstanceArrays:
    insts = select_instances(p)
    cal = _calibration(calibration_key, options.perf_model, options.formulas, p.price_set)[1]
    return instance_arrays(insts, gpu_specs(p), options, cal)


@functools.lru_cache(maxsize=16)
def _calibration(
    spec: str, perf_model: str = "roofline", formulas: str = "physics", price_set: str = "cloud"
) -> tuple[str, Calibration | None]:
    """Resolve ``--calibration``: ``default`` (the shipped fit), ``none``, or a JSON file.

    The shipped fit was made against the datasheet GPU figures of the cloud catalogs (one GPU
    table for every provider); ``paper-2025`` (the paper's own FLOPS) runs uncalibrated unless
    given a file.

    A calibration applies only to the perf model (and formulas) it was fitted for: ``default``
    falls back to uncalibrated when the shipped file has no such fit; a file without one is an
    error (see :func:`infersave.catalog.calibration.load_calibration`).
    """
    if spec == "none" or (spec == "default" and price_set == PAPER_PRICE_SET):
        return "uncalibrated", None
    try:
        from infersave.catalog import calibration as shipped
    except ImportError as exc:  # no calibration shipped yet
        if spec == "default":
            return "uncalibrated", None
        raise InputError(f"calibration: cannot read {spec!r}: not supported yet") from exc
    try:
        return shipped.load_calibration(spec, perf_model, formulas)
    except (OSError, ValueError) as exc:
        raise InputError(f"calibration: cannot read {spec!r}: {exc}") from exc


def resolve_model(name: str) -> LLM:
    """The catalog model or local config.json ``name``.

    Raises:
        InputError: unknown model (with close matches) or unreadable config file.
    """
    try:
        return catalog.find_model(name)
    except catalog.CatalogError as exc:
        raise InputError(str(exc)) from exc


def check_context_window(model: LLM, input_len: int, output_len: int) -> None:
    """Refuse requests longer than the model's context window (``max_position_embeddings`` of
    its config), when the catalog knows it.

    Raises:
        InputError: ``input_len + output_len`` exceeds the window.
    """
    window = model.max_position_embeddings
    if window is not None and input_len + output_len > window:
        raise InputError(
            f"input_len: {input_len:,} prompt + {output_len:,} output tokens exceed"
            f" {model.name}'s context window of {window:,} tokens (max_position_embeddings);"
            " shorten input_len or output_len"
        )


def workload_of(s: Scenario) -> Workload:
    """The formulations' view of a scenario's workload."""

    def given(x: float | None) -> float:
        return float("inf") if x is None else float(x)

    return Workload(
        s.input_len,
        s.output_len,
        s.requests,
        given(s.slo_tps),
        given(s.max_price),
        given(s.ttft_slo),
        given(s.tpot_slo),
        given(s.e2e_slo),
        float(getattr(s, "slo_confidence", None) or 0.0),
    )


@dataclass(frozen=True)
class Context:
    """What a scenario's candidate table needs besides the workload: scenarios with the same
    :func:`context_key` share it (batch runs evaluate them together)."""

    model: LLM
    inst: InstanceArrays
    batch_sizes: tuple[int, ...]
    levels: np.ndarray
    options: ModelOptions
    calibration_name: str


CONTEXT_FIELDS = tuple(
    dict.fromkeys(
        (
            "model",
            *(f.name for f in dataclasses.fields(Placement)),
            *(f.name for f in dataclasses.fields(ModelOptions)),
            "calibration",
            "offload_step",
        )
    )
)
"""The scenario fields a :class:`Context` is made of: the model, every field of
:func:`placement_of` and of ``Scenario.options`` (both take their fields by the same names),
the calibration and the offload step (the batch sizes are added as searched)."""

_context_fields = operator.attrgetter(*CONTEXT_FIELDS)


def context_key(s: Scenario) -> tuple[object, ...]:
    """The scenario fields :func:`context` depends on (hashable): the raw values of
    :data:`CONTEXT_FIELDS` and the searched batch sizes. Equal keys give equal contexts (the
    placement and the options are functions of these fields); read straight from the
    scenario, as building the placement and the options for every row of a batch cost 4.3 µs a
    row."""
    return (*_context_fields(s), s.searched_batch_sizes)


def context(s: Scenario) -> Context:
    """Resolve model, offload grid, instance arrays and calibration name of scenario ``s``
    (the cached parts are reused), after checking its lengths against the model's context
    window.

    Raises:
        InputError: on any input the catalog or the models reject.
    """
    check_window(s)
    return shared_context(s)


def check_window(s: Scenario) -> None:
    """Refuse scenario ``s`` when its prompt plus output exceed its model's context window: a
    check of the one scenario, never of the others that share its :func:`context_key`.

    Raises:
        InputError: unknown model, or lengths beyond the window.
    """
    check_context_window(resolve_model(s.model), s.input_len, s.output_len)


def shared_context(s: Scenario) -> Context:
    """:func:`context` without the per-scenario window check: what every scenario with the same
    :func:`context_key` shares (a batch checks each scenario's window with :func:`check_window`
    first).

    Raises:
        InputError: on any input the catalog or the models reject.
    """
    model = resolve_model(s.model)
    try:
        levels = offload_levels(s.offload_step)
    except ValueError as exc:
        raise InputError(f"offload_step: {exc}") from exc
    options = s.options()
    place = placement_of(s)
    inst = _arrays(place, options, s.calibration)
    if not inst.instances:
        raise no_tp_rows(options)
    cal_name = _calibration(s.calibration, options.perf_model, options.formulas, place.price_set)[0]
    return Context(model, inst, s.searched_batch_sizes, levels, options, cal_name)


def no_tp_rows(options: ModelOptions) -> InputError:
    """The error for eligible instances none of which runs the fixed tensor-parallel degree
    (the only way an instance list yields no candidate rows)."""
    return InputError(
        f"tensor_parallel: no eligible instance has a GPU count that {options.tensor_parallel}"
        " divides (with a known GPU interconnect); give 1, 2, 4 or 8, leave it out to search"
        " every degree, or widen the instance filters"
    )


def prepare(s: Scenario) -> Prepared:
    """Build the candidate table of scenario ``s``.

    Raises:
        InputError: on any input the catalog or the models reject.
    """
    ctx = context(s)
    table = build_table(
        ctx.model, workload_of(s), ctx.inst, ctx.batch_sizes, ctx.levels, ctx.options
    )
    return Prepared(s, ctx.model, table, ctx.calibration_name)
