"""Memory model (Table II) with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infersave.catalog.load import find_model
from infersave.formulations import memory_model as memory


def test_kv_cache_opt_2_7b_batch_32_fp16() -> None:
    # 2 (K,V) x 32 layers x 32 KV heads x 80 head dim x 2 bytes = 327,680 bytes per token;
    # x 32 requests x 1,152 tokens = 12,079,595,520 bytes
    opt = find_model("opt-2.7b")
    assert memory.kv_bytes_per_token(opt, 2) == 327_680
    assert memory.kv_cache_bytes(opt, 32, 1024, 128, 2) == 12_079_595_520


def test_kv_per_token_gqa_llama_3_1_8b() -> None:
    # 8 KV heads (GQA): 2 x 32 layers x 8 x 128 x 2 bytes = 131,072
    assert memory.kv_bytes_per_token(find_model("llama-3.1-8b"), 2) == 131_072


def test_kv_per_token_mqa_falcon_7b() -> None:
    # multi-query: one KV head of 64: 2 x 32 x 1 x 64 x 2 = 8,192
    assert memory.kv_bytes_per_token(find_model("falcon-7b"), 2) == 8_192


def test_paper_kv_formula_reproduces_table_ii_as_printed() -> None:
    # Table II: 2 * BS * (Lin + Lout) * nh * bytes * L = 2*32*1152*32*2*32
    opt = find_model("opt-2.7b")
    got = memory.kv_cache_bytes(opt, 32, 1024, 128, 2, formulas="paper")
    assert got == 2 * 32 * 1152 * 32 * 2 * 32 == 150_994_944


def test_weights_activations_and_per_layer() -> None:
    opt = find_model("opt-2.7b")
    assert memory.weights_bytes(opt, 2) == 2 * opt.num_parameters
    # physics: one pass of 2,048 tokens x (2 h + 2 I) (OPT's MLP is not gated: fc1 and its
    # activation) in fp16, plus fp32 logits of the 32 sequences: 104,857,600 + 6,434,816
    assert opt.ffn_matrices == 2 and (opt.hidden_size, opt.intermediate_size) == (2560, 10240)
    got = memory.activation_bytes(opt, 32, 1024, 128, 2)
    assert got == 2 * 2048 * (2 * 2560 + 2 * 10240) + 4 * 32 * 50272 == 111_292_416
    # Table II as printed: 2 x (Lin + Lout) x BS x h1 (2 = fp16 bytes)
    assert memory.activation_bytes(opt, 32, 1024, 128, 2, "paper") == 2 * 1152 * 32 * 2560
    per_layer = memory.kv_cache_per_layer_bytes(opt, 32, 1024, 128, 2)
    assert per_layer == 12_079_595_520 / 32


@given(
    bs=st.integers(1, 512),
    lin=st.integers(1, 8192),
    lout=st.integers(1, 4096),
    name=st.sampled_from(["opt-1.3b", "llama-3.1-8b", "mistral-7b", "falcon-7b", "gemma-2-9b"]),
)
def test_kv_cache_is_linear_in_batch_and_tokens(bs: int, lin: int, lout: int, name: str) -> None:
    m = find_model(name)
    one = memory.kv_cache_bytes(m, 1, lin, lout, 2)
    assert memory.kv_cache_bytes(m, bs, lin, lout, 2) == bs * one
    # Linear in tokens up to the sliding window (mistral-7b, gemma-2-9b: 4096); beyond it the
    # windowed layers stop growing, so the per-token figure is the one at that context.
    # (Changed with the sliding-window model: it asserted linearity at every length.)
    per_token = memory.kv_bytes_per_token(m, 2, context_len=lin + lout)
    assert one == pytest.approx((lin + lout) * per_token, rel=1e-12)
    if lin + lout <= (m.sliding_window or lin + lout):
        assert one == (lin + lout) * memory.kv_bytes_per_token(m, 2)
    else:
        assert one < (lin + lout) * memory.kv_bytes_per_token(m, 2)
    sizes = np.array([1, bs])
    assert np.allclose(memory.kv_cache_bytes(m, sizes, lin, lout, 2), [one, bs * one])


def test_activation_example_of_the_docstring() -> None:
    """llama-2-7b fp16 at batch 32: 2 x 2,048 x (8,192 + 3 x 11,008) + 4 x 32 x 32,000."""
    llama = find_model("llama-2-7b")
    assert memory.activation_bytes(llama, 32, 512, 512, 2) == 172_916_736


@given(
    bs=st.integers(1, 4096),
    lin=st.integers(1, 100_000),
    lout=st.integers(1, 100_000),
    tp=st.sampled_from([1, 2, 4, 8]),
    name=st.sampled_from(["opt-2.7b", "llama-3.1-8b", "mixtral-8x7b", "deepseek-v3"]),
)
def test_physics_activations_are_one_pass_whatever_the_prompt(
    bs: int, lin: int, lout: int, tp: int, name: str
) -> None:
    """vLLM reserves one pass of max(chunk, batch) tokens: the term does not depend on the
    lengths, grows with the batch, shrinks with tensor parallelism, and never falls below the
    pass's hidden states (2 h per token)."""
    m = find_model(name)
    got = float(memory.activation_bytes(m, bs, lin, lout, 2, tensor_parallel=tp))
    assert got == float(memory.activation_bytes(m, bs, 1, 1, 2, tensor_parallel=tp))
    assert got < float(memory.activation_bytes(m, bs + 1, lin, lout, 2, tensor_parallel=tp))
    if tp > 1:
        assert got < float(memory.activation_bytes(m, bs, lin, lout, 2, tensor_parallel=1))
    tokens = max(memory.PREFILL_CHUNK_TOKENS, bs)
    assert got >= 2 * tokens * 2 * m.hidden_size
