"""Read a decoder-only transformer's shape from its Hugging Face ``config.json``.

:func:`llm_from_config` turns a local ``config.json`` into an :class:`~infersave.catalog.LLM`
(its own fields: head_dim, sliding window, tied embeddings, MLA ranks, experts);
:func:`count_parameters` computes the weight count (total and active per token) from the shape.
Both are re-exported by :mod:`infersave.catalog.load`. Nothing here downloads: the file must be
local. Errors are :class:`~infersave.catalog.errors.CatalogError` naming the file and key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from infersave.catalog.errors import CatalogError
from infersave.catalog.schemas import LLM

__all__ = ["count_llm_parameters", "count_parameters", "llm_from_config"]

# model_type values whose MLP has 2 matrices (up, down); the rest are gated (3).
_TWO_MATRIX_TYPES = frozenset(
    {"opt", "falcon", "refinedweb", "refinedwebmodel", "gpt2", "gpt_neox", "gptj", "bloom"}
)
# model_type values whose config default for tie_word_embeddings is False (transformers'
# configuration_<family>.py defaults; PretrainedConfig's own default is True).
_UNTIED_TYPES = frozenset(
    {
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3",
        "deepseek_v2", "deepseek_v3", "gpt_oss",
    }
)  # fmt: skip
_FALCON_TYPES = frozenset({"falcon", "refinedweb", "refinedwebmodel"})
_QKV_BIAS_TYPES = frozenset({"qwen2", "qwen2_moe", "gpt_oss"})  # q, k, v projections biased
_QK_NORM_TYPES = frozenset({"qwen3", "qwen3_moe", "gemma3", "gemma3_text"})  # per-head RMSNorm
_FOUR_NORM_TYPES = frozenset({"gemma2", "gemma3", "gemma3_text"})  # pre+post norm, attn+MLP
_ALTERNATING_WINDOW_TYPES = frozenset({"gemma2"})  # window on every other layer, no key for it
_WINDOW_FLAG_TYPES = frozenset({"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"})  # use_sliding_window


def _get(cfg: Mapping[str, Any], file: str, *keys: str, default: Any = ...) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            value = cfg[k]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CatalogError(f"{file}: key {k} must be a positive integer, got {value!r}")
            return value
    if default is ...:
        raise CatalogError(f"{file}: required key {keys[0]} missing")
    return default


def count_parameters(
    *,
    model_type: str,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    head_dim: int,
    vocab_size: int,
    ffn_matrices: int,
    tie_word_embeddings: bool,
    max_position_embeddings: int | None = None,
    num_experts: int | None = None,
    experts_per_token: int | None = None,
    new_decoder_architecture: bool = False,
    moe_intermediate_size: int | None = None,
    always_active_expert_size: int | None = None,
    dense_layers: int = 0,
    kv_lora_rank: int | None = None,
    q_lora_rank: int | None = None,
    qk_nope_head_dim: int | None = None,
    qk_rope_head_dim: int | None = None,
    v_head_dim: int | None = None,
) -> tuple[int, int]:
    """(total, active-per-token) weight count of a decoder-only transformer from its shape.

    Token embeddings + per layer: attention, MLP (dense, or routed experts + router + shared
    experts), norms; + final norm; + LM head unless tied. Families (from ``model_type``), each
    as its transformers ``modeling_<family>.py`` builds the weights:

    * OPT: biases on every linear layer, LayerNorms with bias, a learned position table of
      max_position_embeddings + 2 rows. Falcon: LayerNorm with bias, one per layer (two with
      ``new_decoder_architecture``).
    * Qwen2/Qwen2-MoE: q/k/v biases. Qwen3/Qwen3-MoE, Gemma 3: q_norm and k_norm (head_dim
      each). Gemma 2/3: four RMSNorms per layer.
    * gpt-oss: biases on q/k/v/o, one attention-sink logit per head, a router bias, and biases
      on every expert's gate/up (2 x width) and down (hidden) projections.
    * Multi-head latent attention (``kv_lora_rank`` set; DeepSeek-V2/V3): q_a (hidden x
      q_lora_rank) + its norm + q_b (q_lora_rank x heads x (nope + rope)), or one q projection
      without ``q_lora_rank``; kv_a (hidden x (kv_lora_rank + rope)) + its norm; kv_b
      (kv_lora_rank x heads x (nope + v)); o (heads x v x hidden). DeepSeek-V3 adds a routing
      bias per expert (e_score_correction_bias). The multi-token-prediction layer
      (``num_nextn_predict_layers``) is not counted: it serves speculative decoding only.
    * MoE: ``dense_layers`` layers have a dense MLP of ``intermediate_size``; the others
      ``num_experts`` experts of ``moe_intermediate_size`` (default ``intermediate_size``), a
      router (hidden x experts), and shared experts of total width
      ``always_active_expert_size`` (Qwen2-MoE adds a hidden x 1 shared-expert gate).
      Active = the same with ``experts_per_token`` routed experts.

    Matches the parameter counts of ``models.csv`` exactly for the 24 curated models; the
    published totals of the newer families within 0.5% (see tests/test_models.py).
    """
    mt = model_type.lower()
    h, i, layers = hidden_size, intermediate_size, num_hidden_layers
    q = num_attention_heads * head_dim
    kv = num_key_value_heads * head_dim
    experts = num_experts or 1
    layer_norm_bias = mt in ("opt", "gpt2") or mt in _FALCON_TYPES
    norm = h * (2 if layer_norm_bias else 1)
    if mt in _FOUR_NORM_TYPES:
        norms_per_layer = 4
    elif mt in _FALCON_TYPES:
        norms_per_layer = 2 if new_decoder_architecture else 1
    else:
        norms_per_layer = 2
    if kv_lora_rank is not None:
        nope, rope = qk_nope_head_dim or 0, qk_rope_head_dim or 0
        v = v_head_dim or head_dim
        heads = num_attention_heads
        q_width = heads * (nope + rope)
        q_proj = (
            h * q_lora_rank + q_lora_rank + q_lora_rank * q_width if q_lora_rank else h * q_width
        )
        kv_proj = h * (kv_lora_rank + rope) + kv_lora_rank + kv_lora_rank * heads * (nope + v)
        attn = q_proj + kv_proj + heads * v * h
    else:
        attn = h * q + 2 * h * kv + q * h
    if mt == "opt":
        attn += q + 2 * kv + h
    elif mt in _QKV_BIAS_TYPES:
        attn += q + 2 * kv
    if mt == "gpt_oss":
        attn += h + num_attention_heads  # o_proj bias, attention sinks
    if mt in _QK_NORM_TYPES:
        attn += 2 * head_dim
    per_layer_fixed = attn + norms_per_layer * norm
    dense_mlp = ffn_matrices * h * i + ((i + h) if mt == "opt" else 0)
    embed = vocab_size * h
    if mt == "opt" and max_position_embeddings:
        embed += (max_position_embeddings + 2) * h
    head = 0 if tie_word_embeddings else vocab_size * h
    fixed = embed + head + norm + layers * per_layer_fixed
    if experts <= 1:
        total = fixed + layers * dense_mlp
        return total, total
    width = moe_intermediate_size or i
    expert = ffn_matrices * h * width + ((3 * width + h) if mt == "gpt_oss" else 0)
    # gpt-oss: gate_up bias 2 x width, down bias hidden; the 3rd width is in ffn_matrices.
    if mt == "gpt_oss":
        expert -= width
    router = h * experts + (experts if mt in ("gpt_oss", "deepseek_v3") else 0)
    shared = ffn_matrices * h * always_active_expert_size if always_active_expert_size else 0
    if shared and mt == "qwen2_moe":
        shared += h  # shared_expert_gate
    moe_layers = layers - dense_layers
    base = fixed + dense_layers * dense_mlp + moe_layers * (router + shared)
    total = base + moe_layers * experts * expert
    active = base + moe_layers * min(experts_per_token or experts, experts) * expert
    return total, active


def count_llm_parameters(model: LLM, new_decoder_architecture: bool = False) -> tuple[int, int]:
    """:func:`count_parameters` of an :class:`LLM`'s own fields (its ``model_type`` family)."""
    return count_parameters(
        model_type=model.model_type,
        hidden_size=model.hidden_size,
        intermediate_size=model.intermediate_size,
        num_hidden_layers=model.num_hidden_layers,
        num_attention_heads=model.num_attention_heads,
        num_key_value_heads=model.num_key_value_heads,
        head_dim=model.head_dim,
        vocab_size=model.vocab_size,
        ffn_matrices=model.ffn_matrices,
        tie_word_embeddings=model.tie_word_embeddings,
        max_position_embeddings=model.max_position_embeddings,
        num_experts=model.num_experts,
        experts_per_token=model.experts_per_token,
        new_decoder_architecture=new_decoder_architecture,
        moe_intermediate_size=model.moe_intermediate_size,
        always_active_expert_size=model.always_active_expert_size,
        dense_layers=model.dense_layers,
        kv_lora_rank=model.kv_lora_rank,
        q_lora_rank=model.q_lora_rank,
        qk_nope_head_dim=model.qk_nope_head_dim,
        qk_rope_head_dim=model.qk_rope_head_dim,
        v_head_dim=model.v_head_dim,
    )


