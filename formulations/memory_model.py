"""Memory model: weights, KV cache and activations of one model replica (paper Table II).

All functions take numpy arrays (or scalars) for the batch size and return bytes with the same
shape. Token counts are per request: ``input_len`` (L_in) prompt tokens, ``output_len`` (L_out)
generated tokens.
"""

from __future__ import annotations

import numpy as np

from infersave.catalog.schemas import LLM
from infersave.formulations.options import Formulas, ModelOptions


def weights_bytes(model: LLM, bytes_per_param: float, quantized: bool = False) -> float:
    """Memory of the weights in bytes: parameters x bytes per parameter (Table II, Mem_model).

    All parameters count, also for mixture-of-experts models (every expert must be resident).
    ``quantized`` (int4 weight-only): the token embedding table (and an untied LM head) stay in
    fp16, as AWQ/GPTQ checkpoints keep them (only the linear layers of the decoder blocks are
    quantized); the rest at ``bytes_per_param`` (:data:`.options.INT4_BYTES_PER_PARAM`).
    Example: 1e9 parameters, 1,000 x 256 tied embeddings, int4: (1e9 - 256,000) x 0.51953125 +
    256,000 x 2 = 520,043,000 bytes.
    """
    if not quantized:
        return int(model.num_parameters) * bytes_per_param
    embed = model.vocab_size * model.hidden_size * (1 if model.tie_word_embeddings else 2)
    embed = min(embed, int(model.num_parameters))
    return (int(model.num_parameters) - embed) * bytes_per_param + embed * 2.0


def weights_bytes_of(model: LLM, dtype: str) -> float:
    """The weights of ``model`` in precision ``dtype`` (a key of
    :data:`.options.WEIGHT_DTYPES`), bytes: :func:`weights_bytes` with int4's group-scale
    bytes and fp16 embeddings."""
    o = ModelOptions(dtype=dtype)
    return weights_bytes(model, o.weight_bytes, quantized=dtype == "int4")


def kv_bytes_per_token(
    model: LLM,
    bytes_per_param: int,
    formulas: Formulas = "physics",
    context_len: np.ndarray | float | None = None,
) -> int | np.ndarray:
    """KV-cache bytes stored per token over all layers.

    ``physics`` (paper Table II corrected; model cards, vLLM's KV cache spec):

    * MHA, GQA and MQA: 2 (K and V) x layers x num_key_value_heads x head_dim x bytes; e.g.
      llama-3.1-8b (32 layers, 8 KV heads of 128) stores 2*32*8*128*2 = 131,072 bytes per
      token in fp16.
    * Multi-head latent attention (DeepSeek-V2/V3): ONE latent per token and layer, not K and V
      per head: layers x (kv_lora_rank + qk_rope_head_dim) x bytes (DeepSeek-V2 paper sec.
      2.1; vLLM's MLA cache stores kv_c and k_pe); DeepSeek-V3: 61 x (512 + 64) x 2 = 70,272
      bytes per token in bf16.
    * Sliding-window layers (Mistral-7B-v0.1, Gemma 2/3, gpt-oss) hold at most
      ``sliding_window`` tokens of a request. Without ``context_len`` the result counts every
      layer (right for contexts up to the window). With ``context_len`` (tokens per request,
      scalar or array) it is the average per token of a request of that length:
      (full layers x ctx + windowed layers x min(ctx, window)) / ctx x per-layer bytes, a float
      or array of ``context_len``'s shape; :func:`kv_request_bytes` is that times ctx.

    ``paper``: Table II as printed, 2 x nh x bytes x L, which uses the number of attention heads
    where the K/V width belongs (a slip listed in shared/data/README.md); no MLA, no window.
    """
    layers = model.num_hidden_layers
    if formulas == "paper":
        return 2 * model.num_attention_heads * bytes_per_param * layers
    per_layer = _kv_layer_token_bytes(model, bytes_per_param)
    if context_len is None or not model.sliding_layers:
        return layers * per_layer
    ctx = np.maximum(np.asarray(context_len, dtype=np.float64), 1.0)
    return kv_request_bytes(model, ctx, bytes_per_param, formulas) / ctx


def _kv_layer_token_bytes(model: LLM, bytes_per_param: int) -> int:
    """KV bytes of one token in one layer (physics): the MLA latent + RoPE key, else K and V."""
    if model.kv_lora_rank is not None:
        return (model.kv_lora_rank + (model.qk_rope_head_dim or 0)) * bytes_per_param
    return 2 * model.num_key_value_heads * model.head_dim * bytes_per_param


def kv_request_bytes(
    model: LLM,
    context_len: np.ndarray | float,
    bytes_per_param: int,
    formulas: Formulas = "physics",
) -> np.ndarray:
    """KV cache of ONE request holding ``context_len`` tokens, bytes (shape of context_len).

    = per-layer token bytes x (full layers x ctx + windowed layers x min(ctx, window)): a
    sliding-window layer keeps only the last ``sliding_window`` tokens (vLLM frees the blocks
    that fall out of the window; Gemma 2/3 and gpt-oss model cards). Without a window this is
    ctx x :func:`kv_bytes_per_token`. ``paper``: ctx x the printed Table II figure.
    """
    ctx = np.asarray(context_len, dtype=np.float64)
    if formulas == "paper" or not model.sliding_layers:
        return ctx * kv_bytes_per_token(model, bytes_per_param, formulas)
    window = float(model.sliding_window or 0)
    full = model.num_hidden_layers - model.sliding_layers
    tokens = full * ctx + model.sliding_layers * np.minimum(ctx, window)
    return tokens * _kv_layer_token_bytes(model, bytes_per_param)


