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

__all__ = ["count_parameters", "llm_from_config"]

# model_type values whose MLP has 2 matrices (up, down); the rest are gated (3).
_TWO_MATRIX_TYPES = frozenset(
    {"opt", "falcon", "refinedweb", "refinedwebmodel", "gpt2", "gpt_neox", "gptj", "bloom"}
)
# model_type values whose config default for tie_word_embeddings is False.
_UNTIED_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "phi3"})


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
) -> tuple[int, int]:
    """(total, active-per-token) weight count of a decoder-only transformer from its shape.

    Token embeddings + per layer: attention q, k, v, o projections, ``ffn_matrices`` x hidden x
    intermediate per expert (+ a router for MoE), norms; + final norm; + LM head unless tied.
    Architecture details (family from ``model_type``): OPT has biases on every linear layer,
    LayerNorms with bias and a learned position table of max_position_embeddings + 2 rows;
    Qwen2 has q/k/v biases; Falcon uses LayerNorm with bias, one per layer (two with
    ``new_decoder_architecture``); Gemma-2 has four RMSNorms per layer. Matches the
    parameter counts of ``models.csv`` exactly for the 24 curated models.
    """
    mt = model_type.lower()
    h, i, layers = hidden_size, intermediate_size, num_hidden_layers
    q = num_attention_heads * head_dim
    kv = num_key_value_heads * head_dim
    experts = num_experts or 1
    layer_norm_bias = mt in ("opt", "falcon", "refinedweb", "refinedwebmodel", "gpt2")
    norm = h * (2 if layer_norm_bias else 1)
    if mt == "gemma2":
        norms_per_layer = 4
    elif mt in ("falcon", "refinedweb", "refinedwebmodel"):
        norms_per_layer = 2 if new_decoder_architecture else 1
    else:
        norms_per_layer = 2
    attn = h * q + 2 * h * kv + q * h
    if mt == "opt":
        attn += q + 2 * kv + h
    elif mt in ("qwen2", "qwen2_moe"):
        attn += q + 2 * kv
    expert = ffn_matrices * h * i + ((i + h) if mt == "opt" else 0)
    router = h * experts if experts > 1 else 0
    per_layer_fixed = attn + router + norms_per_layer * norm
    embed = vocab_size * h
    if mt == "opt" and max_position_embeddings:
        embed += (max_position_embeddings + 2) * h
    head = 0 if tie_word_embeddings else vocab_size * h
    fixed = embed + head + norm + layers * per_layer_fixed
    total = fixed + layers * experts * expert
    active = fixed + layers * min(experts_per_token or experts, experts) * expert
    return total, active


def llm_from_config(path: str | Path) -> LLM:
    """Build an :class:`LLM` from a local Hugging Face ``config.json``.

    Reads hidden_size (or n_embd/d_model), intermediate_size (OPT: ffn_dim; Falcon:
    ffn_hidden_size, default 4 x hidden), num_hidden_layers, num_attention_heads,
    num_key_value_heads (default num_attention_heads; Falcon ``multi_query`` -> 1, new
    architecture -> num_kv_heads), head_dim (default hidden/heads), vocab_size,
    max_position_embeddings, num_local_experts / num_experts_per_tok. The parameter count is
    computed by :func:`count_parameters`. The name is ``_name_or_path`` or else the file stem
    (the parent directory's name when the file is called ``config.json``).
    Raises :class:`CatalogError` naming the file (and key) when it cannot be read, is not a
    JSON object, or lacks a required key.
    """
    path = Path(path)
    file = str(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{file}: cannot read model config: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{file}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(cfg, dict):
        raise CatalogError(f"{file}: model config must be a JSON object")
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
    if mt in ("falcon", "refinedweb", "refinedwebmodel") and not new_arch:
        kv_default = 1 if cfg.get("multi_query", True) else heads
    else:
        kv_default = heads
    kv_heads = _get(cfg, file, "num_key_value_heads", "num_kv_heads", default=kv_default)
    if hidden % heads and cfg.get("head_dim") is None:
        raise CatalogError(f"{file}: required key head_dim missing (hidden not divisible)")
    head_dim = _get(cfg, file, "head_dim", default=hidden // heads)
    max_pos = _get(cfg, file, "max_position_embeddings", "n_positions", default=None)
    experts = _get(cfg, file, "num_local_experts", "num_experts", default=None)
    per_tok = _get(cfg, file, "num_experts_per_tok", default=None)
    if heads % kv_heads:
        raise CatalogError(f"{file}: num_attention_heads {heads} not a multiple of {kv_heads}")
    ffn = 2 if mt in _TWO_MATRIX_TYPES else 3
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = mt not in _UNTIED_TYPES
    total, active = count_parameters(
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
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            vocab_size=vocab,
            max_position_embeddings=max_pos,
            ffn_matrices=ffn,
            num_experts=experts if experts and experts > 1 else None,
            experts_per_token=per_tok if experts and experts > 1 else None,
            source=f"local config {file}",
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CatalogError(f"{file}: key {err['loc'][0]}: {err['msg']}") from exc
