"""Algorithm 1 on the offload grid, the candidate table, ranking ties and the baseline.

Tiny model (see conftest): weights 2e9 bytes; 10,240 KV bytes per token. Workload 900 in +
100 out tokens, batch 100: KV = 100 x 1000 x 10,240 = 1.024e9 bytes, one layer's KV 1.024e8,
activations (physics: one pass of 2,048 tokens; conftest's h 256, I 1,024, vocab 1,000)
2 x 2048 x (512 + 3072) + 4 x 100 x 1000 = 15,080,064. Base (weights + activations)
= 2,015,080,064 bytes. Under the paper's formulas the activations are Table II's
2 x 1000 x 100 x 256 = 5.12e7 and the base 2.0512e9.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gpu, instance, tiny_model

from infersave.formulations.candidates import Workload, build_table, instance_arrays
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver import ranking
from infersave.solver.policies import minimal_offload, paper_heuristic

KV = 1.024e9
KV_LAYER = 1.024e8
BASE = 2e9 + 2 * 2048 * (2 * 256 + 3 * 1024) + 4 * 100 * 1000  # 2,015,080,064
WORK = Workload(input_len=900, output_len=100, requests=1000, slo_tps=1.0, max_price=10.0)


def table_for(gpus, insts, options, batch_sizes=(100,), step=0.1, workload=WORK):
    arrays = instance_arrays(insts, {g.name: g for g in gpus}, options)
    return build_table(tiny_model(), workload, arrays, batch_sizes, offload_levels(step), options)


def minimal_level(usable: float, host: float, options: ModelOptions) -> float | None:
    t = table_for([gpu("G", usable)], [instance("i", "G", 1.0, host)], options)
    idx = minimal_offload(t, 100)
    return float(t.offload_ratio[idx[0]]) if idx.size else None


def test_memory_numbers_by_hand(exact_options: ModelOptions) -> None:
    t = table_for([gpu("G", 4e9)], [instance("i", "G", 1.0, 8e9)], exact_options)
    assert t.weights_bytes == 2e9
    assert t.kv_cache_bytes[0] == pytest.approx(KV)
    assert t.kv_per_layer_bytes[0] == pytest.approx(KV_LAYER)
    assert t.activation_bytes[0] == 15_080_064
    # gpu_used = base + (1 - c) KV for c = 0, 0.1, ..., 1
    assert t.gpu_used_bytes == pytest.approx(BASE + (1 - offload_levels(0.1)) * KV)


def test_case1_no_offloading_required(exact_options: ModelOptions) -> None:
    assert minimal_level(BASE + KV, 8e9, exact_options) == 0.0


def test_case3_offloading_required_smallest_grid_level(exact_options: ModelOptions) -> None:
    # avail = 2.6e9 - 2.01508e9 = 5.8492e8. Resident KV plus one streamed layer must fit:
    # (1 - c) 1.024e9 + 1.024e8 <= 5.8492e8  ->  c >= 0.5288  ->  grid level 0.6.
    # (The paper's continuous C_off = 1 - avail / KV = 0.429 ignores the layer buffer.)
    assert minimal_level(2.6e9, 8e9, exact_options) == pytest.approx(0.6)


def test_case3_paper_formulas_use_papers_per_layer_check() -> None:
    paper = ModelOptions(formulas="paper", gpu_memory_utilization=1.0)
    # paper KV: 2 * 100 * 1000 * 4 heads * 2 bytes * 10 layers = 1.6e7; nominal memory is used;
    # paper base: weights + Table II activations = 2.0512e9
    t = table_for([gpu("G", 2.0512e9 + 1.6e7 * 0.5)], [instance("i", "G", 1.0, 1.0)], paper)
    idx = minimal_offload(t, 100)
    assert t.kv_cache_bytes[0] == pytest.approx(1.6e7)
    # needs (1 - c) * 1.6e7 <= 0.8e7 -> c = 0.5; host memory is not checked (1 byte of host)
    assert float(t.offload_ratio[idx[0]]) == pytest.approx(0.5)


def test_case2_weights_larger_than_gpu(exact_options: ModelOptions) -> None:
    assert minimal_level(1.9e9, 8e9, exact_options) is None


def test_case2_one_layer_kv_does_not_fit(exact_options: ModelOptions) -> None:
    # avail 5e7 < one layer's KV 1.024e8, even with everything offloaded
    assert minimal_level(BASE + 5e7, 8e9, exact_options) is None


def test_host_memory_too_small_for_offload(exact_options: ModelOptions) -> None:
    # needs c >= 0.6 (6.144e8 offloaded) but the host has 5e8: c <= 0.488 -> nothing fits
    assert minimal_level(2.6e9, 5e8, exact_options) is None
    # with 6.2e8 of host, 0.6 fits
    assert minimal_level(2.6e9, 6.2e8, exact_options) == pytest.approx(0.6)


def test_multi_gpu_instances_share_host_memory(exact_options: ModelOptions) -> None:
    # 4 replicas on 2.4e9 of host: 6e8 each, below the 6.144e8 the 0.6 level needs
    t = table_for([gpu("G", 2.6e9)], [instance("i4", "G", 1.0, 2.4e9, count=4)], exact_options)
    assert t.host_memory_bytes[0] == pytest.approx(6e8)
    assert minimal_offload(t, 100).size == 0


def test_tps_scales_with_replicas(exact_options: ModelOptions) -> None:
    g = gpu("G", 8e9)
    t = table_for(
        [g], [instance("one", "G", 1.0, 8e9), instance("four", "G", 4.0, 32e9, 4)], exact_options
    )
    n = len(t) // 2
    assert t.tps[n:] == pytest.approx(4 * t.tps[:n])
    assert t.prefill_s[n:] == pytest.approx(t.prefill_s[:n])


def _ranked_names(t) -> list[str]:
    return [t.inst.instances[t.instance_idx[k]].instance_type for k in ranking.rank(t)]


def test_ranking_cheapest_first_then_higher_tps(exact_options: ModelOptions) -> None:
    slow, fast = gpu("slow", 8e9, tflops=10, bw_gbs=100), gpu("fast", 8e9, tflops=100, bw_gbs=1000)
    insts = [
        instance("pricey", "fast", 2.0, 8e9),
        instance("b-slow", "slow", 1.0, 8e9),
        instance("a-fast", "fast", 1.0, 8e9),
    ]
    t = table_for([slow, fast], insts, exact_options, step=1.0)
    best = ranking.best_per_instance(t, ranking.rank(t))
    names = [t.inst.instances[t.instance_idx[k]].instance_type for k in best]
    # same cost ($1/h, SLO-paced hours are equal): the faster one wins; pricey is last
    assert names == ["a-fast", "b-slow", "pricey"]


def test_ranking_exact_ties_go_to_instance_name(exact_options: ModelOptions) -> None:
    g = gpu("G", 8e9)
    insts = [instance("zeta", "G", 1.0, 8e9), instance("alpha", "G", 1.0, 8e9)]
    t = table_for([g], insts, exact_options, step=1.0)
    assert _ranked_names(t)[0] == "alpha"


def test_price_cap_excludes_fastest_and_baseline_respects_cap(exact_options: ModelOptions) -> None:
    slow, fast = gpu("slow", 8e9, tflops=10, bw_gbs=100), gpu("fast", 8e9, tflops=400, bw_gbs=3000)
    insts = [instance("cheap", "slow", 1.0, 8e9), instance("fastest", "fast", 20.0, 8e9)]
    t = table_for([slow, fast], insts, exact_options)
    k = ranking.exhaustive(t)
    assert t.inst.instances[t.instance_idx[k]].instance_type == "cheap"
    b = ranking.max_performance(t)
    assert t.inst.instances[t.instance_idx[b]].instance_type == "cheap"
    assert not t.ok["price_cap"][t.instance_idx == 1].any()


def test_nothing_feasible_when_slo_unreachable(exact_options: ModelOptions) -> None:
    w = Workload(900, 100, 1000, slo_tps=1e12, max_price=10.0)
    t = table_for([gpu("G", 8e9)], [instance("i", "G", 1.0, 8e9)], exact_options, workload=w)
    assert ranking.exhaustive(t) is None
    assert paper_heuristic(t, 100) is None


def test_paper_heuristic_takes_minimal_offload_at_fixed_batch(exact_options: ModelOptions) -> None:
    t = table_for(
        [gpu("G", 2.6e9)], [instance("i", "G", 1.0, 8e9)], exact_options, batch_sizes=(50, 100)
    )
    k = paper_heuristic(t, 100)
    assert int(t.batch_size[k]) == 100
    assert float(t.offload_ratio[k]) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        paper_heuristic(t, 64)


def test_offload_levels_grid() -> None:
    assert offload_levels(0.25).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(offload_levels(0.1)) == 11
    for bad in (0.0, 0.3, 1.5, -0.1):
        with pytest.raises(ValueError):
            offload_levels(bad)


def test_feasible_is_conjunction_of_named_constraints(exact_options: ModelOptions) -> None:
    t = table_for([gpu("G", 2.6e9)], [instance("i", "G", 1.0, 8e9)], exact_options)
    both = np.logical_and.reduce(list(t.ok.values()))
    assert (t.feasible == both).all()
    assert set(t.ok) == {
        "dtype_support",
        "tensor_parallel",
        "weights_fit",
        "memory_feasibility",
        "per_layer_kv",
        "host_memory",
        "price_cap",
        "tps_slo",
        "ttft_slo",
        "tpot_slo",
        "e2e_slo",
    }
