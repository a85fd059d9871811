"""Typed, immutable records for the catalog's facts: GPUs, instances and models.

Every record is validated once, when its file is read (see :mod:`infersave.catalog.load`).
Units are in the field names: ``_gib`` (2**30 bytes), ``_mib`` (2**20 bytes), ``_gbs``
(10**9 bytes per second), ``_tflops`` (10**12 floating-point operations per second),
``_per_hour`` (US dollars per hour).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GPU(_Frozen):
    """One accelerator type, from its vendor datasheet (``source`` names it).

    ``usable_memory_mib`` is the memory the cloud reports to the guest (e.g. 22,888 MiB for an
    A10G or L4 on AWS); when absent the nominal ``memory_gib`` is used.
    ``fp16_dense_tflops`` is the dense FP16 tensor-core peak (no sparsity);
    ``fp32_tflops`` is the FP32 (non-tensor) peak, the figure the paper's Table I/IV used.
    ``pcie_bandwidth_gbs`` is one direction of the host link (PCIe x16), GB/s.
    ``bf16_dense_tflops``, ``fp8_dense_tflops`` and ``int8_dense_tops`` are the dense tensor
    peaks for those types; ``None`` means the GPU has no tensor-core support for the type (no
    BF16 before Ampere, no FP8 before Ada/Hopper, no INT8 before Turing).
    ``nvlink_bandwidth_gbs`` is the NVLink bandwidth per GPU (GB/s, both directions, as NVIDIA
    states it), ``None`` when GPUs talk over PCIe only.
    ``tdp_w`` is the board power (W, datasheet); ``None`` when unpublished (A10G). The v2 time
    model uses it to tell slot-powered cards (<= 75 W), whose tensor cores throttle under
    sustained GEMMs, from the rest.
    """

    name: str
    vendor: str
    architecture: str = ""
    memory_gib: PositiveFloat
    usable_memory_mib: PositiveFloat | None = None
    memory_bandwidth_gbs: PositiveFloat
    fp16_dense_tflops: PositiveFloat
    fp32_tflops: PositiveFloat | None = None
    pcie_bandwidth_gbs: PositiveFloat | None = None
    confidence: str = ""
    source: str
    bf16_dense_tflops: PositiveFloat | None = None
    fp8_dense_tflops: PositiveFloat | None = None
    int8_dense_tops: PositiveFloat | None = None
    nvlink_bandwidth_gbs: PositiveFloat | None = None
    tdp_w: PositiveFloat | None = None

    @property
    def compute_capability(self) -> float | None:
        """CUDA compute capability from the architecture (``sm_89`` -> 8.9), or None."""
        import re

        m = re.search(r"sm_(\d)(\d)", self.architecture)
        return int(m.group(1)) + int(m.group(2)) / 10 if m else None

    def dtype_tflops(self, dtype: str) -> float | None:
        """Dense tensor peak for ``dtype`` (TFLOPS; TOPS for int8), or None when the GPU has no
        tensor-core support for it (fp32: the non-tensor peak; fp16: always present)."""
        return {
            "fp32": self.fp32_tflops,
            "fp16": self.fp16_dense_tflops,
            "bf16": self.bf16_dense_tflops,
            "fp8": self.fp8_dense_tflops,
            "int8": self.int8_dense_tops,
        }.get(dtype)

    @property
    def is_nvidia(self) -> bool:
        """True for NVIDIA GPUs, the only ones the time model and serving stacks cover."""
        return self.vendor.upper() == "NVIDIA"


class Instance(_Frozen):
    """One cloud instance type in one region, priced as ONE place offers it.

    ``provider`` is ``aws``, ``gcp``, ``azure`` or ``lambda``. ``gpu`` is a key into the GPU
    table, or ``None`` when the accelerator has no spec in the catalog (then ``excluded`` says
    why). ``gpu_count`` may be fractional for vGPU slices. ``gpu_memory_gib`` is the memory of
    ONE GPU.

    Prices are never combined across places: ``zone`` names the availability zone whose offer
    gave both prices when the provider prices per zone (GCP), else ``None`` (regional price).
    ``spot_per_hour`` is that zone's spot price; for AWS, whose on-demand price is regional, it
    is the lowest spot price over the region's zones, and ``spot_zone`` names the zone that
    offers it. ``None`` when unknown or set aside as suspicious (see ``data/SOURCES.md``).

    ``arch`` is the host CPU architecture (``x86_64`` or ``arm64``). ``interconnect`` is how the
    GPUs of a multi-GPU instance talk to each other (``nvlink``, or ``pcie`` for the PCIe bus
    only), which bounds tensor parallelism; ``None`` for one GPU or a non-NVIDIA accelerator.
    ``market`` is the price market the search rents it in (``on-demand`` or ``spot``; not a
    curated column: the search copies a row per market, see ``infersave.solver.placement``).
    ``price_source`` and ``price_date`` (``YYYY-MM-DD``, or ``YYYY-MM`` when only the month is
    known) say where and when the prices were published; ``source`` where the row's other facts
    come from.
    """

    instance_type: str
    provider: str = "aws"
    region: str
    accelerator: str
    gpu: str | None
    gpu_count: PositiveFloat
    gpu_memory_gib: PositiveFloat | None = None
    vcpus: PositiveInt
    host_memory_gib: PositiveFloat
    on_demand_per_hour: PositiveFloat | None
    spot_per_hour: PositiveFloat | None = None
    spot_zone: str | None = None
    excluded: str | None = None
    source: str
    zone: str | None = None
    arch: Literal["x86_64", "arm64"] = "x86_64"
    interconnect: Literal["nvlink", "pcie"] | None = None
    price_source: str | None = None
    price_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}(-\d{2})?$")
    market: Literal["on-demand", "spot"] = "on-demand"


class LLM(_Frozen):
    """A decoder-only transformer's shape, from its Hugging Face ``config.json``.

    ``num_parameters`` counts all weights (what must sit in memory);
    ``num_active_parameters`` those used per token (differs for mixture-of-experts).
    ``head_dim`` x ``num_key_value_heads`` is the width of K (and of V) per layer: the KV cache
    stores 2 x that many values per token per layer (MHA, GQA and MQA alike).
    ``ffn_matrices`` is 2 for a plain MLP (OPT, Falcon) and 3 for a gated one (SwiGLU/GeGLU).
    ``max_position_embeddings`` is the context window (tokens per request, prompt + output).

    Family details, all defaulted so a plain dense model needs none of them:

    * ``model_type``: the config's ``model_type`` (``llama``, ``qwen3_moe``, ``deepseek_v3``,
      ``gpt_oss``, ...), which selects the per-family parameter count.
    * ``tie_word_embeddings``: the LM head shares the token-embedding matrix.
    * ``sliding_window`` (tokens) and ``sliding_window_pattern``: which layers attend to the
      last ``sliding_window`` tokens only. With a pattern p, layer i (0-based) uses full
      attention iff (i + 1) % p == 0 and the window otherwise (the Gemma 3 config's meaning:
      p = 6 is 5 local layers then 1 global; p = 2 is Gemma 2's and gpt-oss's alternation);
      no pattern means every layer uses the window (Mistral-7B-v0.1, Phi-3-mini).
    * Multi-head latent attention (DeepSeek-V2/V3): ``kv_lora_rank`` (the compressed KV
      latent, what the cache stores), ``q_lora_rank`` (None: queries are not compressed),
      ``qk_nope_head_dim``, ``qk_rope_head_dim`` (the decoupled RoPE key, also cached) and
      ``v_head_dim``. ``head_dim`` is then the query/key head width nope + rope.
    * Mixture of experts: ``num_experts`` routed experts of width ``moe_intermediate_size``
      (None: ``intermediate_size``, as in Mixtral and gpt-oss), ``experts_per_token`` routed
      per token, ``always_active_expert_size`` the total width of the experts every token of a
      MoE layer passes through (DeepSeek: n_s experts x moe width; Qwen2-MoE's one), and
      ``dense_layers`` layers whose MLP is dense with ``intermediate_size`` (DeepSeek
      ``first_k_dense_replace``).
    """

    name: str
    hf_id: str
    family: str = ""
    num_parameters: PositiveInt
    num_active_parameters: PositiveInt
    hidden_size: PositiveInt
    intermediate_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    head_dim: PositiveInt
    vocab_size: PositiveInt
    max_position_embeddings: PositiveInt | None = None
    ffn_matrices: int = Field(default=3, ge=2, le=3)
    num_experts: PositiveInt | None = None
    experts_per_token: PositiveInt | None = None
    source: str = ""
    model_type: str = ""
    tie_word_embeddings: bool = False
    sliding_window: PositiveInt | None = None
    sliding_window_pattern: PositiveInt | None = None
    kv_lora_rank: PositiveInt | None = None
    q_lora_rank: PositiveInt | None = None
    qk_nope_head_dim: PositiveInt | None = None
    qk_rope_head_dim: PositiveInt | None = None
    v_head_dim: PositiveInt | None = None
    moe_intermediate_size: PositiveInt | None = None
    always_active_expert_size: PositiveInt | None = None
    dense_layers: int = Field(default=0, ge=0)

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention (DeepSeek-V2/V3): the KV cache is a latent."""
        return self.kv_lora_rank is not None

    @property
    def is_moe(self) -> bool:
        """True for a mixture of experts (more than one routed expert per MoE layer)."""
        return bool(self.num_experts and self.num_experts > 1)

    @property
    def sliding_layers(self) -> int:
        """How many layers attend within ``sliding_window`` only (0 without a window)."""
        if self.sliding_window is None:
            return 0
        if self.sliding_window_pattern is None:
            return self.num_hidden_layers
        return self.num_hidden_layers - self.num_hidden_layers // self.sliding_window_pattern
