"""Time model v2 (``perf_model="v2"``, the default): an engine-aware per-operator roofline.

Per model replica on one GPU, seconds; arrays broadcast together. A forward pass over ``L``
decoder layers costs

    T_prefill = t_pre + L x [t_layer + max(F_lin / P', W / B') + max(F_att / P', K_w / B')]
    T_step    = t_step + L x [t_layer + max(F_lin / P', W_read / B') + max(F_att / P', K_r / B')]

with, per layer: ``F_lin`` = 2 x active parameters / L x tokens (FLOPs), ``W``/``W_read`` the
weight bytes read (all of them; for MoE decode the experts the batch touches), ``F_att`` the
attention FLOPs (prefill: causal, 2 x BS x L_in^2 x heads x head_dim; decode: 4 x BS x context x
width, paper Eq. 6), ``K_w``/``K_r`` the KV-cache bytes written/read, all in the scenario's
dtype (bytes per weight and per KV element). ``P' = eta_c x P_dtype`` is the sustained tensor
throughput of the dtype and ``B' = eta_m x BW`` the sustained memory bandwidth.

Departures from the paper (Eq. 5-6, kept as ``perf_model="paper"``) and from the plain roofline
(``perf_model="roofline"``): every term has an efficiency, each forward pass and each layer has a
fixed cost, the compute peak is the dtype's own (FP8 prefill is not FP16-bound), attention is
causal in prefill, and the KV offload moves at :data:`PCIE_EFFICIENCY` of the x16 figure.

The constants of :data:`SHIPPED` are GPU-independent; they were fitted by
:func:`infersave.formulations.engine_fit.fit_params` on all shipped measurements (Helix per-layer
times, vLLM-based, fp16, T4/L4/V100/A100-40GB; lmdeploy and TensorRT-LLM whole-model times,
A100-80GB fp16, H100 and L40S fp8) and ``tests/test_engine_model.py`` checks that a refit
reproduces them. Per-GPU corrections (one scale per GPU and phase, where a GPU has data of its
own) ship in ``catalog/data/calibration.json`` under ``fits.v2``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PCIE_EFFICIENCY = 0.8
"""Share of the theoretical PCIe x16 bandwidth that KV-cache copies reach (pinned host memory,
large transfers reach ~80%; the paper measured 6-12 GB/s on Gen3/Gen4 x16). Not fitted: the
shipped measurements have no offloading."""

MAX_MEMORY_EFFICIENCY = 0.9
"""Upper bound of :attr:`V2Params.memory_efficiency` in a fit (dimensionless): no kernel
streams device memory faster than ~90% of the datasheet figure (a pure DRAM read kernel on
A100-80GB-SXM reaches 1.80 of 2.04 TB/s, 88%, confirmed by Nsight Compute, and the best
kernel of an NVIDIA GTC talk about 90%: NVIDIA developer forum, "Trouble to Reach Peak
Bandwidth of A100", forums.developer.nvidia.com/t/339083). Without it, a fit on whole-model
7B/13B rows alone (leave-one-source-out without the Helix rows) trades the per-layer cost
against bandwidth and lands on 100% of datasheet bandwidth."""

LOW_POWER_TDP_W = 75.0
"""Board power (W) at or below which a card is slot-powered (PCIe slot limit, no auxiliary
connector: T4, T4G, L4): its tensor cores throttle far below boost clock under sustained GEMMs,
so it gets :attr:`V2Params.low_power_compute_efficiency`."""


@dataclass(frozen=True)
class V2Params:
    """GPU-independent constants of the v2 time model (each with its physical meaning).

    Attributes:
        memory_efficiency: share of datasheet memory bandwidth that weight and KV streaming
            reach (dimensionless; fitted within ``(0.2, MAX_MEMORY_EFFICIENCY)``).
        compute_efficiency: share of the dtype's dense tensor peak that LLM GEMMs sustain on
            full-power GPUs (> 75 W) (dimensionless).
        low_power_compute_efficiency: the same for slot-powered cards (<= 75 W board power).
        fp8_compute_factor: what fp8/int8 GEMMs reach of the fp16 share (quantize/dequantize
            and scaling kernels; dimensionless).
        layer_overhead_s: fixed cost per decoder layer and forward pass (kernel launches,
            norms, rotary embedding), seconds.
        step_overhead_s: fixed cost per decode step (scheduling, sampling, detokenizing),
            seconds.
        prefill_overhead_s: fixed cost of one prefill (the floor of a short prompt), seconds.
    """

    memory_efficiency: float
    compute_efficiency: float
    low_power_compute_efficiency: float
    fp8_compute_factor: float
    layer_overhead_s: float
    step_overhead_s: float
    prefill_overhead_s: float

    def to_dict(self) -> dict[str, float]:
        """The constants by name (the ``v2_params`` object of a calibration document)."""
        return asdict(self)


SHIPPED = V2Params(
    memory_efficiency=0.6860334351170098,
    compute_efficiency=0.720598724053819,
    low_power_compute_efficiency=0.3991196407934314,
    fp8_compute_factor=0.7405520800833432,
    layer_overhead_s=1.4460912282532422e-19,
    step_overhead_s=1.7659843213871002e-22,
    prefill_overhead_s=0.0052894943606228,
)
"""Fitted on the shipped measurements (see the module docstring; refit:
``infersave calibrate shipped --perf-model v2``)."""


UNCALIBRATED_LOG_SIGMA = 0.20456299058122798
"""Error band of a GPU without a calibration's band (``--calibration none``): the shipped
file's ``bands.v2.default_log_sigma`` (log-space RMS error; tests pin the two together)."""

RECORD_CONFIDENCE = 0.9
"""Confidence of the records' ``tps_low``/``tps_high`` when ``--slo-confidence`` is not given."""


def band_factor(log_sigma: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """``exp(z x sigma)``, z the standard normal quantile of ``confidence`` (one-sided; for
    ``confidence`` 0, of :data:`RECORD_CONFIDENCE`): TPS is at least ``tps / factor`` with that
    confidence if log errors are normal with RMS ``log_sigma`` (arrays broadcast)."""
    from statistics import NormalDist

    p = np.where(np.asarray(confidence) > 0, confidence, RECORD_CONFIDENCE)
    quantile = np.frompyfunc(NormalDist().inv_cdf, 1, 1)
    z = np.asarray(quantile(p), dtype=np.float64)
    return np.exp(z * log_sigma)


def is_low_power(tdp_w: float | None) -> bool:
    """True for a slot-powered card (board power <= :data:`LOW_POWER_TDP_W`); unknown power
    (``None``) counts as full power."""
    return tdp_w is not None and tdp_w <= LOW_POWER_TDP_W


def compute_efficiency(tdp_w: float | None, dtype: str, params: V2Params = SHIPPED) -> float:
    """Share of the dtype's datasheet tensor peak that GEMMs sustain (dimensionless)."""
    eta = params.low_power_compute_efficiency if is_low_power(tdp_w) else params.compute_efficiency
    return eta * (params.fp8_compute_factor if dtype in ("fp8", "int8") else 1.0)


def sustained_peak_factor(tdp_w: float | None, params: V2Params = SHIPPED) -> float:
    """The candidate table's per-GPU peak scale: low-power over full-power compute efficiency
    for slot-powered cards, 1 otherwise (the time model applies ``compute_efficiency``)."""
    if is_low_power(tdp_w):
        return params.low_power_compute_efficiency / params.compute_efficiency
    return 1.0


def layer_seconds(
    flops_linear: np.ndarray,
    bytes_weights: np.ndarray,
    flops_attention: np.ndarray,
    bytes_kv: np.ndarray,
    sustained_flops: np.ndarray,
    sustained_bandwidth: np.ndarray,
    params: V2Params = SHIPPED,
) -> np.ndarray:
    """One decoder layer of one forward pass, seconds:
    ``t_layer + max(F_lin / P', W / B') + max(F_att / P', K / B')`` (FLOPs, bytes, FLOP/s,
    bytes/s in)."""
    return (
        params.layer_overhead_s
        + np.maximum(flops_linear / sustained_flops, bytes_weights / sustained_bandwidth)
        + np.maximum(flops_attention / sustained_flops, bytes_kv / sustained_bandwidth)
    )


__all__ = [
    "LOW_POWER_TDP_W",
    "MAX_MEMORY_EFFICIENCY",
    "PCIE_EFFICIENCY",
    "RECORD_CONFIDENCE",
    "SHIPPED",
    "UNCALIBRATED_LOG_SIGMA",
    "V2Params",
    "band_factor",
    "compute_efficiency",
    "is_low_power",
    "layer_seconds",
    "sustained_peak_factor",
]