def _text_config(cfg: dict[str, Any], file: str) -> dict[str, Any]:
    """The language model's keys: multimodal configs (Gemma 3, Llama 4, Qwen-VL) nest them in
    ``text_config``; its keys win, the outer ``_name_or_path`` is kept."""
    inner = cfg.get("text_config")
    if inner is None:
        return cfg
    if not isinstance(inner, dict):
        raise CatalogError(f"{file}: key text_config must be a JSON object")
    return {**{k: v for k, v in cfg.items() if k != "text_config"}, **inner}


def _sliding(
    cfg: Mapping[str, Any], file: str, mt: str, layers: int
) -> tuple[int | None, int | None]:
    """(sliding_window, sliding_window_pattern) as :class:`LLM` defines them, or (None, None).

    ``layer_types`` (transformers >= 4.53: "sliding_attention"/"full_attention" per layer) wins;
    else Gemma 3's ``sliding_window_pattern`` (default 6), Gemma 2's alternation, and for
    Qwen the window only with ``use_sliding_window``. Mistral/Phi-3: every layer.
    """
    window = _get(cfg, file, "sliding_window", default=None)
    if window is None:
        return None, None
    if mt in _WINDOW_FLAG_TYPES and not cfg.get("use_sliding_window", False):
        return None, None
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise CatalogError(f"{file}: key layer_types must list one type per layer ({layers})")
        full = [j for j, t in enumerate(types) if t != "sliding_attention"]
        if not full:
            return window, None
        if len(full) == layers:
            return None, None
        pattern = full[0] + 1
        if full != list(range(pattern - 1, layers, pattern)):
            raise CatalogError(
                f"{file}: key layer_types: full-attention layers {full[:4]}... are not every "
                f"n-th layer, which the sliding-window model needs"
            )
        return window, pattern
    if mt in ("gemma3", "gemma3_text"):
        return window, _get(cfg, file, "sliding_window_pattern", default=6)
    if mt in _ALTERNATING_WINDOW_TYPES:
        return window, 2
    return window, _get(cfg, file, "sliding_window_pattern", default=None)


