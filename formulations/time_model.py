"""Time model: prefill and decode time of one batch on one GPU (paper Eq. 4-7).

Everything is per model replica on one GPU and vectorized: array arguments broadcast together
(typically shape ``(N,)``, one entry per candidate). Times are seconds, FLOPS are floating-point
operations per second, bandwidths bytes per second.

Two performance models (``ModelOptions.perf_model``):

* ``paper``: Eq. 5-6 exactly: the compute term is FLOPs / peak FLOPS.
* ``roofline``: the compute term is max(FLOPs / peak FLOPS, bytes moved / memory bandwidth),
  where the bytes are the layer's weights plus the KV cache it reads or writes. Decode is
  memory-bound on every GPU in the catalog, which Eq. 6 ignores.

* ``v2`` (default): the engine-aware roofline of :mod:`.engine_model` (efficiencies, per-layer,
  per-step and per-prefill costs, dtype-aware peaks, effective PCIe bandwidth); its per-layer
  times are the whole pass divided by the layers, so the fixed costs are paid once per pass.

CTCF (Eq. 7), ``alpha * T + beta`` per GPU and phase, corrects the compute term of ONE layer in
any model (for ``v2`` a per-GPU scale, beta 0); the PCIe transfer term of KV offloading is added
as in Eq. 5 (overlapped: max) and Eq. 6 (serial: sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infersave.catalog.schemas import LLM
from infersave.formulations import engine_model
from infersave.formulations.memory_model import kv_bytes_per_token, weights_bytes_of
from infersave.formulations.options import ModelOptions


@dataclass(frozen=True)
class LayerTimes:
    """Per-layer times of one replica, seconds, before CTCF.

    ``prefill_compute`` covers the whole prompt of the batch; ``decode_compute`` one decode step
    at the average context L_in + L_out/2; the ``*_transfer`` terms are the PCIe time of the
    offloaded KV cache (zero when nothing is offloaded, except in the paper's Eq. 6 term).
    """

    prefill_compute: np.ndarray
    decode_compute: np.ndarray
    prefill_transfer: np.ndarray
    decode_transfer: np.ndarray


@dataclass(frozen=True)
class PhaseTimes:
    """Times of one batch on one replica, seconds (Eq. 4): all layers, CTCF applied.

    ``prefill_s`` = L x T_pre, ``decode_s`` = L x (L_out - 1) x T_dec, ``e2e_s`` their sum.
    """

    prefill_s: np.ndarray
    decode_s: np.ndarray
    e2e_s: np.ndarray


def ctcf(t: np.ndarray, alpha: np.ndarray | float, beta: np.ndarray | float) -> np.ndarray:
    """Compute Time Calibration Function, Eq. 7: ``alpha * t + beta`` (seconds in and out)."""
    return alpha * t + beta


def _moe_params_read(model: LLM, batch: np.ndarray) -> np.ndarray:
    """Parameters whose weights one decode step reads: all of them for a dense model; for a
    mixture of experts, everything but the routed experts (attention, embeddings, router, the
    always-active experts, the dense layers' MLPs) plus, in each MoE layer, the routed experts
    at least one of the ``batch`` tokens goes to.

    Under uniform top-k routing a given expert escapes all B tokens with probability
    (1 - k/E)^B, so a layer touches E x (1 - (1 - k/E)^B) distinct experts in expectation:
    k at B = 1 (the active parameters), -> E as B grows (all resident weights). One routed
    expert's weights over all MoE layers are (total - active) / (E - k), which counts biases
    and dense layers as :func:`~infersave.catalog.hf_config.count_parameters` does. Compute
    uses the active parameters (2 x active FLOPs per token, :func:`layer_times`). Real routers
    are not uniform (fewer distinct experts, hot experts); expert parallelism is not modelled.
    """
    total = float(model.num_parameters)
    if not model.num_experts or not model.experts_per_token:
        return np.full(np.shape(batch), total)
    e, k = float(model.num_experts), float(min(model.experts_per_token, model.num_experts))
    if e <= k:
        return np.full(np.shape(batch), total)
    per_expert = (total - model.num_active_parameters) / (e - k)  # one expert, every MoE layer
    always_read = total - e * per_expert
    b = np.maximum(np.asarray(batch, dtype=np.float64), 0.0)
    touched = e * (1.0 - (1.0 - k / e) ** b)
    return always_read + touched * per_expert


ROOFLINE_COMPUTE_EFFICIENCY = 0.55
"""Share of the datasheet dense FP16 tensor peak that LLM kernels reach (roofline model).

Chosen on the shipped Helix measurements (T4, L4, V100, A100-40GB): the decode GEMMs reach
44-65% of peak there, prefill 40-78%. It sets the uncalibrated model's scale AND the balance
between compute-bound and memory-bound work inside one layer, which one CTCF alpha cannot
fix; 0.55 gave the lowest leave-one-model-out decode error (0.5-0.7 tried, see README)."""
ROOFLINE_MEMORY_EFFICIENCY = 1.0
"""Share of the datasheet memory bandwidth that weight and KV streaming reach (roofline).
Left at 1: lower values (0.8-0.95) raised the held-out error on the shipped data."""


def _roofline(
    model: LLM,
    bs: np.ndarray,
    lin: np.ndarray,
    ctx: np.ndarray,
    flops_pre: np.ndarray,
    flops_dec: np.ndarray,
    peak_flops: np.ndarray,
    memory_bandwidth: np.ndarray,
    options: ModelOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-operator roofline of one layer: (prefill, decode) seconds.

    A layer is two groups of kernels that run one after the other, each bounded by the larger
    of its compute time and its memory time:

    * linear (QKV/O projections, MLP): FLOPs = 2 x active params per layer x tokens;
      bytes = the weights it reads (for MoE decode, the experts the batch touches);
    * attention: FLOPs = 4 x tokens x context x width; bytes = the KV cache it writes (prefill)
      or reads (decode: BS x (L_in + L_out/2) x KV bytes per token and layer).

    T = max(F_lin / (eta_c P), B_lin / (eta_m BW)) + max(F_att / (eta_c P), B_att / (eta_m BW))
    with eta_c = :data:`ROOFLINE_COMPUTE_EFFICIENCY`, eta_m = :data:`ROOFLINE_MEMORY_EFFICIENCY`.
    Summing the two groups (instead of one max over the layer) is what makes a KV-heavy MHA
    model and a GEMM-heavy GQA model calibrate with the same CTCF.
    """
    layers = model.num_hidden_layers
    peak = peak_flops * ROOFLINE_COMPUTE_EFFICIENCY
    bw = memory_bandwidth * ROOFLINE_MEMORY_EFFICIENCY
    width = float(model.num_attention_heads * model.head_dim)
    if options.formulas == "paper":
        width = float(model.hidden_size)
    att_pre = 4 * bs * lin**2 * width
    att_dec = 4 * bs * ctx * width
    lin_pre = flops_pre - att_pre
    lin_dec = flops_dec - att_dec
    kv_layer_token = kv_bytes_per_token(model, options.kv_bytes, options.formulas) / layers
    w_layer = weights_bytes_of(model, options.dtype) / layers
    read_dec = _moe_params_read(model, bs) * options.weight_bytes / layers
    t_pre = np.maximum(lin_pre / peak, w_layer / bw) + np.maximum(
        att_pre / peak, bs * lin * kv_layer_token / bw
    )
    t_dec = np.maximum(lin_dec / peak, read_dec / bw) + np.maximum(
        att_dec / peak, bs * ctx * kv_layer_token / bw
    )
    return t_pre, t_dec


def v2_layer_seconds(
    model: LLM,
    batch: np.ndarray,
    input_len: np.ndarray,
    context: np.ndarray,
    peak_flops: np.ndarray,
    memory_bandwidth: np.ndarray,
    dtype: str,
    params: engine_model.V2Params = engine_model.SHIPPED,
    kv_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One decoder layer of the v2 model (:mod:`.engine_model`): (prefill of ``batch`` prompts
    of ``input_len`` tokens, one decode step at ``context``), seconds, without the per-pass
    costs (``prefill_overhead_s``, ``step_overhead_s``).

    ``peak_flops`` is the dtype's tensor peak (FLOP/s) times
    :func:`.engine_model.sustained_peak_factor`; ``memory_bandwidth`` bytes/s. FLOPs: linear
    2 x active parameters / L per token; attention causal 2 x BS x L_in^2 x width in prefill
    (the paper's 4 counts the masked half), 4 x BS x context x width per decode step. Bytes in
    ``dtype``: the layer's weights (MoE decode: the experts touched; int4 with its group
    scales, :func:`.memory_model.weights_bytes_of`) and KV written or read, ``kv_bytes`` per
    element (default: ``dtype``'s, fp16 beside int4 weights).
    """
    o = ModelOptions(dtype=dtype)
    kv_elem = o.kv_bytes if kv_bytes is None else kv_bytes
    layers = model.num_hidden_layers
    bs = np.asarray(batch, dtype=np.float64)
    lin = np.asarray(input_len, dtype=np.float64)
    ctx = np.asarray(context, dtype=np.float64)
    eff = engine_model.compute_efficiency(None, o.compute_dtype, params)
    peak = peak_flops * eff
    bw = memory_bandwidth * params.memory_efficiency
    width = float(model.num_attention_heads * model.head_dim)
    lin_tok = 2.0 * model.num_active_parameters / layers
    kv_tok = kv_bytes_per_token(model, kv_elem) / layers
    w_layer = weights_bytes_of(model, dtype) / layers
    read_dec = _moe_params_read(model, bs) * o.weight_bytes / layers
    t_pre = engine_model.layer_seconds(
        bs * lin * lin_tok, w_layer, 2 * bs * lin**2 * width, bs * lin * kv_tok, peak, bw, params
    )
    t_dec = engine_model.layer_seconds(
        bs * lin_tok, read_dec, 4 * bs * ctx * width, bs * ctx * kv_tok, peak, bw, params
    )
    return t_pre, t_dec


def layer_times(
    model: LLM,
    batch: np.ndarray,
    input_len: int | np.ndarray,
    output_len: int | np.ndarray,
    offload: np.ndarray,
    peak_flops: np.ndarray,
    memory_bandwidth: np.ndarray,
    pcie_bandwidth: np.ndarray,
    options: ModelOptions,
) -> LayerTimes:
    """Per-layer compute and transfer times (Eq. 5-6 terms), before CTCF.

    Args:
        batch: batch size BS (requests), any broadcastable shape.
        input_len, output_len: L_in and L_out, tokens per request.
        offload: C_off, share of the KV cache kept in host memory, in [0, 1].
        peak_flops: FLOP/s of one GPU; memory_bandwidth, pcie_bandwidth: bytes/s of one GPU.

    FLOPs (``physics``): linear layers 2 x active parameters / layers per token (reduces to the
    paper's 8 h1^2 + 4 h1 h2 for OPT, and is right for GQA, gated MLPs and MoE); attention
    4 x BS x L_in^2 x (heads x head_dim) for prefill and 4 x BS x (L_in + L_out/2) x width per
    decode step (paper Eq. 5-6). ``paper`` formulas use h1 and h2 exactly as printed.
    """
    bs = np.asarray(batch, dtype=np.float64)
    lin = np.asarray(input_len, dtype=np.float64)
    lout = np.asarray(output_len, dtype=np.float64)
    c = np.asarray(offload, dtype=np.float64)
    nbytes = options.kv_bytes  # the transfers move KV-cache elements
    layers = model.num_hidden_layers
    ctx = lin + lout / 2.0  # average context of a decode step (paper Eq. 6)

    # the FLOPs of Eq. 5-6, for the perf models that divide them by a peak (v2 counts its own)
    if options.formulas == "paper":
        h1, h2 = float(model.hidden_size), float(model.intermediate_size)

        def flops() -> tuple[np.ndarray, np.ndarray]:
            pre = bs * (8 * lin * h1**2 + 4 * lin * h1 * h2) + 4 * bs * lin**2 * h1
            return pre, bs * (8 * h1**2 + 4 * h1 * h2) + 4 * bs * ctx * h1

        trans_pre = c * 2 * (lin + 1) * h1 * nbytes * bs / pcie_bandwidth
        # "If the KV Cache fully resides in the GPU, only computation time is considered"
        # (section IV-D b): the printed transfer term applies only when something is offloaded.
        trans_dec = np.where(
            c > 0, (c * 2 * (lin + 1) + lout) * h1 * nbytes * bs / pcie_bandwidth, 0.0
        )
    else:
        width = float(model.num_attention_heads * model.head_dim)
        linear_per_token = 2.0 * model.num_active_parameters / layers

        def flops() -> tuple[np.ndarray, np.ndarray]:
            pre = bs * lin * linear_per_token + 4 * bs * lin**2 * width
            return pre, bs * linear_per_token + 4 * bs * ctx * width

        kv_layer_token = kv_bytes_per_token(model, nbytes) / layers
        trans_pre = c * bs * lin * kv_layer_token / pcie_bandwidth
        trans_dec = c * bs * ctx * kv_layer_token / pcie_bandwidth

    if options.perf_model == "v2":
        t_pre, t_dec = v2_layer_seconds(
            model, bs, lin, ctx, peak_flops, memory_bandwidth, options.dtype,
            kv_bytes=options.kv_bytes,
        )  # fmt: skip
        p = engine_model.SHIPPED
        t_pre = t_pre + p.prefill_overhead_s / layers
        t_dec = t_dec + p.step_overhead_s / layers
        trans_pre = trans_pre / engine_model.PCIE_EFFICIENCY
        trans_dec = trans_dec / engine_model.PCIE_EFFICIENCY
    elif options.perf_model == "roofline":
        flops_pre, flops_dec = flops()
        t_pre, t_dec = _roofline(
            model, bs, lin, ctx, flops_pre, flops_dec, peak_flops, memory_bandwidth, options
        )
    else:
        flops_pre, flops_dec = flops()
        t_pre = flops_pre / peak_flops
        t_dec = flops_dec / peak_flops
    # Every term at least as large as compute x offload (read-only broadcast views, no copies:
    # the values are exactly those of ``term + zeros``).
    full = np.broadcast_shapes(np.shape(t_pre), np.shape(c))

    def spread(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, np.broadcast_shapes(np.shape(a), full))

    return LayerTimes(spread(t_pre), spread(t_dec), spread(trans_pre), spread(trans_dec))


def phase_times(
    model: LLM,
    layer: LayerTimes,
    output_len: int | np.ndarray,
    alpha_prefill: np.ndarray | float = 1.0,
    beta_prefill: np.ndarray | float = 0.0,
    alpha_decode: np.ndarray | float = 1.0,
    beta_decode: np.ndarray | float = 0.0,
) -> PhaseTimes:
    """Whole-batch times per Eq. 4-6 with CTCF (Eq. 7) on each layer's compute term.

    T_pre = max(CTCF_p(T_compute^p), T_trans^p)   (Eq. 5, offload overlaps compute)
    T_dec = CTCF_d(T_compute^d) + T_trans^d         (Eq. 6, fetch then compute)
    prefill_s = L x T_pre; decode_s = L x (L_out - 1) x T_dec (the first output token comes
    out of the prefill).
    """
    layers = model.num_hidden_layers
    t_pre = np.maximum(
        ctcf(layer.prefill_compute, alpha_prefill, beta_prefill), layer.prefill_transfer
    )
    t_dec = ctcf(layer.decode_compute, alpha_decode, beta_decode) + layer.decode_transfer
    steps = np.maximum(np.asarray(output_len, dtype=np.float64) - 1.0, 0.0)
    prefill_s = layers * t_pre
    decode_s = layers * steps * t_dec
    return PhaseTimes(prefill_s, decode_s, prefill_s + decode_s)


def throughput_tps(
    batch: np.ndarray, input_len: int, output_len: int, e2e_s: np.ndarray
) -> np.ndarray:
    """Tokens per second of one replica, Eq. 1: BS x (L_in + L_out) / T_E2E (tokens/s)."""
    return np.asarray(batch, dtype=np.float64) * (input_len + output_len) / e2e_s
