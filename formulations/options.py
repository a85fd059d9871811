"""Modelling options shared by the memory, time and cost models.

``formulas`` chooses between the corrected physics (default) and the paper's formulas exactly as
printed (``"paper"``), so the paper's results stay reproducible. Where they differ:

- KV cache (Table II): physics 2*BS*(Lin+Lout)*L*kv_heads*head_dim*bytes;
  paper 2*BS*(Lin+Lout)*nh*bytes*L.
- Linear FLOPs per token and layer: physics 2 * active parameters / layers;
  paper 8*h1^2 + 4*h1*h2 (Eq. 5/6).
- Attention width: physics num_attention_heads * head_dim; paper h1.
- KV transfer (Eq. 5/6): physics the offloaded share of the layer's real KV;
  paper C_off*2*(Lin+1)*h1*bytes*BS (plus Lout*h1*bytes*BS in decode, even without offload).
- Per-layer KV check: physics must fit beside the resident KV; paper beside weights+activations.
- Host memory for offloaded KV: physics checked; paper not checked.
- Peak FLOPS: physics dense FP16 tensor (datasheet); paper the FP32 figure (Table I/IV).
- Usable GPU memory: physics cloud-reported MiB x utilization; paper nominal GiB.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Formulas = Literal["physics", "paper"]
PerfModel = Literal["paper", "roofline", "v2"]
Billing = Literal["hourly", "per-second"]
Pricing = Literal["on-demand", "spot", "both"]

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}
"""Bytes of one element of each precision that stores whole bytes (weights, KV, activations)."""

INT4_GROUP_SIZE = 128
"""Weights per quantization group of int4 (AWQ and GPTQ's default ``group_size``)."""
INT4_BYTES_PER_PARAM = 0.5 + (2 + 0.5) / INT4_GROUP_SIZE
"""Bytes per int4-quantized weight, 0.51953125: 4 bits, plus per group of 128 one fp16 scale
and one 4-bit zero point (AWQ/GPTQ ``scales`` and packed ``qzeros``; GPTQ's per-row ``g_idx``
adds < 0.1% and is left out)."""

WEIGHT_DTYPES: tuple[str, ...] = (*DTYPE_BYTES, "int4")
"""Weight precisions: whole-byte types, and int4 weight-only quantization (AWQ/GPTQ-style:
weights dequantized to fp16 for compute; activations and KV cache in fp16)."""
KV_DTYPES: tuple[str, ...] = ("auto", "fp16", "bf16", "fp8")
"""KV-cache precisions: ``auto`` follows the weights (fp16 beside int4 weights)."""

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)

TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8)
"""Tensor-parallel degrees searched by default (each must divide the instance's GPU count)."""


@dataclass(frozen=True)
class ModelOptions:
    """How the memory, time and cost models are evaluated.

    Attributes:
        dtype: precision of the weights (:data:`WEIGHT_DTYPES`); the KV cache and the
            activations follow it unless ``kv_dtype`` says otherwise (int4: fp16).
        formulas: ``"physics"`` or ``"paper"`` (see the module docstring).
        perf_model: ``"v2"`` (default: the engine-aware roofline of
            :mod:`.engine_model`), ``"paper"`` (Eq. 5-6: FLOPs over peak FLOPS) or
            ``"roofline"`` (each phase bounded by the larger of compute and memory time).
        gpu_memory_utilization: share of the GPU's reported memory the serving engine may use
            (vLLM's default 0.9 leaves room for the CUDA context and fragmentation).
        host_memory_utilization: share of host RAM available for offloaded KV cache (the OS and
            the serving process need the rest).
        billing: ``"hourly"`` (ceil to whole hours, the paper's Eq. 3) or ``"per-second"``
            (AWS Linux on-demand billing: per second with a 60 s minimum).
        pricing: ``"on-demand"``, ``"spot"`` or ``"both"`` (each instance's own market,
            ``Instance.market``) $/h.
        tensor_parallel: a fixed tensor-parallel degree (GPUs per replica), or None to search
            :data:`TP_DEGREES` (see :mod:`.parallel_model`).
        kv_dtype: KV-cache precision (:data:`KV_DTYPES`; ``auto`` follows ``dtype``).
        dtypes: weight precisions to search (a row per precision in the candidate table), or
            None for ``dtype`` alone.
    """

    dtype: str = "fp16"
    formulas: Formulas = "physics"
    perf_model: PerfModel = "v2"
    gpu_memory_utilization: float = 0.9
    host_memory_utilization: float = 0.8
    billing: Billing = "hourly"
    pricing: Pricing = "on-demand"
    tensor_parallel: int | None = None
    kv_dtype: str = "auto"
    dtypes: tuple[str, ...] | None = None

    @property
    def weight_dtypes(self) -> tuple[str, ...]:
        """The weight precisions the candidate table holds: ``dtypes`` when searched, else
        ``dtype`` alone."""
        return self.dtypes or (self.dtype,)

    def at(self, dtype: str) -> ModelOptions:
        """These options with weights in ``dtype`` only (one precision of a searched set)."""
        return replace(self, dtype=dtype, dtypes=None)

    @property
    def tensor_degrees(self) -> tuple[int, ...]:
        """The tensor-parallel degrees to evaluate: the fixed ``tensor_parallel``, else
        :data:`TP_DEGREES` (only 1 under the paper's formulas: the paper models one GPU)."""
        if self.tensor_parallel is not None:
            return (self.tensor_parallel,)
        return (1,) if self.formulas == "paper" else TP_DEGREES

    @property
    def compute_dtype(self) -> str:
        """The type the tensor cores compute in for ``dtype``: fp8 and int8 (W8A8) in their own
        type, fp32 without tensor cores, everything else (int4 weight-only too) in fp16."""
        return self.dtype if self.dtype in ("fp32", "bf16", "fp8", "int8") else "fp16"

    @property
    def bytes_per_param(self) -> int:
        """Bytes of one activation element: ``dtype``'s, fp16's (2) beside int4 weights."""
        return 2 if self.dtype == "int4" else DTYPE_BYTES[self.dtype]

    @property
    def weight_bytes(self) -> float:
        """Bytes per quantized weight of ``dtype`` (:data:`INT4_BYTES_PER_PARAM` for int4)."""
        return INT4_BYTES_PER_PARAM if self.dtype == "int4" else float(DTYPE_BYTES[self.dtype])

    @property
    def kv_bytes(self) -> int:
        """Bytes of one KV-cache element: ``kv_dtype``'s, or with ``auto`` the weights'
        (whole-byte types; fp16 beside int4 weights)."""
        if self.kv_dtype != "auto":
            return DTYPE_BYTES[self.kv_dtype]
        return self.bytes_per_param


def offload_levels(step: float) -> np.ndarray:
    """The offload-ratio grid ``0, step, 2*step, ..., 1`` (shape ``(round(1/step)+1,)``).

    Raises:
        ValueError: if ``step`` is not in (0, 1] or does not divide 1 evenly.
    """
    import numpy as np  # here, so the CLI's option help (which reads this module) stays light

    if not 0 < step <= 1:
        raise ValueError(f"offload step must be in (0, 1], got {step}")
    n = round(1 / step)
    if abs(n * step - 1) > 1e-9:
        raise ValueError(f"offload step must divide 1 evenly (e.g. 0.1, 0.05, 0.25), got {step}")
    return np.round(np.linspace(0.0, 1.0, n + 1), 12)
