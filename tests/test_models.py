"""The newer model families: real config.json files parsed into their shape, parameter counts
against the published totals, KV-cache bytes per token by hand, and the shipped catalog rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infersave.catalog import curate
from infersave.catalog.hf_config import count_llm_parameters, llm_from_config
from infersave.catalog.load import CatalogError, find_model, models

CONFIGS = Path(__file__).parent / "data" / "configs"
DATA = Path(__file__).resolve().parents[1] / "catalog" / "data"

# Published totals (model cards / tech reports) and our tolerance. "active" excludes the input
# embedding table where the publisher does (DeepSeek-V3 36.6B + 0.9B head..., gpt-oss): see
# ``active_minus_embedding``.
PUBLISHED = {
    # file: (total, active, active excludes the input embedding, tolerance)
    "llama-3.1-8b.json": (8.03e9, 8.03e9, False, 0.005),
    "llama-3.2-3b.json": (3.21e9, 3.21e9, False, 0.005),
    "llama-3.3-70b.json": (70.6e9, 70.6e9, False, 0.005),
    "qwen3-8b.json": (8.2e9, 8.2e9, False, 0.005),
    "qwen3-32b.json": (32.8e9, 32.8e9, False, 0.005),
    "qwen3-30b-a3b.json": (30.5e9, 3.3e9, False, 0.02),  # Qwen3 card: 30.5B / 3.3B (2 digits)
    "deepseek-v3.json": (671e9, 36.6e9, True, 0.005),  # tt-metal README_WEIGHTS: 671B / 36.6B
    "gpt-oss-20b.json": (20.91e9, 3.61e9, True, 0.005),  # OpenAI model card: 20.91B / 3.61B
}


@pytest.mark.parametrize("file", sorted(PUBLISHED))
def test_parameter_counts_match_published_totals(file: str) -> None:
    m = llm_from_config(CONFIGS / file)
    total, active, no_embed, tol = PUBLISHED[file]
    ours_active = m.num_active_parameters - (m.vocab_size * m.hidden_size if no_embed else 0)
    assert m.num_parameters == pytest.approx(total, rel=tol)
    assert ours_active == pytest.approx(active, rel=tol)
    assert count_llm_parameters(m) == (m.num_parameters, m.num_active_parameters)


def test_deepseek_v3_shape_and_exact_count() -> None:
    m = llm_from_config(CONFIGS / "deepseek-v3.json")
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim) == (
        512, 1536, 128, 64,
    )  # fmt: skip
    assert (m.v_head_dim, m.head_dim, m.num_experts, m.experts_per_token) == (128, 192, 256, 8)
    assert (m.dense_layers, m.always_active_expert_size, m.moe_intermediate_size) == (3, 2048, 2048)
    assert m.max_position_embeddings == 163840 and not m.tie_word_embeddings and m.is_mla
    # By hand: attention per layer q_a 7168x1536 + norm 1536 + q_b 1536x128x192 + kv_a
    # 7168x576 + norm 512 + kv_b 512x128x256 + o 16384x7168 = 187,107,328, + 2 norms 14,336;
    # 3 dense MLPs 3x7168x18432; 58 MoE layers: 257 experts 3x7168x2048 + router 256x7168 + 256.
    attn = 7168 * 1536 + 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 + 512 * 128 * 256
    attn += 128 * 128 * 7168
    expert = 3 * 7168 * 2048
    fixed = 2 * 129280 * 7168 + 7168 + 61 * (attn + 2 * 7168) + 3 * 3 * 7168 * 18432
    fixed += 58 * (expert + 256 * 7168 + 256)
    assert m.num_parameters == fixed + 58 * 256 * expert == 671_026_419_200
    assert m.num_active_parameters == fixed + 58 * 8 * expert


def test_qwen3_moe_and_gpt_oss_shapes() -> None:
    q = llm_from_config(CONFIGS / "qwen3-30b-a3b.json")
    assert (q.num_experts, q.experts_per_token, q.moe_intermediate_size) == (128, 8, 768)
    assert (q.head_dim, q.num_key_value_heads, q.dense_layers) == (128, 4, 0)
    assert q.always_active_expert_size is None and q.sliding_window is None
    g = llm_from_config(CONFIGS / "gpt-oss-20b.json")
    assert (g.num_experts, g.experts_per_token, g.moe_intermediate_size) == (32, 4, None)
    assert (g.sliding_window, g.sliding_window_pattern, g.sliding_layers) == (128, 2, 12)
    assert g.max_position_embeddings == 131072
    # By hand, per layer: q/k/v/o with biases 26,550,080 + 64 sinks; 2 norms 5,760; router
    # 2880x32 + 32; expert gate_up 2880x5760 + 5760, down 2880x2880 + 2880 = 24,891,840.
    layer = 26_550_144 + 5_760 + 92_192
    assert g.num_parameters == 2 * 201088 * 2880 + 2880 + 24 * (layer + 32 * 24_891_840)


def test_llama_and_qwen3_dense_shapes() -> None:
    small = llm_from_config(CONFIGS / "llama-3.2-3b.json")
    assert small.tie_word_embeddings and small.head_dim == 128
    # 28 x (attention 25,165,824 + MLP 75,497,472 + norms 6,144) + embed 394,002,432 + 3,072
    assert small.num_parameters == 28 * (25_165_824 + 75_497_472 + 6_144) + 394_002_432 + 3_072
    q = llm_from_config(CONFIGS / "qwen3-8b.json")
    assert (q.max_position_embeddings, q.tie_word_embeddings, q.sliding_window) == (
        40960, False, None,
    )  # fmt: skip
    # q_norm + k_norm add 2 x 128 per layer over a Llama of the same shape.
    llama_like = count_llm_parameters(q.model_copy(update={"model_type": "llama"}))[0]
    assert q.num_parameters - llama_like == 36 * 256


def _write(tmp_path: Path, cfg: dict[str, object], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def test_gemma3_nested_text_config_and_window_pattern(tmp_path: Path) -> None:
    cfg = {
        "_name_or_path": "tiny/gemma3",
        "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text",
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 12,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 4,
            "vocab_size": 10,
            "sliding_window": 3,
            "max_position_embeddings": 64,
        },
    }
    m = find_model(_write(tmp_path, cfg))
    assert m.name == "tiny/gemma3" and m.model_type == "gemma3_text" and m.tie_word_embeddings
    assert (m.sliding_window, m.sliding_window_pattern, m.sliding_layers) == (3, 6, 10)
    # per layer: q 8x8, k,v 2x8x4, o 8x8 = 192; q/k norms 8; MLP 3x8x16 = 384; 4 norms 32
    assert m.num_parameters == 12 * (192 + 8 + 384 + 32) + 80 + 8


def test_layer_types_and_sliding_window_flags(tmp_path: Path) -> None:
    base = {
        "model_type": "mistral",
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "vocab_size": 10,
        "sliding_window": 5,
    }
    assert find_model(_write(tmp_path, base, "a.json")).sliding_layers == 4
    qwen = {**base, "model_type": "qwen3", "use_sliding_window": False}
    assert find_model(_write(tmp_path, qwen, "b.json")).sliding_window is None
    full = {**base, "layer_types": ["full_attention"] * 4}
    assert find_model(_write(tmp_path, full, "c.json")).sliding_window is None
    odd = {**base, "layer_types": ["sliding_attention", "full_attention", "full_attention", "x"]}
    with pytest.raises(CatalogError, match=r"odd\.json: key layer_types"):
        find_model(_write(tmp_path, odd, "odd.json"))
    short = {**base, "layer_types": ["full_attention"]}
    with pytest.raises(CatalogError, match=r"short\.json: key layer_types must list"):
        find_model(_write(tmp_path, short, "short.json"))


def test_mla_config_missing_rank_names_key(tmp_path: Path) -> None:
    cfg = json.loads((CONFIGS / "deepseek-v3.json").read_text(encoding="utf-8"))
    del cfg["qk_rope_head_dim"]
    with pytest.raises(CatalogError, match=r"ds\.json: required key qk_rope_head_dim missing"):
        find_model(_write(tmp_path, cfg, "ds.json"))


def test_shipped_newer_models_and_lookup_by_hf_id() -> None:
    m = find_model("Qwen/Qwen3-8B")
    assert m.name == "qwen3-8b" and m.max_position_embeddings == 40960
    assert find_model("deepseek-ai/DeepSeek-V3").is_mla
    for name in curate.EXTRA_MODELS:
        row = models()[name]
        assert "vendored in github.com/" in row.source
        assert count_llm_parameters(row) == (row.num_parameters, row.num_active_parameters)


def test_extra_models_csv_regenerates_byte_for_byte() -> None:
    text = curate.to_csv(curate.MODEL_COLUMNS, curate.curate_extra_models(CONFIGS))
    assert text == (DATA / "models_extra.csv").read_text(encoding="utf-8")


def test_curated_sliding_windows() -> None:
    assert find_model("mistral-7b").sliding_layers == 32
    gemma = find_model("gemma-2-9b")
    assert (gemma.sliding_window, gemma.sliding_layers) == (4096, 21)
    assert find_model("llama-3.1-8b").sliding_window is None


# ---------------------------------------------------------------- KV cache


def test_kv_bytes_per_token_mla_and_paper() -> None:
    from infersave.formulations import memory_model as mem

    ds = llm_from_config(CONFIGS / "deepseek-v3.json")
    # One latent per token and layer: 61 layers x (512 + 64) x 2 bytes (bf16).
    assert mem.kv_bytes_per_token(ds, 2) == 61 * (512 + 64) * 2 == 70_272
    # Per-head K and V would be 2 x 61 x 128 x 192 x 2 = 5,996,544: MLA is 85x smaller.
    assert mem.kv_cache_bytes(ds, 4, 1000, 24, 2) == 4 * 1024 * 70_272
    # The paper's printed formula stays as printed: 2 x heads x bytes x layers.
    assert mem.kv_bytes_per_token(ds, 2, formulas="paper") == 2 * 128 * 2 * 61


def test_kv_sliding_window_caps_windowed_layers() -> None:
    from infersave.formulations import memory_model as mem

    g = llm_from_config(CONFIGS / "gpt-oss-20b.json")
    # 2 x 8 KV heads x 64 x 2 bytes = 2,048 per layer; 24 layers -> 49,152 at short contexts.
    assert mem.kv_bytes_per_token(g, 2) == 24 * 2048 == 49_152
    assert mem.kv_request_bytes(g, 100, 2) == 100 * 49_152
    # 1,000 tokens: 12 full layers x 1,000 + 12 windowed x 128 = 13,536 layer-tokens.
    assert mem.kv_request_bytes(g, 1000, 2) == 13_536 * 2048 == 27_721_728
    assert mem.kv_cache_bytes(g, 3, 900, 100, 2) == 3 * 27_721_728
    assert mem.kv_bytes_per_token(g, 2, context_len=1000) == pytest.approx(27_721.728)
    gemma = find_model("gemma-2-9b")
    # 8,192 tokens: 21 full x 8,192 + 21 windowed x 4,096, 2 x 8 x 256 x 2 = 8,192 B each.
    assert mem.kv_request_bytes(gemma, 8192, 2) == (21 * 8192 + 21 * 4096) * 8192
    assert mem.kv_cache_bytes(gemma, 1, 8000, 192, 2, formulas="paper") == (8192 * 2 * 16 * 2 * 42)


def test_kv_request_bytes_is_monotone_and_bounded() -> None:
    from infersave.formulations import memory_model as mem

    g = find_model("gpt-oss-20b")
    ctx = np.arange(1, 5000, 7, dtype=np.float64)
    kv = mem.kv_request_bytes(g, ctx, 2)
    assert np.all(np.diff(kv) > 0)
    assert np.all(kv <= ctx * mem.kv_bytes_per_token(g, 2))
    assert np.all(kv >= ctx * mem.kv_bytes_per_token(g, 2) / 2)  # half the layers are full


# ---------------------------------------------------------------- end to end


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infersave.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


WORKLOAD = ("--input-len", "1024", "--output-len", "256", "--slo-tps", "500")


def test_cli_solves_a_shipped_hugging_face_id() -> None:
    p = _cli("solve", "--model", "Qwen/Qwen3-8B", *WORKLOAD, "--format", "json")
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)["recommendation"]
    assert rec["tps"] >= 500 and rec["total_cost_usd"] > 0


def test_cli_solves_from_a_config_file_and_checks_its_context_window() -> None:
    cfg = str(CONFIGS / "gpt-oss-20b.json")
    p = _cli("solve", "--model", cfg, *WORKLOAD)
    assert p.returncode == 0, p.stderr
    long = ("--input-len", "131000", "--output-len", "100", "--slo-tps", "1")
    p = _cli("solve", "--model", cfg, *long)
    assert p.returncode == 2 and "context window of 131,072" in p.stderr
    assert "Traceback" not in p.stderr


def test_moe_that_fits_nowhere_says_expert_parallelism_is_not_modelled() -> None:
    p = _cli("solve", "--model", "deepseek-v3", *WORKLOAD)
    assert p.returncode == 1
    out = p.stdout + p.stderr
    assert "even split by tensor parallelism" in out
    assert "pipeline parallelism across instances is not modelled, nor expert parallelism" in out
    # a dense model that fits no instance of at most 4 GPUs: no word of experts
    p = _cli("solve", "--model", "llama-3.1-405b", "--max-gpus", "4", *WORKLOAD)
    assert p.returncode == 1 and "expert parallelism" not in p.stdout + p.stderr
    assert "pipeline parallelism" in p.stdout + p.stderr


# ---------------------------------------------------------------- MoE decode read


def test_moe_decode_reads_the_experts_a_batch_touches() -> None:
    from infersave.formulations.time_model import _moe_params_read

    q = llm_from_config(CONFIGS / "qwen3-30b-a3b.json")
    one_expert = 48 * 3 * 2048 * 768  # one routed expert in each of the 48 MoE layers
    always = q.num_parameters - 128 * one_expert
    got = _moe_params_read(q, np.array([1.0, 2.0, 1e6]))
    assert got[0] == pytest.approx(q.num_active_parameters, rel=1e-12)  # k = 8 experts
    # 2 tokens: 128 x (1 - (120/128)^2) = 15.5 distinct experts per layer in expectation
    assert got[1] == pytest.approx(always + 15.5 * one_expert, rel=1e-12)
    assert got[2] == pytest.approx(q.num_parameters, rel=1e-12)
    ds = llm_from_config(CONFIGS / "deepseek-v3.json")
    ds_expert = 58 * 3 * 7168 * 2048
    # Always read: attention, embeddings, router, the always-active expert, 3 dense MLPs.
    assert ds.num_parameters - 256 * ds_expert == pytest.approx(
        _moe_params_read(ds, np.array([0.0]))[0], rel=1e-12
    )
    assert np.all(np.diff(_moe_params_read(ds, np.arange(1.0, 600.0))) > 0)
    dense = find_model("llama-3.1-8b")
    assert np.all(_moe_params_read(dense, np.array([1.0, 64.0])) == dense.num_parameters)
