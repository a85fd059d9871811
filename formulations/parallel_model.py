"""Tensor parallelism inside one instance: how a replica's weights, KV cache and time split over
its GPUs, and what the all-reduces between them cost.

A replica of tensor-parallel degree ``t`` spans ``t`` GPUs of one instance (Megatron-style
sharding, as vLLM's ``--tensor-parallel-size``): every GPU holds ``1/t`` of each weight matrix
and ``1/t`` of the attention heads, and the partial results are summed by two all-reduces per
layer and step (after the attention output projection and after the MLP down projection). An
instance of ``G`` GPUs runs ``G / t`` replicas (data parallel).

Per GPU of a replica (the memory model's unit stays one GPU):

* weights: ``W / t`` bytes (embeddings and the LM head are sharded too, as vLLM's
  ``VocabParallelEmbedding`` does; norms, a negligible share, are counted as sharded);
* KV cache: ``KV / min(t, kv_heads)`` bytes: the KV heads are split over the GPUs while there
  are at least ``t`` of them, and each GPU keeps one (replicated) KV head beyond that, as vLLM
  replicates KV heads when ``t`` exceeds ``num_key_value_heads``;
* activations: the full hidden states (each GPU holds them after an all-reduce), not split;
  the MLP's intermediate tensors are (column-parallel), ``I / t`` per GPU
  (:func:`.memory_model.activation_bytes`).

Time: compute and weight/KV streaming divide by ``t`` (the time model is evaluated with ``t`` x
one GPU's peak FLOPS and memory bandwidth), plus the all-reduces of :func:`allreduce_seconds`.
Host memory for offloaded KV is the instance's, shared by all its GPUs.
"""

from __future__ import annotations

import numpy as np

from infersave.catalog.schemas import GPU, LLM

ALLREDUCE_MIN_LATENCY_S = 8e-6
"""Seconds: the floor of one all-reduce inside a node, whatever its size (launch and
synchronisation of the collective). The value cli99/llm-analysis uses for every GPU
(``intra_node_min_message_latency = 8e-06`` in its GPU configs)."""

ALLREDUCES_PER_LAYER = 2
"""All-reduces per decoder layer and forward step: after attention and after the MLP
(Megatron-LM tensor parallelism, Shoeybi et al. 2019, section 3)."""


def kv_shards(model: LLM, tp: np.ndarray | int) -> np.ndarray:
    """Over how many GPUs one replica's KV cache is split: ``min(t, num_key_value_heads)``
    (shape of ``tp``; the per-GPU KV cache is the replica's divided by it)."""
    return np.minimum(np.asarray(tp, dtype=np.float64), float(model.num_key_value_heads))


def tp_supported(model: LLM, tp: np.ndarray | int) -> np.ndarray:
    """Whether degree ``t`` can shard ``model`` (bool, shape of ``tp``): ``t`` divides the
    attention heads, and the KV heads divide by ``t`` (``t <= kv_heads``) or ``t`` by the KV
    heads (replicated), the conditions vLLM checks before it starts."""
    t = np.asarray(tp, dtype=np.int64)
    heads, kv = model.num_attention_heads, model.num_key_value_heads
    kv_ok = np.where(t <= kv, kv % t == 0, t % kv == 0)
    return (heads % t == 0) & kv_ok


PCIE_ALLREDUCE_EFFICIENCY = 0.25
"""Share of the datasheet's one-direction PCIe x16 bandwidth that an all-reduce between the
GPUs of a PCIe-only host reaches (dimensionless). Without peer-to-peer, NCCL's ring goes
through pinned host buffers (a copy in and a copy out, both directions over the same root
complex). Fitted on the 471 held-out tensor-parallel rows of the shipped Helix data (one
LLaMA-30B/Llama-2-70B layer on 2 and 4 T4s, 2 L4s; grid 0.1-1,
:func:`.tp_validation.fit_pcie_allreduce_efficiency`): median error 18.9% at 1, 8.0% at 0.25;
fitted on the T4 rows alone it gives the L4 rows 12.4% (23.2% at 1). NVLink hosts have no
measurements here and keep the datasheet figure."""


def interconnect_bandwidth(gpu: GPU, interconnect: str | None) -> float:
    """Bytes/s one GPU sends to its peers in one direction: NVLink where the instance has it
    (the datasheet's figure counts both directions, so half of it), else its PCIe link (the
    datasheet's one-direction x16 figure x :data:`PCIE_ALLREDUCE_EFFICIENCY`). 0 when the GPU
    has neither figure."""
    if interconnect == "nvlink" and gpu.nvlink_bandwidth_gbs:
        return gpu.nvlink_bandwidth_gbs / 2 * 1e9
    return (gpu.pcie_bandwidth_gbs or 0.0) * 1e9 * PCIE_ALLREDUCE_EFFICIENCY


def allreduce_seconds(
    message_bytes: np.ndarray, tp: np.ndarray, bandwidth: np.ndarray
) -> np.ndarray:
    """Seconds of one ring all-reduce of ``message_bytes`` over ``t`` GPUs (arrays broadcast).

    ``max(2 (t - 1) / t x bytes / bandwidth, ALLREDUCE_MIN_LATENCY_S)`` for ``t > 1``, 0 for
    ``t = 1``: a ring all-reduce sends ``2 (t - 1) / t`` of the message from every GPU
    (reduce-scatter then all-gather; NCCL's "bus bandwidth" definition), floored by the
    collective's latency; the formula of cli99/llm-analysis (``get_latency_fwd_per_tp_comm``).
    Example: 16 MiB over 8 GPUs at 300 GB/s takes 2 x 7/8 x 16,777,216 / 3e11 = 97.9 us.
    """
    t = np.asarray(tp, dtype=np.float64)
    bw = np.asarray(bandwidth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ring = 2.0 * (t - 1.0) / t * np.asarray(message_bytes, dtype=np.float64) / bw
    return np.where(t > 1, np.maximum(ring, ALLREDUCE_MIN_LATENCY_S), 0.0)


def allreduce_layer_times(
    model: LLM,
    batch: np.ndarray,
    input_len: np.ndarray,
    tp: np.ndarray,
    bandwidth: np.ndarray,
    activation_bytes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer all-reduce seconds of one replica: (prefill of the batch, one decode step).

    Each of the :data:`ALLREDUCES_PER_LAYER` all-reduces carries the hidden states of the
    tokens of the step: ``BS x L_in x hidden`` elements in prefill, ``BS x hidden`` per decode
    step, of ``activation_bytes`` each.
    """
    h = float(model.hidden_size)
    bs = np.asarray(batch, dtype=np.float64)
    pre = allreduce_seconds(bs * np.asarray(input_len) * h * activation_bytes, tp, bandwidth)
    dec = allreduce_seconds(bs * h * activation_bytes, tp, bandwidth)
    return ALLREDUCES_PER_LAYER * pre, ALLREDUCES_PER_LAYER * dec