def _dense_layer_count(cfg: Mapping[str, Any], file: str, layers: int) -> int:
    """Layers with a dense MLP in a MoE model: DeepSeek ``first_k_dense_replace``; Qwen-MoE
    ``mlp_only_layers`` and ``decoder_sparse_step`` (layer i sparse iff (i + 1) % step == 0)."""
    first = cfg.get("first_k_dense_replace")
    if first is not None:
        if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first <= layers:
            raise CatalogError(f"{file}: key first_k_dense_replace must be 0..{layers}")
        return first
    only = cfg.get("mlp_only_layers") or []
    if not isinstance(only, list):
        raise CatalogError(f"{file}: key mlp_only_layers must be a list of layer indices")
    step = _get(cfg, file, "decoder_sparse_step", default=1)
    dense = {j for j in range(layers) if j in set(only) or (j + 1) % step}
    return len(dense)


def llm_from_config(path: str | Path) -> LLM:
    """Build an :class:`LLM` from a local Hugging Face ``config.json``.

    Reads hidden_size (or n_embd/d_model), intermediate_size (OPT: ffn_dim; Falcon:
    ffn_hidden_size, default 4 x hidden), num_hidden_layers, num_attention_heads,
    num_key_value_heads (default num_attention_heads; Falcon ``multi_query`` -> 1, new
    architecture -> num_kv_heads), head_dim (default hidden/heads), vocab_size,
    max_position_embeddings (the context window), tie_word_embeddings (default per family),
    the sliding window (``sliding_window``, ``layer_types``, ``sliding_window_pattern``,
    ``use_sliding_window``), MLA ranks (``kv_lora_rank``, ``q_lora_rank``,
    ``qk_nope_head_dim``, ``qk_rope_head_dim``, ``v_head_dim``) and experts
    (num_local_experts / num_experts / n_routed_experts, num_experts_per_tok /
    experts_per_token, moe_intermediate_size, n_shared_experts /
    shared_expert_intermediate_size, first_k_dense_replace / mlp_only_layers). A multimodal
    config's ``text_config`` is read as the model. The parameter count is computed by
    :func:`count_parameters`. The name is ``_name_or_path`` or else the file stem (the parent
    directory's name when the file is called ``config.json``).
    Raises :class:`CatalogError` naming the file (and key) when it cannot be read, is not a
    JSON object, or lacks a required key.
    """
    path = Path(path)
    file = str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{file}: cannot read model config: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{file}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise CatalogError(f"{file}: model config must be a JSON object")
    cfg = _text_config(raw, file)
    mt = str(cfg.get("model_type", "")).lower()
    hidden = _get(cfg, file, "hidden_size", "n_embd", "d_model")
    layers = _get(cfg, file, "num_hidden_layers", "n_layer", "num_layers")
    heads = _get(cfg, file, "num_attention_heads", "n_head")
    vocab = _get(cfg, file, "vocab_size")
    default_inter = 4 * hidden if mt in _TWO_MATRIX_TYPES - {"opt"} else ...
    inter = _get(
        cfg, file, "intermediate_size", "ffn_dim", "ffn_hidden_size", "n_inner",
        default=default_inter,
    )  # fmt: skip
    new_arch = bool(cfg.get("new_decoder_architecture", False))
    if mt in _FALCON_TYPES and not new_arch:
        kv_default = 1 if cfg.get("multi_query", True) else heads
    else:
        kv_default = heads
    kv_heads = _get(cfg, file, "num_key_value_heads", "num_kv_heads", default=kv_default)
    kv_lora = _get(cfg, file, "kv_lora_rank", default=None)
    mla: dict[str, int | None] = {}
    if kv_lora is not None:
        mla = {
            "kv_lora_rank": kv_lora,
            "q_lora_rank": _get(cfg, file, "q_lora_rank", default=None),
            "qk_nope_head_dim": _get(cfg, file, "qk_nope_head_dim"),
            "qk_rope_head_dim": _get(cfg, file, "qk_rope_head_dim"),
            "v_head_dim": _get(cfg, file, "v_head_dim"),
        }
        head_dim = int(mla["qk_nope_head_dim"] or 0) + int(mla["qk_rope_head_dim"] or 0)
    else:
        if hidden % heads and cfg.get("head_dim") is None:
            raise CatalogError(f"{file}: required key head_dim missing (hidden not divisible)")
        head_dim = _get(cfg, file, "head_dim", default=hidden // heads)
    max_pos = _get(cfg, file, "max_position_embeddings", "n_positions", default=None)
    experts = _get(cfg, file, "num_local_experts", "num_experts", "n_routed_experts", default=None)
    per_tok = _get(cfg, file, "num_experts_per_tok", "experts_per_token", default=None)
    if heads % kv_heads:
        raise CatalogError(f"{file}: num_attention_heads {heads} not a multiple of {kv_heads}")
    ffn = 2 if mt in _TWO_MATRIX_TYPES else 3
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = mt not in _UNTIED_TYPES
    moe = bool(experts and experts > 1)
    moe_width = _get(cfg, file, "moe_intermediate_size", default=None) if moe else None
    shared_width = None
    if moe:
        n_shared = cfg.get("n_shared_experts")
        if n_shared:
            shared_width = _get(cfg, file, "n_shared_experts") * (moe_width or inter)
        else:
            shared_width = _get(cfg, file, "shared_expert_intermediate_size", default=None)
    dense = _dense_layer_count(cfg, file, layers) if moe else 0
    window, pattern = _sliding(cfg, file, mt, layers)
    # the shape fields the parameter count and the LLM record share (one list of them)
    shape: dict[str, Any] = dict(
        model_type=mt,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        ffn_matrices=ffn,
        tie_word_embeddings=bool(tied),
        max_position_embeddings=max_pos,
        moe_intermediate_size=moe_width,
        always_active_expert_size=shared_width,
        dense_layers=dense,
        **mla,
    )
    total, active = count_parameters(
        **shape,
        num_experts=experts,
        experts_per_token=per_tok,
        new_decoder_architecture=new_arch,
    )
    name = cfg.get("_name_or_path") or (
        path.parent.name if path.stem == "config" and path.parent.name else path.stem
    )
    try:
        return LLM(
            name=str(name),
            hf_id=str(cfg.get("_name_or_path") or name),
            family=mt,
            num_parameters=total,
            num_active_parameters=active,
            num_experts=experts if moe else None,
            experts_per_token=per_tok if moe else None,
            source=f"local config {file}",
            sliding_window=window,
            sliding_window_pattern=pattern,
            **shape,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CatalogError(f"{file}: key {err['loc'][0]}: {err['msg']}") from exc
