"""Tensor parallelism inside an instance: per-GPU memory, the all-reduce time, which degrees
shard a model, the candidate rows, the exact models' TP indicators and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import gpu, instance, tiny_model
from typer.testing import CliRunner

from infersave.catalog.schemas import Instance
from infersave.cli.main import app
from infersave.formulations import milp, parallel_model, time_model
from infersave.formulations.candidates import Workload, build_table, instance_arrays
from infersave.formulations.exact_model import encode
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver import ranking
from infersave.solver.cpsat_backend import solve_cpsat
from infersave.solver.highs_backend import solve_highs

runner = CliRunner()


def multi(name: str, gpu_name: str, count: int, interconnect: str | None = "nvlink") -> Instance:
    """A ``count``-GPU instance of ``gpu_name`` with 64 GB of host memory and the given link."""
    base = instance(name, gpu_name, 4.0, 64e9, count=count)
    return base.model_copy(update={"interconnect": interconnect})


def test_allreduce_time_by_hand() -> None:
    # 16 MiB over 8 GPUs at 300 GB/s: 2 x 7/8 x 16,777,216 B / 3e11 B/s = 97.87 us
    t = parallel_model.allreduce_seconds(np.array(16 * 2**20), np.array(8), np.array(3e11))
    assert float(t) == pytest.approx(2 * 7 / 8 * 16_777_216 / 3e11, rel=1e-12)
    assert float(t) == pytest.approx(97.87e-6, rel=1e-3)
    # a decode step's message is tiny: the 8 us floor; one GPU: no all-reduce at all
    small = parallel_model.allreduce_seconds(np.array(8192.0), np.array(2), np.array(3e11))
    assert float(small) == parallel_model.ALLREDUCE_MIN_LATENCY_S == 8e-6
    none = parallel_model.allreduce_seconds(np.array(1e9), np.array(1), np.array(3e11))
    assert float(none) == 0.0


def test_which_degrees_shard_a_model() -> None:
    gqa = tiny_model(num_attention_heads=32, num_key_value_heads=8)
    assert parallel_model.tp_supported(gqa, np.array([1, 2, 4, 8])).tolist() == [True] * 4
    odd = tiny_model(num_attention_heads=12, num_key_value_heads=12)  # 12 % 8 != 0
    assert parallel_model.tp_supported(odd, np.array([2, 4, 8])).tolist() == [True, True, False]
    mqa = tiny_model(num_attention_heads=8, num_key_value_heads=1)  # one KV head, replicated
    assert parallel_model.tp_supported(mqa, np.array([2, 8])).tolist() == [True, True]
    assert parallel_model.kv_shards(mqa, np.array([1, 2, 8])).tolist() == [1, 1, 1]
    assert parallel_model.kv_shards(gqa, np.array([1, 2, 4, 8])).tolist() == [1, 2, 4, 8]


def test_rows_per_degree_dividing_the_gpus(exact_options: ModelOptions) -> None:
    gpus = {"G": gpu("G", 10e9)}
    insts = [
        instance("one", "G", 1.0, 8e9),
        multi("four", "G", 4),
        multi("eight-pcie", "G", 8, "pcie"),
        multi("no-link", "G", 4, None),  # interconnect unknown: data parallel only
    ]
    arr = instance_arrays(insts, gpus, exact_options)
    got = [(i.instance_type, int(t)) for i, t in zip(arr.instances, arr.tp, strict=True)]
    assert got == [
        ("one", 1),
        ("four", 1), ("four", 2), ("four", 4),
        ("eight-pcie", 1), ("eight-pcie", 2), ("eight-pcie", 4), ("eight-pcie", 8),
        ("no-link", 1),
    ]  # fmt: skip
    assert arr.replicas.tolist() == [1, 4, 2, 1, 8, 4, 2, 1, 4]
    assert arr.instance_of_row().tolist() == [0, 1, 1, 1, 2, 2, 2, 2, 3]
    # NVLink: half the datasheet's both-directions figure; PCIe: the x16 figure
    nv = gpu("N", 10e9).model_copy(update={"nvlink_bandwidth_gbs": 600.0})
    link = instance_arrays([multi("n", "N", 2)], {"N": nv}, exact_options).links()
    assert link.tolist() == [0.0, 300e9]
    assert arr.links()[5] == 16e9 * 0.25  # conftest's GPU: PCIe 16 GB/s, a quarter for NCCL
    fixed = instance_arrays(insts, gpus, ModelOptions(tensor_parallel=4))
    assert [(i.instance_type, int(t)) for i, t in zip(fixed.instances, fixed.tp, strict=True)] == [
        ("four", 4),
        ("eight-pcie", 4),
    ]
    paper = instance_arrays(insts, gpus, ModelOptions(formulas="paper"))
    assert set(paper.tp.tolist()) == {1}  # the paper models one GPU per replica


def test_per_gpu_memory_at_tp_2_and_4_for_a_gqa_model(exact_options: ModelOptions) -> None:
    # 1e9 params (2e9 bytes fp16); 10 layers x 2 KV heads x 64 x 2 (K,V) x 2 B = 5,120 B/token
    model = tiny_model(num_attention_heads=4, num_key_value_heads=2)
    gpus = {"G": gpu("G", 10e9)}
    arr = instance_arrays([multi("four", "G", 4)], gpus, exact_options)
    w = Workload(input_len=900, output_len=100, requests=100, slo_tps=1.0, max_price=10.0)
    t = build_table(model, w, arr, [8], np.array([0.0]), exact_options)
    assert t.tensor_parallel.tolist() == [1, 2, 4]
    kv_total = 8 * 1000 * 5120  # batch x tokens x bytes per token = 40,960,000
    # activations: one pass of 2,048 tokens x (2 h + 3 I / t) in fp16, plus fp32 logits of
    # 8 sequences x 1,000 vocab; the MLP's intermediate tensors split 1/t, the hidden states not
    acts = [2 * 2048 * (2 * 256 + 3 * 1024 / t) + 4 * 8 * 1000 for t in (1, 2, 4)]
    # weights split 1/t; KV split over the 2 KV heads at TP 2, replicated beyond (TP 4: / 2)
    assert t.weights_gpu_bytes.tolist() == [2e9, 1e9, 0.5e9]
    assert t.kv_cache_bytes.tolist() == [kv_total, kv_total / 2, kv_total / 2]
    assert t.activation_bytes.tolist() == acts == [14_712_064, 8_420_608, 5_274_880]
    assert t.gpu_used_bytes.tolist() == [
        2e9 + acts[0] + kv_total,
        1e9 + acts[1] + kv_total / 2,
        0.5e9 + acts[2] + kv_total / 2,
    ]
    assert t.kv_per_layer_bytes.tolist() == [kv_total / 10, kv_total / 20, kv_total / 20]
    assert t.weights_bytes == 2e9  # the whole model's, for explanations


def test_tp_time_is_t_gpus_plus_the_allreduces(exact_options: ModelOptions) -> None:
    model = tiny_model(num_attention_heads=8, num_key_value_heads=8)
    g = gpu("G", 10e9, tflops=100.0, bw_gbs=1000.0)
    arr = instance_arrays([multi("two", "G", 2, "pcie")], {"G": g}, exact_options)
    w = Workload(input_len=512, output_len=65, requests=100, slo_tps=1.0, max_price=10.0)
    t = build_table(model, w, arr, [4], np.array([0.0]), exact_options)
    one, two = 0, 1
    assert t.tensor_parallel[two] == 2 and t.allreduce_s[one] == 0.0
    # TP 2 = the time model on 2 x peak and 2 x bandwidth, + 2 all-reduces per layer and step
    lt = time_model.layer_times(
        model, np.array(4.0), 512, 65, np.array(0.0), np.array(200e12), np.array(2000e9),
        np.array(2 * 16e9), exact_options,
    )  # fmt: skip
    pt = time_model.phase_times(model, lt, 65)
    msg_pre, msg_dec = 4 * 512 * 256 * 2, 4 * 256 * 2  # tokens x hidden x 2 bytes
    link = 16e9 * parallel_model.PCIE_ALLREDUCE_EFFICIENCY  # PCIe-only host: 4 GB/s
    ar_pre = 2 * max(2 * (1 / 2) * msg_pre / link, 8e-6)
    ar_dec = 2 * max(2 * (1 / 2) * msg_dec / link, 8e-6)
    assert ar_dec == 2 * 8e-6  # decode: the latency floor
    assert t.prefill_s[two] == pytest.approx(float(pt.prefill_s) + 10 * ar_pre, rel=1e-12)
    assert t.decode_s[two] == pytest.approx(float(pt.decode_s) + 10 * 64 * ar_dec, rel=1e-12)
    assert t.allreduce_s[two] == pytest.approx(10 * ar_pre + 10 * 64 * ar_dec, rel=1e-12)
    # one replica of 2 GPUs against two replicas of 1: TPS counts the replicas
    assert t.tps[one] == pytest.approx(2 * 4 * 577 / t.e2e_s[one], rel=1e-12)
    assert t.tps[two] == pytest.approx(1 * 4 * 577 / t.e2e_s[two], rel=1e-12)


def test_a_model_too_big_for_one_gpu_needs_tp_and_the_milp_says_so(
    exact_options: ModelOptions,
) -> None:
    model = tiny_model(num_parameters=30_000_000_000, num_active_parameters=30_000_000_000)
    gpus = {"G": gpu("G", 40e9)}  # 60 GB of weights: TP 2 (30 GB per GPU) is the least
    insts = [multi("quad", "G", 4), instance("single", "G", 1.0, 8e9)]
    arr = instance_arrays(insts, gpus, exact_options)
    w = Workload(input_len=256, output_len=64, requests=100, slo_tps=1.0, max_price=10.0)
    t = build_table(model, w, arr, [1, 4], offload_levels(0.5), exact_options)
    k = ranking.exhaustive(t)
    assert k is not None and t.tensor_parallel[k] >= 2
    assert not t.feasible[t.tensor_parallel == 1].any()
    assert solve_highs(t).index == k and solve_cpsat(t).index == k
    names = _lp_names(encode(t, ranking.tiebreak_positions(t)))
    assert {"exactly_one_tensor_parallel", "link_tensor_parallel_tp2", "t_tp4"} <= names
    assert {"tensor_parallel_shards_heads", "x_quad_tp2_bs1_off0"} <= names


def _lp_names(enc) -> set[str]:
    """Every variable and row name of the written MILP of ``enc``."""
    import re
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.lp"
        milp.write_model(enc, str(path))
        text = path.read_text()
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def test_cli_70b_recommends_tensor_parallelism_with_its_allreduce_share() -> None:
    args = ["solve", "--model", "llama-3.1-70b", "--input-len", "1024", "--output-len", "256"]
    args += ["--slo-tps", "500"]
    res = runner.invoke(app, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)["recommendation"]
    assert rec["tensor_parallel"] >= 2
    assert 0 < rec["allreduce_s"] < rec["e2e_s"]
    assert rec["gpu_count"] % rec["tensor_parallel"] == 0
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert f"tensor parallel {rec['tensor_parallel']}" in table.output
    assert "all-reduce" in table.output
    one = runner.invoke(app, [*args, "--tensor-parallel", "1"])
    assert one.exit_code == 1 and "Nothing feasible" in one.output


def test_tp_measurements_are_a_held_out_check_that_pins_the_pcie_efficiency() -> None:
    """The shipped tensor-parallel Helix rows (never fitted by the v2 constants) pick the
    all-reduce efficiency of PCIe hosts; fitted on one GPU's rows it helps the other's."""
    from infersave.catalog import calibration as store
    from infersave.catalog import measurements as meas
    from infersave.formulations import tp_validation as tpv

    rows = meas.read_measurements(meas.shipped_measurements_path())
    tp = tpv.resolve_tp(rows, meas.find_calibration_gpu, meas.find_calibration_model)
    assert len(tp) == 471 and set(tp.group) == {"T4 x2 (TP)", "T4 x4 (TP)", "L4 x2 (TP)"}
    fits = store.load_fits("default", "v2")[1] or {}
    corr = {k: f.alpha for k, f in fits.items()}
    eff, err = tpv.fit_pcie_allreduce_efficiency(tp, corrections=corr)
    assert eff == parallel_model.PCIE_ALLREDUCE_EFFICIENCY and err < 10.0
    gpu = np.array([g.name for g in tp.gpus])

    def rows_of(name: str) -> tpv.TpRows:
        sel = np.flatnonzero(gpu == name)
        return tpv.TpRows(
            tuple(tp.rows[i] for i in sel), tuple(tp.gpus[i] for i in sel),
            tuple(tp.models[i] for i in sel), tp.measured_s[sel], tp.group[sel], tp.phase[sel],
        )  # fmt: skip

    t4, l4 = rows_of("T4"), rows_of("L4")
    for fit_on, held in ((t4, l4), (l4, t4)):
        e, _ = tpv.fit_pcie_allreduce_efficiency(fit_on, corrections=corr)
        _, at_datasheet = tpv.fit_pcie_allreduce_efficiency(held, corrections=corr, grid=[1.0])
        _, held_err = tpv.fit_pcie_allreduce_efficiency(held, corrections=corr, grid=[e])
        assert held_err < at_datasheet


def test_a_degree_no_instance_runs_is_bad_input_not_a_crash(tmp_path) -> None:
    base = ["--model", "llama-3.1-8b", "--input-len", "512", "--output-len", "128"]
    base += ["--slo-tps", "100"]
    for extra in (["--tensor-parallel", "3"], ["--tensor-parallel", "8", "--max-gpus", "4"]):
        res = runner.invoke(app, ["solve", *base, *extra])
        assert res.exit_code == 2, res.output
        assert "no eligible instance has a GPU count that" in res.output
    one_gpu = runner.invoke(app, ["predict", "--instance", "g5.xlarge", *base[:6],
                                  "--batch-size", "4", "--tensor-parallel", "2"])  # fmt: skip
    assert one_gpu.exit_code == 2 and "divides" in one_gpu.output
    rows = tmp_path / "w.csv"
    rows.write_text(
        "model,input_len,output_len,slo_tps,tensor_parallel,backend\n"
        "llama-3.1-8b,512,128,100,3,exhaustive\nllama-3.1-8b,512,128,100,,exhaustive\n"
    )
    out = tmp_path / "o.csv"
    res = runner.invoke(app, ["batch", str(rows), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    import csv

    got = list(csv.DictReader(out.open()))
    assert [r["status"] for r in got] == ["error", "ok"]
    assert "tensor_parallel" in got[0]["message"]
