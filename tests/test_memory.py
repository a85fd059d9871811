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
    # Table II: 2 x (Lin + Lout) x BS x h1 (2 = fp16 bytes)
    assert memory.activation_bytes(opt, 32, 1024, 128, 2) == 2 * 1152 * 32 * 2560
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
