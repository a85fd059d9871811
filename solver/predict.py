"""Predict one configuration: a given model, instance (or bare GPU), batch size and offload."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infersave.catalog import load as catalog
from infersave.catalog.schemas import Instance
from infersave.formulations.candidates import build_table, instance_arrays
from infersave.formulations.constraints import memory_constraints, violated
from infersave.formulations.options import offload_levels
from infersave.solver.placement import Placement, gpu_specs, providers_of
from infersave.solver.prepare import (
    _calibration,
    check_context_window,
    no_tp_rows,
    placement_of,
    resolve_model,
    workload_of,
)
from infersave.solver.records import Record, make_record
from infersave.solver.scenario import InputError, Scenario

BARE_GPU_HOST_GIB = 64.0
"""Host memory assumed for ``--gpu`` predictions (no instance, so no catalog figure)."""


@dataclass(frozen=True)
class Prediction:
    """The predicted record and the memory constraints it violates (empty when it fits)."""

    record: Record
    problems: list[str]


def _target(s: Scenario, instance: str | None, gpu: str | None) -> Instance:
    place = placement_of(s)
    try:
        if instance is not None:
            inst = _find_instance(instance, s.region, place)
            if inst.gpu is None or inst.excluded:
                raise InputError(
                    f"{inst.instance_type} cannot be predicted: {inst.excluded or 'no GPU spec'}"
                )
            return inst.model_copy(
                update={"market": "spot" if s.pricing == "spot" else "on-demand"}
            )
        assert gpu is not None
        spec = catalog.find_gpu(gpu, "paper-2025" if place.price_set == "paper-2025" else "aws")
    except catalog.CatalogError as exc:
        raise InputError(str(exc)) from exc
    return Instance(
        instance_type=f"1x {spec.name}",
        provider="none",
        region="-",
        accelerator=spec.name,
        gpu=spec.name,
        gpu_count=1,
        gpu_memory_gib=spec.memory_gib,
        vcpus=1,
        host_memory_gib=BARE_GPU_HOST_GIB,
        on_demand_per_hour=None,
        source=spec.source,
    )


def _find_instance(name: str, region: str, place: Placement) -> Instance:
    """The catalog row of ``name`` in ``region``: in the paper's price set, or in the first of
    the searched providers that offers it there.

    Raises:
        CatalogError: no searched provider offers it in that region.
    """
    if place.price_set == "paper-2025":
        return catalog.find_instance(name, region, "paper-2025")
    first: catalog.CatalogError | None = None
    for provider in providers_of(place):
        try:
            return catalog.find_instance(name, region, provider)
        except catalog.CatalogError as exc:
            first = first if first is not None and "not offered" in str(first) else exc
    assert first is not None
    raise first


def predict(
    s: Scenario,
    instance: str | None = None,
    gpu: str | None = None,
    offload_ratio: float | None = None,
) -> Prediction:
    """Memory, times, TPS and cost of ``s.model`` at batch ``s.batch_size`` on ``instance`` (in
    ``s.region``) or on one ``gpu``. Without ``offload_ratio`` the smallest offload level of the
    grid that fits in memory is used (Algorithm 1), or 0 when none fits; on a multi-GPU
    instance, at the smallest tensor-parallel degree that fits (``s.tensor_parallel`` fixes
    it). ``problems`` lists the hardware and memory constraints the prediction violates.

    Raises:
        InputError: unknown model, instance or GPU, or an offload ratio outside [0, 1].
    """
    if s.batch_size is None:
        raise InputError("batch_size: required for predict")
    if offload_ratio is not None and not 0 <= offload_ratio <= 1:
        raise InputError(f"offload_ratio: must be between 0 and 1, got {offload_ratio}")
    model = resolve_model(s.model)
    check_context_window(model, s.input_len, s.output_len)
    target = _target(s, instance, gpu)
    options = s.options()
    cal_name, cal = _calibration(s.calibration, s.perf_model, s.formulas, s.catalog)
    gpus = gpu_specs(placement_of(s))
    if gpus[target.gpu].pcie_bandwidth_gbs is None:
        raise InputError(f"{target.gpu} has no PCIe bandwidth in the catalog; cannot predict")
    arrays = instance_arrays([target], gpus, options, cal, allow_missing_price=True)
    if not arrays.instances:
        raise no_tp_rows(options)
    if offload_ratio is not None:
        levels = np.array([float(offload_ratio)])
    else:
        try:
            levels = offload_levels(s.offload_step)
        except ValueError as exc:
            raise InputError(f"offload_step: {exc}") from exc
    table = build_table(model, workload_of(s), arrays, [s.batch_size], levels, options)
    checks = tuple(c for c in table.constraints if c.kind == "hardware")
    checks += memory_constraints(options)
    fits = np.flatnonzero(np.logical_and.reduce([table.ok[c.name] for c in checks]))
    k = int(fits[0]) if fits.size else 0
    problems = violated(table.slack, k, checks)
    return Prediction(make_record(table, k, cal_name), problems)
