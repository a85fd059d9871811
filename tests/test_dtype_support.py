"""A dtype is recommended only on GPUs with tensor cores for it (datasheet columns), and its
tensor peak sets the compute term: checked for every GPU of the catalog."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_model

from infersave.catalog import load
from infersave.catalog.schemas import Instance
from infersave.formulations.candidates import Workload, build_table, instance_arrays
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver import ranking

GPUS = {k: g for k, g in load.gpus("aws").items() if g.is_nvidia and g.pcie_bandwidth_gbs}
NEEDS = {"fp8": "fp8_dense_tflops", "int8": "int8_dense_tops", "bf16": "bf16_dense_tflops"}


def one_gpu_table(name: str, dtype: str):
    inst = Instance(
        instance_type=f"x.{name}", region="r", accelerator=name, gpu=name, gpu_count=1,
        vcpus=8, host_memory_gib=64, on_demand_per_hour=1.0, source="test",
    )  # fmt: skip
    options = ModelOptions(dtype=dtype, perf_model="roofline")  # v2 scales slot-powered peaks
    arrays = instance_arrays([inst], GPUS, options)
    w = Workload(512, 64, 100, 1.0, float("inf"))
    return build_table(tiny_model(), w, arrays, (1, 8), offload_levels(0.5), options), arrays


@pytest.mark.parametrize("dtype", sorted(NEEDS))
@pytest.mark.parametrize("name", sorted(GPUS))
def test_every_gpu_supports_exactly_what_its_datasheet_lists(name: str, dtype: str) -> None:
    t, arrays = one_gpu_table(name, dtype)
    peak = getattr(GPUS[name], NEEDS[dtype])
    assert bool(t.ok["dtype_support"].all()) == (peak is not None)
    assert bool(t.ok["dtype_support"].any()) == (peak is not None)
    if peak is None:
        assert not t.feasible.any() and ranking.exhaustive(t) is None
    else:  # the dtype's own tensor peak is the compute peak (FP8 prefill is not FP16-bound)
        assert arrays.peak_flops[0] == pytest.approx(peak * 1e12)


def test_fp8_is_never_recommended_on_t4g() -> None:
    """The issue's case: fp8 under $1/h picked g5g.xlarge (a T4G: no FP8 tensor cores)."""
    cmd = [sys.executable, "-m", "infersave.cli.main", "solve", "--model", "llama-3.1-8b",
           "--input-len", "1024", "--output-len", "128", "--slo-tps", "100", "--dtype", "fp8",
           "--max-price", "1", "--format", "json"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert p.returncode in (0, 1), p.stderr
    rec = json.loads(p.stdout)["recommendation"]
    if rec is not None:
        assert GPUS[rec["gpu"]].fp8_dense_tflops is not None
    else:
        assert "fp8" in p.stderr


def test_fp16_runs_everywhere_and_its_peak_is_the_fp16_figure() -> None:
    for name, g in GPUS.items():
        t, arrays = one_gpu_table(name, "fp16")
        assert t.ok["dtype_support"].all()
        assert arrays.peak_flops[0] == pytest.approx(g.fp16_dense_tflops * 1e12)
        assert np.isfinite(t.tps).all()
