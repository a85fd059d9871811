"""Memory model: weights, KV cache and activations of one model replica (paper Table II).

All functions take numpy arrays (or scalars) for the batch size and return bytes with the same
shape. Token counts are per request: ``input_len`` (L_in) prompt tokens, ``output_len`` (L_out)
generated tokens.
"""

from __future__ import annotations

import numpy as np

from infersave.catalog.schemas import LLM
from infersave.formulations.options import Formulas


def weights_bytes(model: LLM, bytes_per_param: int) -> int:
    """Memory of the weights in bytes: parameters x bytes per parameter (Table II, Mem_model).

    All parameters count, also for mixture-of-experts models (every expert must be resident).
    """
    return int(model.num_parameters) * int(bytes_per_param)


def kv_bytes_per_token(model: LLM, bytes_per_param: int, formulas: Formulas = "physics") -> int:
    """KV-cache bytes stored per token over all layers.

    ``physics``: 2 (K and V) x layers x num_key_value_heads x head_dim x bytes. This is right for
    multi-head (MHA), grouped-query (GQA) and multi-query (MQA) attention; e.g. llama-3.1-8b
    (32 layers, 8 KV heads of 128) stores 2*32*8*128*2 = 131,072 bytes per token in fp16.

    ``paper``: Table II as printed, 2 x nh x bytes x L, which uses the number of attention heads
    where the K/V width belongs (a slip listed in shared/data/README.md).
    """
    layers = model.num_hidden_layers
    if formulas == "paper":
        return 2 * model.num_attention_heads * bytes_per_param * layers
    return 2 * layers * model.num_key_value_heads * model.head_dim * bytes_per_param


def kv_cache_bytes(
    model: LLM,
    batch_size: np.ndarray | int,
    input_len: int,
    output_len: int,
    bytes_per_param: int,
    formulas: Formulas = "physics",
) -> np.ndarray:
    """KV cache of a full batch at its longest context, bytes (Table II, Mem_KVcache).

    = batch_size x (L_in + L_out) x :func:`kv_bytes_per_token`. Shape of ``batch_size``.
    Example: opt-2.7b, batch 32, 1,152 tokens, fp16 -> 32*1152*327,680 = 12,079,595,520 bytes.
    """
    tokens = np.asarray(batch_size, dtype=np.float64) * (input_len + output_len)
    return tokens * kv_bytes_per_token(model, bytes_per_param, formulas)


def kv_cache_per_layer_bytes(
    model: LLM,
    batch_size: np.ndarray | int,
    input_len: int,
    output_len: int,
    bytes_per_param: int,
    formulas: Formulas = "physics",
) -> np.ndarray:
    """KV cache of one decoder layer, bytes (Table II, Mem_KVcache,per_layer = Mem_KVcache / L)."""
    total = kv_cache_bytes(model, batch_size, input_len, output_len, bytes_per_param, formulas)
    return total / model.num_hidden_layers


def activation_bytes(
    model: LLM,
    batch_size: np.ndarray | int,
    input_len: int,
    output_len: int,
    bytes_per_param: int,
) -> np.ndarray:
    """Activation memory, bytes (Table II: 2 x (L_in + L_out) x BS x h1).

    The paper's factor 2 is the fp16 element size; we use ``bytes_per_param`` in its place, which
    is the same number for fp16/bf16.
    """
    bs = np.asarray(batch_size, dtype=np.float64)
    return bytes_per_param * (input_len + output_len) * bs * model.hidden_size
