"""Quantized weights (int4 with group scales, fp8, int8) and the KV-cache precision: bytes by
hand, which GPUs run them, precisions searched as rows of one table, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import gpu, instance, tiny_model
from typer.testing import CliRunner

from infersave.catalog import load as catalog
from infersave.cli.main import app
from infersave.formulations.candidates import (
    Workload,
    build_table,
    instance_arrays,
    precision_supported,
)
from infersave.formulations.memory_model import weights_bytes_of
from infersave.formulations.options import INT4_BYTES_PER_PARAM, ModelOptions
from infersave.solver import ranking
from infersave.solver.cpsat_backend import solve_cpsat
from infersave.solver.highs_backend import solve_highs

runner = CliRunner()


def test_int4_weight_bytes_with_group_scales_by_hand() -> None:
    # 4 bits + per group of 128 one fp16 scale (2 B) and one 4-bit zero (0.5 B)
    assert INT4_BYTES_PER_PARAM == 0.5 + 2.5 / 128 == 0.51953125
    # tiny: 1e9 params; embeddings 1,000 x 256 and an untied LM head stay fp16 (512,000 params)
    m = tiny_model()
    assert weights_bytes_of(m, "int4") == (1e9 - 512_000) * 0.51953125 + 512_000 * 2
    assert weights_bytes_of(m, "int4") == 520_289_250.0
    tied = tiny_model(tie_word_embeddings=True)  # one 256,000-param table
    assert weights_bytes_of(tied, "int4") == (1e9 - 256_000) * 0.51953125 + 256_000 * 2
    assert weights_bytes_of(m, "fp16") == 2e9 and weights_bytes_of(m, "fp8") == 1e9
    # Llama-3.1-70B in int4: ~39.8 GB (the AWQ checkpoints on the Hub are of that size)
    seventy = catalog.find_model("llama-3.1-70b")
    assert weights_bytes_of(seventy, "int4") / 1e9 == pytest.approx(39.77, abs=0.01)


def test_kv_cache_precision(exact_options: ModelOptions) -> None:
    m = tiny_model()  # 10 layers x 4 KV heads x 64 x 2 (K, V) = 5,120 elements per token
    arr = {"G": gpu("G", 50e9)}
    w = Workload(input_len=500, output_len=500, requests=10, slo_tps=1.0, max_price=10.0)

    def kv(**opts: object) -> float:
        o = ModelOptions(gpu_memory_utilization=1.0, host_memory_utilization=1.0, **opts)
        inst = instance_arrays([instance("i", "G", 1.0, 8e9)], arr, o)
        return float(build_table(m, w, inst, [2], np.array([0.0]), o).kv_cache_bytes[0])

    tokens = 2 * 1000 * 5120
    assert kv() == tokens * 2  # fp16
    assert kv(dtype="int4") == tokens * 2  # weight-only: the KV cache stays fp16
    assert kv(dtype="fp16", kv_dtype="fp8") == tokens * 1
    assert kv(dtype="fp8") == tokens * 1  # auto: as the weights


@pytest.mark.parametrize(
    ("name", "dtype", "kv", "ok"),
    [
        ("T4", "int4", "auto", True),  # Turing, compute capability 7.5
        ("V100-SXM2-16GB", "int4", "auto", False),  # Volta 7.0: no AWQ kernels
        ("A100-SXM4-80GB", "fp8", "auto", False),  # Ampere: no FP8 tensor cores
        ("H100-SXM5-80GB", "fp8", "auto", True),
        ("A100-SXM4-80GB", "fp16", "fp8", False),  # no fp8 KV cache before Ada
        ("L40S", "int4", "fp8", True),
        ("T4", "int8", "auto", True),
    ],
)
def test_which_gpus_run_a_precision(name: str, dtype: str, kv: str, ok: bool) -> None:
    g = catalog.gpus("aws")[name]
    assert precision_supported(g, ModelOptions(dtype=dtype, kv_dtype=kv)) is ok


def test_searched_precisions_are_rows_of_one_table(exact_options: ModelOptions) -> None:
    m = tiny_model(num_parameters=20_000_000_000, num_active_parameters=20_000_000_000)
    g = gpu("G", 16e9)  # 40 GB fp16 and 20 GB fp8 do not fit; int4 (10.4 GB) does
    g = g.model_copy(update={"architecture": "Ada (sm_89)", "fp8_dense_tflops": 200.0})
    o = ModelOptions(gpu_memory_utilization=1.0, host_memory_utilization=1.0,
                     dtypes=("fp16", "fp8", "int4"))  # fmt: skip
    inst = instance_arrays([instance("a", "G", 1.0, 64e9), instance("b", "G", 2.0, 64e9)],
                           {"G": g}, o)  # fmt: skip
    assert inst.dtype_names == ("fp16", "fp16", "fp8", "fp8", "int4", "int4")
    assert inst.labels == ("a_fp16", "b_fp16", "a_fp8", "b_fp8", "a_int4", "b_int4")
    w = Workload(input_len=100, output_len=20, requests=10, slo_tps=1.0, max_price=10.0)
    t = build_table(m, w, inst, [1, 2], np.array([0.0, 0.5]), o)
    assert len(t) == 6 * 2 * 2
    per_row = t.weights_gpu_bytes.reshape(6, -1)[:, 0]
    assert per_row.tolist() == [4e10, 4e10, 2e10, 2e10] + [weights_bytes_of(m, "int4")] * 2
    k = ranking.exhaustive(t)
    assert k is not None and t.inst.dtype_names[t.instance_idx[k]] == "int4"
    assert t.inst.instances[t.instance_idx[k]].instance_type == "a"
    assert solve_highs(t).index == k and solve_cpsat(t).index == k
    # the MILP chooses a precision as it chooses a batch size: q_<dtype> indicators
    import re
    import tempfile
    from pathlib import Path

    from infersave.formulations import milp
    from infersave.formulations.exact_model import encode

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.lp"
        milp.write_model(encode(t, ranking.tiebreak_positions(t)), str(path))
        names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", path.read_text()))
    assert {"exactly_one_dtype", "link_dtype_int4", "q_int4"} <= names
    assert "q_fp16" not in names  # its weights fit no GPU: the structural prefilter drops it


def test_cli_405b_with_fp8_or_int4_on_8_gpus() -> None:
    args = ["solve", "--model", "llama-3.1-405b", "--input-len", "1024", "--output-len", "256",
            "--slo-tps", "500", "--max-gpus", "8", "--format", "json"]  # fmt: skip
    res = runner.invoke(app, [*args, "--dtypes", "fp8,int4"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)["recommendation"]
    assert rec["dtype"] in ("fp8", "int4") and rec["tensor_parallel"] >= 4
    fp16 = json.loads(runner.invoke(app, args).output)["recommendation"]
    assert fp16["dtype"] == "fp16" and rec["total_cost_usd"] < fp16["total_cost_usd"]
    bad = runner.invoke(app, [*args, "--dtypes", "fp16,int3"])
    assert bad.exit_code == 2 and "int3" in bad.output and "Traceback" not in bad.output


def test_closest_miss_names_the_precision_no_gpu_runs() -> None:
    base = ["solve", "--model", "llama-3.1-8b", "--input-len", "512", "--output-len", "128",
            "--slo-tps", "100"]  # fmt: skip
    kv = runner.invoke(app, [*base, "--kv-dtype", "fp8", "--gpu", "A100"])
    assert kv.exit_code == 1 and "runs fp16 with an fp8 KV cache" in kv.output
    int4 = runner.invoke(app, [*base, "--dtypes", "int4", "--gpu", "V100"])
    assert int4.exit_code == 1 and "runs int4" in int4.output
    assert "compute capability 7.5" in int4.output
