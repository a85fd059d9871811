"""Hand-computed time-model numbers (Eq. 4-7) for a tiny model, both perf models."""

from __future__ import annotations

import numpy as np
import pytest

from infersave.catalog.schemas import LLM
from infersave.formulations import time_model as time
from infersave.formulations.options import ModelOptions

# 2 layers, 1000 parameters, attention width 2 heads x 2 = 4, K/V width 4, fp16.
TINY = LLM(
    name="tiny",
    hf_id="test/tiny",
    num_parameters=1000,
    num_active_parameters=1000,
    hidden_size=4,
    intermediate_size=8,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=2,
    vocab_size=10,
)
PEAK, MEM_BW, PCIE = 1000.0, 100.0, 10.0  # FLOP/s, B/s, B/s
BS, LIN, LOUT = 2, 3, 2  # decode context = 3 + 2/2 = 4


def _lt(perf_model: str, offload: float) -> time.LayerTimes:
    return time.layer_times(
        TINY,
        np.array([BS]),
        LIN,
        LOUT,
        np.array([offload]),
        np.array([PEAK]),
        np.array([MEM_BW]),
        np.array([PCIE]),
        ModelOptions(perf_model=perf_model),  # type: ignore[arg-type]
    )


def test_paper_perf_model_by_hand() -> None:
    # linear FLOPs per token and layer = 2 x 1000 / 2 = 1000
    # prefill: 2*3*1000 + 4*2*3^2*4 = 6288 FLOPs -> 6.288 s; decode: 2*1000 + 4*2*4*4 = 2128
    lt = _lt("paper", 0.0)
    assert lt.prefill_compute[0] == pytest.approx(6.288)
    assert lt.decode_compute[0] == pytest.approx(2.128)
    assert lt.prefill_transfer[0] == 0 and lt.decode_transfer[0] == 0
    # Eq. 4-6 with CTCF alpha=2, beta=1 s: prefill 2 layers x (2*6.288+1); decode 1 step.
    pt = time.phase_times(TINY, lt, LOUT, 2.0, 1.0, 2.0, 1.0)
    assert pt.prefill_s[0] == pytest.approx(2 * (2 * 6.288 + 1))
    assert pt.decode_s[0] == pytest.approx(2 * 1 * (2 * 2.128 + 1))
    assert pt.e2e_s[0] == pytest.approx(pt.prefill_s[0] + pt.decode_s[0])


def test_roofline_perf_model_by_hand() -> None:
    assert time.ROOFLINE_COMPUTE_EFFICIENCY == 0.55
    assert time.ROOFLINE_MEMORY_EFFICIENCY == 1.0
    peak = PEAK * 0.55
    # weights per layer 1000*2/2 = 1000 B; KV per token and layer 2*2*2*2 = 16 B
    pre = max(6000 / peak, 1000 / 100) + max(288 / peak, 2 * 3 * 16 / 100)  # 10.909 + 0.96
    dec = max(2000 / peak, 1000 / 100) + max(128 / peak, 2 * 4 * 16 / 100)  # 10 + 1.28
    lt = _lt("roofline", 0.0)
    assert lt.prefill_compute[0] == pytest.approx(pre)
    assert lt.decode_compute[0] == pytest.approx(dec)
    assert pre == pytest.approx(6000 / 550 + 0.96)
    assert dec == pytest.approx(11.28)


def test_roofline_with_offload_by_hand() -> None:
    # half the KV on the host: prefill writes 0.5*2*3*16 B, decode reads 0.5*2*4*16 B over PCIe
    lt = _lt("roofline", 0.5)
    assert lt.prefill_transfer[0] == pytest.approx(4.8)
    assert lt.decode_transfer[0] == pytest.approx(6.4)
    pt = time.phase_times(TINY, lt, LOUT)
    # Eq. 5: overlapped (max); Eq. 6: serial (sum)
    assert pt.prefill_s[0] == pytest.approx(2 * max(6000 / 550 + 0.96, 4.8))
    assert pt.decode_s[0] == pytest.approx(2 * 1 * (11.28 + 6.4))


def test_paper_perf_model_with_offload_by_hand() -> None:
    lt = _lt("paper", 0.5)
    pt = time.phase_times(TINY, lt, LOUT)
    assert pt.prefill_s[0] == pytest.approx(2 * max(6.288, 4.8))
    assert pt.decode_s[0] == pytest.approx(2 * (2.128 + 6.4))


def test_ctcf_is_eq7() -> None:
    assert time.ctcf(np.array([2.0]), 3.0, 0.5)[0] == 6.5


def test_roofline_never_below_either_bound() -> None:
    lt = _lt("roofline", 0.0)
    paper = _lt("paper", 0.0)
    assert lt.prefill_compute[0] >= paper.prefill_compute[0]
    assert lt.decode_compute[0] >= 1000 / MEM_BW
