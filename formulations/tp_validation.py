"""Tensor-parallel measurements as a held-out check of the tensor-parallel time model.

The v2 constants and per-GPU scales are fitted on single-GPU rows only
(:func:`.engine_fit.resolve` drops the others), so every tensor-parallel row of the shipped
Helix data (one decoder layer on 2 or 4 T4s or L4s over PCIe) is out of sample for the model of
:mod:`.parallel_model`: a layer on ``t`` GPUs is the v2 layer time on ``t`` x one GPU's peak
and bandwidth (:func:`.time_model.v2_layer_seconds`, scaled by the GPU's fitted phase scale),
plus its two all-reduces over the GPU's PCIe link (:func:`.parallel_model.allreduce_layer_times`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from infersave.catalog.measurements import Measurement
from infersave.catalog.schemas import GPU, LLM
from infersave.formulations import engine_model, parallel_model
from infersave.formulations import time_model as time
from infersave.formulations.engine_fit import resolve_specs
from infersave.formulations.engine_model import V2Params

ACTIVATION_BYTES = 2
"""fp16 hidden states in the all-reduces (the Helix rows are fp16)."""


@dataclass(frozen=True)
class TpRows:
    """Tensor-parallel measurements, resolved; arrays of shape ``(R,)``."""

    rows: tuple[Measurement, ...]
    gpus: tuple[GPU, ...]
    models: tuple[LLM, ...]
    measured_s: np.ndarray
    group: np.ndarray  # "T4 x2 (TP)": GPU and degree
    phase: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def resolve_tp(
    rows: Sequence[Measurement],
    find_gpu: Callable[[str], GPU],
    find_model: Callable[[str], LLM],
) -> TpRows:
    """The rows with ``tensor_parallel > 1`` (per-layer or whole-model), GPU and model resolved.

    Raises:
        ValueError: an unknown GPU or model (prefixed with the row number).
    """
    keep = [m for m in rows if m.tensor_parallel > 1]
    gpus, models = resolve_specs(keep, find_gpu, find_model, "tensor-parallel measurement")
    return TpRows(
        tuple(keep),
        tuple(gpus),
        tuple(models),
        np.array([m.time_s for m in keep], dtype=np.float64),
        np.array([f"{g.name} x{m.tensor_parallel} (TP)" for m, g in zip(keep, gpus, strict=True)]),
        np.array([m.phase for m in keep]),
    )


def predict_tp(
    res: TpRows,
    params: V2Params = engine_model.SHIPPED,
    corrections: Mapping[tuple[str, str], float] | None = None,
    pcie_efficiency: float = parallel_model.PCIE_ALLREDUCE_EFFICIENCY,
) -> np.ndarray:
    """Predicted seconds of every tensor-parallel row (see the module docstring): prefill rows
    the layers' prefill of ``batch_size`` prompts of ``input_len``, decode rows one step at
    context ``input_len``; whole-model rows add the per-pass costs of ``params``. The
    all-reduces run over PCIe at ``pcie_efficiency`` of the datasheet figure."""
    c = corrections or {}
    out = np.empty(len(res))
    for i, (m, g, llm) in enumerate(zip(res.rows, res.gpus, res.models, strict=True)):
        t = float(m.tensor_parallel)
        peak = (g.dtype_tflops(m.dtype) or g.fp16_dense_tflops) * 1e12
        peak *= engine_model.sustained_peak_factor(g.tdp_w, params)
        bw = g.memory_bandwidth_gbs * 1e9
        link = (g.pcie_bandwidth_gbs or 0.0) * 1e9 * pcie_efficiency  # T4/L4 hosts: PCIe
        n = float(m.layers or llm.num_hidden_layers)
        whole = m.layers is None
        decode = m.phase == "decode"
        lin = 1 if decode else m.input_len
        ctx = m.input_len if decode else m.input_len + m.output_len / 2.0
        pre, dec = time.v2_layer_seconds(llm, m.batch_size, lin, ctx, t * peak, t * bw,
                                         m.dtype, params)  # fmt: skip
        ar_pre, ar_dec = parallel_model.allreduce_layer_times(
            llm, np.array(float(m.batch_size)), np.array(float(lin)), np.array(t),
            np.array(link), ACTIVATION_BYTES,
        )  # fmt: skip
        if decode:
            scale = c.get((g.name, "decode"), 1.0)
            out[i] = n * (float(dec) * scale + float(ar_dec))
            out[i] += params.step_overhead_s if whole else 0.0
        else:
            scale = c.get((g.name, "prefill"), 1.0)
            out[i] = n * (float(pre) * scale + float(ar_pre))
            out[i] += params.prefill_overhead_s if whole else 0.0
    return out


EFFICIENCY_GRID: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
"""The PCIe all-reduce efficiencies :func:`fit_pcie_allreduce_efficiency` tries."""


def fit_pcie_allreduce_efficiency(
    res: TpRows,
    params: V2Params = engine_model.SHIPPED,
    corrections: Mapping[tuple[str, str], float] | None = None,
    grid: Sequence[float] = EFFICIENCY_GRID,
) -> tuple[float, float]:
    """The efficiency of ``grid`` with the lowest median relative error over ``res``, and that
    error in % (a one-constant fit: a grid is exact enough and cannot wander)."""
    best = min(
        (float(np.median(np.abs(predict_tp(res, params, corrections, e) / res.measured_s - 1))), e)
        for e in grid
    )
    return best[1], 100.0 * best[0]