def kv_cache_bytes(
    model: LLM,
    batch_size: np.ndarray | int,
    input_len: int,
    output_len: int,
    bytes_per_param: int,
    formulas: Formulas = "physics",
) -> np.ndarray:
    """KV cache of a full batch at its longest context, bytes (Table II, Mem_KVcache).

    = batch_size x :func:`kv_request_bytes` at L_in + L_out tokens, which is batch_size x
    (L_in + L_out) x :func:`kv_bytes_per_token` unless sliding-window layers cap their part at
    the window. Shape of ``batch_size``.
    Example: opt-2.7b, batch 32, 1,152 tokens, fp16 -> 32*1152*327,680 = 12,079,595,520 bytes.
    """
    per_request = kv_request_bytes(model, input_len + output_len, bytes_per_param, formulas)
    return np.asarray(batch_size, dtype=np.float64) * per_request


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


PREFILL_CHUNK_TOKENS = 2048
"""Tokens one forward pass processes at most (vLLM's ``--max-num-batched-tokens``; chunked
prefill splits longer prompts into passes of this many tokens). vLLM reserves the activation
memory of one pass of this size at start-up (its memory profiling runs a dummy forward pass
of ``max_num_batched_tokens`` tokens before sizing the KV cache), so the activation term does
not grow with the prompt; the vLLM hand-off (:mod:`infersave.exporters.vllm`) passes the same
figure (``max(PREFILL_CHUNK_TOKENS, batch size)``: vLLM requires at least one token per
sequence) so that the deployment matches the model."""

LOGIT_BYTES = 4
"""Bytes of one logit: the sampler works on fp32 logits (vLLM upcasts them), one row of
``vocab_size`` per sequence of the batch."""


def forward_pass_tokens(batch_size: np.ndarray | int) -> np.ndarray:
    """Tokens of the forward pass whose activations vLLM reserves, and the
    ``--max-num-batched-tokens`` the hand-off sets: ``max(PREFILL_CHUNK_TOKENS, batch_size)``
    (vLLM requires at least one token per sequence). Shape of ``batch_size``."""
    return np.maximum(float(PREFILL_CHUNK_TOKENS), np.asarray(batch_size, dtype=np.float64))


def ffn_active_width(model: LLM) -> int:
    """Width of the feed-forward activations of one token (elements): ``intermediate_size``
    for a dense model; for a mixture of experts the routed experts' widths
    (``experts_per_token`` x ``moe_intermediate_size``, default ``intermediate_size``) plus the
    shared expert's, or the dense layers' ``intermediate_size`` if larger (DeepSeek's first
    layers)."""
    if not model.num_experts or not model.experts_per_token:
        return model.intermediate_size
    k = min(model.experts_per_token, model.num_experts)
    moe = k * (model.moe_intermediate_size or model.intermediate_size)
    moe += model.always_active_expert_size or 0
    return max(moe, model.intermediate_size) if model.dense_layers else moe


def activation_bytes(
    model: LLM,
    batch_size: np.ndarray | int,
    input_len: np.ndarray | int,
    output_len: np.ndarray | int,
    bytes_per_param: int,
    formulas: Formulas = "physics",
    tensor_parallel: np.ndarray | int = 1,
) -> np.ndarray:
    """Activation memory on one GPU of a replica, bytes (shape of the arguments broadcast).

    ``physics`` (the default; a departure from the paper): the peak of one forward pass of
    ``T`` = :func:`forward_pass_tokens` tokens, which vLLM reserves whatever the
    prompt (:data:`PREFILL_CHUNK_TOKENS`), plus the batch's logits::

        bytes x T x (2 h + m x I / t) + LOGIT_BYTES x batch_size x vocab_size

    At the feed-forward block a token holds its residual stream and its normalized input
    (2 h) and the block's intermediate tensors: gate and up projections and their product for
    a gated MLP (``ffn_matrices`` m = 3: 3 I), the up projection and its activation otherwise
    (m = 2: 2 I), with I = :func:`ffn_active_width`; tensor parallelism splits the
    intermediate tensors over the ``t`` GPUs (column-parallel), not the hidden states. The
    attention block's tensors (Q, K, V and the output, at most 4 h) are smaller and freed
    before the MLP. Example: llama-2-7b (h 4,096, I 11,008, m 3, vocab 32,000) in fp16 at
    batch 32 on one GPU: 2 x 2,048 x (8,192 + 33,024) + 4 x 32 x 32,000 = 172,916,736 bytes.

    ``paper``: Table II as printed, 2 x (L_in + L_out) x BS x h1 (hidden states of every
    token of every request at once, which no engine holds; the factor 2 is the fp16 element
    size, ``bytes_per_param`` here, the same number for fp16/bf16).
    """
    bs = np.asarray(batch_size, dtype=np.float64)
    tokens = np.asarray(input_len, dtype=np.float64) + np.asarray(output_len, dtype=np.float64)
    if formulas == "paper":
        return bytes_per_param * tokens * bs * model.hidden_size
    t = np.asarray(tensor_parallel, dtype=np.float64)
    width = 2.0 * model.hidden_size + model.ffn_matrices * ffn_active_width(model) / t
    per_pass = bytes_per_param * forward_pass_tokens(bs) * width
    out = per_pass + float(LOGIT_BYTES) * bs * model.vocab_size
    return np.broadcast_to(out, np.broadcast(out, tokens).shape).copy()
