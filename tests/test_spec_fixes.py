"""GPU spec corrections of issue 8 (catalog/curate.py SPEC_FIXES), checked on what they decide."""

from __future__ import annotations

import numpy as np

from infersave.catalog import load
from infersave.formulations.candidates import Workload, build_table, instance_arrays
from infersave.formulations.options import ModelOptions


def test_t4_usable_memory_is_what_nvidia_smi_reports() -> None:
    gpus = load.gpus()
    assert gpus["T4"].usable_memory_mib == gpus["T4G"].usable_memory_mib == 15360


def test_llama2_7b_batch2_no_longer_fits_g4dn_xlarge_without_offload() -> None:
    """Weights 13.48 GB + KV 1 GiB (2 x 1024 tokens) exceed 0.9 x 15,360 MiB = 13.5 GiB, while
    they fitted 0.9 x 16,384 MiB = 14.4 GiB."""
    options = ModelOptions()
    inst = load.find_instance("g4dn.xlarge", "us-east-1")
    arrays = instance_arrays([inst], load.gpus(), options)
    assert arrays.gpu_memory_bytes[0] == 15360 * 2**20 * 0.9
    w = Workload(512, 512, 10, 1.0, float("inf"))
    t = build_table(load.find_model("llama-2-7b"), w, arrays, (2,), np.array([0.0, 0.5]), options)
    assert not t.memory_ok[0] and t.memory_ok[1]


def test_a10g_peak_is_the_full_rate_ga102_figure() -> None:
    a10g, a10 = load.gpus()["A10G"], load.gpus()["A10"]
    assert a10g.fp16_dense_tflops == a10.fp16_dense_tflops == 125
    assert a10g.int8_dense_tops == 250
    assert "corrected" in a10g.source
